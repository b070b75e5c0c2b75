"""Numba kernels of `fastflow.arrangements` besides the cells (`_arrangement_cells`): the reduction's clustering, the
faces, and the packing and sorting of patterns. The method and the numerical decisions are described in
arrangements.py."""
import numba
import numpy as np

from ._arrangement_cells import _ONE, _TOL, _bit, _cells, _dot, _set_bit

_BITS = np.array([[(v >> (7 - k)) & 1 for k in range(8)] for v in range(256)], np.uint8)  # a byte's bits
_GAPS = np.array([1750, 701, 301, 132, 57, 23, 10, 4, 1])  # Shell sort's (Ciura's, extended)


# --- small linear algebra --------------------------------------------------------------------------------------

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
    cells, ok = _cells(Y)
    T = cells.shape[0]
    if count + T > buf.shape[0]:
        grown = np.empty((max(count + T, 2 * buf.shape[0]), N), np.int8)
        grown[:count] = buf[:count]
        buf = grown
    for t in range(T):
        for a in range(N):
            g = amap[a]
            buf[count + t, a] = 0 if g < 0 else aori[a] * (2 * np.int8(_bit(cells[t], g)) - 1)
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


# --- packing ---------------------------------------------------------------------------------------------------

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


@numba.njit(cache=True)
def _expand(cells, group, orientation):
    """Packed cell sign vectors over the reduced hyperplanes -> packed activation patterns 1[x_i . w >= 0] over
    X's rows (zero rows: 1), in the same bit order."""
    T = cells.shape[0]
    n = group.shape[0]
    out = np.zeros((T, max(1, (n + 63) >> 6)), np.uint64)
    for t in range(T):
        for i in range(n):
            g = group[i]
            if g < 0 or (_bit(cells[t], g) == _ONE) == (orientation[i] > 0):
                _set_bit(out[t], i)
    return out


@numba.njit(cache=True)
def _row_less(rows, i, j, w):
    """Whether rows[i] < rows[j], comparing words w.. (rows[:, :w] are equal)."""
    for v in range(w, rows.shape[1]):
        if rows[i, v] != rows[j, v]:
            return rows[i, v] < rows[j, v]
    return False


@numba.njit(cache=True)
def _digit(row, b):
    """The 11 bits of a packed row from bit b (most significant first), zero past its end."""
    w = b >> 6
    off = np.uint64(b & 63)
    d = (row[w] << off) >> np.uint64(53)
    if off > 53 and w + 1 < row.shape[0]:
        d |= row[w + 1] >> (np.uint64(117) - off)
    return d


@numba.njit(cache=True)
def _high(row, b):
    """The first b (1..63) bits of a packed row."""
    return row[0] >> np.uint64(64 - b)


@numba.njit(cache=True)
def _sort_run(rows, b):
    """Sort rows (which agree on their first b bits) lexicographically in place, as unsigned words.

    Up to 1024 rows (in cache) by Shell sort; more by radix sort on the next 11 bits, most significant first,
    moving the rows themselves, then each bucket in turn.
    """
    p, W = rows.shape
    tmp = np.empty_like(rows)
    idx = np.empty(min(p, 1024), np.int64)
    dig = np.empty(p if p > 1024 else 0, np.int64)
    cnt = np.empty(2048, np.int64)
    stack = [(0, p, b)]
    while len(stack) > 0:
        lo, hi, b = stack.pop()
        if hi - lo <= 1024:
            w = min(b >> 6, W - 1)  # the rows agree on the words before
            for t in range(hi - lo):
                idx[t] = lo + t
            for g in _GAPS:
                for a in range(g, hi - lo):
                    x = idx[a]
                    c = a
                    while c >= g and _row_less(rows, x, idx[c - g], w):
                        idx[c] = idx[c - g]
                        c -= g
                    idx[c] = x
            for t in range(hi - lo):
                for v in range(W):
                    tmp[lo + t, v] = rows[idx[t], v]
        elif b < 64 * W:  # else equal rows
            cnt[:] = 0
            for t in range(lo, hi):
                dig[t] = _digit(rows[t], b)
                cnt[dig[t]] += 1
            pos = lo
            for d in range(2048):
                if cnt[d] > 1:
                    stack.append((pos, pos + cnt[d], b + 11))
                pos, cnt[d] = pos + cnt[d], pos
            for t in range(lo, hi):
                c = cnt[dig[t]]
                for v in range(W):
                    tmp[c, v] = rows[t, v]
                cnt[dig[t]] = c + 1
        else:
            continue
        for t in range(lo, hi):
            for v in range(W):
                rows[t, v] = tmp[t, v]


@numba.njit(cache=True)
def _sorted_patterns(rows, order, b, n):
    """The bits (T, n) of the packed rows in lexicographic order, as bytes 0/1, and whether the rows are distinct.

    rows[order] is sorted by the first b bits; each run of equal first bits is gathered, sorted (`_sort_run`) and
    written out, so the sorted packed rows never go through memory.
    """
    T, W = rows.shape
    out = np.empty((T, n), np.uint8)
    buf = np.empty((1024, W), np.uint64)
    distinct = True
    a = 0
    for t in range(1, T + 1):
        if t < T and _high(rows[order[t]], b) == _high(rows[order[a]], b):
            continue
        if buf.shape[0] < t - a:
            buf = np.empty((t - a, W), np.uint64)
        run = buf[:t - a]
        for r in range(t - a):
            run[r] = rows[order[a + r]]
        if t - a > 1:
            _sort_run(run, b)
        for r in range(t - a):
            if r > 0 and not _row_less(run, r - 1, r, 0):
                distinct = False
            o = out[a + r]
            for j in range(n >> 3):  # a byte of bits at a time
                byte = (run[r, j >> 3] >> np.uint64(56 - 8 * (j & 7))) & np.uint64(255)
                for k in range(8):
                    o[8 * j + k] = _BITS[byte, k]
            for i in range(n & ~7, n):
                o[i] = (run[r, i >> 6] >> np.uint64(63 - (i & 63))) & _ONE
        a = t
    return out, distinct
