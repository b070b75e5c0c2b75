"""The random problems the fuzz target draws, and the dense-sample grids it checks them on."""
import numpy as np

from ..networks import fully_connected, two_layer
from .common import Problem


def random_problem(rng, n=(2, 8), d=(2, 4), width=(2, 5), losses=("exponential", "logistic", "square"),
                   t_max=None, scale=None):
    """A random small two-layer ReLU problem (n, d, width drawn uniformly from the inclusive ranges), gaussian
    inputs, labels +-1 (or 1- or 2-D real targets for the square loss), a gaussian init of random scale (0.03 to 3
    unless `scale` is given) and a short horizon (classification: t up to 1e3, square: up to 30; or `t_max`)."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n, d, width = (int(rng.integers(lo, hi + 1)) for lo, hi in (n, d, width))
    loss = str(rng.choice(losses))
    X = rng.normal(size=(n, d))
    if loss == "square":
        d_out = int(rng.integers(1, 3))
        y = rng.normal(size=(n, d_out))
        horizon = float(np.exp(rng.uniform(0.0, np.log(30.0))))
    else:
        d_out = 1
        y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        horizon = float(np.exp(rng.uniform(0.0, np.log(1e3))))
    net = two_layer(d, width, d_out=d_out)
    std = 10.0 ** rng.uniform(-1.5, 0.5)
    theta0 = rng.normal(0.0, std if scale is None else scale, net.n_params)
    return Problem(net, X, y, theta0, loss, horizon if t_max is None else float(t_max))


def random_deep_problem(rng, depth=(3, 4), width=(2, 8), n=(3, 10), d=(2, 4), losses=("exponential", "logistic")):
    """A random small deep ReLU problem: depth - 1 hidden layers of one width (depth, width, n, d drawn uniformly
    from the inclusive ranges), gaussian inputs, labels +-1, a gaussian init of std 0.5, 1 or 1.5 and a horizon up
    to t = 1e3."""
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    depth, width, n, d = (int(rng.integers(lo, hi + 1)) for lo, hi in (depth, width, n, d))
    loss = str(rng.choice(losses))
    net = fully_connected(d, [width] * (depth - 1))
    X = rng.normal(size=(n, d))
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    theta0 = rng.normal(0.0, float(rng.choice([0.5, 1.0, 1.5])), net.n_params)
    return Problem(net, X, y, theta0, loss, float(np.exp(rng.uniform(0.0, np.log(1e3)))))


def time_grid(loss, t_max, n_grid=400):
    """n_grid dense-sample times on [0, t_max]: uniform in log(1 + t) for the classification losses (the
    integrator's own time), uniform in t for the square loss."""
    if loss == "square":
        return np.linspace(0.0, t_max, n_grid)
    grid = np.expm1(np.linspace(0.0, np.log1p(t_max), n_grid))
    grid[-1] = t_max
    return grid


def event_sample_times(traj, grid=None):
    """Sorted t_eval holding every event time (and the grid, if given)."""
    times = traj.events["t"] if grid is None else np.concatenate([grid, traj.events["t"]])
    return np.unique(np.asarray(times, dtype=float))
