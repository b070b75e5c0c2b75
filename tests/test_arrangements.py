"""Exact enumeration of activation patterns (the cells) and sign vectors (all faces), docs/mathematics.md §7.

General position: Cover's count of cells for the patterns, and the matching count of all faces. Degenerate data
(repeated, zero, coplanar, antiparallel, rank-deficient, concurrent rows): equality with a brute-force reference that
lives only here, a depth-first search over sign choices with an exact LP feasibility test per prefix (scipy
linprog), and every densely sampled pattern found; larger degenerate data: sampled sign vectors and patterns are all
found, every returned one is LP-feasible, and the faces have the Euler characteristic of a sphere.
"""
from math import comb

import numpy as np
import pytest
from scipy.optimize import linprog

from fastflow.arrangements import arrangements, sign_patterns


# --- references (test only) ------------------------------------------------------------------------------------

def cover(n, r):
    """Cells of n hyperplanes through the origin of R^r in general position (Cover 1965)."""
    if n == 0 or r == 0:
        return 1
    return 2 * sum(comb(n - 1, k) for k in range(r))


def faces_general_position(n, r):
    """All faces: the cells of the restriction to each flat; a codim-k flat (k < r) lies on k hyperplanes."""
    return sum(comb(n, k) * cover(n - k, r - k) for k in range(min(r, n))) + 1


def lp_witness(X, choice):
    """A w with x_i.w = 0 (choice 0), >= 1 (1), <= -1 (-1), >= 0 (2) for the first len(choice) rows, or None.

    Strict signs are scale-free for a cone, so margin 1 is exact, not a tolerance.
    """
    d = X.shape[1]
    A_ub, b_ub, A_eq = [], [], []
    for x, c in zip(X, choice):
        if c == 0:
            A_eq.append(x)
        elif c == 2:
            A_ub.append(-x)
            b_ub.append(0.0)
        else:
            A_ub.append(-c * x)
            b_ub.append(-1.0)
    kw = dict(bounds=[(None, None)] * d, method="highs")
    if A_ub:
        kw.update(A_ub=np.array(A_ub), b_ub=np.array(b_ub))
    if A_eq:
        kw.update(A_eq=np.array(A_eq), b_eq=np.zeros(len(A_eq)))
    res = linprog(np.zeros(d), **kw)
    return res.x if res.status == 0 else None


def brute_force(X, choices):
    """Every feasible choice vector, by depth-first search; a prefix's witness w is reused when it clearly fits."""
    n, d = X.shape
    out = []

    def rec(prefix, w):
        if len(prefix) == n:
            out.append(tuple(prefix))
            return
        v = X[len(prefix)] @ w
        for c in choices:
            # reuse only clear signs: w solves equality constraints up to rounding, so a tiny v proves nothing
            fits = (c == 1 and v > 1e-6) or (c == -1 and v < -1e-6) or (c == 2 and v > 1e-6) or (c == 0 and v == 0)
            w2 = w * max(1.0, 1.0 / abs(v)) if fits and c in (1, -1) else (w if fits else None)
            if w2 is None:
                w2 = lp_witness(X, prefix + [c])
            if w2 is not None:
                rec(prefix + [c], w2)

    rec([], np.zeros(d))
    return out


def reference_signs(X):
    return sorted(brute_force(X, (-1, 0, 1)))


def cell_choice(X, pattern):
    """lp_witness choices of a cell with this activation pattern: strict signs, zero rows (always 0) left free."""
    return [2 if not x.any() else (1 if b else -1) for x, b in zip(X, pattern)]


def reference_cells(X):
    """The patterns of the cells: strict signs on the non-zero rows, 1 on zero rows (1[0 >= 0])."""
    nonzero = np.any(X != 0, axis=1)
    out = np.ones((0, len(X)), int)
    for t in brute_force(X[nonzero], (-1, 1)):
        row = np.ones(len(X), int)
        row[nonzero] = np.array(t) > 0
        out = np.vstack([out, row])
    return sorted(rows(out))


def sampled_patterns(X, rng, count=20000):
    """Patterns of random w: cells with probability one."""
    return set(rows((X @ rng.standard_normal((X.shape[1], count)) >= 0).T))


def cells_of(X, S):
    """The patterns of the sign vectors without a zero on a non-zero row of X."""
    nonzero = np.any(X != 0, axis=1)
    return np.unique(S[np.all(S[:, nonzero] != 0, axis=1)] >= 0, axis=0)


