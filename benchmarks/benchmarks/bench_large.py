"""asv: large random-dataset sweeps. One flow per grid point of a two-layer ReLU net on n points uniform on the
sphere of R^d, labels (or targets) from a random linear teacher, Xavier init; exponential/logistic to log t = 10,
square loss to t = 100. Tracks throughput (trajectories, accepted steps and events per second) and fields per
accepted step, the figure an exact flow is bounded by (about 7 with Dormand-Prince: 6 stages and a restart).

Only the smallest point runs by default; the rest with FASTFLOW_BENCH_LARGE=1.
"""
import time

import numpy as np

import fastflow as ff

from .common import large_enabled, unit_rows

HORIZON = {"exponential": dict(log_t_max=10.0), "logistic": dict(log_t_max=10.0), "square": dict(t_max=100.0)}


def large_problem(loss, n, d, width):
    """(net, (X, y), theta0) of one grid point: two_layer(d, width), n points uniform on the sphere of R^d, labels
    sign(X u) (targets X u for the square loss) of a random teacher u, Xavier init; deterministic in (n, d, width).
    benchmarks/compare.py's scale section runs the same problems."""
    rng = np.random.default_rng([2026, n, d, width])
    X = unit_rows(rng, n, d)
    score = X @ rng.normal(size=d)
    y = score if loss == "square" else np.where(score >= 0, 1.0, -1.0)
    net = ff.two_layer(d, width)
    return net, (X, y), ff.init.xavier(net, rng)


class LargeSweep:
    params = (["exponential", "logistic", "square"], [100, 300, 1000], [10, 50], [16, 64, 128])
    param_names = ["loss", "n", "d", "width"]
    timeout = 3600

    def setup(self, loss, n, d, width):
        if (n, d, width) != (100, 10, 16) and not large_enabled():
            raise NotImplementedError("large point (set FASTFLOW_BENCH_LARGE=1 to run it)")
        self.net, self.data, self.theta0 = large_problem(loss, n, d, width)
        self.options = dict(loss=loss, **HORIZON[loss])
        start = time.perf_counter()
        self.traj = ff.flow(self.net, self.data, self.theta0, **self.options)
        self.seconds = time.perf_counter() - start

    def time_flow(self, *params):
        ff.flow(self.net, self.data, self.theta0, **self.options)

    def track_trajectories_per_second(self, *params):
        return 1.0 / self.seconds

    def track_steps_per_second(self, *params):
        return self.traj.n_steps / self.seconds

    def track_events_per_second(self, *params):
        return self.traj.n_events / self.seconds

    def track_fields_per_step(self, *params):
        return self.traj.n_rhs / max(self.traj.n_steps, 1)
