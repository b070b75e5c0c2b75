"""Slow, independent reference for the minimal-norm (Clarke/Filippov) gradient flow of a two-layer network.

This is a yardstick for the fast C++ integrator, written from docs/mathematics.md §2-§3 with SciPy only; it must never
import fastflow.  Everything is done the plain way: DOP853 from SciPy on each smooth piece, switching functions
checked on the step's dense output, events refined with brentq, a bounded least-squares problem at every mode
decision.

Model: Phi(x) = W2 @ sigma(W1 @ x), W1 (width, d), W2 (d_out, width), theta = [W1.ravel(), W2.ravel()].
Each (sample i, neuron j) pair has a mode: ACTIVE (slope 1), INACTIVE (slope 0) or SLIDING (held on h_ij = 0,
slope s_ij in [0, 1] chosen by minimal norm).

Decisions beyond the letter of the spec, each with its reason at the place it is made:
- An exit (s reaching 0 or 1) is tangent at first order, so its side comes from where s is going and the sign
  of D (the KKT rule of docs/mathematics.md §2), not from dh.
- If the one-shot decision gives a field that contradicts itself at once (an attracting and a repelling surface
  of one neuron meeting), the consistent mode choice of least speed is taken instead.
- Exit functions are D^2 s and D^2 (1 - s), with bands from the integrator's accuracy (~100 rtol of the terms
  before cancellation): a slide does not end on noise where D and c are both ~0.
- A neuron whose surfaces span R^d is put at w_j = 0 exactly; a function that starts on its surface and leaves
  downwards is located where it leaves its band, so the event just handled is never re-detected.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.integrate
from scipy.optimize import brentq, lsq_linear
from scipy.special import expit

INACTIVE, ACTIVE, SLIDING = 0, 1, 2

S_INTERIOR = 1e-9  # s strictly inside (S_INTERIOR, 1 - S_INTERIOR) means "sliding"
SAME_TIME = 1e-12  # events within this relative time are processed together
N_SAMPLES = 32  # sub-intervals per step on which switching functions are checked (catches returning signs)
ZERO_ULPS = 64  # |h| below ZERO_ULPS * eps * |x||w| counts as "on the surface"
GTOL = 1e-13  # square loss: converged when ||dtheta/dt|| < GTOL
MAX_STUCK = 20  # consecutive event points at the same t -> give up (Zeno guard)

EPS = np.finfo(float).eps


# ----------------------------------------------------------------------------------------------------------------
# Network, losses, gradient on a fixed activation pattern
# ----------------------------------------------------------------------------------------------------------------


def preactivations(X, W1):
    """h[i, j] = w_j . x_i, shape (n, width)."""
    return np.asarray(X, float) @ np.asarray(W1, float).T


def _loss_and_dphi(phi, y, loss):
    """Loss value and dL/dPhi (..., n, d_out), in numerically stable forms (leading axes: a batch of states)."""
    if loss == "square":
        r = phi - y
        return 0.5 * float(np.sum(r * r)), r
    q = y * phi[..., 0]
    if loss == "exponential":
        e = np.exp(-q)
        return float(np.sum(e)), (-e * y)[..., None]
    if loss == "logistic":
        # log(1 + e^-q) = logaddexp(0, -q);  l'(q) = -1 / (1 + e^q) = -expit(-q)
        return float(np.sum(np.logaddexp(0.0, -q))), (-expit(-q) * y)[..., None]
    raise ValueError(f"unknown loss {loss!r}")


def _prepare_targets(y, loss, n):
    y = np.asarray(y, float)
    if loss == "square":
        return y.reshape(n, -1)
    if loss not in ("exponential", "logistic"):
        raise ValueError(f"unknown loss {loss!r}")
    return y.reshape(n)


def loss_value(X, y, W1, W2, loss, activation="relu"):
    X = np.asarray(X, float)
    W1, W2 = np.asarray(W1, float), np.asarray(W2, float)
    y = _prepare_targets(y, loss, X.shape[0])
    h = preactivations(X, W1)
    post = h if activation == "linear" else np.maximum(h, 0.0)
    return _loss_and_dphi(post @ W2.T, y, loss)[0]


class _Net:
    """Two-layer network with fixed data; theta <-> (W1, W2)."""

    def __init__(self, X, y, width, d_out, loss, rtol=0.0):
        self.X, self.y, self.loss = X, y, loss
        # Quantities computed from an integrated state are known to about rtol times the size of the terms
        # summed into them (rounding alone: a few ulps), with a margin for the global error. Used for the
        # exit functions' bands, so a slide does not end on noise.
        self.rel_noise = max(ZERO_ULPS * EPS, 100 * rtol)
        self.n, self.d = X.shape
        self.width, self.d_out = width, d_out
        self.n1 = width * self.d
        self.xnorm = np.linalg.norm(X, axis=1)

    def split(self, theta):
        return theta[: self.n1].reshape(self.width, self.d), theta[self.n1 :].reshape(self.d_out, self.width)

    def parts(self, theta, slopes, with_scales=False):
        """Gradient with sigma'(h_ij) = slopes[i, j] (post-activation slopes * h, the smooth extension of a piece).

        Returns (loss, flat gradient, D) with D[i, j] = dL/dPhi_i . W2[:, j], the coefficient of x_i in the
        w_j block per unit of slope (so G_ij = D[i, j] x_i). with_scales adds the sums of absolute values behind
        the w-gradient (width, d) and behind D (n, width), to estimate rounding."""
        W1, W2 = self.split(theta)
        h = self.X @ W1.T
        post = slopes * h
        L, R = _loss_and_dphi(post @ W2.T, self.y, self.loss)
        D = R @ W2
        g1 = (D * slopes).T @ self.X
        g2 = R.T @ post
        g = np.concatenate([g1.ravel(), g2.ravel()])
        if not with_scales:
            return L, g, D
        absD = self._abs_dphi(post @ W2.T, R) @ np.abs(W2)
        return L, g, D, (absD * slopes).T @ np.abs(self.X), absD

    def parts_many(self, Y, slopes):
        """parts(with_scales=True) for the columns of Y (n_params, m), w-block only: D (m, n, width),
        g1 and its absolute-value scale (m, width, d), absD (m, n, width)."""
        W1s = Y[: self.n1].reshape(self.width, self.d, -1)
        W2s = Y[self.n1 :].reshape(self.d_out, self.width, -1)
        post = slopes[None] * np.einsum("id,jdm->mij", self.X, W1s)
        phi = np.einsum("mij,ojm->mio", post, W2s)
        R = _loss_and_dphi(phi, self.y, self.loss)[1]
        D = np.einsum("mio,ojm->mij", R, W2s)
        absD = np.einsum("mio,ojm->mij", self._abs_dphi(phi, R), np.abs(W2s))
        g1 = np.einsum("mij,id->mjd", D * slopes[None], self.X)
        abs_g1 = np.einsum("mij,id->mjd", absD * slopes[None], np.abs(self.X))
        return D, g1, abs_g1, absD

    def _abs_dphi(self, phi, R):
        """Size of dL/dPhi before cancellation: a square-loss residual Phi - y near 0 is known only to about
        rel_noise * (|Phi| + |y|), and every D and c built from it inherits that."""
        return np.abs(phi) + np.abs(self.y) if self.loss == "square" else np.abs(R)

    def h(self, theta):
        return self.X @ self.split(theta)[0].T

    def h_band(self, theta):
        """Rounding band of each h_ij."""
        wn = np.linalg.norm(self.split(theta)[0], axis=1)
        return ZERO_ULPS * EPS * np.outer(self.xnorm, wn) + 1e-300


# ----------------------------------------------------------------------------------------------------------------
# Vector field of one smooth piece (fixed modes)
# ----------------------------------------------------------------------------------------------------------------


class _Piece:
    """Modes fixed: active/inactive pairs use slope 1/0, sliding pairs are held on their surfaces."""

    def __init__(self, net, modes):
        self.net, self.modes = net, modes.copy()
        self.slopes = (modes == ACTIVE).astype(float)
        # Per sliding neuron: rows of X held at h = 0 and the pseudo-inverse of their span, fixed for the piece.
        self.sliding = {}
        for j in range(net.width):
            idx = np.flatnonzero(modes[:, j] == SLIDING)
            if idx.size:
                Xz = net.X[idx]
                self.sliding[j] = (idx, Xz, np.linalg.pinv(Xz.T))
        self.pairs_active = np.argwhere(modes == ACTIVE)
        self.pairs_inactive = np.argwhere(modes == INACTIVE)
        self.pairs_sliding = np.argwhere(modes == SLIDING)
        # position of each sliding pair inside its neuron's block, to gather s in pairs_sliding order
        self._slot = [(j, int(np.searchsorted(self.sliding[j][0], i))) for i, j in self.pairs_sliding]

    def velocity(self, theta):
        """dtheta/dt = -m(theta) and the implied slopes s of the sliding pairs (order of pairs_sliding).

        Inside a sliding segment all s are interior, so the minimal norm is the unconstrained least squares:
        remove from g_wj its component in span{x_i : (i, j) sliding}; its coefficients are c = s * D."""
        net = self.net
        _, g, D = net.parts(theta, self.slopes)
        s = np.empty(len(self.pairs_sliding))
        c_of = {}
        for j, (idx, Xz, B) in self.sliding.items():
            blk = slice(j * net.d, (j + 1) * net.d)
            c_of[j] = -B @ g[blk]
            g[blk] += Xz.T @ c_of[j]
        for k, ((i, j), (_, p)) in enumerate(zip(self.pairs_sliding, self._slot)):
            # D = 0: the pair does not act on the gradient and its s is meaningless; call it neutral
            s[k] = c_of[j][p] / D[i, j] if abs(D[i, j]) > 1e-300 else 0.5
        return -g, s

    def switching(self, theta):
        """switching_many() at one state: (values, bands), each (K,)."""
        vals, bands = self.switching_many(theta[:, None])
        return vals[0], bands[0]

    def switching_many(self, Y):
        """Oriented switching functions (>= 0 while the modes hold) and their bands at the columns of Y
        (n_params, m): (values, bands), each (m, K). Order: active h, inactive -h, then the sliding exits.

        A sliding pair must keep 0 <= s <= 1 with s = c / D. The exit functions are written D^2 s = c D and
        D^2 (1 - s) = D (D - c): the same zeros, but smooth where D passes through 0 (c vanishes with it and the
        slide goes on, the repelling case of docs/mathematics.md §2); the quotient would be all rounding there."""
        net = self.net
        W1s = Y[: net.n1].reshape(net.width, net.d, -1)
        h = np.einsum("id,jdm->mij", net.X, W1s)
        band = ZERO_ULPS * EPS * net.xnorm[None, :, None] * np.linalg.norm(W1s, axis=1).T[:, None, :] + 1e-300
        a, b = self.pairs_active, self.pairs_inactive
        vals = np.concatenate([h[:, a[:, 0], a[:, 1]], -h[:, b[:, 0], b[:, 1]]], axis=1)
        bands = np.concatenate([band[:, a[:, 0], a[:, 1]], band[:, b[:, 0], b[:, 1]]], axis=1)
        if len(self.pairs_sliding):
            v, bd = self._exits_many(Y)
            vals, bands = np.concatenate([vals, v], axis=1), np.concatenate([bands, bd], axis=1)
        return vals, bands

    def _exits_many(self, Y):
        """The sliding pairs' exit functions and bands of switching(), for the columns of Y: (m, 2 n_sliding)."""
        net = self.net
        D, g1, abs_g1, absD = net.parts_many(Y, self.slopes)
        c_of, cn_of = {}, {}
        for j, (idx, Xz, B) in self.sliding.items():
            c_of[j] = -g1[:, j, :] @ B.T  # (m, |Z_j|)
            cn_of[j] = net.rel_noise * (abs_g1[:, j, :] @ np.abs(B).T)
        i, j = self.pairs_sliding.T
        c = np.stack([c_of[jj][:, p] for jj, p in self._slot], axis=1)
        cn = np.stack([cn_of[jj][:, p] for jj, p in self._slot], axis=1)
        D, Dn = D[:, i, j], net.rel_noise * absD[:, i, j]
        vals = np.concatenate([c * D, D * (D - c)], axis=1)
        bands = np.concatenate([np.abs(D) * cn + Dn * np.abs(c) + cn * Dn + 1e-300,
                                np.abs(D) * (cn + Dn) + Dn * np.abs(D - c) + Dn * (cn + Dn) + 1e-300], axis=1)
        return vals, bands

    def pair_of(self, k):
        """Switching-function index -> ((i, j), how): how = 0 for a surface reached, -1 / +1 for a sliding pair
        whose s leaves [0, 1] below 0 / above 1."""
        na, nb, ns = len(self.pairs_active), len(self.pairs_inactive), len(self.pairs_sliding)
        if k < na:
            return tuple(int(v) for v in self.pairs_active[k]), 0
        k -= na
        if k < nb:
            return tuple(int(v) for v in self.pairs_inactive[k]), 0
        k -= nb
        return tuple(int(v) for v in self.pairs_sliding[k % ns]), (-1 if k < ns else 1)


