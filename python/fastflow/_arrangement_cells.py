"""Numba kernels: the cells of a central arrangement by lowest vertices (arrangements.py, step 2), as packed sign
vectors."""
import numba
import numpy as np

_TOL = 1e-9
# a generic-frame quantity (a ray's chart coordinate, an orthant's multiplier) at most this, relative, would give an
# unreliable sign: flagged (RuntimeError) instead; it happens with probability ~1e-12 per vertex
_GENERIC = 1e-12
_ONE = np.uint64(1)


# --- helpers ---------------------------------------------------------------------------------------------------

@numba.njit(cache=True)
def _dot(a, b):
    """a . b by a plain loop (np.dot on short vectors goes through BLAS, far slower here)."""
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@numba.njit(cache=True)
def _set_bit(row, i):
    """Bit i of a packed row, most significant first (so rows of words compare like their bit tuples)."""
    row[i >> 6] |= _ONE << np.uint64(63 - (i & 63))


@numba.njit(cache=True)
def _put_bit(row, i, on):
    mask = _ONE << np.uint64(63 - (i & 63))
    row[i >> 6] = (row[i >> 6] | mask) if on else (row[i >> 6] & ~mask)


@numba.njit(cache=True)
def _bit(row, i):
    return (row[i >> 6] >> np.uint64(63 - (i & 63))) & _ONE


# --- cells by lowest vertices ----------------------------------------------------------------------------------

@numba.njit(cache=True)
def _generic_frame(Y):
    """Y's rows in a fixed generic orthonormal frame (m Householder reflections by fixed generic vectors).

    The method's directions are coordinate axes and its restrictions coordinate subspaces; in this frame they meet
    every flat of the arrangement transversally, whatever structure the data have.
    """
    G, m = Y.shape
    Z = Y.copy()
    v = np.empty(m)
    for j in range(m):
        for a in range(m):
            v[a] = np.sin(1.0 + 2.718281828459045 * (a + 1) + 1.4142135623730951 * (j + 1) * (a + 2))
        beta = 2.0 / _dot(v, v)
        for i in range(G):
            c = beta * _dot(v, Z[i])
            for a in range(m):
                Z[i, a] -= c * v[a]
    return Z


@numba.njit(cache=True)
def _cover(k, m):
    """The most cells k hyperplanes through the origin of R^m can have (Cover): a buffer size."""
    if k == 0 or m == 0:
        return 1
    total = 0
    binom = 1  # C(k - 1, j)
    for j in range(min(m, k)):
        total += 2 * binom
        binom = binom * (k - 1 - j) // (j + 1)
    return total


@numba.njit(cache=True)
def _gs_add(Q, t, x):
    """Row t of the orthonormal basis Q: unit x minus its projection on rows < t (twice, for accuracy).
    False if x is within _TOL of their span (dependent)."""
    m = Q.shape[1]
    for a in range(m):
        Q[t, a] = x[a]
    for _ in range(2):
        for s in range(t):
            c = _dot(Q[s], Q[t])
            for a in range(m):
                Q[t, a] -= c * Q[s, a]
    nrm = np.sqrt(_dot(Q[t], Q[t]))
    if nrm <= _TOL:
        return False
    for a in range(m):
        Q[t, a] /= nrm
    return True


@numba.njit(cache=True)
def _complete(Q, t):
    """Rows t.. of Q: an orthonormal basis of the complement of its rows < t, from the coordinate axes with the
    largest residuals (well conditioned)."""
    m = Q.shape[1]
    x = np.empty(m)
    for u in range(t, m):
        best, amin = np.inf, 0
        for a in range(m):
            s = 0.0
            for v in range(u):
                s += Q[v, a] * Q[v, a]
            if s < best:
                best, amin = s, a
        for a in range(m):
            x[a] = 1.0 if a == amin else 0.0
        _gs_add(Q, u, x)


@numba.njit(cache=True)
def _orthant(V, rows, col, M, mu):
    """The orthant of q = len(rows) independent hyperplanes of R^q (normals V[rows[j], col:]) inside {w_0 > 0}.

    It is the orthant whose signs are those of mu in e_0 = sum_j mu_j V[rows[j], col:] (e_0 is then a positive
    combination of the orthant's inner normals). mu is left in `mu`; False if some mu_j is too close to 0 to trust.
    """
    q = rows.shape[0]
    for a in range(q):
        for j in range(q):
            M[a, j] = V[rows[j], col + a]
        mu[a] = 1.0 if a == 0 else 0.0
    for p in range(q):  # Gaussian elimination with partial pivoting
        piv = p
        for a in range(p + 1, q):
            if abs(M[a, p]) > abs(M[piv, p]):
                piv = a
        if M[piv, p] == 0.0:
            return False
        if piv != p:
            for b in range(q):
                M[p, b], M[piv, b] = M[piv, b], M[p, b]
            mu[p], mu[piv] = mu[piv], mu[p]
        for a in range(p + 1, q):
            f = M[a, p] / M[p, p]
            for b in range(p, q):
                M[a, b] -= f * M[p, b]
            mu[a] -= f * mu[p]
    big = 0.0
    for p in range(q - 1, -1, -1):
        s = mu[p]
        for b in range(p + 1, q):
            s -= M[p, b] * mu[b]
        mu[p] = s / M[p, p]
        big = max(big, abs(mu[p]))
    for p in range(q):
        if abs(mu[p]) <= _GENERIC * big:
            return False
    return True


