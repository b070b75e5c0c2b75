"""Exact enumeration of ReLU activation patterns: the cells and faces of a central hyperplane arrangement.

For data X (n, d) every w in R^d has the sign vector sign(Xw) in {-1, 0, 1}^n and the activation pattern
1[Xw >= 0] in {0, 1}^n. `sign_patterns` lists every sign vector (the faces of the central arrangement of the
hyperplanes x_i^T w = 0, including the origin w = 0), `arrangements` the activation pattern of every cell (the
full-dimensional regions, where no non-zero row has x_i^T w = 0: the diagonal matrices D_j of the convex program),
each exactly once and sorted lexicographically. No sampling and no LP: the method is combinatorial, with floating
point used only where documented (`_TOL`).

Algorithm (docs/mathematics.md §7)
----------------------------------
1. Reduction. Zero rows always have sign 0. The other rows are scaled to unit length (signs are invariant),
   projected onto their row space (rank r), and rows on the same line through the origin (parallel or
   antiparallel) are merged into one hyperplane ("group") with an orientation +-1 per row. What remains is a
   central arrangement of N distinct hyperplanes in R^r with unit normals.
2. Cells of a central arrangement of N hyperplanes in R^m by lowest vertices, in a fixed generic orthonormal
   frame (so coordinate axes and coordinate subspaces meet every flat transversally). Every cell lies in w_0 > 0,
   in w_0 < 0, or crosses w_0 = 0. In the chart w_0 = 1 a cell inside w_0 > 0 is a bounded polytope, so it has a
   unique lowest vertex in the direction w_1; a crossing cell has one exactly when its section by w_0 = 0 lies in
   w_1 > 0. So the cells with a lowest vertex and their opposites are all cells except those crossing both w_0 = 0
   and w_1 = 0, which are the cells of the restriction to coordinates 2.. (the same problem in R^(m-2); in R^1 the
   two half-lines). The vertices are rays, one per (m-1)-subset of independent normals in general position; at a
   ray the cell whose lowest vertex it is has the ray's signs off the subset and, on it, the one orthant of the
   m-1 hyperplanes (seen in w_0 = 0) that lies in w_1 > 0: the signs of mu in e_1 = sum_j mu_j y_j (one small
   solve). A ray on more hyperplanes than its codimension is taken once (from the greedy basis of its
   hyperplanes), and its cells are the local arrangement's cells inside w_1 > 0: its lowest-vertex cells in one
   dimension less, minus those crossing w_1 = 0 (recursively). Subsets sharing their first m-2 normals share the
   2-flat they span; there each sign is a 2x2 determinant of projections, so a vertex costs O(N) flops for N
   hyperplanes. Cells are kept as packed sign bits and sorted by radix and Shell sort of their packed patterns.
3. Faces. Every face is a cell of the restriction of the arrangement to its flat (the intersection of the
   hyperplanes vanishing on it). Flats are enumerated recursively, each exactly once: from a node, restrict to
   H_g only for groups g that are not "forbidden" and forbid in the child every group before g, so a face is
   reached only through the first hyperplane (in node order) that vanishes on it.
4. Activation patterns are the cells' patterns (`arrangements`). A lower-dimensional face (some x_i . w = 0 on a
   non-zero row) can have a pattern no cell has: w = 0 has all ones, a cell's pattern only if some w has Xw > 0,
   and degenerate data have more such faces. The convex program never needs them: every u lies in the closure of
   some cell, whose pattern D satisfies (2D - I) X u >= 0 and D X u = (Xu)_+, so the block of u can move to that
   cell's pattern at no cost. The patterns of every face, w = 0 included, are np.unique(sign_patterns(X) >= 0,
   axis=0).

Numerical decisions (`_TOL` = 1e-9): zero rows are exactly zero; singular values of the unit rows below
`_TOL` times the largest are dropped (rank); unit normals within `_TOL` (Euclidean, up to sign) are one hyperplane,
at the top level and in every restriction of the faces' recursion; a unit normal within `_TOL` of the span of
others is dependent on them, and a ray within `_TOL` (sine of the angle) of a hyperplane lies on it. The result is
exact for data whose degeneracies hold up to rounding and whose non-degeneracies are well above `_TOL` (relative
angles); data within ~1e-8 of a degenerate configuration are rounded to it. Every other sign is read off a value
at least `_TOL`, far above rounding. RuntimeError instead of a wrong list when a decision is inconsistent (a ray
found on fewer hyperplanes than its subset, a repeated pattern) or the frame is numerically not generic (a ray's
chart coordinate or an orthant's multiplier below 1e-12, relative: probability ~1e-12 per vertex).
"""
from __future__ import annotations

