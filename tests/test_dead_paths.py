"""Dead signal paths (docs/mathematics.md §2): a sample whose input to a hidden layer is exactly zero leaves that
layer's switches and those above out of the event machinery. Hand-built depth-3 case: x_0 = (1, 0) is seen by
first-layer unit 0 alone; x_1 = (-1, 1), labelled +1, pulls that unit towards x_1, so w_0 . x_0 reaches zero at a
time t* and sample 0's signal dies below it. Reference: SciPy's DOP853 on the smooth flow, gradients in NumPy with
sigma'(h) = 1[h > 0], t* located as the root of w_0 . x_0."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import fastflow as ff

X = np.array([[1.0, 0.0], [-1.0, 1.0]])
Y = np.array([-1.0, 1.0])
W1 = np.array([[1.0, 2.0], [-1.0, -2.0]])
W2 = np.array([[1.0, 0.5], [0.5, 1.0]])
V = np.array([[1.0, 1.0]])
T_MAX = 3.0


def split(theta):
    return theta[:4].reshape(2, 2), theta[4:8].reshape(2, 2), theta[8:].reshape(1, 2)


def preactivations(theta):
    """(h1, h2), each (n, 2): both hidden layers' pre-activations of every sample, in NumPy."""
    A, B, _ = split(theta)
    h1 = X @ A.T
    return h1, np.maximum(h1, 0.0) @ B.T


def velocity(_, theta):
    """-grad L of the exponential loss sum_i exp(-y_i Phi_i), sigma'(h) = 1[h > 0]."""
    A, B, C = split(theta)
    h1, h2 = preactivations(theta)
    a1, a2 = np.maximum(h1, 0.0), np.maximum(h2, 0.0)
    g = -Y * np.exp(-Y * (a2 @ C.T)[:, 0])          # dL/dPhi_i
    d2 = g[:, None] * C * (h2 > 0)                  # dL/dh2
    d1 = (d2 @ B) * (h1 > 0)                        # dL/dh1
    return -np.concatenate([(d1.T @ X).ravel(), (d2.T @ a1).ravel(), (g @ a2)[None, :].ravel()])


@pytest.fixture(scope="module")
def reference():
    """(t*, theta(t*), theta on the grid) from SciPy: to t* (the root of w_0 . x_0), then on from there."""
    theta0 = np.concatenate([W1.ravel(), W2.ravel(), V.ravel()])
    dies = lambda t, th: th[:2] @ X[0]  # noqa: E731
    dies.terminal, dies.direction = True, -1
    opts = dict(method="DOP853", rtol=1e-13, atol=1e-15)
    first = solve_ivp(velocity, (0.0, T_MAX), theta0, events=dies, **opts)
    t_star, theta_star = first.t_events[0][0], first.y_events[0][0]
    grid = np.linspace(0.0, T_MAX, 31)
    before, after = grid[grid < t_star], grid[grid > t_star]
    y0 = solve_ivp(velocity, (0.0, t_star), theta0, t_eval=before, **opts).y.T
    y1 = solve_ivp(velocity, (t_star, T_MAX), theta_star, t_eval=after, **opts).y.T
    return t_star, grid, np.vstack([y0, y1])


@pytest.fixture(scope="module")
def traj(reference):
    net = ff.fully_connected(2, [2, 2])
    return ff.flow(net, (X, Y), net.join([W1, W2, V]), loss="exponential", t_max=T_MAX, t_eval=reference[1])


def test_only_the_dying_unit_has_an_event(reference, traj):
    t_star = reference[0]
    assert traj.status == "t_max"
    assert len(traj.events) == 1
    e = traj.events[0]
    assert (str(e["kind"]), int(e["sample"]), int(e["layer"]), int(e["neuron"])) == ("deactivate", 0, 0, 0)
    assert e["t"] == pytest.approx(t_star, rel=1e-9)


def test_trajectory_matches_the_reference(reference, traj):
    _, _, thetas = reference
    np.testing.assert_allclose(traj.theta_at, thetas, rtol=1e-8, atol=1e-9)


def test_downstream_preactivations_vanish_exactly_after_the_death(reference, traj):
    t_star, grid, _ = reference
    for t, theta in zip(grid, traj.theta_at):
        h1, h2 = preactivations(theta)
        if t < t_star:
            assert h1[0, 0] > 0 and np.all(h2[0] > 0)
        else:
            assert h1[0, 0] < 0 and np.all(h2[0] == 0.0)   # sample 0's input to layer 2 is exactly zero
        assert np.all(h1[1] * [1, -1] > 0) and np.all(h2[1] > 0)   # sample 1 keeps its pattern


def test_final_modes_of_the_dead_path():
    """Modes of a dead path are those it would take if the unit below revived: here W2's column 0 is positive."""
    net = ff.fully_connected(2, [2, 2])
    traj = ff.flow(net, (X, Y), net.join([W1, W2, V]), loss="exponential", t_max=T_MAX)
    _, B, _ = split(traj.theta)
    modes = np.asarray(traj.modes).reshape(2, 4)
    assert list(modes[0, :2]) == [0, 0]
    assert list(modes[0, 2:]) == list((B[:, 0] > 0).astype(int))