def rows(A):
    return [tuple(r) for r in np.asarray(A, dtype=int).tolist()]


def euler_ok(X, S):
    """Faces other than the origin tile the unit sphere of the row space: sum (-1)^(dim - 1) = 1 + (-1)^(r - 1)."""
    r = np.linalg.matrix_rank(X)
    dims = {}  # faces of one flat share their zero set
    chi = 0
    for s in S:
        key = (s == 0).tobytes()
        if key not in dims:
            Z = X[s == 0]
            dims[key] = r - (np.linalg.matrix_rank(Z) if len(Z) else 0)
        if dims[key] > 0:
            chi += (-1) ** (dims[key] - 1)
    return chi == (1 + (-1) ** (r - 1) if r > 0 else 0)


# --- general position ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, d", [(6, 1), (10, 1), (8, 2), (30, 2), (10, 3), (30, 3), (12, 4), (20, 4), (10, 5),
                                  (14, 5), (3, 5), (12, 8)])
def test_cover_counts(n, d):
    X = np.random.default_rng(100 * n + d).standard_normal((n, d))
    S = sign_patterns(X)
    P = arrangements(X)
    r = min(n, d)
    assert np.sum(np.all(S != 0, axis=1)) == cover(n, r)
    assert len(S) == faces_general_position(n, r)
    assert len(P) == cover(n, r)
    assert np.array_equal(P, cells_of(X, S))
    assert sampled_patterns(X, np.random.default_rng(n + d), 2000) <= set(rows(P))


@pytest.mark.parametrize("n, r, d", [(10, 1, 3), (12, 2, 4), (15, 3, 6), (9, 4, 7)])
def test_cover_counts_rank_deficient(n, r, d):
    """General position inside an r-dimensional row space of R^d: the count is Cover's with r = rank X."""
    rng = np.random.default_rng(10 * n + r)
    X = rng.standard_normal((n, r)) @ rng.standard_normal((r, d))
    assert len(arrangements(X)) == cover(n, r)
    assert np.sum(np.all(sign_patterns(X) != 0, axis=1)) == cover(n, r)


def test_count_after_a_small_perturbation_of_degenerate_data():
    """1e-4 away from degenerate is general position: the tolerance (1e-9) must not merge anything."""
    base = np.array([[1.0, 0, 0], [2, 0, 0], [-1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 1, 1]])
    X = base + 1e-4 * np.random.default_rng(3).standard_normal(base.shape)
    S = sign_patterns(X)
    assert np.sum(np.all(S != 0, axis=1)) == cover(7, 3)
    assert len(S) == faces_general_position(7, 3)


# --- degenerate data against the LP reference ------------------------------------------------------------------

DEGENERATE = {
    "repeated and scaled rows": [[1, 2, 0], [1, 2, 0], [2, 4, 0], [0, 1, 1], [1, -1, 2], [-0.5, 1, 3]],
    "zero rows": [[0, 0], [1, 2], [0, 0], [-1, 1], [3, 1]],
    "coplanar through the origin": [[1, 0, 0], [0, 1, 0], [-1, -1, 0], [1, 1, 1], [0.3, -2, 1], [2, 1, 0]],
    "antiparallel pairs": [[1, 1, 0], [-1, -1, 0], [-3, -3, 0], [0, 1, 2], [1, 0, -1], [0, -1, -2]],
    "rank-deficient": [[1, 2, 3, 4], [0, 1, 0, 1], [1, 3, 3, 5], [2, 1, 6, 3], [-1, 0, -3, -2], [0, 0, 0, 0]],
    "+-e1, +-e2": [[1, 0], [-1, 0], [0, 1], [0, -1]],
    "concurrent planes": [[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1], [1, 1, 1]],
    "d = 1": [[1], [-2], [0], [3]],
    "d = 4, two coplanar triples": [[1, 0, 0, 0], [0, 1, 0, 0], [-1, -1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1],
                                    [0, 0, -1, -1], [1, 1, 1, 1]],
    # rows 0-2 vanish together only on L = span(e3, e4), and then row 3 = -row 4 forces w = (0, 0, 0, b): the
    # patterns of that line come neither from a cell nor from L's own cells
    "d = 4, antiparallel pair inside a degenerate flat": [[1, 0, 0, 0], [0, 1, 0, 0], [-1, -1, 0, 0], [0, 0, 1, 0],
                                                          [0, 0, -1, 0], [0, 0, 1, 1], [0, 0, 0, -1]],
}


