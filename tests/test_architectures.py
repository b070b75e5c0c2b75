"""Every architecture of the margin paper in the same kernel: closed forms, reduced ODEs and conservation laws."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import minimize

import fastflow as ff
from conftest import unit_rows


def svm_direction(X, y):
    """The l2 max-margin linear predictor, by a small QP solved independently (SLSQP)."""
    d = X.shape[1]
    res = minimize(lambda u: u @ u, np.ones(d), jac=lambda u: 2 * u, method="SLSQP",
                   constraints=[{"type": "ineq", "fun": lambda u: y * (X @ u) - 1, "jac": lambda u: y[:, None] * X}],
                   options={"ftol": 1e-14, "maxiter": 500})
    return res.x / np.linalg.norm(res.x)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_thm31_deep_linear_product_is_max_margin(depth):
    rng = np.random.default_rng(depth)
    X = unit_rows(rng, 8, 3)
    y = np.where(X @ np.array([1.0, -0.4, 0.2]) >= 0, 1.0, -1.0)
    net = ff.fully_connected(3, [4] * (depth - 1), activation="linear")
    traj = ff.flow(net, (X, y), ff.init.xavier(net, 0), log_t_max=1e4)
    mats = net.split(traj.theta)
    product = mats[0]
    for W in mats[1:]:
        product = W @ product
    beta = product[0] / np.linalg.norm(product[0])
    assert np.linalg.norm(beta - svm_direction(X, y)) < 2e-2
    norms = [np.linalg.norm(W) for W in mats]       # balanced layers
    assert max(norms) / min(norms) - 1 < 1e-2


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_thm41_diagonal_second_coordinate_never_moves(activation):
    net = ff.diagonal(2, 2, activation)
    theta0 = net.join([np.diag([1.0, 0.0]), np.array([[1.0, 0.0]])])
    X, y = np.array([[1.0, 2.0]]), np.ones(1)
    t_eval = np.array([1.0, 10.0, 1e3])
    traj = ff.flow(net, (X, y), theta0, t_max=1e3, t_eval=t_eval, rtol=1e-12, atol=1e-14)
    W1, W2 = net.split(traj.theta)
    assert W1[1, 1] == 0.0 and W2[0, 1] == 0.0
    # w1 = w2 = (a, 0) with da/dt = exp(-a^2) a
    ref = solve_ivp(lambda t, a: np.exp(-a**2) * a, (0, 1e3), [1.0], method="DOP853", rtol=1e-13, atol=1e-14,
                    t_eval=t_eval)
    np.testing.assert_allclose(traj.theta_at[:, 0], ref.y[0], rtol=1e-9)
    np.testing.assert_allclose(traj.theta_at[:, 2], ref.y[0], rtol=1e-9)


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_thm44_conv_filter_keeps_its_direction(activation):
    net = ff.conv_disjoint(2, 2, activation)
    X = np.array([[4.0, 1 / np.sqrt(2), -4.0, 1 / np.sqrt(2)]])
    theta0 = np.array([0.0, 1.0, 1 / np.sqrt(2), 1 / np.sqrt(2)])
    traj = ff.flow(net, (X, np.ones(1)), theta0, log_t_max=100.0)
    w, v = traj.theta[:2], traj.theta[2:]
    assert abs(w[0]) < 1e-12 * w[1] and w[1] > 1       # up to rounding of 4 v1 - 4 v2
    assert v[0] == pytest.approx(v[1], rel=1e-13)
    np.testing.assert_allclose(traj.direction, [0, 1 / np.sqrt(2), 0.5, 0.5], atol=1e-12)
    # the law of a shared filter: ||w||^2 - ||v||^2 is conserved (layer-wise, Lemma C.1)
    assert abs(w @ w - v @ v) < 1e-10


@pytest.mark.parametrize("depth", [3, 4, 5])
@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_thm51_deep_diagonal_layers_tend_to_2_pow_minus_1_over_m(depth, activation):
    net = ff.diagonal(2, depth, activation)
    X = np.ones((1, 2))
    traj = ff.flow(net, (X, np.ones(1)), np.ones(net.n_params), log_t_max=50.0)
    scale = net.forward(traj.theta, X)[0, 0] ** (-1 / depth)   # normalise the margin to 1
    for u in net.layer_parameters(traj.theta):
        np.testing.assert_allclose(u * scale, 2 ** (-1 / depth), rtol=1e-12)


def test_thm61_skip_connection_margin_decreases():
    # Phi = v w x + u x on {(1, 1)} from (2, 2, 2): loss -> 0, v = w always, normalized margin decreasing from
    # 1/3 + 1/sqrt(3) = 0.91068 towards 1/2 (margin paper, ICLR version, Thm 6.1), and the invariant
    # v = 2 exp(u - 2)
    net = ff.Network([np.array([[1]]), np.array([[1]])], activation="linear", skip=True)
    assert not net.is_homogeneous
    X, y = np.ones((1, 1)), np.ones(1)
    t_eval = np.geomspace(1e-3, 1e12, 40)
    traj = ff.flow(net, (X, y), np.array([2.0, 2.0, 2.0]), t_max=1e12, t_eval=t_eval)
    w, v, u = traj.theta_at.T
    np.testing.assert_array_equal(w, v)
    np.testing.assert_allclose(v, 2 * np.exp(u - 2), rtol=1e-8)
    margins = [net.normalized_margin(th, X, y) for th in traj.theta_at]
    assert net.normalized_margin(np.array([2.0, 2.0, 2.0]), X, y) == pytest.approx(1 / 3 + 1 / np.sqrt(3))
    assert np.all(np.diff(margins) < 0) and 0.5 < margins[-1] < 0.9
    assert traj.loss < 1e-10


def layer_balance(net, theta):
    u = net.layer_parameters(theta)
    return np.array([u[l] @ u[l] - u[l + 1] @ u[l + 1] for l in range(net.depth - 1)])


@pytest.mark.parametrize("seed", range(6))
def test_deep_and_sparse_conservation_and_monotone_loss(seed):
    rng = np.random.default_rng(seed)
    X = unit_rows(rng, 6, 4)
    y = np.where(rng.random(6) < 0.5, -1.0, 1.0)
    nets = [ff.fully_connected(4, [3, 3]), ff.diagonal(4, 3), ff.conv_disjoint(2, 2)]
    net = nets[seed % 3]
    theta0 = ff.init.gaussian(net, 0.8, rng)
    t_eval = np.linspace(0, 20, 101)
    traj = ff.flow(net, (X, y), theta0, t_max=20.0, t_eval=t_eval, rtol=1e-12, atol=1e-14)
    scale = np.sum(theta0**2)
    assert np.max(np.abs(layer_balance(net, traj.theta) - layer_balance(net, theta0))) <= 1e-9 * scale
    losses = traj.loss_at[np.isfinite(traj.loss_at)]
    assert np.all(np.diff(losses) <= 1e-12 * losses[:-1])


def test_layered_core_matches_two_layer_core():
    # the general class N kernel and the two-layer fast path integrate the same flow
    rng = np.random.default_rng(3)
    X = unit_rows(rng, 5, 3)
    y = np.where(rng.random(5) < 0.5, -1.0, 1.0)
    fast = ff.two_layer(3, 4)
    general = ff.Network([np.arange(1, 13).reshape(4, 3), np.arange(1, 5)[None, :]])
    general._core = ff.networks._core.Layered([3, 4, 1], [m.ravel().tolist() for m in general.maps], "relu",
                                              False, False)
    theta0 = ff.init.gaussian(fast, 0.7, rng)
    a = ff.flow(fast, (X, y), theta0, t_max=30.0, rtol=1e-12, atol=1e-14)
    b = ff.flow(general, (X, y), theta0, t_max=30.0, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b.theta, a.theta, rtol=1e-9, atol=1e-12)
    assert list(a.events["kind"]) == list(b.events["kind"])


@pytest.mark.parametrize("loss", ["exponential", "logistic"])
def test_one_vs_all_decouples_into_binary_problems(loss):
    # convex-geometry paper eq. (4): K independent two-layer networks under the one-vs-all loss are K binary
    # flows. As one class-N network: hidden block k feeds output k only.
    rng = np.random.default_rng(7)
    n, d, width, K = 9, 3, 3, 3
    X = unit_rows(rng, n, d)
    classes = np.arange(n) % K
    first = np.arange(1, K * width * d + 1).reshape(K * width, d)
    second = np.zeros((K, K * width), dtype=int)
    for k in range(K):
        second[k, k * width:(k + 1) * width] = np.arange(1, width + 1) + k * width
    net = ff.Network([first, second])
    theta0 = ff.init.gaussian(net, 0.7, rng)
    W1, W2 = net.split(theta0)
    traj = ff.flow(net, (X, classes), theta0, loss=loss, t_max=50.0, rtol=1e-12, atol=1e-14)
    V1, V2 = net.split(traj.theta)
    block = ff.two_layer(d, width)
    for k in range(K):
        rows = slice(k * width, (k + 1) * width)
        y_k = np.where(classes == k, 1.0, -1.0)
        single = ff.flow(block, (X, y_k), block.join([W1[rows], W2[k:k + 1, rows]]), loss=loss, t_max=50.0,
                         rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(block.join([V1[rows], V2[k:k + 1, rows]]), single.theta, rtol=1e-8, atol=1e-10)


def test_deep_hull_with_an_overflowing_trial_field_does_not_hang():
    """A deep ReLU net on data it cannot separate: a trial stage of a long step overflows the corner fields of the
    sliding hull. Wolfe's corral then never shed a point and the run hung inside one step, deaf to Ctrl-C; now such
    a field is non-finite and the step is rejected. Run in a subprocess so that a hang fails instead of blocking."""
    code = textwrap.dedent("""
        import numpy as np, fastflow as ff
        net = ff.fully_connected(2, [2, 2], activation="relu")
        rng = np.random.default_rng(4)
        X = rng.normal(size=(4, 2)); y = np.sign(rng.normal(size=4))
        tr = ff.flow(net, (X, y), rng.normal(size=net.n_params), log_t_max=30, max_steps=2000)
        print(tr.status)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] in ("stalled", "t_max", "max_steps"), proc.stdout


