import numpy as np
import pytest

import fastflow as ff


def unit_rows(rng, n, d):
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def thm32():
    """Margin paper Thm 3.2: x1 = (1, 1/4), x2 = (-1, 1/4), y = 1, width 2."""
    X = np.array([[1.0, 0.25], [-1.0, 0.25]])
    return ff.two_layer(2, 2), X, np.ones(2)


def random_problem(loss, seed):
    """A random two-layer ReLU problem: n 2-8 points on the sphere of R^d (d 2-5), width 2-6, labels +-1 (or
    2-D targets for the square loss), Gaussian init of scale 0.7."""
    rng = np.random.default_rng(seed)
    n, d, width = rng.integers(2, 9), rng.integers(2, 6), rng.integers(2, 7)
    X = unit_rows(rng, n, d)
    if loss == "square":
        net, y = ff.two_layer(d, width, d_out=2), rng.normal(size=(n, 2))
    else:
        net, y = ff.two_layer(d, width), np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return net, X, y, ff.init.gaussian(net, 0.7, rng)


def rank_paper_data():
    """Rank paper section 3.1: x = (+-1, 0.99)/norm as rows, Y = I."""
    X = np.array([[1.0, 0.99], [-1.0, 0.99]])
    return X / np.linalg.norm(X, axis=1, keepdims=True), np.eye(2)
