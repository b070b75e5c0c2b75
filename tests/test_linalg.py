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
    np.testing.assert_allclose(np.linalg.norm(x), np.linalg.norm(ref), rtol=1e-7, atol=1e-9)  # the reference's own accuracy
    np.testing.assert_allclose(x, ref, rtol=0, atol=1e-6 * max(1.0, np.abs(V).max()))
    # x lies in the hull and is optimal: <x, v - x> >= 0 for every vertex v
    assert np.min(V @ x - x @ x) >= -1e-10 * max(1.0, np.abs(V).max() ** 2)
    # its corral (the face the kernel differentiates on): a convex combination of distinct rows that gives x
    same, rows, weights = _core.min_norm_point(V, corral=True)
    np.testing.assert_array_equal(same, x)
    assert len(set(rows)) == len(rows) and np.all(weights > 0) and np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(V[rows].T @ weights, x, rtol=0, atol=1e-12 * max(1.0, np.abs(V).max()))


@pytest.mark.parametrize("seed", range(6))
def test_solve_psd_told_the_blocks_gives_the_same_bits(seed):
    """A Gram matrix that is block diagonal up to a permutation (switches of different hidden units): the solver told
    the blocks skips the zero blocks and must return exactly what the full elimination returns, ties and dropped
    (dependent) directions included."""
    rng = np.random.default_rng(seed)
    k, units = 30, 5
    labels = rng.integers(0, units, k)
    rows = np.zeros((k, units * 4))
    for a, u in enumerate(labels):
        rows[a, 4 * u:4 * u + 4] = rng.normal(size=4)
    rows[1] = rows[0] * 2.0 if labels[1] == labels[0] else rows[1]  # a dependent pair when they share a unit
    Q = rows @ rows.T
    Q[labels[:, None] != labels[None, :]] = 0.0  # exact zeros between units, as the kernel builds them
    b = rng.normal(size=k)
    x_full, rank_full = _core.solve_psd(Q, b)
    x_blocks, rank_blocks = _core.solve_psd(Q, b, group=labels.tolist())
    assert rank_blocks == rank_full
    assert np.array_equal(x_blocks, x_full)


@pytest.mark.parametrize("seed", range(20))
def test_lu_solve_matches_numpy_when_rows_are_pivoted(seed):
    """The implicit steps' solves: general matrices whose partial pivoting swaps rows at every column."""
    rng = np.random.default_rng(seed)
    n = 3 + seed % 10
    A = rng.normal(size=(n, n)) + np.diag(np.linspace(-3.0, 3.0, n))
    b = rng.normal(size=n)
    np.testing.assert_allclose(_core.lu_solve(A, b), np.linalg.solve(A, b), rtol=1e-9, atol=1e-12)
