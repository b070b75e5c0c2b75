"""The experiment of my_experiment.py on a Dask cluster: `ff.estimate(..., executor=client.get_executor())`.

Without an address this starts a local cluster of two worker processes; FASTFLOW_DASK_ADDRESS=tcp://host:8786 uses
a running scheduler instead (for the built-in experiments: `fastflow run NAME --dask ADDRESS`). The workers must be
able to import the experiment's functions: `client.upload_file` ships the module to them.

    python examples/04_estimate_dask.py
FASTFLOW_EXAMPLE_SMALL=1 runs 16 samples instead of 1024.
"""
import os
from pathlib import Path

import numpy as np
from dask.distributed import Client, LocalCluster

import fastflow as ff
import my_experiment

SMALL = os.environ.get("FASTFLOW_EXAMPLE_SMALL") == "1"
N = 16 if SMALL else 1024
ADDRESS = os.environ.get("FASTFLOW_DASK_ADDRESS")


def main():
    cluster = None if ADDRESS else LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
    with Client(ADDRESS or cluster) as client:
        # upload_file also reloads the module here: build the experiment from the reloaded one
        client.upload_file(str(Path(__file__).with_name("my_experiment.py")))
        exp = my_experiment.experiment()
        est = ff.estimate(exp, n=N, seed=0, executor=client.get_executor(), progress=False)
    if cluster is not None:
        cluster.close()
    print(est.table())
    # the cluster changes where samples run, never what they give
    local = ff.estimate(exp, n=N, seed=0, workers=1, progress=False)
    assert np.array_equal(est.sample_labels, local.sample_labels)
    print(f"same {N} labels as in this process")


if __name__ == "__main__":  # a local cluster starts worker processes that import this file
    main()
