"""Conservation laws and monotone loss along whole runs, across events and sliding."""
import numpy as np
import pytest

import fastflow as ff
from conftest import random_problem

CASES = [(loss, seed) for loss in ("exponential", "logistic", "square") for seed in range(8)]


def balance(net, theta):
    """||w_j||^2 - ||v_j||^2 per hidden neuron, and the scale ||w_j||^2 + ||v_j||^2."""
    W1, W2 = net.split(theta)
    a, b = np.sum(W1**2, axis=1), np.sum(W2**2, axis=0)
    return a - b, a + b


@pytest.mark.parametrize("loss,seed", CASES)
def test_balance_conserved_and_loss_monotone(loss, seed):
    net, X, y, theta0 = random_problem(loss, seed)
    t_eval = np.linspace(0.0, 30.0, 301)
    traj = ff.flow(net, (X, y), theta0, loss=loss, t_max=30.0, t_eval=t_eval, rtol=1e-12, atol=1e-14)
    c0, scale = balance(net, theta0)
    c1, _ = balance(net, traj.theta)
    assert np.max(np.abs(c1 - c0) / scale) <= 1e-10
    losses = traj.loss_at[np.isfinite(traj.loss_at)]
    assert np.all(np.diff(losses) <= 1e-12 * losses[:-1])
