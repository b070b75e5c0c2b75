"""`analyze`: normalisation, KKT residual and polishing, the verdicts with their certificates, and the per-layer
verdicts (VSS Problem (4)), on the source papers' cases and on random problems."""
import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import fastflow as ff
from fastflow.analysis import VERDICTS, analyze, kkt_residual

THM32_X = np.array([[1.0, 0.25], [-1.0, 0.25]])
THM32_INIT = ([[0.1, 1.0], [0.3, -2.0]], [[0.8, -0.6]])
THM42_X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0]])
LEMC6_X = np.array([[1.0, 0.25], [-1.0, 0.25], [0.0, -1.0]])
WP_F1_X = np.array([[1.65, -0.47], [-0.47, 1.35]])
FLOW = dict(max_steps=200_000)   # a run that never classifies must not cost a minute


def has_convex():
    try:
        from fastflow.convex import convex_max_margin  # noqa: F401
    except ImportError:
        return False
    return True


needs_convex = pytest.mark.skipif(not has_convex(), reason="fastflow.convex (the ReLU global optimum) is missing")


def margins(net, X, y, theta):
    return y * net.forward(theta, X)[:, 0]


def check_certificate(net, X, y, rep):
    """Independent check: feasible (margins recomputed), within eps, strictly smaller norm."""
    c = rep.certificate
    assert c is not None
    assert np.min(margins(net, X, y, c.theta)) >= 1.0
    assert np.linalg.norm(c.theta - rep.theta_tilde) <= rep.eps
    assert c.theta @ c.theta < rep.theta_tilde @ rep.theta_tilde
    assert c.norm_sq == pytest.approx(c.theta @ c.theta, rel=1e-15)
    for f in c.family:   # the same construction at smaller radii: a family shrinking to theta~
        assert np.min(margins(net, X, y, f.theta)) >= 1.0
        assert np.linalg.norm(f.theta - rep.theta_tilde) <= f.radius < rep.eps
        assert f.theta @ f.theta < rep.theta_tilde @ rep.theta_tilde


def layer_block(net, layer):
    k, d = net.layer_shapes[0]
    return slice(0, k * d) if layer == 1 else slice(k * d, None)


def check_layer(net, X, y, rep, lr):
    """Per-layer report: consistent with theta~, and its certificate feasible, better and in its layer only."""
    assert lr.verdict in VERDICTS
    block = layer_block(net, lr.layer)
    u = rep.theta_tilde[block]
    assert lr.norm_sq == pytest.approx(u @ u, rel=1e-14)
    if lr.optimum is not None:   # theta~'s own layer is feasible
        assert lr.optimum <= lr.norm_sq * (1 + 1e-7)
    if lr.verdict == "global":
        assert lr.norm_sq <= lr.optimum * (1 + 1e-6)
    if lr.verdict in ("global", "local", "kkt_only", "not_local"):
        assert lr.kkt_residual <= 1e-8
    c = lr.certificate
    assert (c is not None) == (lr.verdict == "not_local" or (lr.verdict == "local" and lr.optimum is not None))
    if c is None:
        return
    other = np.ones(net.n_params, bool)
    other[block] = False
    assert np.array_equal(c.theta[other], rep.theta_tilde[other])
    assert np.min(margins(net, X, y, c.theta)) >= 1.0
    assert c.theta @ c.theta < rep.theta_tilde @ rep.theta_tilde
    if lr.verdict == "not_local":
        assert np.linalg.norm(c.theta - rep.theta_tilde) <= rep.eps
        assert len(c.family) == 2
        for f in c.family:
            assert np.min(margins(net, X, y, f.theta)) >= 1.0
            assert np.linalg.norm(f.theta - rep.theta_tilde) <= f.radius < rep.eps
            assert f.theta @ f.theta < rep.theta_tilde @ rep.theta_tilde
    else:   # the optimum: not global
        assert c.theta[block] @ c.theta[block] == pytest.approx(lr.optimum, rel=1e-9)


def check_report(net, X, y, rep):
    assert rep.verdict in VERDICTS
    np.testing.assert_allclose(np.min(margins(net, X, y, rep.theta_tilde)), 1.0, rtol=1e-12)
    assert rep.norm_sq == pytest.approx(rep.theta_tilde @ rep.theta_tilde, rel=1e-14)
    assert np.all(rep.multipliers >= 0)
    off = np.setdiff1d(np.arange(len(y)), rep.support)
    assert np.all(rep.multipliers[off] == 0)
    if rep.polished:
        assert rep.kkt_residual < 1e-10
    if rep.verdict == "not_local":
        check_certificate(net, X, y, rep)
    else:
        assert rep.certificate is None
    if rep.verdict in ("local", "kkt_only", "not_local"):
        assert rep.kkt_residual <= 1e-8
    if rep.verdict == "not_kkt":
        assert rep.kkt_residual > 1e-8
    if rep.verdict == "global":
        assert rep.norm_sq <= rep.global_value * (1 + 1e-6)
    assert [lr.layer for lr in rep.per_layer] == [1, 2]
    for lr in rep.per_layer:
        check_layer(net, X, y, rep, lr)
        assert lr.evidence in str(rep)
        # a (local) optimum of (P) is one of each layer's problem, whose feasible set is a slice of (P)'s
        if rep.verdict in ("global", "local"):
            assert lr.verdict != "not_local"
        if rep.verdict == "global" and lr.optimum is not None:
            assert lr.verdict == "global"


