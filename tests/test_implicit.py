"""The implicit phase (docs/mathematics.md §5): Rosenbrock steps in t with the exact Jacobian, where a flow that
settles at a finite point is stiff. Checked against SciPy's Radau at a tight tolerance, and by its step count, which
no explicit method held to its stability bound could reach."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import fastflow as ff


def stiff_linear_problem(seed=5, n=12, d=3, width=2):
    """A linear two-layer net fitting random targets it cannot fit exactly: its inputs' scales 0.2 / 1 / 8 spread
    the loss's curvatures over more than three orders of magnitude."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * np.array([0.2, 1.0, 8.0])
    y = rng.standard_normal(n)
    net = ff.two_layer(d, width, activation="linear")
    return net, X, y, 0.5 * rng.standard_normal(net.n_params)


def gradient_flow(X, y, d, width):
    """-grad of L = |W2 W1 X^T - y|^2 / 2, theta = [W1 (width x d) row-major, W2 (1 x width)]."""
    def rhs(_t, theta):
        W1, W2 = theta[: width * d].reshape(width, d), theta[width * d:]
        residual = X @ W1.T @ W2 - y
        return -np.concatenate([np.outer(W2, residual @ X).ravel(), W1 @ X.T @ residual])
    return rhs


def curvature_radius(rhs, theta):
    """the largest |eigenvalue| of the flow's Jacobian at theta (central differences; the flow is polynomial)"""
    p = theta.size
    J = np.empty((p, p))
    for c in range(p):
        e = np.zeros(p)
        e[c] = 1e-6
        J[:, c] = (rhs(0, theta + e) - rhs(0, theta - e)) / 2e-6
    return np.abs(np.linalg.eigvals(J)).max()


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_stiff_square_loss_flow_agrees_with_radau(seed):
    net, X, y, theta0 = stiff_linear_problem(seed)
    t_eval = np.array([1.0, 10.0, 100.0, 400.0])
    traj = ff.flow(net, (X, y), theta0, loss="square", t_max=400.0, t_eval=t_eval, gtol=1e-300)
    assert traj.status == "t_max", traj.message
    rhs = gradient_flow(X, y, 3, 2)
    ref = solve_ivp(rhs, (0.0, 400.0), theta0, method="Radau", t_eval=t_eval, rtol=1e-12, atol=1e-14)
    for k in range(t_eval.size):
        np.testing.assert_allclose(traj.theta_at[k], ref.y[:, k], rtol=1e-7, atol=1e-9)
    # explicit steps are held to h |lambda| < 3.3: the stiffest curvature along the way bounds their count below
    explicit_steps = 400.0 * curvature_radius(rhs, traj.theta) / 3.3
    assert traj.n_steps < explicit_steps / 5, (traj.n_steps, explicit_steps)
