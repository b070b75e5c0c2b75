"""Statuses (docs/mathematics.md §5): "stalled" only when the stall rule fires, "t_max" whenever the horizon is
reached, whatever the loss."""
import numpy as np
import pytest

import fastflow as ff
from fastflow import fuzz


def test_horizon_reached_above_l0_is_t_max():
    """A logistic flow to t = 1 on random data (n = 100, width 32): its loss is still far above l(0) and still
    falling fast; it was not given enough time, and is not stuck."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 5))
    y = np.where(rng.random(100) < 0.5, -1.0, 1.0)
    net = ff.two_layer(5, 32)
    theta0 = ff.init.gaussian(net, 0.5, rng)
    traj = ff.flow(net, (X, y), theta0, loss="logistic", t_max=1.0, t_eval=[0.5, 1.0])
    assert traj.status == "t_max", traj.message
    assert traj.t == 1.0
    assert traj.loss >= fuzz.ell0("logistic")
    assert traj.loss_at[1] < 0.99 * traj.loss_at[0]
    assert not fuzz.check_status(traj, "logistic", 100, t_max=1.0)


def test_stall_rule_says_stalled():
    """The same point with both labels: no network separates it, the loss and the parameters stop moving above
    l(0), and the stall rule ends the run long before its horizon."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=3)
    X, y = np.array([x, x, rng.normal(size=3)]), np.array([1.0, -1.0, 1.0])
    net = ff.two_layer(3, 4)
    traj = ff.flow(net, (X, y), ff.init.gaussian(net, 0.5, 0), loss="exponential", log_t_max=60.0)
    assert traj.status == "stalled", traj.message
    assert traj.log_t < 60.0 and traj.loss >= fuzz.ell0("exponential")
    assert not fuzz.check_status(traj, "exponential", 3)


def test_checker_flags_stalled_below_l0_and_t_max_before_the_horizon():
    """fuzz.check_status enforces the rule: a "stalled" below l(0) and a "t_max" short of the horizon are found."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(4, 2))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    net = ff.two_layer(2, 3)
    traj = ff.flow(net, (X, y), ff.init.gaussian(net, 1.0, rng), loss="exponential", t_max=1e3)
    assert traj.status == "t_max" and traj.loss < 1.0
    assert not fuzz.check_status(traj, "exponential", 4, t_max=1e3)
    stalled = ff.Trajectory(**{**traj.__dict__, "status": "stalled"})
    assert [v.kind for v in fuzz.check_status(stalled, "exponential", 4)] == ["status"]
    assert [v.kind for v in fuzz.check_status(traj, "exponential", 4, t_max=2e3)] == ["status"]


def _square_problem():
    """20 samples, two_layer(2, 2): the square loss converges (t = 14.5) to a stationary point with L = 7.47."""
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(20, 2)), rng.normal(size=(20, 1))
    net = ff.two_layer(2, 2)
    return net, X, Y, ff.init.gaussian(net, 0.7, rng)


def test_samples_past_a_converged_end_are_the_stationary_point():
    net, X, Y, theta0 = _square_problem()
    grid = np.linspace(0.0, 100.0, 11)
    traj = ff.flow(net, (X, Y), theta0, loss="square", t_max=1e3, t_eval=grid)
    assert traj.status == "converged" and 10.0 < traj.t < 20.0, traj.message
    past = grid > traj.t
    assert past.sum() == 9
    np.testing.assert_array_equal(traj.theta_at[past], np.broadcast_to(traj.theta, (9, net.n_params)))
    loss = 0.5 * np.sum((net.forward(traj.theta, X) - Y) ** 2)   # independently of the kernel
    np.testing.assert_allclose(traj.loss_at[past], loss, rtol=1e-13)
    assert loss == pytest.approx(traj.loss, rel=1e-13)


def test_samples_past_other_early_ends_are_nan():
    net, X, Y, theta0 = _square_problem()
    grid = np.linspace(0.0, 100.0, 11)
    traj = ff.flow(net, (X, Y), theta0, loss="square", t_max=1e3, t_eval=grid, max_steps=5)
    assert traj.status == "max_steps" and traj.t < grid[1]
    assert np.all(np.isfinite(traj.theta_at[0])) and np.isfinite(traj.loss_at[0])
    assert np.all(np.isnan(traj.theta_at[1:])) and np.all(np.isnan(traj.loss_at[1:]))