# ----------------------------------------------------------------------------------------------------------------
# Mode decisions
# ----------------------------------------------------------------------------------------------------------------


def _place(net, theta, pairs):
    """Minimal-norm correction of each w_j onto {w : x_i . w = 0 for (i, j) in pairs}."""
    theta = theta.copy()
    W1 = net.split(theta)[0]  # a view into theta
    by_neuron = {}
    for i, j in pairs:
        by_neuron.setdefault(j, []).append(i)
    for j, idx in by_neuron.items():
        Xp = net.X[sorted(set(idx))]
        if np.linalg.matrix_rank(Xp) == net.d:  # the normals span the space: the only point is w_j = 0
            W1[j] = 0.0
            continue
        for _ in range(2):  # a second pass removes the rounding of the first
            W1[j] -= np.linalg.pinv(Xp) @ (Xp @ W1[j])
    return theta


def _classify(net, theta, modes, cands, exits):
    """New modes for the candidate pairs from the box problem min ||grad L(s)||, s in [0, 1]^C.

    The problem separates by neuron: only x_i of neuron j's candidates enter the w_j block. exits maps sliding
    pairs whose s just left [0, 1] to the side it left by (-1 below 0, +1 above 1)."""
    slopes = (modes == ACTIVE).astype(float)
    for i, j in cands:
        slopes[i, j] = 0.0  # candidates: s = 0 in g0, their freedom goes to the columns of A
    _, g0, D, abs_g1, _ = net.parts(theta, slopes, with_scales=True)
    new = {}
    by_neuron = {}
    for i, j in cands:
        by_neuron.setdefault(j, []).append(i)
    for j, idx in by_neuron.items():
        idx = np.array(sorted(idx))
        gw = g0[j * net.d : (j + 1) * net.d]
        Dj = D[idx, j]
        live = Dj != 0.0  # a zero column has no freedom: s = 0, decided by dh alone
        s = np.zeros(idx.size)
        if np.any(live):
            A = (net.X[idx[live]] * Dj[live, None]).T
            res = lsq_linear(A, -gw, bounds=(0.0, 1.0), method="bvls", tol=1e-15)
            s[live] = np.clip(res.x, 0.0, 1.0)
        F = -(gw + (net.X[idx] * (s * Dj)[:, None]).sum(axis=0))
        # tangency tolerance on the scale of the terms summed into g (g itself may be ~0 by cancellation)
        Fn = np.linalg.norm(F) + np.linalg.norm(abs_g1[j]) + np.abs(Dj) @ net.xnorm[idx]
        for k, i in enumerate(idx):
            dh = net.X[i] @ F
            tol = 1e-12 * net.xnorm[i] * Fn
            if S_INTERIOR < s[k] < 1.0 - S_INTERIOR:
                new[(i, j)] = SLIDING
            elif dh > tol:
                new[(i, j)] = ACTIVE
            elif dh < -tol:
                new[(i, j)] = INACTIVE
            elif (i, j) in exits and Dj[k] != 0.0:
                # An exit is always tangent at first order (s sits on its bound): the side is where s is going.
                # s > 1 gives dh = D |x|^2 (s - 1), s < 0 gives dh = D |x|^2 s: the KKT rule of docs/mathematics.md §2,
                # attracting (D > 0) s -> 1 active, s -> 0 inactive; repelling (D < 0) the other way round.
                new[(i, j)] = ACTIVE if exits[(i, j)] * Dj[k] > 0 else INACTIVE
            else:  # tangent (e.g. a surface the field runs along): the side the optimal slope is closer to
                new[(i, j)] = ACTIVE if s[k] >= 0.5 else INACTIVE
    return new


