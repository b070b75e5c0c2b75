"""Self-test of the slow reference (tests/reference.py) against closed forms and invariants.

The reference is the yardstick for fastflow, so it is checked here without fastflow: exact solutions,
conservation laws, monotone loss, agreement with small-step gradient descent.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import solve_ivp

sys.path.insert(0, str(Path(__file__).parent))
from reference import _Net, _prepare_targets, loss_value, preactivations, reference_flow  # noqa: E402


def split(theta, width, d, d_out=1):
    return theta[: width * d].reshape(width, d), theta[width * d :].reshape(d_out, width)


def balance(theta, width, d, d_out=1):
    """||w_j||^2 - ||v_j||^2 per hidden neuron: conserved by the flow of a homogeneous two-layer net."""
    W1, W2 = split(theta, width, d, d_out)
    return (W1**2).sum(axis=1) - (W2**2).sum(axis=0)


def random_problem(seed):
    rng = np.random.default_rng(seed)
    n, d, k = rng.integers(2, 6), rng.integers(2, 4), rng.integers(1, 4)
    loss = ["exponential", "logistic", "square"][seed % 3]
    d_out = 2 if loss == "square" else 1
    X = rng.standard_normal((n, d))
    y = rng.standard_normal((n, d_out)) if loss == "square" else rng.choice([-1.0, 1.0], n)
    return X, y, rng.standard_normal((k, d)), rng.standard_normal((d_out, k)), loss


def dense_states(res, per_segment=8):
    """(t, theta) sampled on every dense-output segment of a run."""
    for t0, t1, sol in res["segments"]:
        for t in np.linspace(t0, t1, per_segment):
            yield t, sol(t)


# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["exponential", "logistic", "square"])
def test_gradient_matches_finite_differences(loss):
    X, y, W1, W2, _ = random_problem(4)
    if loss == "square":
        y = np.random.default_rng(1).standard_normal((X.shape[0], 2))
        W2 = np.random.default_rng(2).standard_normal((2, W1.shape[0]))
    net = _Net(X, _prepare_targets(y, loss, X.shape[0]), W1.shape[0], W2.shape[0], loss)
    theta = np.concatenate([W1.ravel(), W2.ravel()])
    slopes = (preactivations(X, W1) > 0).astype(float)
    _, g, _ = net.parts(theta, slopes)
    fd = np.empty_like(theta)
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = 1e-6
        fd[k] = (loss_value(X, y, *split(theta + e, *W1.shape, W2.shape[0]), loss)
                 - loss_value(X, y, *split(theta - e, *W1.shape, W2.shape[0]), loss)) / 2e-6
    assert np.allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_margin_paper_thm_3_2_dead_neuron_is_frozen():
    # Theorem 3.2 setting: neuron 1 active on both samples, neuron 2 inactive on both, v1 > 0.
    X = np.array([[1.0, 0.25], [-1.0, 0.25]])
    y = np.array([1.0, 1.0])
    W1 = np.array([[0.1, 1.0], [0.1, -1.0]])
    W2 = np.array([[1.0, 0.7]])
    res = reference_flow(X, y, W1, W2, "exponential", 1e4)
    assert res["status"] == "t_max"
    assert res["events"] == []
    W1f, W2f = split(res["theta"], 2, 2)
    assert np.array_equal(W1f[1], W1[1]) and W2f[0, 1] == W2[0, 1]  # exactly constant
    assert abs(balance(res["theta"], 2, 2)[0] - balance(np.r_[W1.ravel(), W2.ravel()], 2, 2)[0]) < 1e-10
    assert abs(W1f[0, 0]) < 1e-8 * np.linalg.norm(W1f[0])  # the theorem's KKT direction: w1 along (0, 1)
    assert loss_value(X, y, W1f, W2f, "exponential") < 1e-3


@pytest.mark.parametrize("loss", ["exponential", "logistic"])
def test_four_points_closed_form(loss):
    # w_i(t) = a(t) x_i, v_i(t) = a(t), q_i = a^2, da/dt = -l'(a^2) a.  Orthogonal pairs start exactly on h = 0.
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0]])
    y = np.ones(4)
    res = reference_flow(X, y, 2 * X, 2 * np.ones((1, 4)), loss, 5.0)
    assert res["status"] == "t_max" and res["events"] == []
    minus_dl = (lambda q: np.exp(-q)) if loss == "exponential" else (lambda q: 1.0 / (1.0 + np.exp(q)))
    a = solve_ivp(lambda t, a: minus_dl(a**2) * a, (0, 5), [2.0], method="DOP853", rtol=1e-13, atol=1e-15).y[0, -1]
    W1f, W2f = split(res["theta"], 4, 2)
    assert np.allclose(W1f, a * X, rtol=0, atol=1e-9)
    assert np.allclose(W2f, a, rtol=0, atol=1e-9)
    h = preactivations(X, W1f)
    assert np.all(h[np.abs(X @ X.T) == 0] == 0.0)  # the surfaces it started on are kept exactly


def test_slide_on_a_surface_both_sides_push_into():
    # Activating sample 0 hurts (y_0 v < 0) while sample 1 pulls w towards x_0's surface: a Filippov slide.
    X = np.array([[1.0, 0.0], [1.0, 1.0]])
    y = np.array([-1.0, 1.0])
    W1, W2 = np.array([[-0.5, 1.0]]), np.array([[1.0]])
    res = reference_flow(X, y, W1, W2, "exponential", 20.0, keep_dense=True)
    assert res["status"] == "t_max"
    assert [e[1:] for e in res["events"]] == [("slide_start", 0, 0, 0)]
    t_s = res["events"][0][0]

    # before: a smooth flow with only sample 1 active; the slide starts where w . x_0 reaches 0
    def before(t, p):
        w, v = p[:2], p[2]
        e = np.exp(-v * (w @ X[1]))
        return np.r_[e * v * X[1], e * (w @ X[1])]

    hit = lambda t, p: p[0]  # noqa: E731
    hit.terminal = True
    pre = solve_ivp(before, (0, 20), [-0.5, 1.0, 1.0], method="DOP853", rtol=1e-13, atol=1e-15, events=hit)
    assert abs(pre.t_events[0][0] - t_s) < 1e-9

    # during: w = (0, b), db/dt = e^{-vb} v, dv/dt = e^{-vb} b
    b0, v0 = pre.y_events[0][0][1], pre.y_events[0][0][2]
    on = solve_ivp(lambda t, p: np.exp(-p[0] * p[1]) * p[::-1], (t_s, 20), [b0, v0], method="DOP853",
                   rtol=1e-13, atol=1e-15)
    assert np.allclose(res["theta"], [0.0, on.y[0, -1], on.y[1, -1]], rtol=0, atol=1e-9)
    for t, th in dense_states(res):
        if t >= t_s:
            assert abs(th[0]) < 1e-10  # h_00 = w . x_0 stays on the surface
    assert abs(balance(res["theta"], 1, 2)[0] - balance(np.r_[W1.ravel(), W2.ravel()], 1, 2)[0]) < 1e-10


@pytest.mark.parametrize("seed", [0, 9, 13, 17, 32])
def test_loss_never_increases_and_balance_holds(seed):
    X, y, W1, W2, loss = random_problem(seed)
    res = reference_flow(X, y, W1, W2, loss, 20.0, keep_dense=True)
    assert res["status"] in ("t_max", "converged", "stationary")
    kinds = {e[1] for e in res["events"]}
    assert kinds  # these seeds were chosen because they switch (most of them slide)
    width, d = W1.shape
    b0 = balance(np.r_[W1.ravel(), W2.ravel()], width, d, W2.shape[0])
    prev = np.inf
    for _, th in dense_states(res):
        L = loss_value(X, y, *split(th, width, d, W2.shape[0]), loss)
        assert L <= prev * (1 + 1e-12) + 1e-15
        prev = L
        assert np.allclose(balance(th, width, d, W2.shape[0]), b0, rtol=0, atol=1e-10)
    times = [e[0] for e in res["events"]]
    assert times == sorted(times)


def test_gradient_descent_approaches_the_flow():
    # A run that slides: GD chatters across the surface, its gap to the Filippov solution shrinks with the step.
    X, y, W1, W2, loss = random_problem(16)  # slides from t = 0.056 to the end
    res = reference_flow(X, y, W1, W2, loss, 3.0)
    assert "slide_start" in {e[1] for e in res["events"]}
    net = _Net(X, _prepare_targets(y, loss, X.shape[0]), W1.shape[0], W2.shape[0], loss)

    def gd(eta):
        th = np.r_[W1.ravel(), W2.ravel()]
        for _ in range(int(round(3.0 / eta))):
            th = th - eta * net.parts(th, (net.h(th) > 0).astype(float))[1]
        return th

    gaps = [np.abs(gd(eta) - res["theta"]).max() for eta in (1e-2, 1e-3)]
    assert gaps[1] < 0.3 * gaps[0] and gaps[1] < 1e-3


def test_statuses():
    X, y, W1, W2, loss = random_problem(32)
    assert reference_flow(X, y, W1, W2, loss, 50.0, max_events=2)["status"] == "max_events"
    # every pair inactive: nothing moves
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    res = reference_flow(X, [1.0, -1.0], -np.ones((2, 2)), np.ones((1, 2)), "logistic", 10.0)
    assert res["status"] == "stationary" and res["n_pieces"] == 0
    # square loss, linear network: converges to an exact fit
    res = reference_flow(X, np.eye(2), np.eye(2), np.eye(2) * 0.5, "square", 1e3, activation="linear")
    assert res["status"] == "converged" and res["events"] == []
    assert loss_value(X, np.eye(2), *split(res["theta"], 2, 2, 2), "square", activation="linear") < 1e-24


def test_slide_from_t0_on_a_surface():
    # The same data as above, started on x_0's surface: an attracting surface at t = 0 is entered at once.
    X = np.array([[1.0, 0.0], [1.0, 1.0]])
    res = reference_flow(X, [-1.0, 1.0], [[0.0, 1.0]], [[1.0]], "exponential", 5.0)
    assert res["events"] == [(0.0, "slide_start", 0, 0, 0)]
    assert res["theta"][0] == 0.0


def battery_problem(seed):
    """The generator of the random battery the reference was debugged on."""
    rng = np.random.default_rng(seed)
    n, d, k = rng.integers(3, 8), rng.integers(2, 4), rng.integers(2, 5)
    loss = ["exponential", "logistic", "square"][seed % 3]
    d_out = 2 if loss == "square" else 1
    X = rng.standard_normal((n, d))
    y = rng.standard_normal((n, d_out)) if loss == "square" else rng.choice([-1.0, 1.0], n)
    return X, y, rng.standard_normal((k, d)), rng.standard_normal((d_out, k)), loss


@pytest.mark.parametrize("seed", [
    132,  # a sliding neuron carried to w_j = 0, where all its surfaces meet
    166,  # an attracting and a repelling surface of one neuron meet (one-shot decision contradicts itself)
    217,  # a repelling slide ends at s = 1: it must leave to the inactive side
    248,  # two slides end together where the neuron's gradient cancels to ~0
    113,  # square loss, a sample's residual -> 0 while it slides: s = c / D is 0 / 0 (noise must not end it)
])
def test_hard_cases_run_to_the_end(seed):
    X, y, W1, W2, loss = battery_problem(seed)
    res = reference_flow(X, y, W1, W2, loss, 30.0)
    assert res["status"] == "t_max"
    assert len(res["events"]) < 30
    b0 = balance(np.r_[W1.ravel(), W2.ravel()], *W1.shape, W2.shape[0])
    assert np.allclose(balance(res["theta"], *W1.shape, W2.shape[0]), b0, rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", ["Radau", "BDF"])
@pytest.mark.parametrize("seed", [0, 1])
def test_implicit_solvers_agree_with_dop853(method, seed):
    """The stiff yardstick (Radau / BDF on each smooth piece) finds the same events and end point as DOP853."""
    X, y, W1, W2, loss = random_problem(seed)
    explicit = reference_flow(X, y, W1, W2, loss, 20.0, rtol=1e-11, atol=1e-13)
    implicit = reference_flow(X, y, W1, W2, loss, 20.0, rtol=1e-11, atol=1e-13, method=method)
    assert [e[1:] for e in implicit["events"]] == [e[1:] for e in explicit["events"]]
    np.testing.assert_allclose(implicit["theta"], explicit["theta"], rtol=1e-6, atol=1e-8)
