"""The convex program (14) over all arrangements, its dual (129) and the dual-feasibility certificate (WP Thm 3).

Numbers recomputed with CVXPY/Clarabel over all arrangements (docs/mathematics.md §8): WP App. F.1/F.2 (whose printed
neurons are rounded) and the margin paper's datasets (Thm 3.2, Lemma C.6, Thm 4.2(2)) through WP's program.
"""
import numpy as np
import pytest

import fastflow as ff
from fastflow.arrangements import arrangements, sign_patterns
from fastflow.convex import convex_max_margin, dual_feasible

X_F1 = np.array([[1.65, -0.47], [-0.47, 1.35]])
X_F2 = np.array([[1.65, 0.47], [0.47, 1.35]])
X_THM32 = np.array([[1.0, 0.25], [-1.0, 0.25]])
X_C6 = np.array([[1.0, 0.25], [-1.0, 0.25], [0.0, -1.0]])
X_PM = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])

# name: X, y, ||theta*||^2 = 2 P*, convex dual lambda (recomputed)
CASES = {
    "WP F1": (X_F1, np.array([1.0, -1.0]), 2 * 1.28243, [0.5829, -0.6996]),
    "WP F2": (X_F2, np.ones(2), 2 * 0.73358, [0.2144, 0.5191]),
    "VSS Thm 3.2": (X_THM32, np.ones(2), 3.8806, [0.9701, 0.9701]),
    "VSS Lemma C.6": (X_C6, np.ones(3), 4.9244, [0.9138, 0.9138, 0.6346]),
    "VSS Thm 4.2(2)": (X_PM, np.ones(4), 4 * np.sqrt(2), [0.7071] * 4),
}


@pytest.fixture(scope="module")
def solved():
    return {name: convex_max_margin(X, y, solve_dual=True) for name, (X, y, _, _) in CASES.items()}


def neuron_vectors(res, sign):
    return sorted((tuple(np.round(nr.u, 4)) for nr in res.neurons if nr.sign == sign))


@pytest.mark.parametrize("name", list(CASES))
def test_values_and_strong_duality(solved, name):
    X, y, theta_sq, lam = CASES[name]
    res = solved[name]
    assert res.theta_norm_sq == pytest.approx(theta_sq, abs=1e-4)
    assert res.value == pytest.approx(theta_sq / 2, abs=1e-4)
    # lambda from the margin constraints, certified exactly, and from the corrected SOCP (129): primal = dual
    np.testing.assert_allclose(res.dual, lam, atol=1e-4)
    assert res.dual_max == pytest.approx(1.0, abs=1e-7)
    assert 0 <= res.gap < 1e-7 * res.value + 1e-9
    assert res.socp_status == "optimal"
    np.testing.assert_allclose(res.socp_dual, lam, atol=1e-4)
    assert res.socp_dual_value == pytest.approx(res.value, rel=1e-7)
    assert np.all(y * res.dual >= 0)


@pytest.mark.parametrize("name", list(CASES))
def test_network_from_the_solution(solved, name):
    X, y, _, _ = CASES[name]
    res = solved[name]
    W1, W2 = res.weights()
    assert W1.shape == (res.width, X.shape[1]) and W2.shape == (1, res.width)
    net = ff.two_layer(X.shape[1], res.width)
    theta = net.join([W1, W2])
    margins = y * net.forward(theta, X)[:, 0]
    assert margins.min() >= 1 - 1e-6
    assert 0.5 * theta @ theta == pytest.approx(res.value, rel=1e-6)
    # balanced neurons: |v_j| = ||w_j|| (the convex-geometry paper's Lemma 1)
    np.testing.assert_allclose(np.abs(W2[0]), np.linalg.norm(W1, axis=1))


def test_wp_f1_neurons(solved):
    """Positive neuron x1/||x1||^2 on pattern (1, 0), negative neuron x2/||x2||^2 on (0, 1)."""
    res = solved["WP F1"]
    assert neuron_vectors(res, 1) == [(0.5606, -0.1597)]
    assert neuron_vectors(res, -1) == [(-0.2300, 0.6607)]
    patterns = {nr.sign: tuple(nr.pattern) for nr in res.neurons}
    assert patterns == {1: (True, False), -1: (False, True)}


def test_wp_f2_single_neuron(solved):
    res = solved["WP F2"]
    assert neuron_vectors(res, 1) == [(0.4386, 0.5881)]  # X^{-1} 1, active on both points
    assert neuron_vectors(res, -1) == []


def test_vss_optimal_neurons(solved):
    assert neuron_vectors(solved["VSS Thm 3.2"], 1) == [(-0.9412, 0.2353), (0.9412, 0.2353)]
    assert neuron_vectors(solved["VSS Lemma C.6"], 1) == [(-1.125, -0.5), (1.125, -0.5)]
    assert neuron_vectors(solved["VSS Thm 4.2(2)"], 1) == [(-0.5, -0.5), (-0.5, 0.5), (0.5, -0.5), (0.5, 0.5)]


@pytest.mark.parametrize("X, lam, expected", [
    (X_THM32, [2.0, 2.0], 2.0616),  # VSS Thm 3.2's KKT point, not global
    (X_C6, [2.0, 2.0, 1.0], 2.0616),  # Lemma C.6
    (X_PM, [1.0, 1.0, 1.0, 1.0], 1.4142),  # Thm 4.2(2)
])
def test_vss_kkt_multipliers_fail_the_certificate(X, lam, expected):
    value, ok = dual_feasible(X, lam)
    assert value == pytest.approx(expected, abs=1e-4)
    assert not ok