def _neuron_check(net, theta, modes, j, idx):
    """Is the field of these modes consistent at theta for the pairs (idx, j)? And its w_j speed.

    Consistent: sliding pairs have their implied s in [0, 1], active pairs move to h >= 0, inactive to h <= 0,
    up to a tolerance on the scale of the terms summed into the gradient (an exit is tangent at first order and
    must not count as a contradiction)."""
    piece = _Piece(net, modes)
    v, s = piece.velocity(theta)
    F = v[j * net.d : (j + 1) * net.d]
    scale = np.linalg.norm(net.parts(theta, piece.slopes, with_scales=True)[3][j]) + np.linalg.norm(F)
    s_of = {(int(i), int(jj)): sv for (i, jj), sv in zip(piece.pairs_sliding, s)}
    for i in idx:
        m = modes[i, j]
        tol = 1e-9 * net.xnorm[i] * scale
        if m == SLIDING:
            ok = -S_INTERIOR <= s_of[(int(i), int(j))] <= 1.0 + S_INTERIOR
        else:
            dh = net.X[i] @ F
            ok = dh >= -tol if m == ACTIVE else dh <= tol
        if not ok:
            return False, np.linalg.norm(F)
    return True, np.linalg.norm(F)


def _consistent_modes(net, theta, modes, j, idx, max_pairs=8):
    """Fallback when the one-shot decision gives a field that immediately contradicts itself (it happens when
    an attracting and a repelling surface meet): among all mode choices for neuron j's candidates whose field is
    consistent, take the one with the smallest speed. None if there is none (or too many candidates)."""
    if len(idx) > max_pairs:
        return None
    best = None
    for choice in itertools.product((INACTIVE, ACTIVE, SLIDING), repeat=len(idx)):
        trial = modes.copy()
        trial[idx, j] = choice
        ok, speed = _neuron_check(net, theta, trial, j, idx)
        if ok and (best is None or speed < best[0] * (1 - 1e-12)):
            best = (speed, choice)
    return None if best is None else dict(zip(idx, best[1]))


