"""asv benchmarks of `fastflow.analysis.analyze` on flow limits: the margin paper's Thm 3.2 limit (not_local: polish,
then the certificate search succeeds at the first construction), a typical random limit (polish over many
patterns, a certificate search that finds nothing, and the convex program over all arrangements), and two class-N
limits through the C++ Jacobians (Thm 5.1 at depth 4, a deep linear net); analyze includes the per-layer problems,
also timed alone.

The flows run in setup; analyze is warmed up there too (numba's arrangement kernels load from cache or compile once).
"""
import numpy as np

import fastflow as ff
from fastflow.analysis import analyze

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

    def time_polish(self, limit):
        self.polish(self.model, self.raw, 0.5)

    def time_kkt_residual(self, limit):
        self.kkt_fit(self.model, self.raw)

    def time_per_layer(self, limit):
        for layer in range(1, self.model.degree + 1):
            self.layer_report(self.model, self.point, layer, 1e-2, 1e-8, 1e-6, True)
