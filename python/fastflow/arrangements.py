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
2. Cells ("topes") of a central arrangement in R^m by deletion-restriction. Insert the hyperplanes one at a time.
   The cells of A_{k-1} that H_k cuts are exactly those that contain a cell of the restriction A_{k-1}^{H_k} (a
   central arrangement of at most k-1 hyperplanes in R^{m-1}, enumerated recursively, after merging the
   restricted normals that became parallel); each of them splits in two, every other cell lies on one side of H_k,
   read off at a representative interior point. A cell is kept as a hash of its sign vector (a sum of fixed
   pseudo-random keys, one per hyperplane and sign, so extending it is one addition), a representative point and a
   parent pointer; the restriction's cells are looked up by hash and every match is confirmed at the cell's point,
   so a hash collision costs time, never correctness. Sign vectors are rebuilt from the parent pointers at the
   end. A step costs O(cells * m) plus the restriction. Base case m = 2: sort the 2N boundary angles (the 2N cells
   sit between consecutive boundary rays).
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
at the top level and in every restriction. The result is exact for data whose degeneracies hold up to rounding
and whose non-degeneracies are well above `_TOL` (relative angles); data within ~1e-8 of a degenerate
configuration are rounded to it. Representative points sit half-way between a hyperplane and the next one along a
line, so their signs are far from rounding; an exactly-zero sign or an inconsistent restriction raises
RuntimeError instead of returning a wrong list.
"""
from __future__ import annotations

from math import comb
from typing import NamedTuple

import numba
import numpy as np

from ._validate import check_memory, real_array

__all__ = ["arrangements", "sign_patterns"]

_TOL = 1e-9
# hashing of sign vectors (uint64 throughout: numba turns uint64-int64 mixtures into floats)
_SEED = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S27, _S30, _S31 = np.uint64(27), np.uint64(30), np.uint64(31)
_ONE = np.uint64(1)


# --- small linear algebra --------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _dot(a, b):
    """a . b by a plain loop (np.dot on short vectors goes through BLAS, far slower here)."""
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@numba.njit(cache=True)
def _householder(y):
    """Householder vector of a unit y: Q = I - beta v v^T is orthogonal, Q y = -+e1, Q e2..Q em span y^perp.

    Parameters
    ----------
    y : (m,) float64, unit norm.

    Returns
    -------
    v : (m,) float64
    beta : float
    """
    v = y.copy()
    v[0] += 1.0 if y[0] >= 0 else -1.0
    return v, 2.0 / _dot(v, v)


@numba.njit(cache=True)
def _restricted_coords(Y, skip, v, beta):
    """Coordinates in y^perp (basis Q e2..Q em) of the rows of Y other than row `skip` (the row of y itself)."""
    G, m = Y.shape
    Z = np.empty((G - 1, m - 1))
    t = 0
    for h in range(G):
        if h == skip:
            continue
        c = beta * _dot(v, Y[h])
        for a in range(1, m):
            Z[t, a - 1] = Y[h, a] - c * v[a]
        t += 1
    return Z


@numba.njit(cache=True)
def _embed(q, v, beta):
    """The point of R^m with coordinates q in y^perp, scaled to unit length."""
    m = v.shape[0]
    x = np.zeros(m)
    x[1:] = q
    c = beta * _dot(v, x)
    for a in range(m):
        x[a] -= c * v[a]
    nrm = np.sqrt(_dot(x, x))
    if nrm > 0:
        x /= nrm
    return x


@numba.njit(cache=True)
def _argsort(a):
    """Indices sorting a (heapsort: deterministic, and far quicker to compile than numba's np.argsort/np.sort)."""
    n = a.shape[0]
    idx = np.arange(n)
    for phase in range(2):
        start = n // 2 - 1 if phase == 0 else n - 1
        stop = -1 if phase == 0 else 0
        for i in range(start, stop, -1):
            if phase == 0:  # heapify: sift down node i in the heap [0, n)
                root, size = i, n
            else:  # move the maximum behind the heap [0, i), then restore it
                idx[0], idx[i] = idx[i], idx[0]
                root, size = 0, i
            while True:
                child = 2 * root + 1
                if child >= size:
                    break
                if child + 1 < size and a[idx[child]] < a[idx[child + 1]]:
                    child += 1
                if a[idx[root]] < a[idx[child]]:
                    idx[root], idx[child] = idx[child], idx[root]
                    root = child
                else:
                    break
    return idx


@numba.njit(cache=True)
def _cluster(Z, tol):
    """Group the non-zero rows of Z by the line through the origin they span.

    Rows are normalised; rows i, j are one line when min(||u_i - u_j||, ||u_i + u_j||) <= tol. Candidates are
    found by sorting |u . c| for a fixed generic unit c (equal up to tol on a line), so the cost is
    O(n log n) plus the rows with nearby keys.

    Parameters
    ----------
    Z : (n, m) float64 with non-zero rows.
    tol : float

    Returns
    -------
    cid : (n,) int64, the line of each row; lines numbered by their smallest row index.
    ori : (n,) int8, +1 if the row points like the line's representative, else -1.
    reps : (C, m) float64, unit representative of each line (its first row).
    """
    n, m = Z.shape
    cid = np.full(n, -1, np.int64)
    ori = np.ones(n, np.int8)
    if n == 0:
        return cid, ori, np.empty((0, m))
    U = np.empty((n, m))
    for i in range(n):
        nrm = np.sqrt(_dot(Z[i], Z[i]))
        for a in range(m):
            U[i, a] = Z[i, a] / nrm
    root = np.empty(n, np.int64)
    if m == 1:
        root[:] = 0
    else:
        c = np.empty(m)
        for a in range(m):
            c[a] = np.sin(1.0 + 2.718281828459045 * (a + 1))  # fixed and generic
        c /= np.sqrt(_dot(c, c))
        key = np.empty(n)
        for i in range(n):
            key[i] = abs(_dot(U[i], c))
        order = _argsort(key)
        tol2 = tol * tol
        for p in range(n):
            i = order[p]
            root[i] = i
            q = p - 1
            while q >= 0 and key[i] - key[order[q]] <= 2.0 * tol:
                j = order[q]
                dm = 0.0
                dp = 0.0
                for a in range(m):
                    dm += (U[i, a] - U[j, a]) ** 2
                    dp += (U[i, a] + U[j, a]) ** 2
                if dm <= tol2 or dp <= tol2:
                    root[i] = root[j]
                    break
                q -= 1
    label = np.full(n, -1, np.int64)
    first = np.empty(n, np.int64)
    C = 0
    for i in range(n):  # index order: a line's first row is its smallest
        r = root[i]
        if label[r] < 0:
            label[r] = C
            first[C] = i
            C += 1
        cid[i] = label[r]
    reps = np.empty((C, m))
    for g in range(C):
        reps[g] = U[first[g]]
    for i in range(n):
        ori[i] = 1 if _dot(U[i], reps[cid[i]]) >= 0 else -1
    return cid, ori, reps


# --- cells (topes) ---------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _topes_2d(Y):
    """Cells of G >= 1 distinct lines through the origin of R^2 (unit normals Y), by sorting boundary angles."""
    G = Y.shape[0]
    ang = np.empty(2 * G)
    for j in range(G):
        phi = np.arctan2(Y[j, 1], Y[j, 0])
        a = phi + 0.5 * np.pi
        b = phi - 0.5 * np.pi
        ang[2 * j] = a - 2.0 * np.pi if a >= np.pi else a
        ang[2 * j + 1] = b + 2.0 * np.pi if b < -np.pi else b
    ang = ang[_argsort(ang)]
    T = 2 * G
    S = np.empty((T, G), np.int8)
    P = np.empty((T, 2))
    ok = True
    for i in range(T):
        lo = ang[i]
        hi = ang[i + 1] if i + 1 < T else ang[0] + 2.0 * np.pi
        if not hi > lo:
            ok = False
        mid = 0.5 * (lo + hi)
        P[i, 0] = np.cos(mid)
        P[i, 1] = np.sin(mid)
        for j in range(G):
            val = Y[j, 0] * P[i, 0] + Y[j, 1] * P[i, 1]
            S[i, j] = 1 if val > 0 else -1
            if val == 0:
                ok = False
    return S, P, ok


@numba.njit(cache=True)
def _grow(a, need):
    """`a` with room for `need` leading entries (Numba compiles one version per dtype)."""
    if need <= a.shape[0]:
        return a
    b = np.empty(max(need, 2 * a.shape[0]), a.dtype)
    b[:a.shape[0]] = a
    return b


@numba.njit(cache=True)
def _mix(x):
    """splitmix64's finaliser: a bijective scramble of a uint64."""
    x = (x ^ (x >> _S30)) * _MIX1
    x = (x ^ (x >> _S27)) * _MIX2
    return x ^ (x >> _S31)


@numba.njit(cache=True)
def _zobrist_keys(G):
    """keys[j, 0] / keys[j, 1]: pseudo-random uint64 of sign -1 / +1 of hyperplane j (fixed, deterministic).

    A sign vector hashes to the wrapping sum of its keys, so extending it by one sign or re-expressing a
    restriction's cells over the parent's hyperplanes is a few additions. Hash matches are always confirmed at a
    point (`_inside`), so a collision costs time, never correctness.
    """
    keys = np.empty((G, 2), np.uint64)
    for j in range(G):
        keys[j, 0] = _mix(_SEED + np.uint64(2 * j))
        keys[j, 1] = _mix(_SEED + np.uint64(2 * j + 1))
    return keys


@numba.njit(cache=True)
def _inside(Y, k, p, rs_row, cid, ori):
    """Whether sign(Y[j] . p) == ori[j] * rs_row[cid[j]] for all j < k (p represents that cell of A_k)."""
    m = Y.shape[1]
    for j in range(k):
        val = 0.0
        for a in range(m):
            val += Y[j, a] * p[a]
        if val * (ori[j] * rs_row[cid[j]]) <= 0:
            return False
    return True


@numba.njit(cache=True)
def _topes(Y):
    """Cells of the central arrangement with unit normals Y (distinct lines through the origin).

    Deletion-restriction (module docstring, step 2). Cells of the current step are kept as (hash of the sign
    vector, representative unit point); a cut is found by looking the restriction's cells up in a hash table and
    confirmed at the cell's point; sign vectors are rebuilt at the end from per-step parent pointers.

    Parameters
    ----------
    Y : (G, m) float64, unit rows, no two on one line.

    Returns
    -------
    signs : (T, G) int8 in {-1, 1}, one row per cell.
    points : (T, m) float64, a unit point inside each cell (any point when G = 0).
    ok : bool, every numerical decision was consistent.
    """
    G, m = Y.shape
    if G == 0:
        return np.zeros((1, 0), np.int8), np.zeros((1, m)), True
    if m == 1:
        S = np.empty((2, G), np.int8)
        P = np.empty((2, 1))
        P[0, 0] = 1.0
        P[1, 0] = -1.0
        for t in range(2):
            for j in range(G):
                S[t, j] = 1 if Y[j, 0] * P[t, 0] > 0 else -1
        return S, P, G == 1
    if m == 2:
        return _topes_2d(Y)

    ok = True
    # all steps' cells in one pool: parent (index in the previous step) and the side of the new hyperplane
    par = np.empty(1024, np.int32)
    sg = np.empty(1024, np.int8)
    off = np.zeros(G + 1, np.int64)
    par[0] = 0
    par[1] = 0
    sg[0] = 1
    sg[1] = -1
    off[1] = 2
    ncur = 2
    keys = _zobrist_keys(G)
    cur_h = np.empty(2, np.uint64)
    cur_h[0] = keys[0, 1]
    cur_h[1] = keys[0, 0]
    cur_pt = np.empty((2, m))
    cur_pt[0] = Y[0]
    cur_pt[1] = -Y[0]

    for k in range(1, G):
        y = Y[k]
        v, beta = _householder(y)
        cid, ori, R = _cluster(_restricted_coords(Y[:k + 1], k, v, beta), _TOL)
        rs, rp, rok = _topes(R)
        ok = ok and rok
        T = rs.shape[0]
        yy = np.empty(k)
        for j in range(k):
            yy[j] = _dot(Y[j], y)
        # the restriction's cells hashed as sign vectors over hyperplanes 0..k-1, in an open-addressing table
        C = R.shape[0]
        gk = np.zeros((C, 2), np.uint64)  # key sums of restricted hyperplane g's members at its sign -1 / +1
        for j in range(k):
            g = cid[j]
            if ori[j] > 0:
                gk[g, 0] += keys[j, 0]
                gk[g, 1] += keys[j, 1]
            else:
                gk[g, 0] += keys[j, 1]
                gk[g, 1] += keys[j, 0]
        rh = np.zeros(T, np.uint64)
        for i in range(T):
            h = np.uint64(0)
            for g in range(C):
                h += gk[g, 1] if rs[i, g] > 0 else gk[g, 0]
            rh[i] = h
        M = 4
        while M < 2 * T:
            M *= 2
        mask = np.uint64(M - 1)
        table = np.full(M, -1, np.int64)
        table_h = np.empty(M, np.uint64)  # the hash next to its entry: one cache line per probe
        for i in range(T):
            pos = _mix(rh[i]) & mask
            while table[pos] >= 0:
                pos = (pos + _ONE) & mask
            table[pos] = i
            table_h[pos] = rh[i]

        nmax = ncur + T
        par = _grow(par, off[k] + nmax)
        sg = _grow(sg, off[k] + nmax)
        new_h = np.empty(nmax, np.uint64)
        new_pt = np.empty((nmax, m))
        found = np.zeros(T, np.bool_)
        base = off[k]
        t = 0
        for c in range(ncur):
            h = cur_h[c]
            hit = -1
            pos = _mix(h) & mask
            while table[pos] >= 0:
                i = table[pos]
                if table_h[pos] == h and _inside(Y, k, cur_pt[c], rs[i], cid, ori):
                    hit = i
                    break
                pos = (pos + _ONE) & mask
            if hit >= 0 and not found[hit]:
                # H_k cuts cell c: two pieces, points half-way from H_k to the next hyperplane along +-y
                found[hit] = True
                q = _embed(rp[hit], v, beta)
                tp = np.inf
                tm = np.inf
                for j in range(k):
                    if yy[j] != 0.0:
                        tt = abs(_dot(Y[j], q)) / abs(yy[j])
                        if ori[j] * rs[hit, cid[j]] * yy[j] < 0:
                            tp = min(tp, tt)
                        else:
                            tm = min(tm, tt)
                for side in (1, -1):
                    step = tp if side == 1 else tm
                    # half-way to the next hyperplane, at most |y| = |q| = 1 so q is not swamped when y is
                    # (nearly) parallel to the hyperplanes it meets (then the crossing is far or at infinity)
                    step = side * min(0.5 * step, 1.0)
                    nrm = 0.0
                    for a in range(m):
                        new_pt[t, a] = q[a] + step * y[a]
                        nrm += new_pt[t, a] * new_pt[t, a]
                    nrm = np.sqrt(nrm)
                    for a in range(m):
                        new_pt[t, a] /= nrm
                    par[base + t] = c
                    sg[base + t] = side
                    new_h[t] = h + keys[k, 1 if side > 0 else 0]
                    t += 1
            else:
                val = 0.0
                for a in range(m):
                    val += y[a] * cur_pt[c, a]
                    new_pt[t, a] = cur_pt[c, a]
                if val == 0.0:
                    ok = False
                side = 1 if val > 0 else -1
                par[base + t] = c
                sg[base + t] = side
                new_h[t] = h + keys[k, 1 if side > 0 else 0]
                t += 1
        for i in range(T):
            if not found[i]:
                ok = False
        off[k + 1] = base + t
        ncur = t
        cur_h = new_h
        cur_pt = new_pt

    # sign vectors, one hyperplane (step) at a time from the last: idx[c] = ancestor of cell c at step j
    S = np.empty((ncur, G), np.int8)
    idx = np.arange(ncur)
    for j in range(G - 1, -1, -1):
        o = off[j]
        for c in range(ncur):
            p = o + idx[c]
            S[c, j] = sg[p]
            idx[c] = par[p]
    return S, cur_pt[:ncur].copy(), ok


# --- faces -----------------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _faces(Y, amap, aori, forbidden, buf, count):
    """Faces of the arrangement restricted to a flat, as sign vectors over the top-level hyperplanes.

    Parameters
    ----------
    Y : (G, m) float64, unit normals of the node's hyperplanes (distinct lines) in coordinates of the flat.
    amap : (N,) int64, the node hyperplane of each top-level hyperplane, -1 if it vanishes on the flat.
    aori : (N,) int8, orientation of each top-level hyperplane relative to its node hyperplane.
    forbidden : (G,) bool, node hyperplanes that must not vanish (those faces come from another branch).
    buf, count : (cap, N) int8 output buffer and the number of rows filled.

    Returns
    -------
    buf : the buffer (a larger copy when it had to grow), rows [0, count) filled, each face once.
    count : int
    ok : bool
    """
    G = Y.shape[0]
    N = amap.shape[0]
    ts, _, ok = _topes(Y)
    T = ts.shape[0]
    if count + T > buf.shape[0]:
        grown = np.empty((max(count + T, 2 * buf.shape[0]), N), np.int8)
        grown[:count] = buf[:count]
        buf = grown
    for t in range(T):
        for a in range(N):
            g = amap[a]
            buf[count + t, a] = 0 if g < 0 else aori[a] * ts[t, g]
    count += T
    idx_other = np.empty(G, np.int64)
    camap = np.empty(N, np.int64)
    caori = np.empty(N, np.int8)
    for g in range(G):
        if forbidden[g]:
            continue
        v, beta = _householder(Y[g])
        cid, ori, R = _cluster(_restricted_coords(Y, g, v, beta), _TOL)
        cforb = np.zeros(R.shape[0], np.bool_)
        for h in range(G):
            if h != g:
                idx_other[h] = h if h < g else h - 1
                if forbidden[h] or h < g:
                    cforb[cid[idx_other[h]]] = True
        for a in range(N):
            h = amap[a]
            if h < 0 or h == g:
                camap[a] = -1
                caori[a] = aori[a]
            else:
                camap[a] = cid[idx_other[h]]
                caori[a] = aori[a] * ori[idx_other[h]]
        buf, count, okc = _faces(R, camap.copy(), caori.copy(), cforb, buf, count)
        ok = ok and okc
    return buf, count, ok


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


@numba.njit(cache=True)
def _encode(signs, group, orientation, bits):
    """Sign vectors over the reduced hyperplanes -> rows of X, packed big-endian into uint64 words.

    bits = 2: the code of row i is sign + 1 (sign vectors); bits = 1: 1[sign >= 0] (activation patterns). Codes
    are packed most significant first, so the rows of words compare (np.lexsort) like the tuples of codes.
    """
    F = signs.shape[0]
    n = group.shape[0]
    per = 64 // bits
    W = max(1, (n + per - 1) // per)
    out = np.zeros((F, W), np.uint64)
    for f in range(F):
        for i in range(n):
            g = group[i]
            s = 0 if g < 0 else orientation[i] * signs[f, g]
            code = s + 1 if bits == 2 else (1 if s >= 0 else 0)
            out[f, i // per] |= np.uint64(code) << np.uint64(64 - bits * (i % per + 1))
    return out


@numba.njit(cache=True)
def _decode(words, n, bits):
    """The codes (F, n) int8 of `_encode`'s words."""
    F = words.shape[0]
    per = 64 // bits
    mask = np.uint64((1 << bits) - 1)
    out = np.empty((F, n), np.int8)
    for f in range(F):
        for i in range(n):
            out[f, i] = (words[f, i // per] >> np.uint64(64 - bits * (i % per + 1))) & mask
    return out


def _sorted_unique(signs, red, bits):
    """The distinct expanded rows of `signs` (over X's rows), sorted lexicographically, as codes."""
    n = red.group.shape[0]
    words = _encode(signs, red.group, red.orientation, bits)
    order = np.lexsort(words.T[::-1])
    words = words[order]
    keep = np.ones(words.shape[0], bool)
    keep[1:] = np.any(words[1:] != words[:-1], axis=1)
    return _decode(np.ascontiguousarray(words[keep]), n, bits)


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
    per_row = 2 * m + n + 24 * -(-n * (2 if faces else 1) // 64)  # search buffer, result, packed sort keys
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
    signs, _, ok = _topes(red.normals)
    _check(ok)
    return _sorted_unique(signs, red, 1).view(bool)