_KIND = {
    (INACTIVE, ACTIVE): "activate",
    (ACTIVE, INACTIVE): "deactivate",
    (ACTIVE, SLIDING): "slide_start",
    (INACTIVE, SLIDING): "slide_start",
    (SLIDING, ACTIVE): "slide_end",
    (SLIDING, INACTIVE): "slide_end",
}


def _decide(net, theta, modes, fired, t, initial=False):
    """Place, classify, place the new sliding pairs; returns (theta, modes, events at t).

    fired: {(i, j): how} as from _Piece.pair_of."""
    on = {tuple(int(v) for v in p) for p in np.argwhere(modes == SLIDING)} | set(fired)
    theta = _place(net, theta, on)
    h, band = net.h(theta), net.h_band(theta)
    # also any pair on its surface (|h| within rounding) or on the wrong side of its mode after placement
    wrong = ((modes == ACTIVE) & (h <= 0)) | ((modes == INACTIVE) & (h >= 0))
    near = (np.abs(h) <= band) | wrong
    cands = sorted(on | {tuple(int(v) for v in p) for p in np.argwhere(near)}, key=lambda p: (p[1], p[0]))
    if not cands:
        return theta, modes, []
    new = _classify(net, theta, modes, cands, {p: how for p, how in fired.items() if how})
    trial = modes.copy()
    for (i, j), m in new.items():
        trial[i, j] = m
    for j in sorted({j for _, j in cands}):
        idx = [i for i, jj in cands if jj == j]
        if not _neuron_check(net, theta, trial, j, idx)[0]:
            fix = _consistent_modes(net, theta, trial, j, idx)
            if fix is not None:
                new.update({(i, j): m for i, m in fix.items()})
                for i, m in fix.items():
                    trial[i, j] = m
    modes = modes.copy()
    events = []
    for i, j in cands:  # sorted by (neuron, sample)
        old, m = modes[i, j], new[(i, j)]
        modes[i, j] = m
        if initial:  # at t = 0 there is no previous mode; only entering a slide is an event
            if m == SLIDING:
                events.append((float(t), "slide_start", int(i), 0, int(j)))
        elif old != m:
            events.append((float(t), _KIND[(old, m)], int(i), 0, int(j)))
    # Put on its surface also every candidate left (within rounding) on the wrong side of its new mode, so the
    # next piece does not start with a switching function already below zero.
    h = net.h(theta)
    wrong = ((modes == ACTIVE) & (h < 0)) | ((modes == INACTIVE) & (h > 0))
    theta = _place(net, theta, [p for p in cands if wrong[p]] + [tuple(p) for p in np.argwhere(modes == SLIDING)])
    return theta, modes, events