def test_flow_many_of_deep_nets_with_slides_equals_single_flows():
    # a worker runs many trajectories with one integrator, whose hull solver keeps a corral to start Wolfe from:
    # every trajectory must still be the one a single run gives
    rng = np.random.default_rng(3)
    X = rng.normal(size=(10, 3))
    y = np.where(X[:, 0] + 0.3 * X[:, 1] > 0, 1.0, -1.0)
    net = ff.fully_connected(3, [6, 6])
    kw = dict(loss="logistic", log_t_max=12.0)
    first = ff.flow(net, (X, y), ff.init.xavier(net, np.random.default_rng(1)), **kw)
    thetas = np.stack([ff.init.xavier(net, np.random.default_rng(1)), first.theta,
                       ff.init.xavier(net, np.random.default_rng(2)), first.theta])
    singles = [ff.flow(net, (X, y), theta, **kw) for theta in thetas]
    assert sum(int(np.sum(t.events["kind"] == "slide_start")) for t in singles) >= 2
    for threads in (1, 2):
        for many, single in zip(ff.flow_many(net, (X, y), thetas, threads=threads, **kw), singles):
            assert many.n_rhs == single.n_rhs
            np.testing.assert_array_equal(many.theta, single.theta)
            np.testing.assert_array_equal(many.events, single.events)
