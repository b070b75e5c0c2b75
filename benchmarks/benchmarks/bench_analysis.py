"""asv benchmarks of `fastflow.analysis.analyze` on flow limits: the margin paper's Thm 3.2 limit (not_local: polish,
then the certificate search succeeds at the first construction) and a typical random limit (polish over many
patterns, a certificate search that finds nothing, and the convex program over all arrangements); analyze includes
the per-layer problems, also timed alone.

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


PROBLEMS = {"thm32": thm32_limit, "random": random_limit}


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
        from fastflow import analysis
        self.analysis = analysis
        net, X, y, theta = PROBLEMS[limit]()
        self.point = analyze(net, (X, y), theta).theta_tilde
        self.model, theta = analysis._setup(net, (X, y), theta)
        self.raw = analysis._normalise(self.model, theta)

    def time_polish(self, limit):
        self.analysis._polish(self.model, self.raw, 0.5)

    def time_kkt_residual(self, limit):
        self.analysis._kkt_fit(self.model, self.raw)

    def time_per_layer(self, limit):
        for layer in (1, 2):
            self.analysis._layer_report(self.model, self.point, layer, 1e-2, 1e-8, 1e-6, True)
