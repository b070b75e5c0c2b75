"""Monte Carlo over an experiment of your own: `ff.estimate` on the Experiment of my_experiment.py.

In this process, then on worker processes (the same result sample for sample: sample k draws everything from a
generator seeded by (seed, k)), then with a checkpoint that a second call resumes and extends; the table, the
intervals, the per-sample records, JSON and a PNG.

    python examples/03_estimate.py
FASTFLOW_EXAMPLE_SMALL=1 runs 32 samples instead of 1024; FASTFLOW_EXAMPLE_OUT=DIR says where the files go.
"""
import os
from pathlib import Path

import numpy as np

import fastflow as ff
import my_experiment  # next to this script; worker processes find it the same way

SMALL = os.environ.get("FASTFLOW_EXAMPLE_SMALL") == "1"
OUT = Path(os.environ.get("FASTFLOW_EXAMPLE_OUT", "."))
N = 32 if SMALL else 1024

exp = my_experiment.experiment()

# in this process, C++ threads inside each chunk
serial = ff.estimate(exp, n=N, seed=0, workers=1, progress=False)
print(serial.table())

# on two worker processes: chunks finish in any order, the samples are counted in index order
parallel = ff.estimate(exp, n=N, seed=0, workers=2, progress=False)
assert np.array_equal(parallel.sample_labels, serial.sample_labels)
print(f"workers=2: the same {N} labels, sample for sample")

# a checkpoint: every finished chunk is appended (and fsync'ed) at once; a later call with the same file, seed and
# chunk size skips the chunks already there, so an interrupted sweep resumes and a finished one can be extended
checkpoint = OUT / "half-circle.jsonl"
checkpoint.unlink(missing_ok=True)
ff.estimate(exp, n=N // 2, seed=0, checkpoint=checkpoint, chunk_size=8, progress=False)
est = ff.estimate(exp, n=N, seed=0, checkpoint=checkpoint, chunk_size=8, progress=False)
assert np.array_equal(est.sample_labels, serial.sample_labels)
print(f"extended {checkpoint} from {N // 2} to {est.n} samples, resuming {est.settings['resumed_chunks']} chunks")

lo, hi = est.ci["global"]
print(f"P(global) = {est.p['global']:.3f}, 95% Wilson interval [{lo:.3f}, {hi:.3f}]")
spread = est.records["spread_deg"]           # one number per sample (NaN where the outcome recorded none)
for label in ("global", "not_local", "not_separated"):
    mask = est.mask(label)
    if mask.any():
        print(f"  {label:<14} mean angular spread of the points {np.mean(spread[mask]):6.1f} deg over {mask.sum()}")

est.to_json(OUT / "half-circle.json")
est.plot(OUT / "half-circle.png")
print(f"wrote {OUT / 'half-circle.json'} and {OUT / 'half-circle.png'}")