@numba.njit(cache=True)
def _is_first_basis(V, J, S, Q):
    """Whether S is the greedy basis of the normals V[J] (J ascending): a ray on more hyperplanes than its
    codimension is reached from many subsets, and handled once, from this one."""
    q = S.shape[0]
    t = 0
    for j in J:
        if t == q:
            break
        if _gs_add(Q, t, V[j]):
            if j != S[t]:
                return False
            t += 1
    return t == q


@numba.njit(cache=True)
def _lowest(U, c, pos, out, count):
    """Cells of the arrangement of U's rows restricted to coordinates c.. (dimension m), appended to out from count.

    pos=False: the cells whose part in the chart w_c = 1 has a lowest vertex in the direction w_(c+1) (the lowest
    point is a vertex, a ray rho with rho_c > 0, and the cell is the one at that ray whose local cone lies in
    w_(c+1) > 0). pos=True: the cells inside w_c > 0, which are those less the ones crossing w_c = 0, whose
    sections are the cells of the restriction to coordinates c+1.. inside w_(c+1) > 0. In general position a
    vertex lies on m - 1 hyperplanes and its cell is one orthant (`_orthant`); on more, the local cells are the
    same problem in one dimension less (arrangements.py, step 2).

    Parameters
    ----------
    U : (k, r) float64, the normals in the generic frame.
    c : int, first coordinate; m = r - c >= 1 (pos=False: m >= 2).
    out : (cap, W) uint64, packed sign vectors over U's rows (bit set: positive side).
    count : int, rows of out already used.

    Returns
    -------
    count : int
    ok : bool, every numerical decision was clear (and out had room).
    """
    k, r = U.shape
    m = r - c
    ok = True
    V = np.empty((k, m))  # unit normals of the restriction: signs and relative angles are what matter
    for i in range(k):
        for a in range(m):
            V[i, a] = U[i, c + a]
        nrm = np.sqrt(_dot(V[i], V[i]))
        if nrm <= _GENERIC:
            return count, False
        V[i] /= nrm
    if pos and (m == 1 or k == m):  # one cell: the half-line w_c > 0, or the orthant in w_c > 0
        if count >= out.shape[0]:
            return count, False
        out[count] = 0
        mu = V[:, 0].copy()
        if m > 1:
            ok = _orthant(V, np.arange(k), 0, np.empty((m, m)), mu)
        for i in range(k):
            if mu[i] > 0:
                _set_bit(out[count], i)
        return count + 1, ok

    start = count
    q = m - 1  # hyperplanes through a ray in general position
    # Vertices as q-subsets S in lexicographic order. The first q - 1 normals of S (the prefix) cut out a 2-flat L;
    # with the prefix fixed, the rays are the lines of L orthogonal to the projections (P, R) onto L of the last
    # normal, and every hyperplane's sign at such a ray is a 2x2 determinant of projections.
    S = np.arange(q)
    Q = np.empty((m, m))  # orthonormal: rows [0, q - 1) span the prefix's normals (up to date below `fresh`), then L
    Q2 = np.empty((q, m))
    P = np.empty(k)
    R = np.empty(k)
    D = np.empty(k)
    M = np.empty((q, q))
    mu = np.empty(q)
    J = np.empty(k, np.int64)
    fresh = 0
    while q == 1 or S[q - 2] < k - 1:
        indep = True
        for t in range(fresh, q - 1):
            if not _gs_add(Q, t, V[S[t]]):
                indep = False
                fresh = t
                break
        if indep:
            fresh = q - 1
            _complete(Q, q - 1)
            for i in range(k):
                P[i] = _dot(V[i], Q[q - 1])
                R[i] = _dot(V[i], Q[q])
            for last in range(S[q - 2] + 1 if q > 1 else 0, k):
                S[q - 1] = last
                nrm = np.sqrt(P[last] * P[last] + R[last] * R[last])
                if nrm <= _TOL:  # the last normal depends on the prefix: no vertex
                    continue
                # the ray rho = (P L1 - R L0) / nrm, turned into the chart rho_0 > 0
                rho0 = (P[last] * Q[q, 0] - R[last] * Q[q - 1, 0]) / nrm
                if abs(rho0) <= _GENERIC:
                    ok = False
                sp = (P[last] if rho0 > 0 else -P[last]) / nrm
                sr = (R[last] if rho0 > 0 else -R[last]) / nrm
                for i in range(k):
                    D[i] = sp * R[i] - sr * P[i]  # V[i] . rho
                if count >= out.shape[0]:
                    return count, False
                row = out[count]
                nJ = 0
                for w in range(out.shape[1]):
                    word = np.uint64(0)
                    for i in range(64 * w, min(64 * w + 64, k)):
                        word = (word << _ONE) | np.uint64(D[i] > 0)
                        if abs(D[i]) <= _TOL:
                            J[nJ] = i
                            nJ += 1
                    if w == out.shape[1] - 1 and k & 63:
                        word <<= np.uint64(64 - (k & 63))
                    row[w] = word
                if nJ == q:
                    for t in range(q):
                        if J[t] != S[t]:
                            ok = False
                    ok = _orthant(V, S, 1, M, mu) and ok
                    for t in range(q):
                        _put_bit(row, S[t], mu[t] > 0)
                    count += 1
                elif nJ < q:
                    ok = False
                elif _is_first_basis(V, J[:nJ], S, Q2):
                    Js = J[:nJ]
                    sub = np.empty((_cover(nJ, m - 1), (nJ + 63) >> 6), np.uint64)
                    # typed, not literal, arguments: a recursive call whose types differ from the outer ones
                    # crashes when loaded from numba's cache (numba#6713)
                    ns, oks = _lowest(U[Js], c + 1, np.bool_(True), sub, np.int64(0))
                    ok = ok and oks
                    if count + ns > out.shape[0]:
                        return count, False
                    for s in range(ns):
                        if s > 0:
                            out[count] = out[count - s]  # the ray's signs off J
                        for t in range(nJ):
                            _put_bit(out[count], Js[t], _bit(sub[s], t) == _ONE)
                        count += 1
        if q == 1:
            break
        p = q - 2  # next prefix
        while p >= 0 and S[p] == k - q + p:
            p -= 1
        if p < 0:
            break
        S[p] += 1
        for t in range(p + 1, q - 1):
            S[t] = S[t - 1] + 1
        fresh = min(fresh, p)

    if pos:  # drop the cells that cross w_c = 0
        cross = np.empty((_cover(k, m - 1), out.shape[1]), np.uint64)
        nx, okx = _lowest(U, c + 1, np.bool_(True), cross, np.int64(0))
        ok = ok and okx
        kept = start
        for s in range(start, count):
            hit = False
            for x in range(nx):
                if np.all(out[s] == cross[x]):
                    hit = True
                    break
            if not hit:
                out[kept] = out[s]
                kept += 1
        if count - kept != nx:
            ok = False
        count = kept
    return count, ok


