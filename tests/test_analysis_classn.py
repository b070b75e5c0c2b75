"""`analyze` on class-N nets other than the fully connected two-layer one (deep, diagonal, sparse, shared weights):
the margin paper's cases (Thms 3.1, 4.1, 4.2(1), 4.4, 5.1, 5.2), the second-order local check, the per-layer
programs, and the C++ Jacobians they rest on. Every certificate and optimum is re-checked here with NumPy/SciPy."""
import numpy as np
import pytest
from scipy.optimize import linprog, minimize

import fastflow as ff
from fastflow.analysis import analyze
from test_analysis import check_certificate

THM31_X = np.array([[1.0, 0.25], [-1.0, 0.25]])   # Thm 3.2's data: u* = (0, 4)
THM41_X = np.array([[1.0, 2.0]])
THM44_X = np.array([[4.0, 1 / np.sqrt(2), -4.0, 1 / np.sqrt(2)]])
THM51_X = np.array([[1.0, 1.0]])
ONE = np.ones(1)


def margins(net, X, y, theta):
    return y * net.forward(theta, X)[:, 0]


def svm(X, y):
    """min ||u|| s.t. y_i u.x_i >= 1 by SLSQP (independent of the analysis' NNLS route)."""
    res = minimize(lambda u: u @ u, X[0] * 0 + 1.0, jac=lambda u: 2 * u, method="SLSQP",
                   constraints=[dict(type="ineq", fun=lambda u: y * (X @ u) - 1, jac=lambda u: y[:, None] * X)],
                   options=dict(ftol=1e-15, maxiter=500))
    return res.x


def layer_optimum(net, X, y, theta, layer):
    """Problem (4) of a linear net's layer: the margins are linear in it, so their matrix is read off net.forward at
    the unit vectors; then min ||u||^2 by SLSQP."""
    parts = net.layer_parameters(theta)
    cut = int(np.sum(net.layer_params[:layer - 1]))
    size = net.layer_params[layer - 1]
    G = np.array([margins(net, X, y, np.concatenate([theta[:cut], e, theta[cut + size:]])) for e in np.eye(size)]).T
    u0 = parts[layer - 1]
    res = minimize(lambda u: u @ u, u0 * 1.01, jac=lambda u: 2 * u, method="SLSQP",
                   constraints=[dict(type="ineq", fun=lambda u: G @ u - 1, jac=lambda u: G)],
                   options=dict(ftol=1e-15, maxiter=500))
    return float(res.x @ res.x)


