"""The kernel's small dense solvers against NumPy/SciPy: the Gram systems of sliding (solve_psd, Cholesky with
symmetric pivoting) and the bounded least squares of the minimal-norm subgradient (box_qp)."""
import numpy as np
import pytest
from scipy.optimize import lsq_linear

from fastflow import _core


@pytest.mark.parametrize("seed", range(40))
def test_solve_psd_matches_numpy_on_full_rank_gram_matrices(seed):
    rng = np.random.default_rng(seed)
    k = 2 + seed % 6
    D = rng.normal(size=(k, k + 3)) * np.exp(rng.normal(size=(k, 1)))  # rows of very different sizes
    Q, b = D @ D.T, rng.normal(size=k)
    x, rank = _core.solve_psd(Q, b)
    assert rank == k
    np.testing.assert_allclose(x, np.linalg.solve(Q, b), rtol=1e-8, atol=0)


@pytest.mark.parametrize("seed", range(20))
def test_solve_psd_gives_a_least_squares_solution_on_dependent_rows(seed):
    """Duplicated or parallel switching surfaces: Q is singular, b in its range; any exact solution will do."""
    rng = np.random.default_rng(seed)
    k = 4 + seed % 3
    D = rng.normal(size=(k, 6))
    D[-1] = 2.0 * D[0]          # a parallel sample
    D[-2] = D[1] - 0.5 * D[0]   # a dependent one
    Q = D @ D.T
    b = D @ rng.normal(size=6)
    x, rank = _core.solve_psd(Q, b)
    assert rank == k - 2
    np.testing.assert_allclose(Q @ x, b, rtol=0, atol=1e-10 * np.linalg.norm(b))


@pytest.mark.parametrize("seed", range(40))
def test_box_qp_is_the_bounded_least_squares_minimiser(seed):
    rng = np.random.default_rng(seed)
    k, p = 1 + seed % 6, 8
    D = rng.normal(size=(k, p))
    F0 = rng.normal(size=p) * 3.0
    s = _core.box_qp(D @ D.T, D @ F0, np.linalg.norm(F0))
    ref = lsq_linear(D.T, -F0, bounds=(0.0, 1.0), method="bvls", tol=1e-15).x
    assert np.all((s >= 0.0) & (s <= 1.0))
    np.testing.assert_allclose(np.linalg.norm(F0 + D.T @ s), np.linalg.norm(F0 + D.T @ ref), rtol=1e-10)
    np.testing.assert_allclose(s, ref, rtol=0, atol=1e-8)


def test_solvers_reject_bad_shapes():
    with pytest.raises(ValueError, match="square"):
        _core.solve_psd(np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match="b must be 1-D of length 2"):
        _core.box_qp(np.eye(2), np.ones(3), 1.0)


@pytest.mark.parametrize("seed", range(30))
def test_min_norm_point_of_a_hull_matches_a_quadratic_program(seed):
    """Wolfe's algorithm (the deep networks' Clarke sets) against SciPy's bounded least squares on the simplex
    weights: min |V^T lambda| over lambda >= 0, sum lambda = 1 (the sum enforced by a heavy extra row)."""
    rng = np.random.default_rng(seed)
    count, p = 2 + seed % 9, 1 + seed % 5
    V = rng.normal(size=(count, p)) + rng.normal(size=p) * (seed % 3)  # hulls near and far from the origin
    x = _core.min_norm_point(V)
    weight = 1e4
    A = np.vstack([V.T, weight * np.ones(count)])
    b = np.concatenate([np.zeros(p), [weight]])
    lam = lsq_linear(A, b, bounds=(0.0, np.inf), method="bvls", tol=1e-15).x
    ref = V.T @ (lam / lam.sum())
    # to the reference's own accuracy
    np.testing.assert_allclose(np.linalg.norm(x), np.linalg.norm(ref), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(x, ref, rtol=0, atol=1e-6 * max(1.0, np.abs(V).max()))
    # x lies in the hull and is optimal: <x, v - x> >= 0 for every vertex v
    assert np.min(V @ x - x @ x) >= -1e-10 * max(1.0, np.abs(V).max() ** 2)
    # its corral (the face the kernel differentiates on): a convex combination of distinct rows that gives x
    same, rows, weights = _core.min_norm_point(V, corral=True)
    np.testing.assert_array_equal(same, x)
    assert len(set(rows)) == len(rows) and np.all(weights > 0) and np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(V[rows].T @ weights, x, rtol=0, atol=1e-12 * max(1.0, np.abs(V).max()))


def _unit_blocks(seed, k=30, units=5, width=4):
    """Rows that touch only their unit's block (switches of different hidden units), one dependent pair, their
    Gram matrix with exact zeros between units (as the kernel builds it), and the labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, units, k)
    rows = np.zeros((k, units * width))
    for a, u in enumerate(labels):
        rows[a, width * u:width * (u + 1)] = rng.normal(size=width)
    same = np.flatnonzero(labels == labels[0])
    if len(same) > 1:
        rows[same[1]] = 2.0 * rows[0]
    Q = rows @ rows.T
    Q[labels[:, None] != labels[None, :]] = 0.0
    return rows, Q, labels, rng


@pytest.mark.parametrize("seed", range(6))
def test_solve_psd_told_the_blocks_solves_every_block(seed):
    """Told the blocks, the solver works unit by unit: with b in the range of Q (b = D F, as in sliding), Q x = b
    although blocks with more rows than their width are singular, and the rank is the sum of the blocks' ranks
    (NumPy's)."""
    rows, Q, labels, rng = _unit_blocks(seed)
    b = rows @ rng.normal(size=rows.shape[1])
    x, rank = _core.solve_psd(Q, b, group=labels.tolist())
    assert rank == sum(np.linalg.matrix_rank(Q[np.ix_(labels == u, labels == u)]) for u in np.unique(labels))
    np.testing.assert_allclose(Q @ x, b, rtol=0, atol=1e-10 * np.linalg.norm(b))


@pytest.mark.parametrize("seed", range(6))
def test_box_qp_told_the_blocks_reaches_the_whole_problems_minimum(seed):
    """The bounded least squares separates by unit: solved block by block it reaches the same minimum as the solver
    on the whole matrix, and SciPy's lsq_linear's."""
    rows, Q, labels, rng = _unit_blocks(seed)
    F0 = rng.normal(size=rows.shape[1])
    b = rows @ F0

    def value(s):
        return 0.5 * np.sum((F0 + rows.T @ s) ** 2)

    s_blocks = _core.box_qp(Q, b, np.linalg.norm(F0), group=labels.tolist())
    s_whole = _core.box_qp(Q, b, np.linalg.norm(F0))
    reference = lsq_linear(rows.T, -F0, bounds=(0.0, 1.0), tol=1e-14, method="bvls").x
    assert np.all((s_blocks >= 0.0) & (s_blocks <= 1.0))
    assert value(s_blocks) == pytest.approx(value(s_whole), rel=1e-12, abs=1e-12)
    assert value(s_blocks) == pytest.approx(value(reference), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_lu_solve_matches_numpy_when_rows_are_pivoted(seed):
    """The implicit steps' solves: general matrices whose partial pivoting swaps rows at every column."""
    rng = np.random.default_rng(seed)
    n = 3 + seed % 10
    A = rng.normal(size=(n, n)) + np.diag(np.linspace(-3.0, 3.0, n))
    b = rng.normal(size=n)
    np.testing.assert_allclose(_core.lu_solve(A, b), np.linalg.solve(A, b), rtol=1e-9, atol=1e-12)
