"""Trajectory.balance_drift: how far a run moved the per-unit balances ||incoming||^2 - ||outgoing||^2, which the
exact flow of a homogeneous network without bias, sharing or skip conserves (docs/mathematics.md §4)."""
import numpy as np
import pytest

import fastflow as ff
from fastflow import fuzz

RTOL = 1e-10


def numpy_drift(net, theta0, theta):
    """Independently of the kernel: per hidden unit, the squared norms of its row in the layer below and of its
    column in the layer above."""
    def balances(theta):
        Ws = net.split(theta)
        inc = [np.sum(W**2, axis=1) for W in Ws[:-1]]
        out = [np.sum(W**2, axis=0) for W in Ws[1:]]
        return np.concatenate(inc) - np.concatenate(out), np.concatenate(inc) + np.concatenate(out)
    (b0, s0), (b1, s1) = balances(theta0), balances(theta)
    return float(np.max(np.abs(b1 - b0) / np.maximum(s0, s1)))


def deep_problem(seed):
    """fully_connected(d, [k1, k2]) with k in 2..3, n 3..6 points, labels of a linear separator, to log t = 40
    (the stiff phase from log t = 30)."""
    rng = np.random.default_rng([2026, seed])
    n, d = int(rng.integers(3, 7)), int(rng.integers(2, 4))
    net = ff.fully_connected(d, [int(k) for k in rng.integers(2, 4, size=2)])
    X = rng.normal(size=(n, d))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    return net, X, y, ff.init.gaussian(net, 1.0, rng), ("exponential", "logistic")[seed % 2]


@pytest.mark.parametrize("seed", range(12))
def test_deep_fully_connected_drift_is_small_and_matches_numpy(seed):
    net, X, y, theta0, loss = deep_problem(seed)
    traj = ff.flow(net, (X, y), theta0, loss=loss, log_t_max=40.0, rtol=RTOL)
    # measured: at most 2.4e-11 over these 12 (two reach log t = 40 through the stiff phase)
    assert traj.balance_drift <= fuzz.CONSERVATION_TOL * RTOL, traj.status
    assert traj.balance_drift == pytest.approx(numpy_drift(net, theta0, traj.theta), rel=0, abs=1e-15)


@pytest.mark.parametrize("net", [ff.two_layer(3, 4), ff.two_layer(3, 2, d_out=2), ff.diagonal(3, 3),
                                 ff.fully_connected(3, [3, 2], activation="linear")],
                         ids=["two-layer", "two-layer-dout2", "diagonal", "linear-deep"])
def test_other_balanced_networks(net):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5, 3))
    theta0 = ff.init.gaussian(net, 0.8, rng)
    y = np.arange(5) % 2 if net.d_out == 2 else np.where(X[:, 0] > 0, 1.0, -1.0)
    traj = ff.flow(net, (X, y), theta0, loss="logistic", t_max=1e3, rtol=RTOL)
    assert 0.0 <= traj.balance_drift <= fuzz.CONSERVATION_TOL * RTOL
    assert traj.balance_drift == pytest.approx(numpy_drift(net, theta0, traj.theta), rel=0, abs=1e-15)


@pytest.mark.parametrize("net", [ff.fully_connected(3, [3, 2], bias=True), ff.conv_disjoint(1, 3),
                                 ff.Network(ff.fully_connected(3, [3]).maps, skip=True)],
                         ids=["bias", "sharing", "skip"])
def test_networks_without_balances_report_nan(net):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(4, 3))
    traj = ff.flow(net, (X, np.where(X[:, 0] > 0, 1.0, -1.0)), ff.init.gaussian(net, 0.8, rng), t_max=10.0)
    assert np.isnan(traj.balance_drift)