def check_layers_global(net, X, y, rep):
    """Thm 5.2: every layer of a linear net's KKT point is the global optimum of its Problem (4)."""
    assert len(rep.per_layer) == net.depth
    for lr, u in zip(rep.per_layer, net.layer_parameters(rep.theta_tilde)):
        assert lr.verdict == "global", lr.evidence
        assert lr.norm_sq == pytest.approx(u @ u, rel=1e-12)
        assert lr.optimum == pytest.approx(layer_optimum(net, X, y, rep.theta_tilde, lr.layer), rel=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# the Jacobian binding


@pytest.mark.parametrize("make", [lambda: ff.fully_connected(3, [4, 3]), lambda: ff.diagonal(3, 4, "relu"),
                                  lambda: ff.conv_disjoint(2, 2), lambda: ff.fully_connected(3, [2, 2], d_out=2,
                                                                                              activation="linear")])
def test_jacobian_matches_finite_differences(make):
    net = make()
    rng = np.random.default_rng(0)
    theta, X = rng.normal(size=net.n_params), rng.normal(size=(5, net.d_in))
    J = net._core.jacobian(theta, X)
    step = 1e-6
    fd = np.stack([(net.forward(theta + step * e, X) - net.forward(theta - step * e, X)) / (2 * step)
                   for e in np.eye(net.n_params)], axis=-1)
    assert J.shape == (5, net.d_out, net.n_params)
    np.testing.assert_allclose(J, fd, atol=1e-7)
    # a given pattern: the network with those slopes is a homogeneous polynomial, Phi = theta . dPhi / L (Euler)
    slopes = rng.integers(0, 2, size=(5, net._core.n_hidden)).astype(float)
    Js = net._core.jacobian(theta, X, slopes)
    np.testing.assert_allclose(Js @ theta / net.depth, net._core.forward(theta, X, slopes), atol=1e-12)
    with pytest.raises(ValueError, match="slopes"):
        net._core.jacobian(theta, X, np.ones((4, net._core.n_hidden + 1)))


# ---------------------------------------------------------------------------------------------------------------
# margin paper cases


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_thm31_deep_linear_fc_global(depth):
    net = ff.fully_connected(2, [2] * (depth - 1), activation="linear")
    theta0 = np.random.default_rng(depth).normal(size=net.n_params)
    traj = ff.flow(net, (THM31_X, np.ones(2)), theta0, log_t_max=15.0)
    rep = analyze(net, (THM31_X, np.ones(2)), traj.theta)
    assert rep.verdict == "global", rep.evidence
    # ||theta*||^2 = L ||u*||^(2/L) with u* = (0, 4), and the end-to-end product along u*
    assert rep.norm_sq == pytest.approx(depth * 4.0 ** (2 / depth), rel=1e-10)
    mats = net.split(rep.theta_tilde)
    beta = np.linalg.multi_dot(mats[::-1])[0] if depth > 2 else (mats[1] @ mats[0])[0]
    np.testing.assert_allclose(beta, [0.0, 4.0], atol=1e-10)
    np.testing.assert_allclose([np.linalg.norm(W) ** 2 for W in mats], 4.0 ** (2 / depth), rtol=1e-9)  # balanced
    check_layers_global(net, THM31_X, np.ones(2), rep)


@pytest.mark.parametrize("seed", range(4))
def test_random_deep_linear_fc_always_global(seed):
    rng = np.random.default_rng(seed)
    depth = 3 + seed % 2
    net = ff.fully_connected(3, list(rng.integers(2, 4, size=depth - 1)), activation="linear")
    X = rng.normal(size=(6, 3))
    y = np.sign(X @ rng.normal(size=3))
    traj = ff.flow(net, (X, y), rng.normal(size=net.n_params), log_t_max=12.0)
    rep = analyze(net, (X, y), traj.theta)
    assert rep.verdict == "global", rep.evidence
    u = svm(X, y)
    assert rep.norm_sq == pytest.approx(depth * np.linalg.norm(u) ** (2 / depth), rel=1e-7)
    assert np.min(margins(net, X, y, rep.theta_tilde)) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_thm41_diagonal_not_local(activation):
    net = ff.diagonal(2, 2, activation)
    traj = ff.flow(net, (THM41_X, ONE), np.array([1.0, 0.0, 1.0, 0.0]), log_t_max=10.0)
    rep = analyze(net, (THM41_X, ONE), traj.theta)
    np.testing.assert_allclose(rep.theta_tilde, [1.0, 0.0, 1.0, 0.0], atol=1e-10)
    np.testing.assert_allclose(rep.multipliers, [1.0], atol=1e-10)
    assert rep.verdict == "not_local", rep.evidence
    check_certificate(net, THM41_X, ONE, rep)
    for eps in (0.1, 0.01):   # the paper's competitor, recomputed: margin 1, norm 2 - eps
        w = np.array([np.sqrt(1 - eps), np.sqrt(eps / 2)])
        cand = np.concatenate([w, w])
        assert margins(net, THM41_X, ONE, cand)[0] == pytest.approx(1.0, abs=1e-14)
        assert cand @ cand == pytest.approx(2 - eps, abs=1e-14)
    if activation == "linear":   # Thm 4.2(1)'s certificate (Problem (8)) is the LP min ||beta||_1 here: 2 x 1/2
        lp = linprog(np.ones(4), A_ub=-np.hstack([THM41_X, -THM41_X]), b_ub=-ONE, bounds=(0, None))
        assert rep.global_lower == pytest.approx(2 * lp.fun, rel=1e-9) and rep.global_lower == pytest.approx(1.0)
        assert rep.global_value == pytest.approx(1.0, rel=1e-12) and rep.gap == pytest.approx(1.0, rel=1e-12)
        check_layers_global(net, THM41_X, ONE, rep)


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_thm42_1_no_share_nonzero_neurons_global(activation):
    """Depth-2 diagonal net, x1 = (1, 0.2), x2 = (0.2, 1): min ||beta||_1 s.t. beta . x_i >= 1 is beta* =
    (5/6, 5/6), both neurons live, so the limit is global with ||theta~||^2 = 2 ||beta*||_1 = 10/3 (linear: Thm
    4.2(1); ReLU on these positive inputs: the same problem, and Thm 4.3's non-zero pre-activations hold)."""
    net, X = ff.diagonal(2, 2, activation), np.array([[1.0, 0.2], [0.2, 1.0]])
    traj = ff.flow(net, (X, np.ones(2)), np.ones(4), log_t_max=10.0)
    rep = analyze(net, (X, np.ones(2)), traj.theta)
    np.testing.assert_allclose(rep.theta_tilde, np.sqrt(5 / 6), atol=1e-10)
    assert rep.verdict == "global", rep.evidence
    lp = linprog(np.ones(4), A_ub=-np.hstack([X, -X]), b_ub=-np.ones(2), bounds=(0, None))
    assert rep.norm_sq == pytest.approx(2 * lp.fun, rel=1e-10) and rep.norm_sq == pytest.approx(10 / 3, rel=1e-12)
    assert rep.local_condition   # ReLU: Thm 4.3 (no second-order check needed); linear: the second-order check
    assert (rep.second_order is None) == (activation == "relu") and (rep.second_order or 1.0) > 0


def test_sparse_linear_net_global_by_the_group_norm_program():
    """A sparse first layer (each neuron wired to two of three inputs): the limit is global, certified by weak
    duality of Problem (8); its optimum, solved here by SLSQP on u_j = v_j w_j, is half of ||theta~||^2."""
    maps = [np.array([[1, 2, 0], [0, 3, 4], [5, 0, 6]]), np.array([[1, 2, 3]])]
    net = ff.Network(maps, "linear")
    rng = np.random.default_rng(2)
    X = rng.normal(size=(4, 3))
    y = np.sign(X @ rng.normal(size=3))
    traj = ff.flow(net, (X, y), rng.normal(size=net.n_params), log_t_max=40.0)
    rep = analyze(net, (X, y), traj.theta)
    assert rep.verdict == "global", rep.evidence
    W, v = net.split(traj.theta)
    wired = [np.flatnonzero(g) for g in maps[0]]

    def group(u):
        return sum(np.sqrt(u[2 * j:2 * j + 2] @ u[2 * j:2 * j + 2] + 1e-30) for j in range(3))

    A = np.array([np.concatenate([y[i] * X[i, cols] for cols in wired]) for i in range(4)])
    u0 = np.concatenate([v[0, j] * W[j, cols] for j, cols in enumerate(wired)])
    u0 /= np.min(A @ u0)
    res = minimize(group, u0, method="SLSQP", options=dict(ftol=1e-14, maxiter=1000),
                   constraints=[dict(type="ineq", fun=lambda u: A @ u - 1, jac=lambda u: A)])
    assert rep.norm_sq == pytest.approx(2 * res.fun, rel=1e-6)


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_thm44_conv_not_local(activation):
    net = ff.conv_disjoint(2, 2, activation)
    theta0 = np.array([0.0, 1.0, 1 / np.sqrt(2), 1 / np.sqrt(2)])
    traj = ff.flow(net, (THM44_X, ONE), 3 * theta0, log_t_max=10.0)
    rep = analyze(net, (THM44_X, ONE), traj.theta)
    np.testing.assert_allclose(rep.theta_tilde, theta0, atol=1e-10)
    np.testing.assert_allclose(rep.multipliers, [1.0], atol=1e-10)
    assert rep.verdict == "not_local", rep.evidence
    check_certificate(net, THM44_X, ONE, rep)
    eps = 0.05 ** 2 / 2   # the paper's competitor at eps' = 0.05, recomputed
    cand = np.array([np.sqrt(eps), 1 - eps, 1 / np.sqrt(2) + np.sqrt(eps) / 2, 1 / np.sqrt(2) - np.sqrt(eps) / 2])
    assert margins(net, THM44_X, ONE, cand)[0] >= 1 + 3 * eps - 1e-14
    assert cand @ cand == pytest.approx(2 - eps / 2 + eps**2, abs=1e-14)
    if activation == "linear":
        check_layers_global(net, THM44_X, ONE, rep)   # Thm 5.2 with shared weights
    else:   # the filter alone: local, not global (w along x^(1) only: min ||w||^2 = 2 / ||x^(1)||^2 = 4/33)
        lr = rep.per_layer[0]
        assert lr.verdict == "local" and lr.optimum == pytest.approx(4 / 33, rel=1e-9)
        c = lr.certificate
        assert np.min(margins(net, THM44_X, ONE, c.theta)) >= 1.0
        np.testing.assert_array_equal(c.theta[2:], rep.theta_tilde[2:])
        assert c.theta[:2] @ c.theta[:2] == pytest.approx(4 / 33, rel=1e-9)


@pytest.mark.parametrize("activation", ["linear", "relu"])
@pytest.mark.parametrize("depth", [3, 4, 5])
def test_thm51_deep_diagonal_not_local(depth, activation):
    net = ff.diagonal(2, depth, activation)
    traj = ff.flow(net, (THM51_X, ONE), np.ones(2 * depth), log_t_max=10.0)
    rep = analyze(net, (THM51_X, ONE), traj.theta)
    np.testing.assert_allclose(rep.theta_tilde, 2.0 ** (-1 / depth), atol=1e-10)
    assert rep.norm_sq == pytest.approx({3: 3.779763, 4: 5.656854, 5: 7.578583}[depth], abs=1e-6)
    np.testing.assert_allclose(rep.multipliers, [2.0 ** ((depth - 2) / depth)], atol=1e-10)
    assert rep.normalized_margin == pytest.approx(rep.norm_sq ** (-depth / 2), rel=1e-14)
    assert rep.verdict == "not_local", rep.evidence
    check_certificate(net, THM51_X, ONE, rep)
    eps = 0.1   # the paper's competitor, recomputed
    w = np.array([((1 + eps) / 2) ** (1 / depth), ((1 - eps) / 2) ** (1 / depth)])
    cand = np.tile(w, depth)
    assert margins(net, THM51_X, ONE, cand)[0] == pytest.approx(1.0, abs=1e-14)
    assert cand @ cand < rep.norm_sq
    if depth == 3:
        assert cand @ cand == pytest.approx(3.775552, abs=1e-6)
    if activation == "linear":
        check_layers_global(net, THM51_X, ONE, rep)


def test_thm32_analog_in_a_deep_relu_net():
    """Thm 3.2's data through a depth-3 ReLU net whose second units start dead: the limit is one live path with
    weights c = 4^(1/3) (margin c^3 / 4 = 1). Turning a dead first-layer unit on for x2 only, into the live
    second-layer unit, gains at second order: found without random starts, on that side of the switching surfaces."""
    net = ff.fully_connected(2, [2, 2], activation="relu")
    theta0 = net.join([np.array([[0.1, 1.0], [0.3, -2.0]]), np.array([[1.0, 0.0], [0.0, 0.5]]),
                       np.array([[1.0, -0.5]])])
    traj = ff.flow(net, (THM31_X, np.ones(2)), theta0, log_t_max=30.0)
    rep = analyze(net, (THM31_X, np.ones(2)), traj.theta, n_random=0)
    c = 4.0 ** (1 / 3)
    expected = net.join([np.array([[0.0, c], [0.0, 0.0]]), np.array([[c, 0.0], [0.0, 0.0]]), np.array([[c, 0.0]])])
    np.testing.assert_allclose(rep.theta_tilde, expected, atol=1e-10)
    assert rep.verdict == "not_local", rep.evidence
    check_certificate(net, THM31_X, np.ones(2), rep)


def test_budgets_cut_short_say_undecided():
    """The limit of test_thm32_analog_in_a_deep_relu_net, not_local with the default budgets: a certificate search
    cut after 3 SLSQP iterations says undecided at the same point and names the starts it did not finish; polishing
    cut at its first step leaves theta_raw, which is not KKT, and says undecided rather than not_kkt."""
    net = ff.fully_connected(2, [2, 2], activation="relu")
    theta0 = net.join([np.array([[0.1, 1.0], [0.3, -2.0]]), np.array([[1.0, 0.0], [0.0, 0.5]]),
                       np.array([[1.0, -0.5]])])
    data = (THM31_X, np.ones(2))
    theta = ff.flow(net, data, theta0, log_t_max=30.0).theta
    full = analyze(net, data, theta, n_random=0)
    assert full.verdict == "not_local", full.evidence
    cut = analyze(net, data, theta, n_random=0, search_budget=3)
    assert cut.verdict == "undecided" and cut.certificate is None, cut.evidence
    np.testing.assert_array_equal(cut.theta_tilde, full.theta_tilde)
    assert "spent its budget of 3 SLSQP iterations" in cut.evidence
    assert "starts not finished: negative-curvature direction 0 of the reduced Hessian" in cut.evidence
    raw = analyze(net, data, theta, n_random=0, polish_budget=1)
    assert raw.verdict == "undecided" and not raw.polished and raw.kkt_residual > 1e-8, raw.evidence
    assert "polishing spent its budget of 1 Jacobian entries" in raw.evidence
    with pytest.raises(ValueError, match="search_budget"):
        analyze(net, data, theta, search_budget=0)


def test_second_order_local_on_a_deep_diagonal_net():
    """Depth 3, x = (1, 1/2): the second path dies and the first carries the margin. The problem is smooth there;
    the reduced Hessian of the Lagrangian is I on the dead path and 2 I on the rebalancing of the live one."""
    net, X = ff.diagonal(2, 3, "linear"), np.array([[1.0, 0.5]])
    traj = ff.flow(net, (X, ONE), np.tile([1.0, 0.1], 3), log_t_max=20.0)
    rep = analyze(net, (X, ONE), traj.theta)
    np.testing.assert_allclose(rep.theta_tilde, [1.0, 0.0] * 3, atol=1e-10)
    assert rep.verdict == "local", rep.evidence
    assert rep.second_order == pytest.approx(1.0, abs=1e-8)
    assert_no_better_nearby(net, X, ONE, rep)


def assert_no_better_nearby(net, X, y, rep, radii=(1e-1, 1e-2, 1e-3)):
    """Independent check of "local": random points near theta~, scaled to margin 1, are never smaller."""
    rng = np.random.default_rng(0)
    for r in radii:
        d = rng.normal(size=(200, net.n_params))
        cand = rep.theta_tilde + r * d / np.linalg.norm(d, axis=1, keepdims=True)
        q = np.array([np.min(margins(net, X, y, c)) for c in cand])
        cand = cand[q > 0] * q[q > 0, None] ** (-1 / net.depth)
        assert np.min(np.sum(cand**2, axis=1)) >= rep.norm_sq


@pytest.mark.parametrize("activation, seed", [("relu", 0), ("relu", 6), ("linear", 2), ("linear", 5)])
def test_second_order_local_on_conv_nets(activation, seed):
    """Shared weights over three patches (ReLU) or two (linear), random data: limits the second-order check calls
    local (positive definite reduced Hessian), re-checked by sampling."""
    rng = np.random.default_rng(seed)
    net = ff.conv_disjoint(2, 3 if activation == "relu" else 2, activation)
    X, y = rng.normal(size=(4, net.d_in)), np.sign(rng.normal(size=4))
    traj = ff.flow(net, (X, y), rng.normal(size=net.n_params), log_t_max=30.0, max_steps=20_000)
    rep = analyze(net, (X, y), traj.theta)
    assert rep.verdict == "local" and rep.second_order > 0.1, rep.evidence
    assert_no_better_nearby(net, X, y, rep)


# ---------------------------------------------------------------------------------------------------------------
# the horizon rule


def test_limit_verdict_of_a_slow_direction():
    """Lemma C.6's flow: alpha/beta -> 2 logarithmically. Early horizons are not KKT; doubling log t settles on the
    limit's verdict (local, Thm 4.3); a budget too small for that says undecided, with the residuals."""
    from fastflow.analysis import analyze_limit
    net, X = ff.two_layer(2, 2), np.array([[1.0, 0.25], [-1.0, 0.25], [0.0, -1.0]])
    theta0 = net.join([np.array([[0.0, 3.0], [0.0, -2.0]]), np.array([[3.0, 2.0]])])
    out = analyze_limit(net, (X, np.ones(3)), theta0, log_t=1.0)
    verdicts = [h[1] for h in out.horizons]
    assert verdicts[0] == "not_kkt" and out.verdict == "local" == verdicts[-1] == verdicts[-2]
    assert out.report.norm_sq == pytest.approx(10.0, rel=1e-12)
    short = analyze_limit(net, (X, np.ones(3)), theta0, log_t=1.0, log_t_budget=2.0)
    assert short.verdict == "undecided" and "raw KKT residual by horizon" in short.evidence
    assert [h[0] for h in short.horizons] == [1.0, 2.0]
    with pytest.raises(ValueError, match="loss"):
        analyze_limit(net, (X, np.ones(3)), theta0, loss="square")
    with pytest.raises(ValueError, match="log_t"):
        analyze_limit(net, (X, np.ones(3)), theta0, log_t=0.0)


def test_limit_continues_a_trajectory():
    """log_t0: the rule picks up a flow already run to log t = 1 (the sweeps' use) and sees the same horizons as
    when it runs that flow itself; the flow is autonomous, so the segments are the same."""
    from fastflow.analysis import analyze_limit
    net, X = ff.two_layer(2, 2), np.array([[1.0, 0.25], [-1.0, 0.25], [0.0, -1.0]])
    theta0 = net.join([np.array([[0.0, 3.0], [0.0, -2.0]]), np.array([[3.0, 2.0]])])
    data = (X, np.ones(3))
    traj = ff.flow(net, data, theta0, log_t_max=1.0)
    later = analyze_limit(net, data, traj.theta, log_t=1.0, log_t0=traj.log_t)
    assert later.horizons == analyze_limit(net, data, theta0, log_t=1.0).horizons
    with pytest.raises(ValueError, match="log_t0"):
        analyze_limit(net, data, traj.theta, log_t=1.0, log_t0=2.0)


def test_dead_units_leave_the_polishing_system():
    """Polishing drops the units zeroed in its start (and their zero pairs) from the KKT system: solved with them
    kept (the full system, where they are unknowns like any weight), Levenberg-Marquardt must leave them exactly 0
    and reach the same outcome and ||theta||^2 on every pattern of the threshold ladders."""
    from fastflow.analysis import model, polish_classn
    from fastflow.analysis.polish import _NEURON_LADDER
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 2))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.where(X @ rng.normal(size=2) >= 0, 1.0, -1.0)
    net = ff.fully_connected(2, [4, 4], activation="relu")
    m, theta = model._setup(net, (X, y), ff.flow(net, (X, y), ff.init.xavier(net, rng), log_t_max=32.0).theta)
    raw = model._normalise(m, theta)
    units, none = m.unit_params(), (np.zeros(0, int), np.zeros(0, int))
    reduced_successes = 0
    for tau in model._LADDER:
        for tau_n in _NEURON_LADDER:
            zeroed = [u for u, idx in enumerate(units) if np.linalg.norm(raw[idx]) <= tau_n * np.linalg.norm(raw)]
            start = raw.copy()
            for u in zeroed:
                start[units[u]] = 0.0
            pattern = polish_classn._read(m, start, tau)
            dead = polish_classn._dead(m, units, zeroed)
            small = polish_classn._solve(m, start, *pattern, {}, model._Budget(10**12), dead)
            full = polish_classn._solve(m, start, *pattern, {}, model._Budget(10**12), none)
            assert small[1] == full[1]
            if full[0] is not None:
                assert np.all(full[0][dead[1]] == 0.0)
                assert small[0] @ small[0] == pytest.approx(full[0] @ full[0], rel=1e-12)
                reduced_successes += len(dead[0]) > 0
    assert reduced_successes > 0   # the comparison covered polished points with dead units


def test_dead_units_under_sharing():
    """A unit leaves polishing's system only if no live unit shares its weights: in a conv net the two patches'
    units share the filter, so zeroing one of them removes nothing; zeroing both removes both, with all weights."""
    from fastflow.analysis import model, polish_classn
    net = ff.conv_disjoint(2, 2, "relu")
    m, _ = model._setup(net, (np.ones((1, 4)), ONE), np.ones(net.n_params))
    units = m.unit_params()
    assert len(polish_classn._dead(m, units, [0])[0]) == 0
    dead_units, dead_params = polish_classn._dead(m, units, [0, 1])
    assert dead_units.tolist() == [0, 1] and sorted(dead_params.tolist()) == list(range(net.n_params))