from math import comb
from typing import NamedTuple

import numpy as np

from ._arrangement_cells import _TOL, _cells
from ._arrangement_kernels import _cluster, _decode, _encode, _expand, _faces, _sorted_patterns
from ._validate import check_memory, real_array

__all__ = ["arrangements", "sign_patterns"]

# --- the public functions --------------------------------------------------------------------------------------

class _Reduced(NamedTuple):
    """X reduced to distinct hyperplanes: row i has sign orientation[i] * (normals[group[i]] . z) (0 if group -1)."""

    rank: int
    normals: np.ndarray  # (N, rank) unit rows, no two on one line
    group: np.ndarray  # (n,) int64, -1 for zero rows
    orientation: np.ndarray  # (n,) int8, 0 for zero rows


def _reduce(X):
    n = X.shape[0]
    group = np.full(n, -1, np.int64)
    orientation = np.zeros(n, np.int8)
    scale = np.max(np.abs(X), axis=1) if X.shape[1] else np.zeros(n)
    nonzero = np.flatnonzero(scale > 0)
    if nonzero.size == 0:
        return _Reduced(0, np.zeros((0, 0)), group, orientation)
    U = X[nonzero] / scale[nonzero, None]  # scaled first: no overflow in the norms
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    _, s, Vt = np.linalg.svd(U, full_matrices=False)
    r = int(np.count_nonzero(s > _TOL * s[0]))
    Y = U @ Vt[:r].T
    Y /= np.linalg.norm(Y, axis=1, keepdims=True)
    cid, ori, normals = _cluster(Y, _TOL)
    group[nonzero] = cid
    orientation[nonzero] = ori
    return _Reduced(r, normals, group, orientation)


def _sorted_unique(signs, red, bits):
    """The distinct expanded rows of `signs` (over X's rows), sorted lexicographically, as codes."""
    n = red.group.shape[0]
    words = _encode(signs, red.group, red.orientation, bits)
    order = np.lexsort(words.T[::-1])
    words = words[order]
    keep = np.ones(words.shape[0], bool)
    keep[1:] = np.any(words[1:] != words[:-1], axis=1)
    return _decode(np.ascontiguousarray(words[keep]), n, bits)


def _sorted_patterns_of(rows, n):
    """The (T, n) bool patterns of packed rows, sorted lexicographically (NumPy's sort of the first word's high bits
    with the row index in the low ones, then `_sorted_patterns`), and whether they are distinct."""
    T = rows.shape[0]
    low = max(1, (T - 1).bit_length())  # < 64: T rows fit in memory
    key = (rows[:, 0] >> np.uint64(low)) << np.uint64(low) | np.arange(T, dtype=np.uint64)
    key.sort()
    out, distinct = _sorted_patterns(rows, (key & np.uint64((1 << low) - 1)).astype(np.intp), 64 - low, n)
    return out.view(bool), distinct


def _faces_of(red):
    N = red.normals.shape[0]
    buf = np.empty((1024, N), np.int8)
    buf, count, ok = _faces(red.normals, np.arange(N, dtype=np.int64), np.ones(N, np.int8), np.zeros(N, bool),
                            buf, 0)
    return buf[:count], ok


def _capped_sum(terms, cap):
    """sum(terms), or the first partial sum past cap (the bounds below are astronomical long before rank n)."""
    total = 0
    for term in terms:
        total += term
        if total > cap:
            break
    return total


def _cells_bound(m, r, cap):
    """The most cells a central arrangement of m hyperplanes of rank r can have (general position: Cover)."""
    return _capped_sum((2 * comb(m - 1, k) for k in range(r)), cap)


