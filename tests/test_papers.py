"""Closed forms and statements of the source papers, checked against fastflow's flow."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import fastflow as ff
from conftest import rank_paper_data

TIMES = np.array([0.5, 3.0, 20.0, 1e3, 1e6])


def neg_dell(loss, q):
    return np.exp(-q) if loss == "exponential" else 1.0 / (1.0 + np.exp(q))


@pytest.mark.parametrize("loss", ["exponential", "logistic"])
def test_thm32_dead_neuron_frozen_and_direction(thm32, loss):
    net, X, y = thm32
    # the theorem's initial condition: neuron 1 active on both points, neuron 2 dead on both, v1 > 0
    theta0 = net.join([np.array([[0.1, 1.0], [0.3, -2.0]]), np.array([[0.8, -0.6]])])
    traj = ff.flow(net, (X, y), theta0, loss=loss, log_t_max=300.0)
    W1, W2 = net.split(traj.theta)
    assert traj.status == "t_max"
    np.testing.assert_array_equal(W1[1], [0.3, -2.0])   # zero gradient: exactly frozen
    assert W2[0, 1] == -0.6
    # the active neuron's direction tends to w1 = (0, 2), v1 = 2 (margin paper Thm 3.2's KKT point)
    u = np.array([W1[0, 0], W1[0, 1], W2[0, 0]])
    np.testing.assert_allclose(u / np.linalg.norm(u), [0.0, 1 / np.sqrt(2), 1 / np.sqrt(2)], atol=2e-3)
    assert traj.n_events == 0


@pytest.mark.parametrize("loss", ["exponential", "logistic"])
def test_thm42_four_points_scalar_ode(loss):
    # margin paper Thm 4.2(2): w_i(t) = a(t) x_i, v_i(t) = a(t), da/dt = -l'(a^2) a; the orthogonal pairs start
    # (and stay) exactly on their switching surfaces
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0]])
    net = ff.two_layer(2, 4)
    theta0 = net.join([2 * X, 2 * np.ones((1, 4))])
    traj = ff.flow(net, (X, np.ones(4)), theta0, loss=loss, t_max=TIMES[-1], t_eval=TIMES, rtol=1e-12, atol=1e-14)
    ref = solve_ivp(lambda t, a: neg_dell(loss, a**2) * a, (0, TIMES[-1]), [2.0], method="DOP853", rtol=1e-13,
                    atol=1e-14, t_eval=TIMES)
    for k, a in enumerate(ref.y[0]):
        np.testing.assert_allclose(traj.theta_at[k], net.join([a * X, a * np.ones((1, 4))]), rtol=1e-9)
    assert traj.n_events == 0


def test_thm42_limit_kkt_point():
    # direction -> w_j = x_j, v_j = 1 (margin 1 after normalising: ||theta~||^2 = 8)
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0]])
    net = ff.two_layer(2, 4)
    traj = ff.flow(net, (X, np.ones(4)), net.join([2 * X, 2 * np.ones((1, 4))]), log_t_max=50.0)
    np.testing.assert_allclose(traj.margin, 1 / 8, rtol=1e-12)


def test_rank_paper_2x2_zero_loss_runs_have_rank_2():
    # rank paper Thm 2: when GF reaches zero loss on this data, rank(W1) = 2 (never a rank-1 solution)
    X, Y = rank_paper_data()
    net = ff.two_layer(2, 2, d_out=2)
    thetas = np.array([ff.init.sphere(net, 1e-4, seed) for seed in range(24)])
    trajs = ff.flow_many(net, (X, Y), thetas, loss="square", t_max=300.0, threads=2)
    converged = [t for t in trajs if t.loss < 1e-4]
    assert 2 <= len(converged) < len(trajs)   # the paper's GD: 79 of 288
    for t in converged:
        W1 = net.split(t.theta)[0]
        assert ff.rank(W1) == 2
        assert ff.stable_rank(W1) > 1.1
    # the others stall at the plateaus the paper reports (loss 0.5 or 1)
    for t in trajs:
        if t.loss >= 1e-4:
            assert min(abs(t.loss - 0.5), abs(t.loss - 1.0)) < 1e-3


def test_thm32_long_horizon_log_t_1e8(thm32):
    # log t = 1e8 is far past float64 time; the direction must be within 1e-3 of the limit, and the cost must
    # grow far slower than log t (the stiff phase runs in log log t)
    net, X, y = thm32
    theta0 = net.join([np.array([[0.1, 1.0], [0.3, -2.0]]), np.array([[0.8, -0.6]])])
    traj = ff.flow(net, (X, y), theta0, log_t_max=1e8)
    assert traj.status == "t_max" and traj.log_t == pytest.approx(1e8) and traj.t == np.inf
    limit = np.array([0.0, 1.0, 0.0, 0.0, 1.0, 0.0]) / np.sqrt(2)
    assert np.linalg.norm(traj.direction - limit) < 1e-3
    assert traj.n_steps < 50_000
    assert traj.margin == pytest.approx(1 / 8, rel=1e-6)