# ---------------------------------------------------------------------------------------------------------------
# margin paper Thm 3.2 and Remark 3.1


@pytest.mark.parametrize("loss", ["exponential", "logistic"])
def test_thm32_flow_limit_is_not_local(thm32, loss):
    net, X, y = thm32
    theta0 = net.join([np.array(THM32_INIT[0]), np.array(THM32_INIT[1])])
    traj = ff.flow(net, (X, y), theta0, loss=loss, log_t_max=300.0)
    rep = analyze(net, (X, y), traj.theta)
    check_report(net, X, y, rep)
    assert rep.verdict == "not_local"
    # the late point is only O(1/sqrt(log t)) from the KKT point (the frozen neuron); polishing drops that neuron
    assert rep.polished and 1e-3 < rep.polish_distance < 0.5
    assert rep.raw_kkt_residual > 1e-3
    W1, W2 = net.split(rep.theta_tilde)
    np.testing.assert_allclose(W1, [[0.0, 2.0], [0.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(W2, [[2.0, 0.0]], atol=1e-12)
    assert rep.norm_sq == pytest.approx(8.0, rel=1e-12)
    np.testing.assert_allclose(rep.multipliers, [2.0, 2.0], rtol=1e-10)
    assert rep.kkt_residual < 1e-10
    assert not rep.local_condition
    # the certificate beats the paper's competitor of the same radius: w1' = (e/2, 2 - 2e), w2' = (-sqrt(2e), 0),
    # v' = (2, sqrt(2e)), e = eps^2/9, ||theta'||^2 = 8 - 4e + 17e^2/4
    e = rep.eps**2 / 9
    assert rep.certificate.gain >= 4 * e - 17 * e**2 / 4
    assert len(rep.certificate.family) == 2


@needs_convex
def test_thm32_global_value(thm32):
    net, X, y = thm32
    theta0 = net.join([np.array(THM32_INIT[0]), np.array(THM32_INIT[1])])
    rep = analyze(net, (X, y), ff.flow(net, (X, y), theta0, log_t_max=300.0).theta)
    assert rep.global_value == pytest.approx(3.8806, abs=1e-4)   # Thm 3.2's data through the convex program
    assert rep.gap == pytest.approx(8.0 / rep.global_value - 1.0, rel=1e-12)
    assert rep.dual_value == pytest.approx(2.0616, abs=1e-4)     # > 1: WP Thm 3's certificate fails, as it must


def test_thm32_paper_competitor_needs_the_corrected_sign(thm32):
    # the arXiv text lost a sign: w2' = (-sqrt(2e), 0) is feasible, (+sqrt(2e), 0) is not
    net, X, y = thm32
    for eps_prime in (0.5, 0.1):
        e = eps_prime**2 / 9
        for sign, feasible in ((-1.0, True), (1.0, False)):
            theta = net.join([np.array([[e / 2, 2 - 2 * e], [sign * np.sqrt(2 * e), 0.0]]),
                              np.array([[2.0, np.sqrt(2 * e)]])])
            q = margins(net, X, y, theta)
            assert (np.min(q) >= 1 - 1e-15) == feasible
        assert theta @ theta == pytest.approx(8 - 4 * e + 17 * e**2 / 4, rel=1e-14)


def test_thm32_exact_kkt_point(thm32):
    net, X, y = thm32
    theta = net.join([np.array([[0.0, 2.0], [0.0, 0.0]]), np.array([[2.0, 0.0]])])
    for scale in (1.0, 7.5):   # any positive multiple normalises to the same point
        rep = analyze(net, (X, y), scale * theta, global_opt=False)
        check_report(net, X, y, rep)
        assert rep.verdict == "not_local"
        np.testing.assert_allclose(rep.theta_tilde, theta, atol=1e-14)
        assert rep.polish_distance < 1e-14
        assert rep.global_value is None and rep.gap is None
    # the paper's construction alone (no random starts) finds it: turn the zero neuron on, active on one sample
    # (the paper's w2' = (-sqrt(2e), 0) is active on x2; its mirror image on x1 works as well)
    rep = analyze(net, (X, y), theta, global_opt=False, n_random=0)
    assert rep.verdict == "not_local" and rep.certificate.method.startswith("turn on zero neuron 1")
    W1c, W2c = net.split(rep.certificate.theta)
    assert W2c[0, 1] > 0 and np.count_nonzero(X @ W1c[1] > 0) == 1
    # eps is honoured; the gains are second order (Thm 3.2: 8 - ||theta'||^2 ~ 4 eps'^2 / 9 for the paper's family)
    for eps in (1e-3, 1e-4):
        rep = analyze(net, (X, y), theta, eps=eps, global_opt=False)
        assert rep.verdict == "not_local" and rep.certificate.distance <= eps
        check_certificate(net, X, y, rep)
        gains = [rep.certificate.gain] + [f.gain for f in rep.certificate.family]
        assert gains[0] >= 4 * eps**2 / 9 - 17 * eps**4 / 324
        assert 200 < gains[0] / gains[2] < 300   # radii 16x apart


@pytest.mark.parametrize("a", [0.5, 0.25, 0.125, 0.0625])
def test_remark31_unbounded_suboptimality(a):
    # x = (+-1, a): the flow's KKT point has ||theta~||^2 = 2/a; the split solution 4/sqrt(1 + a^2) is far better
    net = ff.two_layer(2, 2)
    X, y = np.array([[1.0, a], [-1.0, a]]), np.ones(2)
    theta0 = net.join([np.array([[0.05, 1.0], [0.1, -2.0]]), np.array([[0.8, -0.6]])])
    rep = analyze(net, (X, y), ff.flow(net, (X, y), theta0, log_t_max=300.0, **FLOW).theta)
    check_report(net, X, y, rep)
    assert rep.verdict == "not_local"
    assert rep.norm_sq == pytest.approx(2 / a, rel=1e-12)
    np.testing.assert_allclose(rep.multipliers, [1 / (2 * a)] * 2, rtol=1e-10)   # w1 = (0, a^-1/2) = v1 lam (x1 + x2)
    split = 4 / np.sqrt(1 + a * a)
    if rep.global_value is not None:
        assert rep.global_value == pytest.approx(split, rel=1e-6)
        assert np.sqrt(rep.norm_sq / rep.global_value) >= np.sqrt(np.sqrt(1 + a * a) / (2 * a)) * (1 - 1e-9)


def test_remark31_ratio_grows():
    net = ff.two_layer(2, 2)
    theta0 = net.join([np.array([[0.05, 1.0], [0.1, -2.0]]), np.array([[0.8, -0.6]])])
    ratios = []
    for a in (0.5, 0.25, 0.125, 0.0625):
        X, y = np.array([[1.0, a], [-1.0, a]]), np.ones(2)
        rep = analyze(net, (X, y), ff.flow(net, (X, y), theta0, log_t_max=300.0, **FLOW).theta, global_opt=False)
        ratios.append(np.sqrt(rep.norm_sq / (4 / np.sqrt(1 + a * a))))
    assert np.all(np.diff(ratios) > 0.25)
    assert ratios[-1] > 2.8


# ---------------------------------------------------------------------------------------------------------------
# margin paper Thm 4.2(2), Lemma C.6 / Thm 4.3


def thm42_limit(loss):
    """(net, X, y, flow limit) of Thm 4.2(2): +-e1, +-e2, y = 1, w_i(0) = 2 x_i, v_i(0) = 2."""
    net, X, y = ff.two_layer(2, 4), THM42_X, np.ones(4)
    traj = ff.flow(net, (X, y), net.join([2 * X, 2 * np.ones((1, 4))]), loss=loss, log_t_max=50.0)
    return net, X, y, traj.theta


def lemma_c6_limit():
    """(net, X, y, flow limit) of Lemma C.6: w1(0) = (0, 3), v1(0) = 3, w2(0) = (0, -2), v2(0) = 2."""
    net, X, y = ff.two_layer(2, 2), LEMC6_X, np.ones(3)
    theta0 = net.join([np.array([[0.0, 3.0], [0.0, -2.0]]), np.array([[3.0, 2.0]])])
    return net, X, y, ff.flow(net, (X, y), theta0, log_t_max=300.0).theta


@pytest.mark.parametrize("loss", ["exponential", "logistic"])
def test_thm42_nonzero_neurons_not_local(loss):
    net, X, y, theta = thm42_limit(loss)
    rep = analyze(net, (X, y), theta)
    check_report(net, X, y, rep)
    assert rep.verdict == "not_local"
    W1, W2 = net.split(rep.theta_tilde)
    assert np.all(np.linalg.norm(W1, axis=1) > 0.99) and np.all(np.abs(W2) > 0.99)   # all neurons non-zero
    np.testing.assert_allclose(W1, X, atol=1e-12)
    np.testing.assert_allclose(W2, np.ones((1, 4)), atol=1e-12)
    assert rep.norm_sq == pytest.approx(8.0, rel=1e-12)
    np.testing.assert_allclose(rep.multipliers, np.ones(4), rtol=1e-10)
    assert np.count_nonzero(rep.pattern == 0) == 8   # each neuron touches its two orthogonal neighbours
    if rep.global_value is not None:
        assert rep.global_value == pytest.approx(4 * np.sqrt(2), rel=1e-6)


def test_lemma_c6_local_not_global():
    net, X, y, theta = lemma_c6_limit()
    rep = analyze(net, (X, y), theta)
    check_report(net, X, y, rep)
    assert rep.verdict == "local" and rep.local_condition
    np.testing.assert_allclose(rep.theta_tilde, net.join([np.array([[0.0, 2.0], [0.0, -1.0]]),
                                                          np.array([[2.0, 1.0]])]), atol=1e-12)
    assert rep.norm_sq == pytest.approx(10.0, rel=1e-12)
    np.testing.assert_allclose(rep.multipliers, [2.0, 2.0, 1.0], rtol=1e-10)
    # the paper's (far) competitor: feasible with ||theta'||^2 = 7.8125 < 10, at distance > eps
    theta_p = net.join([np.array([X[0] / (2 * np.linalg.norm(X[0])), [-1.25, -1.0]]), np.array([[2.0, 1.0]])])
    assert np.min(margins(net, X, y, theta_p)) >= 1 - 1e-15
    assert theta_p @ theta_p == pytest.approx(7.8125)
    assert np.linalg.norm(theta_p - rep.theta_tilde) > rep.eps
    if rep.global_value is not None:
        assert rep.global_value == pytest.approx(4.9244, abs=1e-4)
        assert rep.gap > 1.0


def lemma_c6_like(seed):
    rng = np.random.default_rng(seed)
    X = LEMC6_X + 0.05 * rng.normal(size=(3, 2))
    net = ff.two_layer(2, 2)
    theta0 = net.join([np.array([[0.0, 3.0], [0.0, -2.0]]) + 0.3 * rng.normal(size=(2, 2)),
                       np.array([[3.0, 2.0]]) + 0.3 * rng.normal(size=(1, 2))])
    return net, X, np.ones(3), theta0


def random_relu_problem(seed):
    rng = np.random.default_rng(seed)
    n, d, k = rng.integers(2, 7), rng.integers(2, 4), rng.integers(2, 4)
    X = rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    net = ff.two_layer(d, k)
    return net, X, y, ff.init.gaussian(net, 1.0, rng)


def test_thm43_nonzero_preactivations_never_not_local():
    # margin paper Thm 4.3: a KKT point with every w_j.x_i != 0 is a local optimum, so a "not_local" there would be
    # a wrong certificate. Perturbed Lemma C.6 problems (Remark 3.2) and random problems.
    seen = {"local": 0, "global": 0}
    for seed in range(12):
        for make in (lemma_c6_like, random_relu_problem):
            net, X, y, theta0 = make(seed)
            traj = ff.flow(net, (X, y), theta0, log_t_max=200.0, **FLOW)
            if not traj.margin > 0:
                continue
            rep = analyze(net, (X, y), traj.theta)
            check_report(net, X, y, rep)
            if rep.local_condition:
                assert rep.verdict in ("local", "global"), rep.evidence
                assert np.all(rep.pattern != 0)
                seen[rep.verdict] += 1
            if rep.verdict == "local":
                assert rep.local_condition
    assert seen["local"] >= 8


# ---------------------------------------------------------------------------------------------------------------
# global optima: linear networks (Thm 3.1) and the convex-geometry paper's App. F.1


def svm_norm_reference(X, y):
    """min ||u|| s.t. y_i u.x_i >= 1, by SLSQP (independent of the NNLS route in fastflow.analysis)."""
    from scipy.optimize import minimize
    G = y[:, None] * X
    u0 = np.linalg.lstsq(G, np.ones(len(y)), rcond=None)[0]
    u0 *= 1.0 / max(np.min(G @ u0), 1e-3)
    res = minimize(lambda u: u @ u, u0, jac=lambda u: 2 * u, method="SLSQP",
                   constraints=[dict(type="ineq", fun=lambda u: G @ u - 1, jac=lambda u: G)],
                   options=dict(ftol=1e-15, maxiter=500))
    return np.linalg.norm(res.x)


@pytest.mark.parametrize("seed", range(6))
def test_thm31_linear_networks_reach_the_global_optimum(seed):
    rng = np.random.default_rng(seed)
    n, d, k = rng.integers(3, 9), rng.integers(2, 4), rng.integers(1, 4)
    X = rng.normal(size=(n, d))
    y = np.sign(X @ rng.normal(size=d))
    net = ff.two_layer(d, k, activation="linear")
    traj = ff.flow(net, (X, y), ff.init.xavier(net, seed), log_t_max=100.0, **FLOW)
    assert traj.margin > 0
    rep = analyze(net, (X, y), traj.theta)
    check_report(net, X, y, rep)
    assert rep.verdict == "global"
    assert rep.global_value == pytest.approx(2 * svm_norm_reference(X, y), rel=1e-7)
    assert rep.norm_sq == pytest.approx(rep.global_value, rel=1e-9)
    W1, W2 = net.split(rep.theta_tilde)
    assert ff.rank(W1, tol=1e-9) == 1   # Thm 3.1: W~1 = C v1 u^T
    # VSS Thm 5.2: each layer is a global optimum of Problem (4). Layer 1: only beta = W^T v enters, and
    # min ||W||^2 s.t. W^T v = beta is ||beta||^2 / ||v||^2 (W = v beta^T / ||v||^2), beta the SVM; layer 2: the
    # SVM on the features W x_i
    l1, l2 = rep.per_layer
    assert l1.verdict == l2.verdict == "global"
    assert l1.optimum == pytest.approx(svm_norm_reference(X, y) ** 2 / (W2 @ W2.T).item(), rel=1e-7)
    assert l2.optimum == pytest.approx(svm_norm_reference(X @ W1.T, y) ** 2, rel=1e-7)


@needs_convex
@pytest.mark.parametrize("seed", range(3))
def test_wp_f1_global(seed):
    X, y = WP_F1_X, np.array([1.0, -1.0])
    net = ff.two_layer(2, 10)
    traj = ff.flow(net, (X, y), ff.init.balanced(net, 1e-3, seed), loss="logistic", log_t_max=100.0)
    rep = analyze(net, (X, y), traj.theta)
    check_report(net, X, y, rep)
    assert rep.verdict == "global"
    # convex-geometry paper App. F.1: P* = 1/||x1|| + 1/||x2||
    assert rep.norm_sq == pytest.approx(2 * 1.28243, abs=1e-4)
    assert rep.norm_sq == pytest.approx(2 / np.linalg.norm(X[0]) + 2 / np.linalg.norm(X[1]), rel=1e-10)
    np.testing.assert_allclose(rep.multipliers, 1 / np.linalg.norm(X, axis=1), rtol=1e-8)   # (0.5829, 0.6996)
    assert rep.dual_value == pytest.approx(1.0, abs=1e-8)


# ---------------------------------------------------------------------------------------------------------------
# per-layer max-margin (VSS Problem (4)): closed forms, and QPs solved here with CVXPY


def layer1_qp(X, y, v, A):
    """min ||W||_F^2 s.t. y_i sum_j v_j a_ij w_j.x_i >= 1, (2 a_ij - 1) w_j.x_i >= 0: the first layer's problem on
    the activation pattern A (n, k), by CVXPY; inf when infeasible."""
    cp = pytest.importorskip("cvxpy")
    W = cp.Variable((len(v), X.shape[1]))
    H = X @ W.T
    constraints = [cp.sum(cp.multiply(y[:, None] * v[None, :] * A, H), axis=1) >= 1, cp.multiply(2 * A - 1, H) >= 0]
    problem = cp.Problem(cp.Minimize(cp.sum_squares(W)), constraints)
    problem.solve(solver="CLARABEL")
    return problem.value if problem.status == "optimal" else np.inf


def layer2_qp(X, y, W):
    """min ||v||^2 s.t. y_i v.relu(W x_i) >= 1, by CVXPY."""
    cp = pytest.importorskip("cvxpy")
    v = cp.Variable(W.shape[0])
    problem = cp.Problem(cp.Minimize(cp.sum_squares(v)), [cp.multiply(y, np.maximum(X @ W.T, 0) @ v) >= 1])
    problem.solve(solver="CLARABEL")
    return problem.value


def cells_2d(X, count=7200):
    """The activation patterns of the cells of 2-D data, by a dense sweep of directions (no direction on a
    boundary, and every cell an arc wider than the step here)."""
    phi = (np.arange(count) + 0.5) * 2 * np.pi / count
    return np.unique((X @ np.array([np.cos(phi), np.sin(phi)]) >= 0).T, axis=0).astype(float)


def test_per_layer_thm32_both_layers_optimal_yet_not_local(thm32):
    """At Thm 3.2's KKT point each layer is a global optimum of Problem (4) (closed forms: layer 1, with v = (2, 0),
    min ||w1||^2 s.t. 2 w1.x_i >= 1 is w1 = (0, 2); layer 2, features (1/2, 0), v1 >= 2), yet theta~ is not a local
    optimum of (P): the certificate turns on the zero neuron, both its w and its v."""
    net, X, y = thm32
    theta = net.join([np.array([[0.0, 2.0], [0.0, 0.0]]), np.array([[2.0, 0.0]])])
    rep = analyze(net, (X, y), theta)
    check_report(net, X, y, rep)
    assert rep.verdict == "not_local"
    l1, l2 = rep.per_layer
    assert (l1.verdict, l2.verdict) == ("global", "global")
    assert l1.optimum == pytest.approx(4.0, rel=1e-12) and l2.optimum == pytest.approx(4.0, rel=1e-12)
    W1c, W2c = net.split(rep.certificate.theta)
    assert np.linalg.norm(W1c[1]) > 0 and W2c[0, 1] > 0
    assert "layer 1 (W, v fixed): global" in str(rep) and "layer 2 (v, W fixed): global" in str(rep)
    # without the enumeration of cells the first layer is still certified local (no zero pre-activation)
    l1 = analyze(net, (X, y), theta, global_opt=False).per_layer[0]
    assert l1.verdict == "local" and l1.optimum is None and l1.certificate is None


@pytest.mark.parametrize("loss", ["exponential", "logistic"])
def test_per_layer_thm53_first_layer_not_local(loss):
    """VSS Thm 5.3: at Thm 4.2(2)'s limit the first layer is not a local optimum of Problem (4); the second layer
    (features relu(x_j.x_i) = delta_ij) is a global one, v_j = 1."""
    net, X, y, theta = thm42_limit(loss)
    rep = analyze(net, (X, y), theta)
    check_report(net, X, y, rep)
    l1, l2 = rep.per_layer
    assert l1.verdict == "not_local" and l1.norm_sq == pytest.approx(4.0, rel=1e-12)
    assert l2.verdict == "global" and l2.optimum == pytest.approx(4.0, rel=1e-12)
    # the sum of the margins is sum_j |w_j1| + |w_j2| <= sqrt2 sum_j ||w_j|| <= 2 sqrt2 ||W||, so ||W||^2 >= 2,
    # attained by w_j = (x_j + x_j+1) / 2
    assert l1.optimum == pytest.approx(2.0, rel=1e-9)


def test_per_layer_lemma_c6_first_layer_local_not_global():
    """VSS Thm 5.4 and the end of App. C.11: at Lemma C.6's limit (every pre-activation non-zero) the first layer is
    a local optimum of Problem (4) but not a global one; the second layer (features (1/2, 1/2, 0), (0, 0, 1)) is
    a global one, v = (2, 1)."""
    net, X, y, theta = lemma_c6_limit()
    rep = analyze(net, (X, y), theta)
    check_report(net, X, y, rep)
    l1, l2 = rep.per_layer
    W, v = net.split(rep.theta_tilde)
    v = v[0]
    assert l1.verdict == "local" and l1.norm_sq == pytest.approx(5.0, rel=1e-12)
    assert layer1_qp(X, y, v, (X @ W.T > 0).astype(float)) == pytest.approx(5.0, rel=1e-6)
    cells = cells_2d(X)
    assert len(cells) == 6
    reference = min(layer1_qp(X, y, v, np.array([a, b]).T) for a in cells for b in cells)
    assert l1.optimum == pytest.approx(reference, rel=1e-6)
    assert l1.optimum < 1 / 4 + 41 / 16   # the paper's competitor's first layer (VSS Thm 5.4, negative part)
    assert l2.verdict == "global" and l2.optimum == pytest.approx(5.0, rel=1e-12)


@pytest.mark.parametrize("make, seed", [(lemma_c6_like, 0), (lemma_c6_like, 1), (random_relu_problem, 1),
                                        (random_relu_problem, 9)])
def test_per_layer_on_the_identified_pattern(make, seed):
    """VSS Thm 5.4: with every pre-activation non-zero the first layer is a local optimum of Problem (4): it solves
    the QP on its own activation pattern; the second layer solves its QP."""
    net, X, y, theta0 = make(seed)
    rep = analyze(net, (X, y), ff.flow(net, (X, y), theta0, log_t_max=200.0, **FLOW).theta)
    check_report(net, X, y, rep)
    assert rep.local_condition
    W, v = net.split(rep.theta_tilde)
    l1, l2 = rep.per_layer
    assert l1.verdict in ("local", "global")
    assert layer1_qp(X, y, v[0], (X @ W.T > 0).astype(float)) == pytest.approx(l1.norm_sq, rel=1e-6)
    assert l2.verdict == "global"
    assert layer2_qp(X, y, W) == pytest.approx(l2.optimum, rel=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# KKT residual, validation


def test_kkt_residual_helper(thm32):
    net, X, y = thm32
    kkt = net.join([np.array([[0.0, 2.0], [0.0, 0.0]]), np.array([[2.0, 0.0]])])
    res, lam, support = kkt_residual(net, (X, y), 3 * kkt)
    assert res < 1e-14 and list(support) == [0, 1]
    np.testing.assert_allclose(lam, [2.0, 2.0], rtol=1e-12)
    # tilting the active neuron breaks stationarity
    off = net.join([np.array([[0.3, 2.0], [0.0, 0.0]]), np.array([[2.0, 0.0]])])
    assert kkt_residual(net, (X, y), off)[0] > 1e-2


def q_gradients(net, X, y, theta, s):
    """Gradients of q_i with the fixed convention relu'(0) = s (what GD codes use), one column per sample."""
    W1, W2 = net.split(theta)
    h = X @ W1.T
    d = np.where(h > 0, 1.0, np.where(h < 0, 0.0, s))
    return np.array([net.join([y[i] * (W2[0] * d[i])[:, None] * X[i][None, :],
                               y[i] * np.maximum(h[i], 0.0)[None, :]]) for i in range(len(y))]).T


def test_clarke_freedom_on_zero_preactivations():
    # a random run whose limit has a neuron exactly on the surface of a support sample (the flow slides there): it is
    # a KKT point only with s in the Clarke interval [0, 1], not with either fixed convention relu'(0) = 0 or 1
    from scipy.optimize import nnls
    rng = np.random.default_rng(0)
    n, k = rng.integers(2, 6), rng.integers(1, 4)
    X, y = rng.normal(size=(n, 2)), np.where(rng.random(n) < 0.5, -1.0, 1.0)
    net = ff.two_layer(2, k)
    traj = ff.flow(net, (X, y), ff.init.gaussian(net, 1.0, rng), log_t_max=60.0, max_steps=50_000)
    assert traj.margin > 0 and np.any(traj.events["kind"] == "slide_start")
    rep = analyze(net, (X, y), traj.theta, global_opt=False)
    check_report(net, X, y, rep)
    assert rep.polished and rep.kkt_residual < 1e-10 and rep.verdict in ("kkt_only", "not_local", "local")
    zero_pairs = [(i, j) for i, j in np.argwhere(rep.pattern == 0) if i in rep.support]
    assert zero_pairs
    assert not rep.local_condition
    th = rep.theta_tilde
    for s in (0.0, 1.0):
        G = q_gradients(net, X, y, th, s)[:, rep.support]
        lam, res = nnls(G, th)
        assert res / np.linalg.norm(th) > 1e-2


def test_thm42_point_without_polishing():
    # the exact Thm 4.2(2) point needs no polishing; tilting a neuron onto a sample it touches (the paper's
    # construction) certifies it without random starts
    net, X, y = ff.two_layer(2, 4), THM42_X, np.ones(4)
    theta = net.join([X, np.ones((1, 4))])
    assert kkt_residual(net, (X, y), theta)[0] < 1e-14
    rep = analyze(net, (X, y), theta, polish=False, global_opt=False, n_random=0)
    check_report(net, X, y, rep)
    assert rep.verdict == "not_local" and not rep.polished
    assert rep.certificate.method.startswith("tilt")
    # the improvement is first order here (the paper's: 8 eps'(1 - eps'), eps' = eps/(2 sqrt 2)), unlike Thm 3.2's
    gains = [rep.certificate.gain] + [f.gain for f in rep.certificate.family]
    assert gains[0] / gains[2] < 20   # radii 16x apart: a second-order gain would shrink 256x


def test_not_kkt_without_polishing(thm32):
    net, X, y = thm32
    theta0 = net.join([np.array(THM32_INIT[0]), np.array(THM32_INIT[1])])
    traj = ff.flow(net, (X, y), theta0, log_t_max=300.0)
    rep = analyze(net, (X, y), traj.theta, polish=False, global_opt=False)
    check_report(net, X, y, rep)
    assert rep.verdict == "not_kkt" and not rep.polished
    assert rep.kkt_residual == rep.raw_kkt_residual > 1e-3


def test_validation(thm32):
    net, X, y = thm32
    theta = net.join([np.array([[0.0, 2.0], [0.0, 0.0]]), np.array([[2.0, 0.0]])])
    with pytest.raises(ValueError, match="cannot be normalised"):
        analyze(net, (X, y), -theta)
    with pytest.raises(ValueError, match="cannot be normalised"):
        analyze(net, (X, y), np.zeros(net.n_params))
    # margins that are positive only at the rounding level: two neurons of size 1e8 that cancel to ~1 out of 5e15
    big = net.join([np.array([[0.0, 1e8], [0.0, 1e8]]), np.array([[1e8, -1e8 * (1 - 4e-16)]])])
    q = margins(net, X, y, big)
    assert np.all(q > 0) and np.all(q < 1e-9 * 5e15)
    with pytest.raises(ValueError, match="rounding level"):
        analyze(net, (X, y), big)
    with pytest.raises(ValueError, match="binary labels"):
        analyze(net, (X, np.array([1.0, 0.5])), theta)
    with pytest.raises(ValueError, match="binary labels"):
        analyze(net, (X, np.eye(2)), theta)   # square-loss targets
    with pytest.raises(ValueError, match="d_out = 1"):
        net2 = ff.two_layer(2, 2, d_out=2)
        analyze(net2, (X, np.ones(2)), np.ones(net2.n_params))
    with pytest.raises(ValueError, match="homogeneous"):
        biased = ff.fully_connected(2, [2], bias=True)
        analyze(biased, (X, y), np.ones(biased.n_params))
    with pytest.raises(ValueError, match="homogeneous"):
        skip = ff.Network([np.arange(1, 5).reshape(2, 2), np.array([[1, 2]])], skip=True)
        analyze(skip, (X, y), np.ones(skip.n_params))
    with pytest.raises(ValueError, match="d_out = 1"):
        deep2 = ff.fully_connected(2, [2, 2], d_out=2)
        analyze(deep2, (X, np.ones(2)), np.ones(deep2.n_params))
    with pytest.raises(ValueError, match="binary labels"):
        deep = ff.fully_connected(2, [2, 2])
        analyze(deep, (X, np.eye(2)), np.ones(deep.n_params))   # square-loss targets, deep net
    with pytest.raises(ValueError, match="eps"):
        analyze(net, (X, y), theta, eps=0.0)
    with pytest.raises(ValueError, match="n_params"):
        analyze(net, (X, y), theta[:-1])
    with pytest.raises(ValueError, match="d_in"):
        analyze(net, (np.ones((2, 3)), y), theta)
    with pytest.raises(TypeError):
        analyze(net, X, theta)


# ---------------------------------------------------------------------------------------------------------------
# properties


def property_problem(seed, mode):
    rng = np.random.default_rng(seed)
    if mode == "thm32":   # Thm 3.2 under perturbed data (Remark 3.2) and a random init meeting its condition
        a = rng.uniform(0.1, 0.6)
        X = np.array([[1.0, a], [-1.0, a]]) + rng.uniform(-0.05, 0.05, size=(2, 2))
        net, y = ff.two_layer(2, 2), np.ones(2)
        W1 = np.array([[rng.uniform(-0.05, 0.05), 1.0], [rng.uniform(-0.05, 0.05), -1.0]]) * rng.uniform(0.2, 2, (2, 1))
        theta0 = net.join([W1, np.array([[rng.uniform(0.1, 2), rng.normal()]])])
        return net, X, y, ff.flow(net, (X, y), theta0, log_t_max=float(rng.uniform(20, 300)), max_steps=50_000).theta
    # labels from a random teacher of the same architecture, so that most problems are separable by the network
    n, d, k = rng.integers(1, 6), rng.integers(1, 4), rng.integers(1, 4)
    X = rng.normal(size=(n, d))
    net = ff.two_layer(d, k, activation="linear" if mode == "linear" else "relu")
    teacher = ff.init.gaussian(net, 1.0, rng)
    y = np.where(net.forward(teacher, X)[:, 0] >= 0, 1.0, -1.0)
    if mode == "teacher":
        return net, X, y, teacher
    theta0 = ff.init.gaussian(net, 1.0, rng)
    return net, X, y, ff.flow(net, (X, y), theta0, log_t_max=float(rng.uniform(5, 60)), max_steps=50_000).theta


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(["teacher", "flow", "linear", "thm32"]))
# a flow limit with a sample whose one positive term is a pre-activation left at rounding level on its surface
@example(seed=81010750, mode="flow")
def test_property_certificates_are_valid(seed, mode):
    net, X, y, theta = property_problem(seed, mode)
    try:
        rep = analyze(net, (X, y), theta, rng=seed, global_opt=(len(y) <= 4 and X.shape[1] <= 2))
    except ValueError as err:
        # only when theta does not classify, or classifies by rounding only (the terms of Phi(x_i) are at most
        # 1/2 ||theta||^2 ||x_i||)
        assert "normalised" in str(err)
        assert np.min(margins(net, X, y, theta)) <= 1e-9 * 0.5 * (theta @ theta) * np.max(np.linalg.norm(X, axis=1))
        event("unclassified")
        return
    event(f"{mode}: {rep.verdict}, polished={rep.polished}")
    check_report(net, X, y, rep)
    if rep.global_value is not None:
        # the convex optimum is a lower bound for every width: nothing feasible beats it
        assert rep.norm_sq >= rep.global_value * (1 - 1e-7)
        if rep.certificate is not None:
            assert rep.certificate.norm_sq >= rep.global_value * (1 - 1e-7)


def test_classifies_rejects_a_margin_at_rounding_level():
    # a flow limit whose sample 3 has one active unit, its pre-activation 5e-16 on its surface: Phi is noise there
    net, X, y, theta = property_problem(81010750, "flow")
    assert np.min(margins(net, X, y, theta)) > 0.0
    assert not ff.analysis.classifies(net, (X, y), theta)
    with pytest.raises(ValueError, match="rounding level"):
        analyze(net, (X, y), theta)
    assert ff.analysis.classifies(net, (X[:3], y[:3]), theta)