@pytest.mark.parametrize("name", list(DEGENERATE))
def test_degenerate_equals_lp_reference(name):
    X = np.array(DEGENERATE[name], dtype=float)
    S, P = sign_patterns(X), arrangements(X)
    assert rows(S) == reference_signs(X)  # every sign vector exactly once, sorted
    assert rows(P) == reference_cells(X)
    assert sampled_patterns(X, np.random.default_rng(1)) <= set(rows(P))
    assert S.dtype == np.int8 and P.dtype == bool


def test_random_degenerate_integer_data_equals_lp_reference():
    """Small integer entries: repeated, antiparallel, coplanar and concurrent rows galore."""
    rng = np.random.default_rng(11)
    for _ in range(12):
        n, d = int(rng.integers(2, 7)), int(rng.integers(2, 5))
        X = rng.integers(-1, 2, size=(n, d)).astype(float)
        assert rows(sign_patterns(X)) == reference_signs(X)
        assert rows(arrangements(X)) == reference_cells(X)


def structured_degenerate(rng, d, n_max):
    """Rows built from positively spanning sets inside random subspaces, antiparallel and repeated rows."""
    out = []
    n = int(rng.integers(4, n_max))
    while len(out) < n:
        u = rng.random()
        if u < 0.3:
            k = int(rng.integers(1, 3))
            B = rng.integers(-1, 2, size=(k, d)).astype(float)
            C = rng.integers(-1, 2, size=(k + 1, k)).astype(float)
            C[-1] = -C[:-1].sum(axis=0)
            out += list(C @ B)
        elif u < 0.5 and out:
            out.append(-float(rng.integers(1, 3)) * out[rng.integers(len(out))])
        elif u < 0.6 and out:
            out.append(2.0 * out[rng.integers(len(out))])
        else:
            out.append(rng.integers(-2, 3, size=d).astype(float))
    return np.array(out)


def test_patterns_are_the_cells_sign_vectors_on_structured_degenerate_data():
    """Two routes: the cells alone (arrangements) and every face, restricted to the cells (sign_patterns)."""
    rng = np.random.default_rng(0)
    for _ in range(120):
        X = structured_degenerate(rng, int(rng.integers(3, 6)), 14)
        assert np.array_equal(arrangements(X), cells_of(X, sign_patterns(X)))


def test_cells_equal_lp_reference_on_random_and_degenerate_data():
    """The lowest-vertex enumeration against the LP depth-first search (an independent method) and dense sampling:
    Gaussian data, and data with many hyperplanes through one ray or 2-flat (vertices on more hyperplanes than
    their codimension, whose local arrangements are degenerate in turn), in d = 3..5."""
    rng = np.random.default_rng(24)
    cases = [rng.standard_normal((int(rng.integers(4, 9)), d)) for d in (3, 4, 5) for _ in range(2)]
    cases += [structured_degenerate(rng, d, 9) for d in (3, 4, 5) for _ in range(5)]
    line = rng.standard_normal((2, 5))  # seven hyperplanes through a 3-flat of R^5, then generic ones
    cases.append(np.vstack([rng.standard_normal((7, 2)) @ line, rng.standard_normal((2, 5))]))
    for X in cases:
        P = rows(arrangements(X))
        assert P == reference_cells(X)
        assert sampled_patterns(X, rng, 5000) <= set(P)