# counts are summed exactly up to this (far beyond any memory); past it the message says "more than"
_COUNT_CAP = 2**80


def _check_size(red, n, faces):
    """MemoryError before enumerating more patterns than memory holds (their number grows like n^(rank - 1)).
    Faces: a flat of codimension j < rank (at most C(m, j) of them) carries at most as many faces as cells of m
    hyperplanes of rank - j, plus w = 0."""
    m, r = red.normals.shape[0], red.rank
    if faces:
        per_row = 2 * m + n + 24 * -(-2 * n // 64)  # search buffer, result, packed sort keys
    else:
        per_row = n + 16 + 8 * (-(-m // 64) - (-n // 64))  # result, sort key and order, packed cells and patterns
    if faces:
        count = 1 + _capped_sum((comb(m, j) * _cells_bound(m, r - j, _COUNT_CAP) for j in range(r)), _COUNT_CAP)
    else:
        count = _cells_bound(m, r, _COUNT_CAP)
    capped = count > _COUNT_CAP
    what = "sign patterns" if faces else "arrangement"
    check_memory(f"the {what} of {n} points in rank {r} ({'more than' if capped else 'up to'} "
                 f"{min(count, _COUNT_CAP):.3g} patterns)", min(count, _COUNT_CAP) * per_row,
                 "fewer points or a lower dimension", at_least=capped)


def _check(ok):
    if not ok:
        raise RuntimeError("arrangement enumeration hit an inconsistent numerical decision; the data are probably "
                           "within ~1e-8 of a degenerate configuration (nearly parallel rows or nearly concurrent "
                           "hyperplanes)")


def sign_patterns(X):
    """Every sign vector sign(Xw), w in R^d, each once: the faces of the central arrangement of X's rows.

    Parameters
    ----------
    X : (n, d) array_like of finite reals.

    Returns
    -------
    (q, n) int8 array in {-1, 0, 1}, rows sorted lexicographically. Includes w = 0 (the all-zeros row); zero rows of
    X are always 0. Exact also on degenerate data (repeated, parallel, antiparallel or zero rows, rank-deficient X,
    more hyperplanes through a subspace than its codimension), up to the tolerance described in the module docstring.
    """
    X = real_array("X", X, ndim=2)
    red = _reduce(X)
    if red.normals.shape[0] == 0:
        return np.zeros((1, X.shape[0]), np.int8)
    _check_size(red, X.shape[0], faces=True)
    signs, ok = _faces_of(red)
    _check(ok)
    return _sorted_unique(signs, red, 2) - np.int8(1)


def arrangements(X):
    """The activation pattern 1[Xw >= 0] of every cell of X's arrangement, each once: the D_j of the convex program.

    A cell is a connected region of the w with x_i^T w != 0 on every non-zero row x_i (zero rows get 1). The convex
    program (14) needs no other pattern: lower-dimensional faces, w = 0 among them, add patterns only of neurons
    that a cell's pattern also represents (module docstring, step 4). The patterns of every w, those faces
    included, are np.unique(sign_patterns(X) >= 0, axis=0).

    Parameters
    ----------
    X : (n, d) array_like of finite reals.

    Returns
    -------
    (p, n) bool array, rows sorted lexicographically (False < True). For data in general position p is Cover's
    count 2 sum_{k<r} C(n-1, k), r = rank X. Exact also on degenerate data (see `sign_patterns`).
    """
    X = real_array("X", X, ndim=2)
    red = _reduce(X)
    if red.normals.shape[0] == 0:
        return np.ones((1, X.shape[0]), bool)
    _check_size(red, X.shape[0], faces=False)
    cells, ok = _cells(red.normals)
    _check(ok)
    n = X.shape[0]
    if not (red.normals.shape[0] == n and np.all(red.group == np.arange(n)) and np.all(red.orientation == 1)):
        cells = _expand(cells, red.group, red.orientation)
    patterns, distinct = _sorted_patterns_of(cells, n)
    _check(distinct)  # a repeated pattern would mean inconsistent decisions at nearly concurrent hyperplanes
    return patterns
