"""asv benchmarks of `fastflow.analysis.analyze` on flow limits: the margin paper's Thm 3.2 limit (not_local: polish,
then the certificate search succeeds at the first construction), a typical random limit (polish over many
patterns, a certificate search that finds nothing, and the convex program over all arrangements), and two class-N
limits through the C++ Jacobians (Thm 5.1 at depth 4, a deep linear net); analyze includes the per-layer problems,
also timed alone. AnalyzeRandom: 100 random limits per class-N architecture within issue #20's sizes (width <= 8,
d <= 4, n <= 10; its target is under 2 s each), timed together and the slowest alone.

The flows run in setup; analyze is warmed up there too (numba's arrangement kernels load from cache or compile once).
"""
import numpy as np

import time

import fastflow as ff
from fastflow.analysis import analyze
from fastflow.analysis.model import _POLISH_BUDGET, _Budget
from fastflow.analysis.verdict import _one_blas_thread
from fastflow.sweep import sphere_data
from fastflow.sweep_classn import ACTIVATIONS, ARCHITECTURES, classn_net

DATA_SEED = 20240601
LOG_T_MAX = 300.0


def thm32_limit():
    """Margin paper Thm 3.2: x = (+-1, 1/4), y = 1, width 2, the init of tests/test_papers.py, exponential loss."""
    X, y = np.array([[1.0, 0.25], [-1.0, 0.25]]), np.ones(2)
    net = ff.two_layer(2, 2)
    theta0 = net.join([np.array([[0.1, 1.0], [0.3, -2.0]]), np.array([[0.8, -0.6]])])
    return net, X, y, ff.flow(net, (X, y), theta0, log_t_max=LOG_T_MAX).theta


def random_limit(n=10, d=2, width=4, seed=1):
    """10 points on the circle, labels of a random linear separator, He init, exponential loss. For the default seed
    the limit polishes to a KKT point at distance ~0.006 and is the global optimum (with the convex program) or
    kkt_only (without it)."""
    rng = np.random.default_rng([DATA_SEED, n, d, width, seed])
    X = rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.where(X @ rng.normal(size=d) >= 0, 1.0, -1.0)
    net = ff.two_layer(d, width)
    return net, X, y, ff.flow(net, (X, y), ff.init.he(net, rng), log_t_max=LOG_T_MAX).theta


def thm51_limit(depth=4):
    """Margin paper Thm 5.1: a depth-4 diagonal ReLU net, x = (1, 1), y = 1, all weights 1 at the start: class-N
    polishing through the C++ Jacobians, the second-order check and the path-rebalancing certificate."""
    X, y = np.array([[1.0, 1.0]]), np.ones(1)
    net = ff.diagonal(2, depth, "relu")
    return net, X, y, ff.flow(net, (X, y), np.ones(2 * depth), log_t_max=LOG_T_MAX).theta


def deep_linear_limit(seed=1):
    """A depth-3 fully connected linear net (widths 3, 3) on 8 Gaussian points with linearly separable labels: the
    rank-one polishing candidate and the SVM bound (global)."""
    rng = np.random.default_rng([DATA_SEED, seed])
    X = rng.normal(size=(8, 3))
    y = np.where(X @ rng.normal(size=3) >= 0, 1.0, -1.0)
    net = ff.fully_connected(3, [3, 3], activation="linear")
    return net, X, y, ff.flow(net, (X, y), rng.normal(size=net.n_params), log_t_max=LOG_T_MAX).theta


PROBLEMS = {"thm32": thm32_limit, "random": random_limit, "thm51": thm51_limit, "deep_linear": deep_linear_limit}


class Analyze:
    params = (list(PROBLEMS), [True, False])
    param_names = ["limit", "global_opt"]
    timeout = 60

    def setup(self, limit, global_opt):
        self.net, self.X, self.y, self.theta = PROBLEMS[limit]()
        self.global_opt = global_opt
        self.run()   # warm-up

    def run(self):
        return analyze(self.net, (self.X, self.y), self.theta, global_opt=self.global_opt)

    def time_analyze(self, limit, global_opt):
        self.run()

    def peakmem_analyze(self, limit, global_opt):
        self.run()

    def track_polish_distance(self, limit, global_opt):
        return self.run().polish_distance

    track_polish_distance.unit = "distance"


class Pieces:
    """The parts of analyze apart: polishing (the patterns of the late point and their KKT systems), the KKT
    residual (one non-negative least-squares problem), and the per-layer problems at the analysed point (least-distance
    programs over activation patterns, and over the combinations of cells when global_opt)."""

    params = list(PROBLEMS)
    param_names = ["limit"]
    timeout = 60

    def setup(self, limit):
        from fastflow.analysis import kkt, layers, model, polish, polish_classn
        net, X, y, theta = PROBLEMS[limit]()
        self.point = analyze(net, (X, y), theta).theta_tilde
        self.model, theta = model._setup(net, (X, y), theta)
        self.raw = model._normalise(self.model, theta)
        self.polish = polish_classn._polish_classn if self.model.general else polish._polish
        self.kkt_fit, self.layer_report = kkt._kkt_fit, layers._layer_report

    # (each on one BLAS thread, as analyze runs them)
    @_one_blas_thread
    def time_polish(self, limit):
        self.polish(self.model, self.raw, 0.5, _Budget(_POLISH_BUDGET))

    @_one_blas_thread
    def time_kkt_residual(self, limit):
        self.kkt_fit(self.model, self.raw)

    @_one_blas_thread
    def time_per_layer(self, limit):
        for layer in range(1, self.model.degree + 1):
            self.layer_report(self.model, self.point, layer, 1e-2, 1e-8, 1e-6, True)


RANDOM_COUNT = 100


def random_limits(family, depth, count=RANDOM_COUNT, log_t_max=64.0):
    """`count` flow limits of one architecture: n in 4..10 points on the unit sphere of R^d, d in {2, 4}, labels of a
    random linear separator, ReLU and linear alternately, fully connected widths in 2..8, Xavier init, exponential
    loss to log t = 64. A draw whose flow does not separate its data or ends early is drawn again (analyze needs
    positive margins)."""
    rng = np.random.default_rng([DATA_SEED, len(family), depth])
    out = []
    while len(out) < count:
        data = sphere_data(rng, ns=tuple(range(4, 11)), ds=(2, 4))
        net = classn_net(data, rng, [(family, depth)], [ACTIVATIONS[len(out) % 2]], tuple(range(2, 9)))
        traj = ff.flow(net, data, ff.init.xavier(net, rng), log_t_max=log_t_max, max_steps=20_000)
        if traj.status == "t_max" and traj.margin > 0:
            out.append((net, data, traj.theta))
    return out


class AnalyzeRandom:
    params = [f"{family}-{depth}" for family, depth in ARCHITECTURES]
    param_names = ["architecture"]
    timeout = 1800
    number, repeat, warmup_time = 1, 1, 0   # one pass over the 100 limits is the measurement

    def setup(self, architecture):
        family, depth = architecture.rsplit("-", 1)
        self.limits = random_limits(family, int(depth))
        analyze(*self.limits[0])   # warm-up (imports, numba's cache)

    def time_analyze_100(self, architecture):
        for net, data, theta in self.limits:
            analyze(net, data, theta)

    def track_slowest_seconds(self, architecture):
        slowest = 0.0
        for net, data, theta in self.limits:
            t0 = time.perf_counter()
            analyze(net, data, theta)
            slowest = max(slowest, time.perf_counter() - t0)
        return slowest

    track_slowest_seconds.unit = "seconds"