@pytest.mark.parametrize("name", list(CASES))
def test_convex_dual_passes_the_certificate(solved, name):
    X = CASES[name][0]
    value, ok = dual_feasible(X, solved[name].dual, tol=1e-6)
    assert ok and value == pytest.approx(1.0, abs=1e-6)


def test_dual_feasible_against_sampling():
    """max over the unit ball of |lam^T (Xu)_+| is attained and never exceeded by sampled u."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((6, 3))
    lam = rng.standard_normal(6)
    value, _ = dual_feasible(X, lam)
    U = rng.standard_normal((20000, 3))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    sampled = np.abs(np.maximum(X @ U.T, 0).T @ lam)
    assert sampled.max() <= value + 1e-9
    assert sampled.max() >= value - 0.05


def test_random_problem_and_pattern_subsets():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((8, 3))
    y = np.where(rng.random(8) < 0.5, 1.0, -1.0)
    res = convex_max_margin(X, y)
    assert 0 <= res.gap < 1e-7 * res.value
    W1, W2 = res.weights()
    net = ff.two_layer(3, res.width)
    theta = net.join([W1, W2])
    assert (y * net.forward(theta, X)[:, 0]).min() >= 1 - 1e-6
    # the optimal neurons' patterns alone give the same optimum; any subset gives an upper bound
    support = np.array([nr.pattern for nr in res.neurons])
    assert convex_max_margin(X, y, patterns=support).value == pytest.approx(res.value, rel=1e-7)
    more = np.vstack([support, arrangements(X)[::3]])
    assert convex_max_margin(X, y, patterns=more.astype(int)).value == pytest.approx(res.value, rel=1e-7)


# degenerate data with lower-dimensional faces whose patterns no cell has (tests/test_arrangements.py): x1, x2, x3
# positively spanning a plane; antiparallel rows; an antiparallel pair inside a degenerate flat
DEGENERATE = {
    "coplanar triple": ([[1.0, 0, 0], [-0.5, np.sqrt(3) / 2, 0], [-0.5, -np.sqrt(3) / 2, 0], [0.2, 0.1, 1.0]],
                        [-1.0, 1.0, -1.0, 1.0]),
    "+-e1, +-e2": (X_PM, np.ones(4)),
    "antiparallel pairs": ([[1, 1, 0], [-1, -1, 0], [-3, -3, 0], [0, 1, 2], [1, 0, -1], [0, -1, -2]],
                           [1.0, -1.0, -1.0, 1.0, 1.0, -1.0]),
    "d = 4": ([[1, 0, 0, 0], [0, 1, 0, 0], [-1, -1, 0, 0], [0, 0, 1, 0], [0, 0, -1, 0], [0, 0, 1, 1], [0, 0, 0, -1]],
              [1.0, -1.0, 1.0, 1.0, -1.0, 1.0, 1.0]),
}


@pytest.mark.parametrize("name", list(DEGENERATE))
def test_cells_suffice(name):
    """The default patterns (the cells) give the optimum and the dual maximum of every face's pattern, w = 0's
    included: the neuron of a lower-dimensional face lies in the closure of a cell."""
    X, y = (np.array(a, dtype=float) for a in DEGENERATE[name])
    faces = np.unique(sign_patterns(X) >= 0, axis=0)
    assert len(faces) > len(arrangements(X))
    assert convex_max_margin(X, y).value == pytest.approx(convex_max_margin(X, y, patterns=faces).value, rel=1e-7)
    lam = np.random.default_rng(0).standard_normal(len(y))
    assert dual_feasible(X, lam)[0] == pytest.approx(dual_feasible(X, lam, faces)[0], rel=1e-12)


# --- bad input -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("X, y, match", [
    ([[1.0, np.nan], [0.0, 1.0]], [1.0, -1.0], "X"),
    ([1.0, 2.0], [1.0, -1.0], "X"),
    (np.ones((2, 2, 2)), [1.0, -1.0], "X"),
    (X_F1, [1.0, 0.0], "y"),
    (X_F1, [1.0, 2.0], "y"),
    (X_F1, [1.0, -1.0, 1.0], "y"),
    (X_F1, [[1.0, -1.0]], "y"),
])
def test_bad_input(X, y, match):
    with pytest.raises(ValueError, match=match):
        convex_max_margin(X, y)


def test_bad_patterns_and_multipliers():
    with pytest.raises(ValueError, match="patterns"):
        convex_max_margin(X_F1, [1.0, -1.0], patterns=[[1, 0, 1]])
    with pytest.raises(ValueError, match="patterns"):
        convex_max_margin(X_F1, [1.0, -1.0], patterns=[[1, 2]])
    with pytest.raises(ValueError, match="patterns"):
        convex_max_margin(X_F1, [1.0, -1.0], patterns=[[0, 0]])
    with pytest.raises(ValueError, match="lam"):
        dual_feasible(X_F1, [1.0])
    with pytest.raises(ValueError, match="lam"):
        dual_feasible(X_F1, [np.nan, 1.0])
    with pytest.raises(ValueError, match="tol"):
        dual_feasible(X_F1, [1.0, 1.0], tol=-1.0)


def test_inseparable_data_raise():
    """x and 2x with opposite labels: Phi(2x) = 2 Phi(x), no network without biases has both margins >= 1."""
    with pytest.raises(RuntimeError, match="infeasible"):
        convex_max_margin([[1.0, 0.0], [2.0, 0.0]], [1.0, -1.0])
