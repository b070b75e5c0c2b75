"""asv benchmarks of `ff.flow`: wall time, peak memory, and work counts (steps, events, slides).

The track_* counts are deterministic for a given commit, so asv shows changes in the integrator's behaviour
(e.g. a step-size controller change) separately from changes in speed.
"""
import numpy as np

import fastflow as ff

DATA_SEED, THETA_SEED = 20240601, 7
D = 2  # input dimension; fixed for now
T_MAX = {"square": 100.0, "exponential": 1e6, "logistic": 1e6}


def make_problem(loss, n, width, d=D):
    """Inputs on the unit sphere; labels from a random linear separator, or random regression targets."""
    rng = np.random.default_rng(DATA_SEED)
    X = rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    if loss == "square":
        y = rng.normal(size=n)
    else:
        y = np.where(X @ rng.normal(size=d) >= 0, 1.0, -1.0)
    net = ff.two_layer(d, width, 1, "relu")
    return net, (X, y), ff.init.gaussian(net, 0.5, THETA_SEED)


class Flow:
    params = (["exponential", "logistic", "square"], [2, 10, 100], [2, 16])
    param_names = ["loss", "n", "width"]
    timeout = 60

    def setup(self, loss, n, width):
        if (loss, n, width) == ("square", 100, 16):
            # ~18 s, ending in "max_events" (Zeno: events accumulate near t = 80): too slow for this suite.
            raise NotImplementedError("square loss, n=100, width=16: Zeno point, ~18 s")
        self.net, self.data, self.theta0 = make_problem(loss, n, width)
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
        return int(np.count_nonzero(self.run().events["kind"] == "slide_start"))

    track_steps.unit = "steps"
    track_events.unit = "events"
    track_slide_events.unit = "events"


def rank2x2_problem():
    """The rank paper's 2x2 example: two nearly aligned unit inputs, identity targets, small spherical init."""
    x1, x2 = np.array([1.0, 0.99]), np.array([-1.0, 0.99])
    X = np.vstack([x1 / np.linalg.norm(x1), x2 / np.linalg.norm(x2)])
    return ff.two_layer(2, 2, 2, "relu"), X, np.eye(2)


class RankPaper2x2:
    timeout = 60

    def setup(self):
        self.net, self.X, self.Y = rank2x2_problem()
        # seed 6 reaches a global minimum (loss ~1e-26); many seeds instead stall at loss 0.5 or start dead
        self.theta0 = ff.init.sphere(self.net, 1e-4, 6)

    def run(self):
        return ff.flow(self.net, (self.X, self.Y), self.theta0, loss="square", t_max=300, rtol=1e-10, atol=1e-14)

    def time_flow(self):
        self.run()

    def track_steps(self):
        return self.run().n_steps

    track_steps.unit = "steps"
