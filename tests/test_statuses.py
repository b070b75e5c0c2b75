"""Statuses (docs/mathematics.md §5): "stalled" only when the stall rule fires, "t_max" whenever the horizon is
reached, whatever the loss."""
import numpy as np

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