@numba.njit(cache=True)
def _cells(Y):
    """Cells of the central arrangement with unit normals Y (distinct lines, rank m), as packed sign vectors.

    In a generic frame, every cell either lies in w_0 > 0 or w_0 < 0, or crosses w_0 = 0; of the crossing ones, the
    sections lie in w_1 > 0 or w_1 < 0 or cross w_1 = 0, and so on. The cells with a lowest vertex in the chart
    w_c = 1 (`_lowest`) are exactly those inside w_c > 0 and those crossing w_c = 0 whose section lies in
    w_(c+1) > 0, so with their opposites they are every cell except those crossing both w_c = 0 and w_(c+1) = 0:
    the cells of the restriction to coordinates c+2...

    Parameters
    ----------
    Y : (G, m) float64, unit rows, no two on one line, rank m.

    Returns
    -------
    cells : (T, W) uint64, bit j (most significant first) set where the cell is on the positive side of Y[j].
    ok : bool
    """
    G, m = Y.shape
    if G == 0:
        return np.zeros((1, 1), np.uint64), True
    W = (G + 63) >> 6
    out = np.empty((_cover(G, m), W), np.uint64)
    last = np.uint64(0xFFFFFFFFFFFFFFFF)  # the valid bits of the last word
    if G & 63:
        last = ~((_ONE << np.uint64(64 - (G & 63))) - _ONE)
    U = _generic_frame(Y)
    ok = True
    count = 0
    for c in range(0, m, 2):
        start = count
        count, okc = _lowest(U, c, m - c == 1, out, count)
        ok = ok and okc
        if 2 * count - start > out.shape[0]:
            return out[:0], False
        for s in range(start, count):  # the opposite cells
            t = count + s - start
            for w in range(W):
                out[t, w] = ~out[s, w]
            out[t, W - 1] &= last
        count += count - start
    return out[:count], ok