# ----------------------------------------------------------------------------------------------------------------
# Event location on one step
# ----------------------------------------------------------------------------------------------------------------


def _first_crossings(piece, sol, t0, t1):
    """Earliest crossing time of each switching function in [t0, t1] (inf if none).

    The functions are checked on N_SAMPLES sub-intervals, so a sign that returns inside the step is seen. A
    function counts as crossed once it is below minus its band at a sample; the root is bracketed from the last
    sample where it was > 0. A function that merely starts at 0 (the surface just handled) is not re-detected."""
    ts = np.linspace(t0, t1, N_SAMPLES + 1)
    G, bands = piece.switching_many(sol(ts))  # (samples, functions)
    bands = bands.min(axis=0)
    out = np.full(G.shape[1], np.inf)
    for k in np.flatnonzero((G < -bands).any(axis=0)):
        m = int(np.argmax(G[:, k] < -bands[k]))
        if m == 0:  # already beyond its band at the start: a contradiction to settle now
            out[k] = ts[0]
            continue
        g = lambda t, k=k: piece.switching(sol(t))[0][k]  # noqa: E731
        positive = np.flatnonzero(G[:m, k] > 0.0)
        if positive.size:
            a, shift = ts[positive[-1]], 0.0
        else:
            # It started on its surface (just handled, placed to rounding: within the band) and leaves it
            # downwards: the crossing is where it leaves the band, so time moves on instead of re-detecting t0.
            a, shift = ts[m - 1], bands[k]
        out[k] = brentq(lambda t: g(t) + shift, a, ts[m], xtol=max(1e-15 * abs(ts[m]), 1e-300), rtol=4 * EPS,
                        maxiter=500)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------------------------


