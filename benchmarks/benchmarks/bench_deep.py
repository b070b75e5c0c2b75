"""asv: deep fully connected ReLU nets at width 6-8 (issue #23). n = 10 points of R^3 (standard normal), labels of a
random linear teacher, Xavier init, logistic loss to log t = 20; `np.random.default_rng(seed)` draws X, the
teacher and the init, in that order. Two batches:
- "mixed": [6, 6, 6] and [8, 8] hidden layers, seeds 300-307 each (16 problems; [6, 6, 6] seed 301 is the issue's
  dead signal path: sample 0's last active first-layer unit reaches zero at t = 0.3667);
- "w8": [8, 8], seeds 100-119 (20 problems).
Tracks each batch's median and worst seconds per run and its count of runs ending t_max/converged/stalled.
"""
import time

import numpy as np

import fastflow as ff

from .common import large_enabled

BATCHES = {
    "mixed": [((6, 6, 6), seed) for seed in range(300, 308)] + [((8, 8), seed) for seed in range(300, 308)],
    "w8": [((8, 8), seed) for seed in range(100, 120)],
}
FLOW = dict(loss="logistic", log_t_max=20.0)
SENSIBLE = ("t_max", "converged", "stalled")


def deep_problem(widths, seed, n=10, d=3):
    """(net, (X, y), theta0) of one problem of the batches."""
    rng = np.random.default_rng(seed)
    net = ff.fully_connected(d, list(widths))
    X = rng.normal(size=(n, d))
    y = np.where(X @ rng.normal(size=d) >= 0, 1.0, -1.0)
    return net, (X, y), ff.init.xavier(net, rng)


def run_batch(batch, count=None):
    """[(widths, seed, status, seconds, events)] of the batch's first `count` problems (all by default)."""
    rows = []
    for widths, seed in BATCHES[batch][:count]:
        net, data, theta0 = deep_problem(widths, seed)
        start = time.process_time()
        try:
            traj = ff.flow(net, data, theta0, **FLOW)
            status, events = traj.status, traj.n_events
        except RuntimeError:
            status, events = "error", -1
        rows.append((widths, seed, status, time.process_time() - start, events))
    return rows


class DeepBatches:
    """One pass over a batch (its first 4 problems; all with FASTFLOW_BENCH_LARGE=1), CPU seconds per run."""
    params = list(BATCHES)
    param_names = ["batch"]
    timeout = 3600
    number = 1
    repeat = 1

    def setup_cache(self):
        count = None if large_enabled() else 4
        return {batch: run_batch(batch, count) for batch in BATCHES}

    def track_median_seconds(self, rows, batch):
        return float(np.median([r[3] for r in rows[batch]]))

    def track_worst_seconds(self, rows, batch):
        return float(max(r[3] for r in rows[batch]))

    def track_sensible_runs(self, rows, batch):
        return sum(r[2] in SENSIBLE for r in rows[batch])

    track_median_seconds.unit = track_worst_seconds.unit = "seconds"
    track_sensible_runs.unit = "runs"


class HullSliding:
    """The cost of one sliding velocity of a deep net against k, the units of one sample on their surfaces (a
    depth-3 net, d = 3, one sample, logistic loss): "one-layer" slides k first-layer units (the hull's corner by
    sign), "two-layers" k/2 in each hidden layer (the other layer's 2^(k/2) slope choices searched exactly)."""
    params = (["one-layer", "two-layers"], [4, 8, 16, 24])
    param_names = ["layout", "k"]

    def setup(self, layout, k):
        from fastflow import _core
        from fastflow.flow import FlowOptions, _problem
        widths = [k, 4] if layout == "one-layer" else [k // 2, k // 2]
        self.net = ff.fully_connected(3, widths)
        rng = np.random.default_rng(k)
        data, self.Y, _, _, self.options = _problem(self.net, (rng.normal(size=(1, 3)), np.ones(1)), "logistic",
                                                    FlowOptions.from_kwargs("flow", {}))
        self.X, self.theta = data.X, ff.init.xavier(self.net, rng)
        self.modes = np.where(self.net._core.preactivations(self.theta, self.X) > 0, 1, 0).astype(np.int32).ravel()
        self.modes[:k] = _core.MODES.index("sliding")  # the first k units: all of the sliding layers
        self.velocity = _core.velocity

    def time_velocity(self, layout, k):
        self.velocity(self.net._core, self.X, self.Y, self.options, self.theta, 0.5, self.modes)
