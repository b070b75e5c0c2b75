"""asv benchmarks of `ff.flow`: wall time, peak memory and work counts over a grid of problem sizes, the cost of one
right-hand-side evaluation next to NumPy's two matrix products, and the rank paper's 288-run experiment.

The track_* counts (steps, events, slides) are deterministic for a given commit, so asv shows changes in the
integrator's behaviour (e.g. the step-size controller) separately from changes in speed.

Big or slow combinations raise NotImplementedError in setup (asv shows them as skipped) unless
FASTFLOW_BENCH_LARGE=1; see `Flow.setup`.
"""
import os
import time

import numpy as np

import fastflow as ff

from .common import (LOSSES, RANK_FLOW, RANK_RUNS, best_of, count_kind, large_enabled, random_problem,
                     rank2x2_inits, rank2x2_problem)

T_MAX = {"square": 100.0, "exponential": 1e6, "logistic": 1e6}
MAX_SIZE = 20_000  # n * width * d above this is "large"

# Combinations within MAX_SIZE measured at > 1 s (5 s cap per run; Linux VM, 2-core AMD EPYC, fastflow 0.1.0 at commit
# 1d29d01). Most end in long runs of rejected steps while neurons slide; see benchmarks/compare.py's report.
SLOW = {
    ("exponential", 10, 10, 128): "stopped at the 5 s cap, t = 5.26e+05",
    ("exponential", 10, 50, 16): "stopped at the 5 s cap, t = 0.955",
    ("exponential", 100, 10, 2): "stopped at the 5 s cap, t = 1.14",
    ("exponential", 100, 10, 16): "stopped at the 5 s cap, t = 0.388",
    ("exponential", 100, 50, 2): "stopped at the 5 s cap, t = 0.116",
    ("exponential", 1000, 2, 2): "stalled after 2.1 s",
    ("exponential", 1000, 10, 2): "stopped at the 5 s cap, t = 0.0897",
    ("logistic", 10, 10, 128): "stopped at the 5 s cap",
    ("logistic", 10, 50, 16): "stopped at the 5 s cap, t = 4.98",
    ("logistic", 100, 10, 2): "stopped at the 5 s cap, t = 1.73",
    ("logistic", 100, 10, 16): "stopped at the 5 s cap, t = 2.21",
    ("logistic", 100, 50, 2): "stopped at the 5 s cap, t = 0.256",
    ("logistic", 1000, 2, 2): "stalled after 2.7 s",
    ("logistic", 1000, 10, 2): "stopped at the 5 s cap, t = 0.137",
    ("square", 10, 2, 128): "stopped at the 5 s cap, t = 7.72",
    ("square", 10, 10, 128): "stopped at the 5 s cap, t = 18.2",
    ("square", 100, 2, 16): "stopped at the 5 s cap, t = 77.3",
    ("square", 100, 10, 16): "stopped at the 5 s cap, t = 0.344",
    ("square", 100, 50, 2): "stopped at the 5 s cap, t = 0.0407",
    ("square", 1000, 2, 2): "t_max after 1.9 s",
    ("square", 1000, 10, 2): "stopped at the 5 s cap, t = 0.174",
}


def skip_unless_large(reason):
    if not large_enabled():
        raise NotImplementedError(f"{reason} (set FASTFLOW_BENCH_LARGE=1 to run it)")


