"""Flows that start where the loss weights are far below float64's normal range (every margin in the hundreds): the
field there is ~e^-q, its squares underflow, and beyond q ~ 745 the weights themselves do. Such a flow must still
follow the ODE, not stop as if stationary."""
import numpy as np
import pytest

import fastflow as ff


def log_expint(q):
    """log Ei(q) for q in the hundreds, from its asymptotic series (terms k!/q^k; the truncation error is ~1e-13)."""
    series, term = 1.0, 1.0
    for k in range(1, 8):
        term *= k / q
        series += term
    return q - np.log(q) + np.log(series)


def balanced_margin(log_t, q0):
    """The margin of u v x (x = y = 1, u = v) under the exponential loss: q' = 2 q e^-q, so Ei(q) = Ei(q0) + 2t."""
    target = np.logaddexp(np.log(2.0) + log_t, log_expint(q0))
    q = target + np.log(target)
    for _ in range(50):
        q -= (log_expint(q) - target) / (1.0 - 1.0 / q)
    return q


@pytest.mark.parametrize("q0", [650.0, 1300.0])
def test_a_flow_started_at_huge_margins_follows_the_closed_form(q0):
    # 650: the field's sum of squares underflows; 1300: every weight e^-q does, until log t nears q - 745
    net = ff.diagonal(1, 2, activation="linear")
    theta0 = np.full(2, np.sqrt(q0))
    for log_t in (q0 - 5.0, q0 + 50.0):
        tr = ff.flow(net, (np.ones((1, 1)), np.ones(1)), theta0, loss="exponential", log_t_max=log_t)
        assert tr.status == "t_max", tr.message
        assert tr.theta[0] == pytest.approx(tr.theta[1], rel=1e-12)
        assert tr.theta[0] * tr.theta[1] == pytest.approx(balanced_margin(log_t, q0), rel=1e-10)


@pytest.mark.parametrize("hidden, seed, loss", [([4], 0, "exponential"), ([4], 0, "logistic"),
                                                ([4, 4], 2, "exponential")])
def test_a_run_continued_from_its_late_point_is_the_one_longer_run(hidden, seed, loss):
    # flows compose: the point at log t = 512 flowed on for t1024 - t512 is the point at log t = 1024. At 512 the
    # margins are ~520, and units slide: their sliding solve (or the deeper net's hull) works on fields of size
    # e^-520
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(6, 2))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    net = ff.fully_connected(2, hidden)
    theta0 = ff.init.xavier(net, rng)
    one = ff.flow(net, (X, y), theta0, loss=loss, log_t_max=1024.0)
    mid = ff.flow(net, (X, y), theta0, loss=loss, log_t_max=512.0)
    assert np.min(y * net.forward(mid.theta, X).ravel()) > 400.0
    assert np.any(mid.modes == 2)  # a slide carries over into the continued run
    two = ff.flow(net, (X, y), mid.theta, loss=loss, log_t_max=1024.0 + np.log(-np.expm1(512.0 - 1024.0)))
    assert (one.status, two.status) == ("t_max", "t_max")
    assert np.linalg.norm(two.theta - one.theta) <= 1e-9 * np.linalg.norm(one.theta)