def test_larger_degenerate_data():
    """n = 30, d = 4 with duplicates, antiparallel rows, zero rows and rows in 2- and 3-dimensional subspaces."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((30, 4))
    X[1], X[2], X[3] = X[0], -2.5 * X[0], 0.0
    X[4:10] = rng.standard_normal((6, 2)) @ X[10:12]  # rank-2 block: coplanar through the origin
    X[12:16] = rng.standard_normal((4, 3)) @ X[16:19]  # more hyperplanes through lines than their codimension
    S, P = sign_patterns(X), arrangements(X)
    assert len(np.unique(S, axis=0)) == len(S) and len(np.unique(P, axis=0)) == len(P)
    assert np.array_equal(P, cells_of(X, S))
    W = rng.standard_normal((4000, 4))
    assert set(rows(np.sign(X @ W.T).T)) <= set(rows(S))
    assert set(rows((X @ W.T >= 0).T)) <= set(rows(P))
    for i in rng.choice(len(S), 25, replace=False):
        assert lp_witness(X, list(S[i])) is not None
    for i in rng.choice(len(P), 25, replace=False):
        assert lp_witness(X, cell_choice(X, P[i])) is not None
    assert euler_ok(X, S)


# --- small cases by hand ---------------------------------------------------------------------------------------

def test_two_lines_by_hand():
    """Two coordinate lines in R^2: 4 cells, 4 rays, the origin."""
    S = sign_patterns(np.eye(2))
    assert rows(S) == [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)]
    assert rows(arrangements(np.eye(2))) == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_one_dimension_by_hand():
    X = [[1.0], [-1.0]]
    assert rows(sign_patterns(X)) == [(-1, 1), (0, 0), (1, -1)]
    assert rows(arrangements(X)) == [(0, 1), (1, 0)]  # (1, 1) only at w = 0, not a cell


def test_zero_and_empty_data():
    assert rows(sign_patterns(np.zeros((3, 2)))) == [(0, 0, 0)]
    assert rows(arrangements(np.zeros((3, 2)))) == [(1, 1, 1)]
    assert sign_patterns(np.zeros((0, 3))).shape == (1, 0)
    assert arrangements(np.zeros((0, 3))).shape == (1, 0)
    assert rows(arrangements(np.zeros((2, 0)))) == [(1, 1)]


def test_three_coplanar_rows_lower_dimensional_patterns_are_not_cells():
    """x1, x2, x3 positively span the plane z = 0: on the axis w = (0, 0, +-1) all three are 0, so the patterns
    (1, 1, 1, sign) are realised, by a line only: no cell has x1, x2, x3 all >= 0, and arrangements lists cells."""
    X = np.array([[1.0, 0, 0], [-0.5, np.sqrt(3) / 2, 0], [-0.5, -np.sqrt(3) / 2, 0], [0.2, 0.1, 1.0]])
    faces = rows(np.unique(sign_patterns(X) >= 0, axis=0))
    assert (1, 1, 1, 1) in faces and (1, 1, 1, 0) in faces
    P = rows(arrangements(X))
    assert (1, 1, 1, 1) not in P and (1, 1, 1, 0) not in P
    assert len(P) == 12 and set(P) <= set(faces)


# --- invariances -----------------------------------------------------------------------------------------------

def test_invariances():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((9, 3))
    X[1] = -X[0]
    S = sign_patterns(X)
    # positive row scaling and an invertible change of variables w -> Q w change nothing
    Q = rng.standard_normal((3, 3))
    assert np.array_equal(sign_patterns(X * rng.uniform(0.1, 10, size=(9, 1))), S)
    assert np.array_equal(sign_patterns(X @ Q), S)
    # permuting rows permutes columns; negating a row negates its column
    perm = rng.permutation(9)
    assert set(rows(sign_patterns(X[perm]))) == set(rows(S[:, perm]))
    Xn = X.copy()
    Xn[4] *= -1
    Sn = S.copy()
    Sn[:, 4] *= -1
    assert set(rows(sign_patterns(Xn))) == set(rows(Sn))


def test_accepts_lists_ints_and_odd_layouts():
    X = np.array([[1, 2, 0], [0, 1, -1], [3, 0, 1], [1, 1, 1]])
    expected = arrangements(X.astype(float))
    assert np.array_equal(arrangements(X.tolist()), expected)
    assert np.array_equal(arrangements(np.asfortranarray(X.astype(np.float32))), expected)
    assert np.array_equal(arrangements(X.astype(float)[::-1][::-1]), expected)


# --- bad input -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("func", [arrangements, sign_patterns])
@pytest.mark.parametrize("X, error", [
    ([[1.0, np.nan], [0.0, 1.0]], ValueError),
    ([[1.0, np.inf], [0.0, 1.0]], ValueError),
    ([1.0, 2.0], ValueError),
    (np.ones((2, 2, 2)), ValueError),
    ([["a", "b"]], TypeError),
    (np.ones((2, 2), complex), TypeError),
])
def test_bad_input(func, X, error):
    with pytest.raises(error, match="X"):
        func(X)