def _guarded(velocity):
    """The solver's right-hand side. A trial step far too long (e.g. the initial-step guess when the field is
    tiny) can overflow exp(-q); the non-finite error estimate makes DOP853 reject and shrink the step, so that
    is not an error worth a warning."""

    def fun(_t, theta):
        with np.errstate(over="ignore", invalid="ignore"):
            return velocity(theta)[0]

    return fun


def reference_flow(X, y, W1, W2, loss, t_max, activation="relu", rtol=1e-12, atol=1e-14, max_events=10_000,
                   keep_dense=False, method="DOP853"):
    """Minimal-norm subgradient flow from (W1, W2) up to t_max.

    Returns dict(theta, events, status, n_pieces, t) and, with keep_dense=True, segments = list of
    (t_start, t_end, dense_output) covering [0, t] (each dense_output maps t -> theta).
    events: (t, kind, sample, 0, neuron), kind in activate / deactivate / slide_start / slide_end; at t = 0 only
    slide_start is recorded (there is no earlier mode). status: "t_max", "converged" (square loss,
    ||dtheta/dt|| < GTOL), "stationary" (dtheta/dt exactly 0) or "max_events" (max_events decision points, or
    MAX_STUCK of them in a row at one t). method: the SciPy solver of each smooth piece (DOP853; Radau or BDF are
    the implicit yardsticks of stiff flows)."""
    X = np.array(X, dtype=float)
    W1, W2 = np.array(W1, dtype=float), np.array(W2, dtype=float)
    n = X.shape[0]
    y = _prepare_targets(y, loss, n)
    if loss != "square" and W2.shape[0] != 1:
        raise ValueError("binary losses need d_out = 1")
    if activation not in ("relu", "linear"):
        raise ValueError(f"unknown activation {activation!r}")
    net = _Net(X, y, W1.shape[0], W2.shape[0], loss, rtol)
    theta = np.concatenate([W1.ravel(), W2.ravel()])

    t, events, segments = 0.0, [], []
    if activation == "linear":
        modes = np.full((n, net.width), ACTIVE)  # identity: one smooth piece, no switches
    else:
        modes = np.where(net.h(theta) > 0, ACTIVE, INACTIVE)
        theta, modes, ev = _decide(net, theta, modes, {}, 0.0, initial=True)
        events += ev

    n_pieces, n_points, stuck = 0, 0, 0
    status = "t_max"
    while True:
        piece = _Piece(net, modes)
        v0, _ = piece.velocity(theta)
        if not np.any(v0):
            status = "stationary"
            break
        if loss == "square" and np.linalg.norm(v0) < GTOL:
            status = "converged"
            break
        if t >= t_max:
            break
        n_pieces += 1
        solver = getattr(scipy.integrate, method)(_guarded(piece.velocity), t, theta, t_max, rtol=rtol, atol=atol)
        fired = None
        while solver.status == "running":
            msg = solver.step()
            if solver.status == "failed":
                raise RuntimeError(f"{method} failed at t={solver.t}: {msg}")
            sol = solver.dense_output()
            t_cross = _first_crossings(piece, sol, solver.t_old, solver.t)
            if np.isfinite(t_cross).any():
                t_ev = t_cross.min()
                hit = np.flatnonzero(t_cross <= t_ev + SAME_TIME * abs(t_ev))
                fired = dict(piece.pair_of(k) for k in hit)
                if keep_dense:
                    segments.append((solver.t_old, t_ev, sol))
                break
            if keep_dense:
                segments.append((solver.t_old, solver.t, sol))
            if loss == "square" and np.linalg.norm(piece.velocity(solver.y)[0]) < GTOL:
                t, theta = solver.t, solver.y.copy()
                status = "converged"
                break
        if status == "converged":
            break
        if fired is None:  # reached t_max without an event
            t, theta = solver.t, solver.y.copy()
            break
        # an event point: place, reclassify, record
        stuck = stuck + 1 if t_ev == t else 0
        t, theta = t_ev, sol(t_ev)
        theta, modes, ev = _decide(net, theta, modes, fired, t)
        events += ev
        n_points += 1
        if n_points >= max_events or stuck >= MAX_STUCK:
            status = "max_events"
            break

    out = dict(theta=theta, events=events, status=status, n_pieces=n_pieces, t=t)
    if keep_dense:
        out["segments"] = segments
    return out
