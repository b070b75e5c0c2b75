"""asv benchmarks of sweeps: `ff.flow_many` throughput on random datasets (C++ threads) and a Monte Carlo
`estimate` of the rank paper's 2x2 experiment.

track_* methods return trajectories (or samples) per second, so asv plots throughput next to the wall times.
"""
import os
import time

import numpy as np

import fastflow as ff

DATA_SEED, THETA_SEED = 20240611, 3
BATCH = 64


def random_problem(n, d, width):
    """n points uniform on the unit sphere of R^d, labels of a random linear separator, BATCH Xavier inits."""
    rng = np.random.default_rng(DATA_SEED)
    X = rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.where(X @ rng.normal(size=d) >= 0, 1.0, -1.0)
    net = ff.two_layer(d, width)
    thetas = np.array([ff.init.xavier(net, np.random.default_rng([THETA_SEED, k])) for k in range(BATCH)])
    return net, (X, y), thetas


HORIZON = {"exponential": {"log_t_max": 30.0}, "logistic": {"log_t_max": 30.0}}
# (no square loss on random data here: some runs chatter near a stationary point for seconds, which would swamp the
# throughput; the square loss is measured on the rank paper's problem in EstimateRank2x2)


class FlowMany:
    """Batches of BATCH trajectories on one random dataset."""

    params = (["exponential", "logistic"], [(8, 2, 4), (16, 3, 8)], [1, 2])
    param_names = ["loss", "n_d_width", "threads"]
    timeout = 120

    def setup(self, loss, shape, threads):
        if threads > (os.cpu_count() or 1):
            raise NotImplementedError(f"{threads} threads on {os.cpu_count()} CPUs")
        self.net, self.data, self.thetas = random_problem(*shape)
        self.kwargs = dict(loss=loss, **HORIZON[loss])
        ff.flow_many(self.net, self.data, self.thetas[:2], threads=1, **self.kwargs)  # warm-up

    def run(self, threads):
        return ff.flow_many(self.net, self.data, self.thetas, threads=threads, **self.kwargs)

    def time_flow_many(self, loss, shape, threads):
        self.run(threads)

    def track_trajectories_per_second(self, loss, shape, threads):
        start = time.perf_counter()
        self.run(threads)
        return BATCH / (time.perf_counter() - start)

    track_trajectories_per_second.unit = "trajectories/s"


class EstimateRank2x2:
    """`estimate` on tvs-rank-2x2 with n = 200, in this process (threads) and on 2 worker processes."""

    params = ([1, 2],)
    param_names = ["workers"]
    timeout = 120
    N = 200

    def setup(self, workers):
        from fastflow import experiments
        self.exp = experiments.get("tvs-rank-2x2")

    def run(self, workers):
        from fastflow.montecarlo import estimate
        return estimate(self.exp, n=self.N, seed=0, workers=workers, progress=False)

    def time_estimate(self, workers):
        self.run(workers)

    def track_samples_per_second(self, workers):
        start = time.perf_counter()
        self.run(workers)
        return self.N / (time.perf_counter() - start)

    def track_zero_loss_runs(self, workers):
        est = self.run(workers)
        return est.counts["zero_loss_rank2"] + est.counts["zero_loss_rank1"]

    track_samples_per_second.unit = "samples/s"
    track_zero_loss_runs.unit = "runs"