class Flow:
    """One trajectory of a random problem (common.random_problem) at rtol 1e-10: t = 1e6 for the classification
    losses (log-time integration), t = 100 for the square loss."""

    params = (list(LOSSES), [2, 10, 100, 1000], [2, 10, 50], [2, 16, 128])
    param_names = ["loss", "n", "d", "width"]
    timeout = 600 if large_enabled() else 60

    def setup(self, loss, n, d, width):
        if n * width * d > MAX_SIZE:
            skip_unless_large(f"n * width * d = {n * width * d} > {MAX_SIZE}")
        elif (loss, n, d, width) in SLOW:
            skip_unless_large(f"slow: {SLOW[(loss, n, d, width)]}")
        self.net, X, y, self.theta0 = random_problem(n, d, width, loss)
        self.data = (X, y)
        self.kwargs = dict(loss=loss, t_max=T_MAX[loss], rtol=1e-10, atol=1e-12)

    def run(self):
        return ff.flow(self.net, self.data, self.theta0, **self.kwargs)

    def time_flow(self, *params):
        self.run()

    def peakmem_flow(self, *params):
        self.run()

    def track_steps(self, *params):
        return self.run().n_steps

    def track_events(self, *params):
        return self.run().n_events

    def track_slide_events(self, *params):
        return count_kind(self.run(), "slide_start")

    track_steps.unit = "steps"
    track_events.unit = "events"
    track_slide_events.unit = "events"


class Rhs:
    """Cost of one right-hand-side evaluation at n = 1000, d = 50, width = 128, from a one-step flow (no event):
    flow time / n_rhs. That quotient also carries the per-flow work (initial modes, event search on the step,
    Python wrapping), so it is an upper bound. Next to it: NumPy's X @ W1.T plus the backward product
    delta.T @ X (BLAS, as many threads as NumPy uses), and the C++ forward pass alone (`net.forward`)."""

    n, d, width, t_max = 1000, 50, 128, 1e-7
    timeout = 120

    def setup(self):
        self.net, self.X, self.y, self.theta0 = random_problem(self.n, self.d, self.width, "exponential")
        self.W1 = self.net.split(self.theta0)[0]
        self.delta = np.random.default_rng(0).normal(size=(self.n, self.width))
        self.kwargs = dict(loss="exponential", t_max=self.t_max, rtol=1e-10, atol=1e-12)
        tr = self.short_flow()
        if tr.n_events or tr.n_steps != 1:
            raise NotImplementedError(f"the short flow took {tr.n_steps} steps with {tr.n_events} events")

    def short_flow(self):
        return ff.flow(self.net, (self.X, self.y), self.theta0, **self.kwargs)

    def two_matmuls(self):
        return self.X @ self.W1.T, self.delta.T @ self.X

    def time_short_flow(self):
        self.short_flow()

    def time_numpy_two_matmuls(self):
        self.two_matmuls()

    def time_cpp_forward_pass(self):
        self.net.forward(self.theta0, self.X)

    def track_rhs_seconds(self):
        seconds, tr = best_of(self.short_flow, repeat=3)
        return seconds / tr.n_rhs

    def track_rhs_over_two_matmuls(self):
        seconds, tr = best_of(self.short_flow, repeat=3)
        return (seconds / tr.n_rhs) / best_of(self.two_matmuls, repeat=20)[0]

    track_rhs_seconds.unit = "seconds"
    track_rhs_over_two_matmuls.unit = "ratio"


class RankPaper2x2:
    """The rank paper's 2x2 experiment: RANK_RUNS = 288 trajectories (spherical init of radius 1e-4, t = 300, square
    loss) with flow_many on 1 and 2 C++ threads."""

    params = [1, 2]
    param_names = ["threads"]
    timeout = 120

    def setup(self, threads):
        if threads > (os.cpu_count() or 1):
            raise NotImplementedError(f"{threads} threads on {os.cpu_count()} CPUs")
        self.net, X, Y = rank2x2_problem()
        self.data = (X, Y)
        self.thetas = rank2x2_inits(self.net, RANK_RUNS)
        ff.flow_many(self.net, self.data, self.thetas[:4], threads=threads, **RANK_FLOW)  # warm-up

    def run(self, threads):
        return ff.flow_many(self.net, self.data, self.thetas, threads=threads, **RANK_FLOW)

    def time_flow_many(self, threads):
        self.run(threads)

    def track_trajectories_per_second(self, threads):
        start = time.perf_counter()
        self.run(threads)
        return RANK_RUNS / (time.perf_counter() - start)

    track_trajectories_per_second.unit = "trajectories/s"
