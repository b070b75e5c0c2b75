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


def rank_paper_data():
    """Rank paper section 3.1: x = (+-1, 0.99)/norm as rows, Y = I."""
    X = np.array([[1.0, 0.99], [-1.0, 0.99]])
    return X / np.linalg.norm(X, axis=1, keepdims=True), np.eye(2)
