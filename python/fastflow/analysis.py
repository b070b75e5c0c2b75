"""`analyze`: is the limit of a flow a global, a local, or not even a local optimum of the max-margin problem?

Scope: fully connected two-layer homogeneous networks Phi(theta; x) = sum_j v_j sigma(w_j . x) (ReLU or linear,
d_out = 1) and binary labels +-1. Notation follows NUMERICS.md section 6 and the margin paper (Vardi, Shamir,
Srebro, "VSS"):

    (P)   min 1/2 ||theta||^2   s.t.   q_i(theta) = y_i Phi(theta; x_i) >= 1   for all i.

A flow on the exponential or logistic loss converges in direction to a KKT point of (P) (Lyu & Li), but only like
1/log t, and neurons that lose the competition die like a power of log t. `analyze` normalises theta to margin 1
(theta_raw), reads candidate patterns off it (support, signs of w_j.x_i, zero neurons, for a ladder of thresholds),
solves the KKT system of each pattern to machine precision (Levenberg-Marquardt, with active-set corrections), keeps
the KKT point closest to theta_raw ("polishing"), and classifies that point. Every verdict comes with its
certificate:

* "global":    theta~ is feasible and ||theta~||^2 is within `global_rtol` of a certified lower bound on ||theta*||^2:
               the dual value of the convex program of the convex-geometry paper (Wang & Pilanci, Prop. 2, solved
               over all arrangements by `fastflow.convex`), or weak duality for the KKT multipliers themselves
               (sum_i lambda_i / max(1, max_{||u||<=1} |lambda^T (Xu)_+|), WP Thm 3) for ReLU; 2 ||u*|| with u* the
               hard-margin SVM for linear nets (VSS Thm 3.1).
* "not_kkt":   the KKT residual is above `kkt_tol` (typically: polishing failed and theta_raw is a late point that is
               KKT only up to O(1/log t); a non-KKT point is never a local optimum).
* "not_local": explicit feasible points theta' (margins recomputed with net.forward) with ||theta' - theta~|| <= r
               and ||theta'|| < ||theta~|| for r = eps, eps/4 and eps/16 — a family shrinking to theta~, as in the
               papers' proofs — found along the papers' directions (turning on a zero neuron along an infeasible
               dual direction, VSS Thm 3.2; tilting neurons onto samples they touch, VSS Thm 4.2(2)) and from small
               random perturbations, by SLSQP on min ||theta||^2 s.t. q >= 1, ||theta - theta~|| <= r, followed by
               an exact restoration of the active margins.
* "local":     VSS Thm 4.3: a KKT point of a depth-2 network without sharing at which every pre-activation
               w_j . x_i is non-zero is a local optimum.
* "kkt_only":  KKT holds and nothing above was certified either way.

Each layer also gets a verdict for VSS Problem (4), the max-margin problem in that layer with the other fixed
(`LayerReport`): convex in v (an SVM on the hidden features), and in W on each activation pattern, hence decided
exactly by least-distance programs over the patterns around theta~ (local) or over all combinations of cells of X
(global). A KKT point of (P) can be optimal for each layer and still not a local optimum of (P) (VSS Thm 3.2's
limit: improving it needs both layers), and need not be optimal for a layer (Thm 5.3; Lemma C.6: local, not global).
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy.optimize import lsq_linear, minimize, nnls

from ._validate import positive_int, real_scalar
from .arrangements import arrangements
from .data import as_dataset

VERDICTS = ("global", "local", "not_local", "kkt_only", "not_kkt")

# thresholds tau for reading the limit's structure off a late trajectory point (support: q_i <= 1 + tau; zero
# pre-activation: |w_j.x_i| <= tau ||w_j|| ||x_i||; zero neuron: ||(w_j, v_j)|| <= tau ||theta||)
_LADDER = (0.0, 1e-12, 1e-9, 1e-6, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.2, 0.3)
_EXACT_TOL = 1e-9        # support / zero tolerances at a polished point (exact there up to rounding)
_POLISH_TOL = 1e-10      # a polished point must have a KKT residual below this
_MAX_RAYS = 1024         # Clarke freedom of one sample: 2^|zero pre-activations| extreme rays, at most this many
_RADII = (1.0, 0.25, 0.0625)   # certificates are sought at eps times these radii


@dataclass(frozen=True)
class Certificate:
    """A feasible point theta (every margin >= 1, recomputed with net.forward) within `distance` <= `radius` of the
    analysed point and with a smaller norm. `family` holds the certificates found at the smaller radii."""

    theta: np.ndarray
    norm_sq: float
    distance: float
    min_margin: float
    gain: float            # ||theta~||^2 - ||theta'||^2 > 0
    radius: float
    method: str
    family: tuple = ()

    def __repr__(self):
        return (f"Certificate(norm_sq={self.norm_sq:.12g}, distance={self.distance:.3g} <= {self.radius:.3g}, "
                f"min_margin={self.min_margin:.17g}, gain={self.gain:.3g}, method={self.method!r}, "
                f"family of {len(self.family)})")


@dataclass(frozen=True)
class Report:
    """The analysis of one (limit) point. See the module docstring for the verdicts and their certificates.

    theta_tilde: the analysed point, margin exactly 1 — the polished KKT point when polishing succeeded, else
    theta_raw = theta (min_i q_i)^(-1/2). norm_sq = ||theta_tilde||^2; kkt_residual = min ||theta~ - sum_i
    lambda_i g_i|| / ||theta~|| over lambda >= 0 on the support and g_i in the Clarke subdifferential of q_i;
    multipliers = that lambda (zero off the support); support = indices with q_i = 1 (within 1e-9).
    certificate: for "not_local" only (else None). global_value = ||theta*||^2 as computed (the convex program's
    primal value for ReLU, the SVM for linear nets; None when not computed); global_lower = the certified lower bound
    the "global" verdict uses; gap = norm_sq / global_value - 1. pattern: (n, width) sign of w_j . x_i at theta~ in
    {-1, 0, 1} (0 = zero within 1e-9 relative, or a zero neuron). dual_value = max_{||u||<=1} |lambda^T (Xu)_+|
    with lambda_i = y_i multipliers_i (ReLU; <= 1 is WP Thm 3's certificate). local_condition: VSS Thm 4.3's
    hypothesis holds at theta~. polish_distance = ||theta~ - theta_raw||. per_layer: (LayerReport of layer 1,
    LayerReport of layer 2), VSS Problem (4) for each layer of theta~ with the other fixed.
    """

    verdict: str
    theta_tilde: np.ndarray
    norm_sq: float
    kkt_residual: float
    multipliers: np.ndarray
    support: np.ndarray
    certificate: Certificate | None
    global_value: float | None
    gap: float | None
    pattern: np.ndarray
    per_layer: tuple
    evidence: str
    theta_raw: np.ndarray = field(repr=False)
    raw_norm_sq: float = field(repr=False)
    raw_kkt_residual: float = field(repr=False)
    polished: bool = field(repr=False)
    polish_distance: float = field(repr=False)
    margins: np.ndarray = field(repr=False)
    local_condition: bool = field(repr=False)
    dual_value: float | None = field(repr=False)
    global_lower: float | None = field(repr=False)
    eps: float = field(repr=False)

    @property
    def normalized_margin(self):
        """gamma = 1 / ||theta~||^2 (depth 2, margin 1)."""
        return 1.0 / self.norm_sq

    def __str__(self):
        return f"verdict: {self.verdict}\n{self.evidence}"


# ------------------------------------------------------------------------------------------------------------
# the model, in numpy (the certificates are re-checked with net.forward)

class _Model:
    def __init__(self, net, X, y):
        (self.k, self.d), _ = net.layer_shapes
        self.net, self.X, self.y = net, X, y
        self.n = X.shape[0]
        self.relu = net.activation == "relu"
        self.nw = self.k * self.d
        self.xnorm = np.linalg.norm(X, axis=1)

    @cached_property
    def cells(self):
        """The activation patterns of X's cells, enumerated once for the convex program, the dual check and the
        per-layer problem."""
        return arrangements(self.X)

    def unpack(self, theta):
        return theta[:self.nw].reshape(self.k, self.d), theta[self.nw:]

    def pack(self, W, v):
        return np.concatenate([np.ravel(W), v])

    def pre(self, theta):
        return self.X @ self.unpack(theta)[0].T

    def act(self, h):
        return np.maximum(h, 0.0) if self.relu else h

    def margins(self, theta):
        W, v = self.unpack(theta)
        return self.y * (self.act(self.X @ W.T) @ v)

    def margins_jac(self, theta):
        W, v = self.unpack(theta)
        h = self.X @ W.T
        s = (h > 0).astype(float) if self.relu else np.ones_like(h)
        dW = (self.y[:, None, None] * (s * v)[:, :, None] * self.X[:, None, :]).reshape(self.n, self.nw)
        return np.hstack([dW, self.y[:, None] * self.act(h)])

    def checked_margins(self, theta):
        return self.y * self.net.forward(theta, self.X)[:, 0]

    def neuron_norms(self, theta):
        W, v = self.unpack(theta)
        return np.sqrt(np.sum(W**2, axis=1) + v**2)

    def cosines(self, theta):
        """w_j . x_i / (||w_j|| ||x_i||), 0 where either is zero."""
        W, _ = self.unpack(theta)
        h = self.X @ W.T
        scale = np.outer(self.xnorm, np.linalg.norm(W, axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(scale > 0, h / np.where(scale > 0, scale, 1.0), 0.0)


# ------------------------------------------------------------------------------------------------------------
# KKT residual: theta = sum_i lambda_i g_i, g_i in the Clarke subdifferential of q_i, lambda >= 0 on the support.
# At a zero pre-activation (i, j) the w_j-block of g_i is s y_i v_j x_i with s in [0, 1] (the v_j-block is 0); the
# cone {lambda_i g_i} is generated by the 2^|Z_i| vertex choices of s, so the fit is one non-negative least-squares
# problem (exact active set, machine precision).

def _nnls(A, b):
    """min ||A z - b|| over z >= 0: Lawson-Hanson, with BVLS as the fallback when it hits its iteration cap."""
    try:
        return nnls(A, b, maxiter=50 * A.shape[1])[0]
    except RuntimeError:
        return lsq_linear(A, b, bounds=(0.0, np.inf), method="bvls", tol=1e-15).x


def _kkt_fit(m, theta, support_tol=_EXACT_TOL, zero_tol=_EXACT_TOL, rows=slice(None)):
    """(relative residual, lambda (n,), support indices, exact) — exact is False when a sample touches so many
    surfaces that only a subset of the Clarke vertices was used (the residual is then an upper bound). rows: the
    parameters whose stationarity is fitted (one layer's: the KKT conditions of the per-layer problem)."""
    norm = np.linalg.norm(theta[rows])
    q = m.margins(theta)
    support = np.flatnonzero(q <= 1.0 + support_tol)
    W, v = m.unpack(theta)
    h = m.X @ W.T
    zero = (np.abs(m.cosines(theta)) <= zero_tol) if m.relu else np.zeros(h.shape, bool)
    cols, owner, exact = [], [], True
    for i in support:
        a = ((h[i] > 0) & ~zero[i]).astype(float) if m.relu else np.ones(m.k)
        Wpart = (m.y[i] * v * a)[:, None] * m.X[i][None, :]
        vpart = m.y[i] * np.where(zero[i], 0.0, m.act(h[i]))
        free = np.flatnonzero(zero[i] & (v != 0)) if m.xnorm[i] > 0 else np.zeros(0, int)
        if 2 ** len(free) <= _MAX_RAYS:
            subsets = [free[np.array(bits, bool)] for bits in itertools.product((0, 1), repeat=len(free))]
        else:   # inner approximation of the cone: the residual is an upper bound
            exact = False
            subsets = [free[:0], free] + [free[[t]] for t in range(len(free))] + \
                [np.delete(free, t) for t in range(len(free))]
        for sub in subsets:
            Wp = Wpart.copy()
            Wp[sub] += (m.y[i] * v[sub])[:, None] * m.X[i][None, :]
            cols.append(m.pack(Wp, vpart))
            owner.append(i)
    lam = np.zeros(m.n)
    if not cols or norm == 0:
        return 1.0, lam, support, exact
    A = np.array(cols).T[rows]
    z = _nnls(A, theta[rows])
    np.add.at(lam, owner, z)
    return float(np.linalg.norm(theta[rows] - A @ z) / norm), lam, support, exact


def kkt_residual(net, data, theta):
    """The relative KKT residual of (P) at theta normalised to margin 1, with its multipliers and support
    (tolerance 1e-9 for the support and for zero pre-activations)."""
    m, theta = _setup(net, data, theta)
    return _kkt_fit(m, _normalise(m, theta))[:3]


# ------------------------------------------------------------------------------------------------------------
# polishing: fix the support S, the signs of w_j.x_i on S and the zero neurons read off the late point, and solve
# the KKT system of that pattern by Levenberg-Marquardt (KKT points of linear nets and of neurons sharing a pattern
# form manifolds, where the Jacobian is singular):
#     w_j = v_j sum_{i in S} y_i x_i (lambda_i a_ij + mu_ij),   v_j = sum_{i in S} lambda_i y_i a_ij w_j.x_i,
#     y_i sum_j v_j a_ij w_j.x_i = 1 (i in S),                   w_j.x_i = 0 on the zero pairs (mu_ij free there).

def _read_pattern(m, theta, tau, tau_neuron):
    q = m.margins(theta)
    support = np.flatnonzero(q <= 1.0 + tau)
    if m.relu:
        signs = np.sign(m.pre(theta)).astype(np.int8)
        signs[np.abs(m.cosines(theta)) <= tau] = 0
    else:
        signs = np.ones((m.n, m.k), np.int8)
    keep = m.neuron_norms(theta) > tau_neuron * np.linalg.norm(theta)
    return support, signs, keep


class _System:
    def __init__(self, m, support, signs, keep):
        self.m, self.S, self.K = m, np.asarray(support), np.flatnonzero(keep)
        Z = np.argwhere(signs[np.ix_(self.S, self.K)] == 0) if m.relu else np.zeros((0, 2), int)
        self.zi, self.zj = Z[:, 0], Z[:, 1]          # positions in S and in K
        self.Z = [(int(self.S[a]), int(self.K[b])) for a, b in Z]
        self.A = (signs[np.ix_(self.S, self.K)] > 0).astype(float)   # a_ij on S x K
        self.XS, self.yS = m.X[self.S], m.y[self.S]
        nK, d, nS = len(self.K), m.d, len(self.S)
        self.o_v, self.o_l = nK * d, nK * (d + 1)
        self.o_mu = self.o_l + nS
        self.size = self.o_mu + len(self.Z)
        eye = np.arange(nK * d)
        self.w_rows = eye.reshape(nK, d)

    def split(self, z):
        nK, d = len(self.K), self.m.d
        return (z[:self.o_v].reshape(nK, d), z[self.o_v:self.o_l], z[self.o_l:self.o_mu], z[self.o_mu:])

    def theta(self, z):
        W, v = np.zeros((self.m.k, self.m.d)), np.zeros(self.m.k)
        Wk, vk, _, _ = self.split(z)
        W[self.K], v[self.K] = Wk, vk
        return self.m.pack(W, v)

    def residual(self, z):
        W, v, lam, mu = self.split(z)
        A, XS, yS, zi, zj = self.A, self.XS, self.yS, self.zi, self.zj
        nK, nS, nZ = len(self.K), len(self.S), len(zi)
        C = lam[:, None] * A
        M = np.zeros_like(A)
        M[zi, zj] = mu
        G = ((yS[:, None] * (C + M)).T @ XS)                    # (nK, d): g_j
        H = XS @ W.T                                            # (nS, nK)
        yAH = yS[:, None] * A * H
        F = np.concatenate([(W - v[:, None] * G).ravel(), v - lam @ yAH, yAH @ v - 1.0, H[zi, zj]])
        J = np.zeros((self.size, self.size))
        ov, ol, om = self.o_v, self.o_l, self.o_mu
        J[:ov, :ov] = np.eye(ov)
        J[self.w_rows, ov + np.arange(nK)[:, None]] = -G
        J[:ov, ol:om] = -(v[:, None, None] * (yS[None, :] * A.T)[:, None, :] * XS.T[None, :, :]).reshape(ov, nS)
        if nZ:
            J[self.w_rows[zj], om + np.arange(nZ)[:, None]] = -(v[zj] * yS[zi])[:, None] * XS[zi]
        rv = ov + np.arange(nK)
        J[rv[:, None], self.w_rows] = -(((lam * yS)[:, None] * A).T @ XS)
        J[rv, rv] = 1.0
        J[ov:ol, ol:om] = -yAH.T
        J[ol:om, :ov] = (yS[:, None, None] * (v[None, :] * A)[:, :, None] * XS[:, None, :]).reshape(nS, ov)
        J[ol:om, ov:ol] = yAH
        if nZ:
            J[om + np.arange(nZ)[:, None], self.w_rows[zj]] = XS[zi]
        return F, J

    def start(self, theta):
        W, v = self.m.unpack(theta)
        z = np.concatenate([W[self.K].ravel(), v[self.K], np.zeros(self.size - self.o_l)])
        if self.size > self.o_l:   # multipliers: least squares of the stationarity rows, linear in (lambda, mu)
            F, J = self.residual(z)
            B = J[:self.o_l, self.o_l:]
            z[self.o_l:] = np.linalg.lstsq(B, -F[:self.o_l], rcond=None)[0]
        return z


def _levenberg_marquardt(system, z, max_iter=100):
    """Levenberg-Marquardt with damping mu = c ||F||^2 (Yamashita & Fukushima): quadratic convergence to a zero
    of F also where the zeros form a manifold (the Jacobian is then singular on it and nearly so near it)."""
    F, J = system.residual(z)
    nf = np.linalg.norm(F)
    c = 1.0
    eye = np.eye(len(z))
    for _ in range(max_iter):
        if nf <= 1e-15 * max(1.0, np.linalg.norm(z)):
            break
        JtJ, g = J.T @ J, J.T @ F
        for _ in range(30):
            mu = c * nf**2
            try:
                step = -np.linalg.solve(JtJ + mu * eye, g) if mu > 0 else -np.linalg.lstsq(J, F, rcond=None)[0]
            except np.linalg.LinAlgError:
                step = -np.linalg.lstsq(J, F, rcond=None)[0]
            F_new, J_new = system.residual(z + step)
            nf_new = np.linalg.norm(F_new)
            if nf_new < nf:
                c = max(c / 10.0, 1e-8)
                break
            c *= 10.0
        else:
            break
        z, F, J, nf = z + step, F_new, J_new, nf_new
    return z, nf


def _solve_pattern(m, theta_raw, support, signs, keep, max_corrections=12):
    """Polish for one pattern, with active-set corrections: a negative multiplier drops the sample from the
    support; mu_ij outside [0, lambda_i] moves the pair to the side it asks for; a pair that crosses its surface is
    put on it; a neuron dead on the support, or driven to zero, is removed (v_j = 0 and then w_j = 0 at any KKT
    point). Returns (theta, number of corrections) or (None, reason)."""
    support, signs, keep = np.array(support), signs.copy(), keep.copy()
    for n_corr in range(max_corrections + 1):
        if m.relu:
            keep &= np.any(signs[support] > 0, axis=0) if len(support) else False
        if len(support) == 0 or not np.any(keep):
            return None, "empty pattern"
        system = _System(m, support, signs, keep)
        z, nf = _levenberg_marquardt(system, system.start(theta_raw))
        if not nf <= 1e-12 * max(1.0, np.linalg.norm(z)):
            return None, f"Newton residual {nf:.2g}"
        Wk, vk, lam, mu = system.split(z)
        tol = 1e-9 * max(1.0, np.max(np.abs(lam), initial=0.0))
        theta = system.theta(z)
        scale = np.linalg.norm(theta)
        tiny = np.sqrt(np.sum(Wk**2, axis=1) + vk**2) <= 1e-8 * scale
        if np.any(tiny):
            keep[system.K[tiny]] = False
            continue
        if np.any(lam < -tol):
            support = support[lam >= -tol]
            continue
        changed = False
        for zz, (i, j) in enumerate(system.Z):
            li = lam[int(np.searchsorted(system.S, i))]
            if mu[zz] < -tol:
                signs[i, j], changed = -1, True
            elif mu[zz] > li + tol:
                signs[i, j], changed = 1, True
        if m.relu and not changed:
            h = m.pre(theta)
            hscale = np.outer(m.xnorm, np.linalg.norm(m.unpack(theta)[0], axis=1))
            for i in support:
                for j in system.K:
                    if signs[i, j] != 0 and signs[i, j] * h[i, j] <= 1e-12 * hscale[i, j]:
                        signs[i, j], changed = 0, True
        if changed:
            continue
        q = m.margins(theta)
        if np.min(q) < 1 - 1e-9:
            return None, "a margin off the support fell below 1"
        return theta / np.sqrt(np.min(q)), n_corr
    return None, "active-set corrections did not settle"


_NEURON_LADDER = (0.0, 1e-6, 1e-3, 1e-2, 0.03, 0.1, 0.2, 0.3, 0.4, 0.5)


def _polish(m, theta_raw, radius):
    """The KKT point closest to theta_raw among the patterns read with the thresholds of _LADDER (support and
    zero pre-activations) and _NEURON_LADDER (zero neurons): (theta, distance, description) or None."""
    seen, best = set(), None
    norm = np.linalg.norm(theta_raw)
    for tau in _LADDER:
        for tau_n in _NEURON_LADDER:
            support, signs, keep = _read_pattern(m, theta_raw, tau, tau_n)
            key = (tuple(support), signs.tobytes(), keep.tobytes())
            if key in seen:
                continue
            seen.add(key)
            theta, info = _solve_pattern(m, theta_raw, support, signs, keep)
            if theta is None:
                continue
            res = _kkt_fit(m, theta)[0]
            dist = np.linalg.norm(theta - theta_raw)
            if res < _POLISH_TOL and dist <= radius * norm and (best is None or dist < best[1]):
                best = (theta, dist, f"thresholds {tau:g} (support, zero pre-activations) and {tau_n:g} (zero "
                                     f"neurons), {info} active-set corrections")
    return best


# ------------------------------------------------------------------------------------------------------------
# certificates of non-local optimality

def _dual_directions(m, lam, rng, n_random=8):
    """Unit u and sign s with s sum_i lam_i y_i relu(u.x_i) > 1: a small neuron (w, v) = c (u, s) then gains more
    margin than it costs (the infeasible dual directions of the convex-geometry paper, VSS Thm 3.2's competitor).
    Found by the fixed point u <- normalise(sum_{i: u.x_i > 0} s lam_i y_i x_i) from the samples and random
    directions. Sorted by value, best first."""
    starts = [m.X[i] / m.xnorm[i] for i in range(m.n) if m.xnorm[i] > 0 and lam[i] > 0]
    starts += list(rng.normal(size=(n_random, m.d)))
    found = {}
    for s in (1.0, -1.0):
        for u in starts:
            u = u / np.linalg.norm(u)
            for _ in range(50):
                active = (m.X @ u) > 0 if m.relu else np.ones(m.n, bool)
                g = s * (lam * m.y * active) @ m.X
                ng = np.linalg.norm(g)
                if ng == 0:
                    break
                u_new = g / ng
                if np.allclose(u_new, u, atol=1e-14):
                    break
                u = u_new
            val = s * np.sum(lam * m.y * m.act(m.X @ u))
            if val > 1 + 1e-9:
                found[(s, tuple(np.round(u, 10)))] = (val, u, s)
    return sorted(found.values(), key=lambda t: -t[0])


def _starts(m, theta, lam, radius, rng, n_random):
    """Initial perturbations delta for the local search, the papers' constructions first."""
    W, v = m.unpack(theta)
    norms = m.neuron_norms(theta)
    scale = np.linalg.norm(theta)
    c = 0.5 * radius
    out = []
    zero_neurons = np.flatnonzero(norms <= 1e-9 * scale)
    if len(zero_neurons):   # turn on a zero neuron along an infeasible dual direction (VSS Thm 3.2)
        j = zero_neurons[0]
        for val, u, s in _dual_directions(m, lam, rng)[:6]:
            dW, dv = np.zeros_like(W), np.zeros_like(v)
            dW[j], dv[j] = c / np.sqrt(2) * u, s * c / np.sqrt(2)
            out.append((f"turn on zero neuron {j} along a dual direction (value {val:.4g} > 1)", m.pack(dW, dv)))
    if m.relu:   # tilt neurons onto samples they touch and would help (VSS Thm 4.2(2))
        cos = m.cosines(theta)
        q = m.margins(theta)
        touch = (np.abs(cos) <= _EXACT_TOL) & (q[:, None] <= 1 + _EXACT_TOL) & (norms[None, :] > 1e-9 * scale) \
            & (m.y[:, None] * v[None, :] > 0) & (m.xnorm[:, None] > 0)
        pairs = np.argwhere(touch)
        for i, j in pairs[:8]:
            dW = np.zeros_like(W)
            dW[j] = c * m.X[i] / m.xnorm[i]
            out.append((f"tilt neuron {j} onto sample {i}", m.pack(dW, np.zeros_like(v))))
        neurons = np.unique(pairs[:, 1]) if len(pairs) else []
        if len(neurons) > 1:
            for r in range(4):
                dW = np.zeros_like(W)
                for j in neurons:
                    cand = pairs[pairs[:, 1] == j, 0]
                    i = cand[rng.integers(len(cand))]
                    dW[j] = c / np.sqrt(len(neurons)) * m.X[i] / m.xnorm[i]
                out.append((f"tilt neurons {list(map(int, neurons))} onto touched samples (draw {r})",
                            m.pack(dW, np.zeros_like(v))))
    for r in range(n_random):
        delta = rng.normal(size=theta.size)
        out.append((f"random perturbation {r}", c * delta / np.linalg.norm(delta)))
    return out


def _local_min(m, theta, delta0, radius):
    """SLSQP on min ||theta + delta||^2 s.t. q(theta + delta) >= 1, ||delta|| <= radius, in delta."""
    r2 = (radius * (1 - 1e-6)) ** 2
    cons = [dict(type="ineq", fun=lambda d: m.margins(theta + d) - 1.0, jac=lambda d: m.margins_jac(theta + d)),
            dict(type="ineq", fun=lambda d: np.array([r2 - d @ d]), jac=lambda d: -2.0 * d[None, :])]
    res = minimize(lambda d: (2.0 * theta @ d + d @ d, 2.0 * theta + 2.0 * d), delta0, jac=True, method="SLSQP",
                   constraints=cons, options=dict(maxiter=300, ftol=1e-16))
    return res.x


def _restore(m, theta, band=1e-7):
    """Put the nearly active margins (q_i < 1 + band) exactly on 1 by Gauss-Newton with minimal-norm steps: SLSQP
    stops a little infeasible (~1e-8), and restoring feasibility by scaling would cost more than the second-order
    gains of a small radius."""
    for _ in range(8):
        q = m.margins(theta)
        act = q < 1.0 + band
        F = q[act] - 1.0
        if not np.any(act) or np.max(np.abs(F)) <= 1e-15:
            break
        theta = theta - np.linalg.lstsq(m.margins_jac(theta)[act], F, rcond=None)[0]
    return theta


def _gain_min(theta, residual, r):
    """Gains a move of length r could owe to a stationarity residual (absolute) or to rounding: not evidence."""
    return max(1e-13 * (theta @ theta), 20.0 * residual * r)


def _verify(m, theta, cand, radius, gain_min, method, block=None):
    """A Certificate when cand (made feasible by a scaling, which only costs rounding) passes every check. block:
    the only layer cand may change (Phi is 1-homogeneous in it, so that layer alone is scaled)."""
    cand = np.array(cand, dtype=float)
    for _ in range(4):
        q = m.checked_margins(cand)
        qmin = float(np.min(q))
        if qmin >= 1.0:
            break
        if qmin <= 0:
            return None
        if block is None:
            cand = cand * np.sqrt(1.0 / qmin) * (1 + 4e-16)
        else:
            cand[block] *= (1.0 / qmin) * (1 + 4e-16)
    else:
        return None
    dist = float(np.linalg.norm(cand - theta))
    norm_sq = float(cand @ cand)
    gain = float(theta @ theta) - norm_sq
    if not (dist <= radius and gain > gain_min):
        return None
    return Certificate(theta=cand, norm_sq=norm_sq, distance=dist, min_margin=qmin, gain=gain, radius=radius,
                       method=method)


def _search(m, theta, lam, eps, residual, rng, n_random):
    """A certificate at radius eps whose construction also works at eps/4 and eps/16, or None; and the best
    certificate at radius eps alone (which does not prove non-locality on its own)."""
    abs_residual = residual * np.linalg.norm(theta)
    single = None
    for method, delta0 in _starts(m, theta, lam, eps, rng, n_random):
        delta = _local_min(m, theta, delta0, eps)
        cert = _verify(m, theta, _restore(m, theta + delta), eps, _gain_min(theta, abs_residual, eps), method)
        if cert is None:
            continue
        single = single or cert
        family, d = [], delta
        for f in _RADII[1:]:
            r = eps * f
            d = _local_min(m, theta, d * (r / max(np.linalg.norm(d), r)), r)
            c = _verify(m, theta, _restore(m, theta + d), r, _gain_min(theta, abs_residual, r), method)
            if c is None:
                break
            family.append(c)
        if len(family) == len(_RADII) - 1:
            return Certificate(**{**cert.__dict__, "family": tuple(family)}), single
    return None, single


# ------------------------------------------------------------------------------------------------------------
# the global optimum

def _ldp(G, h):
    """argmin ||u|| s.t. G u >= h (least-distance programming via NNLS, Lawson & Hanson ch. 23), None if infeasible.

    With alpha the NNLS solution of [G^T; h^T] alpha ~ e_last and r its residual, ||r||^2 = -r_last = 1 - h.alpha is
    0 exactly when the constraints are infeasible, and u = -r[:-1] / r_last. Rounding near infeasibility is caught by
    re-checking the constraints."""
    E = np.vstack([G.T, h[None, :]])
    f = np.zeros(E.shape[0])
    f[-1] = 1.0
    r = E @ _nnls(E, f) - f
    if -r[-1] < 1e-14:
        return None
    u = -r[:-1] / r[-1]
    if np.any(h - G @ u > 1e-9 * (np.abs(G) @ np.abs(u) + np.abs(h))):
        return None
    return u


def _svm_norm(X, y):
    """min ||u|| s.t. y_i u.x_i >= 1; None if the data are not linearly separable."""
    u = _ldp(y[:, None] * X, np.ones(len(y)))
    return None if u is None else float(np.linalg.norm(u))


def _global(m, compute):
    """(||theta*||^2 or None, certified lower bound on ||theta*||^2 or None, note)."""
    if not compute:
        return None, None, "global optimum not computed (global_opt=False)"
    if not m.relu:
        u = _svm_norm(m.X, m.y)
        if u is None:
            return None, None, "data not linearly separable"
        return 2.0 * u, 2.0 * u, "linear net: ||theta*||^2 = 2 ||u*|| with u* the hard-margin SVM (VSS Thm 3.1)"
    try:
        from .convex import convex_max_margin
    except ImportError:
        return None, None, "fastflow.convex is not available: global optimum not computed"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cvx = convex_max_margin(m.X, m.y, patterns=m.cells)
        except RuntimeError as err:   # solver failure: no global value, the rest of the analysis stands
            return None, None, f"convex program failed ({err}): global optimum not computed"
    note = "ReLU: ||theta*||^2 = 2 x the convex program over all arrangements (convex-geometry paper Prop. 2)"
    for w in caught:
        note += f"; convex solver warning: {w.message}"
    lower = 2.0 * float(getattr(cvx, "dual_value", cvx.value))
    if not np.isfinite(lower):
        lower = None
    n_neurons = len(getattr(cvx, "neurons", ()) or ())
    if n_neurons > m.k:
        note += (f"; the solver's solution has {n_neurons} neurons > width {m.k} (optimal solutions need not be "
                 f"unique; if none fits, the optimum for this width is larger)")
    return 2.0 * float(cvx.value), lower, note


def _dual_value(m, lam):
    """max_{||u|| <= 1} |sum_i lam_i y_i relu(u.x_i)| by fastflow.convex.dual_feasible (convex-geometry paper
    Thm 3: <= 1 at a KKT point certifies a global optimum); None when unavailable."""
    try:
        from .convex import dual_feasible
    except ImportError:
        return None
    out = dual_feasible(m.X, m.y * lam, m.cells)
    return float(out[0] if isinstance(out, tuple) else out)


# ------------------------------------------------------------------------------------------------------------
# per-layer max-margin (VSS Problem (4)): min 1/2 ||u||^2 over one layer, the other fixed, s.t. q_i >= 1. The margins
# are linear in v, and linear in W on each closed activation pattern A (a_ij = 1[w_j.x_i >= 0], imposed by
# (2 a_ij - 1) w_j.x_i >= 0; a zero pre-activation contributes 0 either way), so the problem is a union of polyhedra
# with a strictly convex objective: one least-distance program each. The patterns around theta~ (every side of each
# zero pre-activation) cover a neighbourhood of it: local optimality. Every u lies in the closure of a cell of X, so
# the combinations of cells, one per neuron, cover the whole feasible set: global optimality.

_MAX_LAYER_PROGRAMS = 4096   # polyhedra per question (around theta~, or everywhere)
_LAYER_NAMES = {1: "layer 1 (W, v fixed)", 2: "layer 2 (v, W fixed)"}


@dataclass(frozen=True)
class LayerReport:
    """VSS Problem (4) for one layer of theta~ with the other layer fixed: min 1/2 ||u||^2 s.t. every margin of theta~
    with this layer replaced by u is >= 1.

    layer: 1 (W, the hidden weights) or 2 (v, the output weights). verdict, with the meanings of Report's for this
    problem: "global" (norm_sq within global_rtol of `optimum`), "local" (theta~'s layer is optimal on every
    polyhedron the activation patterns around it cut the feasible set into), "not_local" (`certificate`), "kkt_only"
    (KKT, undecided: more than 4096 patterns around theta~, or a better point there failed the checks), "not_kkt"
    (kkt_residual above kkt_tol). kkt_residual: the relative residual of this layer's stationarity, with the Clarke
    freedom of (P). norm_sq: ||u~||^2. optimum: min ||u||^2 of the problem, None when not computed (first layer of a
    ReLU net: global_opt=False, or more than 4096 combinations of cells). certificate: theta' differing from theta~
    in this layer only, feasible and of smaller norm: within eps of theta~ for "not_local" (with the same
    construction at eps/4 and eps/16 in `family`), the optimum (radius inf) for "local" when that is not global;
    else None. evidence: one line, also in the Report's text.
    """

    layer: int
    verdict: str
    kkt_residual: float
    norm_sq: float
    optimum: float | None
    certificate: Certificate | None
    evidence: str = field(repr=False)


def _layer1_program(m, v, J, A):
    """(G, h) of the first layer's problem on the pattern A (n, len(J)) of the neurons J (those with v_j != 0; the
    other w_j do not enter the margins, so their optimum is 0), in the coordinates of ravel(W)."""
    G = np.zeros((m.n, m.k, m.d))
    G[:, J] = (m.y[:, None] * v[J] * A)[:, :, None] * m.X[:, None, :]
    blocks = [G.reshape(m.n, m.nw)]
    if m.relu:
        Xs = m.X[m.xnorm > 0]
        S = np.zeros((len(Xs), len(J), m.k, m.d))
        S[:, np.arange(len(J)), J] = (2.0 * A[m.xnorm > 0] - 1.0)[:, :, None] * Xs[:, None, :]
        blocks.append(S.reshape(-1, m.nw))
    G = np.vstack(blocks)
    h = np.zeros(len(G))
    h[:m.n] = 1.0
    return G, h


def _layer_programs(m, theta, layer, global_opt):
    """(around, everywhere, why): the (G, h) of the polyhedra around theta~ and of all of them, each a list, or None
    beyond _MAX_LAYER_PROGRAMS (everywhere also without global_opt, for the first layer of a ReLU net)."""
    W, v = m.unpack(theta)
    if layer == 2:
        one = [(m.y[:, None] * m.act(m.X @ W.T), np.ones(m.n))]
        return one, one, "convex: an SVM in v on the hidden features"
    J = np.flatnonzero(v)
    if not m.relu:
        one = [_layer1_program(m, v, J, np.ones((m.n, len(J))))]
        return one, one, "convex: the margins are linear in W"
    zero = np.argwhere((np.abs(m.cosines(theta)[:, J]) <= _EXACT_TOL) & (m.xnorm[:, None] > 0))
    around = None
    if 2 ** len(zero) <= _MAX_LAYER_PROGRAMS:
        around = []
        base = m.pre(theta)[:, J] > 0
        for bits in itertools.product((False, True), repeat=len(zero)):
            A = base.copy()
            A[zero[:, 0], zero[:, 1]] = bits
            around.append(_layer1_program(m, v, J, A))
    if not global_opt or len(m.cells) ** len(J) > _MAX_LAYER_PROGRAMS:
        return around, None, ""
    combos = itertools.product(range(len(m.cells)), repeat=len(J))
    everywhere = [_layer1_program(m, v, J, m.cells[list(c)].T) for c in combos]
    return around, everywhere, f"least over all {len(everywhere)} combinations of cells, one per neuron with v_j != 0"


def _layer_min(programs):
    """(min ||u||^2, argmin) over the feasible ones of the least-distance programs, or None."""
    best = None
    for G, h in programs:
        u = _ldp(G, h)
        if u is not None and (best is None or u @ u < best[0]):
            best = (float(u @ u), u)
    return best


def _layer_segment(m, theta, block, u, eps, abs_residual):
    """Certificates at eps, eps/4, eps/16 on the segment from theta~'s layer towards u, the better optimum of a
    polyhedron around theta~: by convexity the segment stays feasible and its norm decreases from theta~ on."""
    step = u - theta[block]
    certs = []
    for f in _RADII:
        r = eps * f
        cand = theta.copy()
        cand[block] += min(1.0, r * (1 - 1e-9) / np.linalg.norm(step)) * step
        cert = _verify(m, theta, cand, r, _gain_min(theta, abs_residual, r),
                       "towards the optimum of an activation-pattern polyhedron around theta~", block)
        if cert is None:
            return None
        certs.append(cert)
    return Certificate(**{**certs[0].__dict__, "family": tuple(certs[1:])})


def _layer_report(m, theta, layer, eps, kkt_tol, rtol, global_opt):
    block = slice(0, m.nw) if layer == 1 else slice(m.nw, None)
    u = theta[block]
    norm_sq = float(u @ u)
    res = _kkt_fit(m, theta, rows=block)[0]
    around, everywhere, why = _layer_programs(m, theta, layer, global_opt)
    best = None if everywhere is None else _layer_min(everywhere)
    optimum = None if best is None else best[0]
    cert = None
    if res > kkt_tol:
        verdict, text = "not_kkt", f"KKT residual {res:.3g} > {kkt_tol:g}"
    elif optimum is not None and norm_sq <= optimum * (1 + rtol):
        verdict, text = "global", f"||u~||^2 = {norm_sq:.10g} is the optimum {optimum:.10g} ({why})"
    else:
        near = None if around is None else _layer_min(around)
        if near is None:
            verdict = "kkt_only"
            text = "KKT; " + (f"more than {_MAX_LAYER_PROGRAMS} activation patterns around theta~" if around is None
                              else "no activation-pattern polyhedron around theta~ solved")
        elif norm_sq <= near[0] * (1 + rtol):
            verdict = "local"
            text = (f"||u~||^2 = {norm_sq:.10g} is optimal on the {len(around)} activation-pattern polyhedra around "
                    f"theta~")
            if optimum is not None:
                cand = theta.copy()
                cand[block] = best[1]
                cert = _verify(m, theta, cand, np.inf, _gain_min(theta, 0.0, 0.0), "the per-layer optimum", block)
                text += f"; not global: the optimum is {optimum:.10g} ({why})"
        else:
            cert = _layer_segment(m, theta, block, near[1], eps, res * np.sqrt(norm_sq))
            verdict = "kkt_only" if cert is None else "not_local"
            text = (f"a pattern polyhedron around theta~ has the smaller optimum {near[0]:.10g} < {norm_sq:.10g}"
                    + ("" if cert is None else f": feasible theta' at distance {cert.distance:.3g} <= {eps:g} with "
                       f"||u'||^2 = {norm_sq - cert.gain:.10g}, only this layer changed"))
    return LayerReport(layer=layer, verdict=verdict, kkt_residual=float(res), norm_sq=norm_sq, optimum=optimum,
                       certificate=cert, evidence=f"{_LAYER_NAMES[layer]}: {verdict} — {text}")


# ------------------------------------------------------------------------------------------------------------

def _setup(net, data, theta):
    if not getattr(net, "is_homogeneous", False):
        raise ValueError("analyze needs a homogeneous network (no bias, no skip connection)")
    if net.depth != 2 or net.degree != 2:
        raise ValueError(f"analyze supports two-layer networks; got depth {net.depth}")
    if net.activation not in ("relu", "linear"):
        raise ValueError(f"analyze supports ReLU and linear activations; got {net.activation!r}")
    if net.d_out != 1:
        raise ValueError(f"analyze needs a binary classifier with d_out = 1; got d_out = {net.d_out}")
    (k, d), (o, k2) = net.layer_shapes
    maps = getattr(net, "maps", None)
    dense = net.n_params == k * d + o * k2 and (maps is None or all(
        np.array_equal(np.ravel(g), np.arange(1, np.size(g) + 1)) for g in maps))
    if not dense:
        raise ValueError("analyze supports fully connected two-layer networks (no shared or structurally zero "
                         "weights)")
    data = as_dataset(data)
    if data.d != net.d_in:
        raise ValueError(f"X has {data.d} columns but the network has d_in = {net.d_in}")
    y = data.y.reshape(data.n, -1)
    if y.shape[1] != 1:
        raise ValueError(f"analyze needs binary labels +-1 (one per sample); got targets of shape {data.y.shape} "
                         f"(square-loss regression targets are not supported)")
    y = np.ascontiguousarray(y[:, 0])
    if not np.all(np.abs(y) == 1.0):
        raise ValueError("analyze needs binary labels +1 or -1 (square-loss regression targets are not supported)")
    theta = net.check_theta(theta)
    return _Model(net, data.X, y), theta


def _normalise(m, theta):
    q = m.checked_margins(theta)
    qmin = float(np.min(q))
    if not qmin > 0:
        raise ValueError(f"min_i y_i Phi(theta; x_i) = {qmin:.6g} <= 0: theta does not classify every sample, so it "
                         f"cannot be normalised to margin 1")
    W, v = m.unpack(theta)
    terms = np.abs(m.act(m.X @ W.T)) @ np.abs(v)   # size of the terms that cancel into Phi(x_i)
    if np.any(q <= 1e-9 * terms):
        i = int(np.argmax(terms / np.maximum(q, 1e-300)))
        raise ValueError(f"the margin of sample {i} ({q[i]:.3g}) is at the rounding level of its terms "
                         f"({terms[i]:.3g}): theta cannot be normalised to margin 1 reliably")
    return theta / np.sqrt(qmin)


def _fmt(x):
    return np.array2string(np.asarray(x), precision=6, suppress_small=True, max_line_width=200)


def analyze(net, data, theta, *, eps=1e-2, polish=True, rng=0, kkt_tol=1e-8, global_rtol=1e-6, global_opt=True,
            n_random=6, polish_radius=0.5):
    """Classify theta (typically `traj.theta` of a long flow) as a point of the max-margin problem (P).

    eps: radius of the non-local certificates (in the normalised scale, margin 1). polish: solve the KKT system of
    the late point's pattern to machine precision first (recommended: the direction converges like 1/log t).
    kkt_tol: largest relative KKT residual accepted as KKT (also per layer). global_rtol: ||theta~||^2 <= (1 +
    global_rtol) x the optimum counts as global (also per layer). global_opt: compute the optimum (SVM for linear
    nets; `fastflow.convex` for ReLU, which enumerates every cell of X's arrangement) and, for ReLU, the first
    layer's per-layer optimum (at most 4096 combinations of cells, one per neuron with v_j != 0). n_random: random
    starts of the local search (after the papers' constructions). rng: seed or numpy Generator of those starts.
    polish_radius: a polished point further than this times ||theta_raw|| from theta_raw is not used.

    Returns a Report; raises ValueError outside the scope (non-homogeneous, not a fully connected two-layer net,
    d_out != 1, labels not +-1) and when some margin y_i Phi(theta; x_i) is <= 0 (theta cannot be normalised).
    """
    eps = real_scalar("eps", eps, low=0.0, low_open=True)
    kkt_tol = real_scalar("kkt_tol", kkt_tol, low=0.0)
    global_rtol = real_scalar("global_rtol", global_rtol, low=0.0)
    polish_radius = real_scalar("polish_radius", polish_radius, low=0.0)
    n_random = positive_int("n_random", n_random, minimum=0)
    m, theta = _setup(net, data, theta)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    lines = []

    theta_raw = _normalise(m, theta)
    raw_res, raw_lam, raw_support, raw_exact = _kkt_fit(m, theta_raw)
    point, polished, polish_dist = theta_raw, False, 0.0
    if polish:
        best = _polish(m, theta_raw, polish_radius)
        if best is not None:
            point, polish_dist, how = best
            polished = True
            lines.append(f"polished: KKT point of the pattern read with {how}, at distance "
                         f"{polish_dist:.3g} from theta_raw (||theta_raw||^2 = {theta_raw @ theta_raw:.10g}, raw KKT "
                         f"residual {raw_res:.3g})")
        else:
            lines.append(f"polishing failed for every pattern read off theta (raw KKT residual {raw_res:.3g}); "
                         f"analysing the raw normalised point")
    if polished:
        res, lam, support, exact = _kkt_fit(m, point)
    else:
        res, lam, support, exact = raw_res, raw_lam, raw_support, raw_exact
    norm_sq = float(point @ point)
    q = m.margins(point)
    cos = m.cosines(point)
    pattern = np.sign(m.pre(point)).astype(np.int8)
    pattern[np.abs(cos) <= _EXACT_TOL] = 0
    norms = m.neuron_norms(point)
    lines.append(f"||theta~||^2 = {norm_sq:.12g} (normalized margin {1 / norm_sq:.10g}); support {support.tolist()}; "
                 f"multipliers {_fmt(lam[support])}; KKT residual {res:.3g}"
                 + ("" if exact else " (upper bound: a sample touches many surfaces)"))
    zero_neurons = np.flatnonzero(norms <= 1e-9 * np.sqrt(norm_sq))
    if len(zero_neurons):
        lines.append(f"zero neurons: {zero_neurons.tolist()}")

    gv, lower, gnote = _global(m, global_opt)
    gap = None if gv is None else norm_sq / gv - 1.0
    lines.append(gnote if gv is None else f"{gnote}: {gv:.10g}; gap ||theta~||^2/||theta*||^2 - 1 = {gap:.3g}")
    is_kkt = res <= kkt_tol
    dual = _dual_value(m, lam) if (m.relu and global_opt) else None
    if dual is not None:
        # weak duality: for every feasible theta, 1/2 ||theta||^2 >= sum_j |v_j| ||w_j|| >= sum_i lam_i / max(1, dual)
        dual_lower = 2.0 * float(np.sum(lam)) / max(1.0, dual)
        lines.append(f"dual value of the multipliers max_(||u||<=1) |lambda^T (Xu)_+| = {dual:.6g} "
                     f"({'<= 1: dual feasible' if dual <= 1 + 1e-9 else '> 1: not dual feasible'}, convex-geometry "
                     f"paper Thm 3); certified lower bound ||theta*||^2 >= {dual_lower:.12g}")
        lower = dual_lower if lower is None else max(lower, dual_lower)
    local_condition = bool(m.relu and is_kkt and not len(zero_neurons)
                           and np.all(np.abs(cos) > _EXACT_TOL) and np.all(m.xnorm > 0))

    is_global = lower is not None and norm_sq <= lower * (1.0 + global_rtol)
    cert = None
    if is_kkt and not is_global:
        cert, single = _search(m, point, lam, eps, res, rng, n_random)
        if cert is None and single is not None:
            lines.append(f"a better feasible point exists at distance {single.distance:.3g} <= eps "
                         f"(gain {single.gain:.3g}, {single.method}) but not at eps/4 and eps/16: not a proof of "
                         f"non-locality")

    if is_global:
        verdict = "global"
        lines.append(f"global: theta~ is feasible and ||theta~||^2 = {norm_sq:.12g} is within {global_rtol:g} "
                     f"(relative) of the certified lower bound {lower:.12g} on the optimum")
    elif not is_kkt:
        verdict = "not_kkt"
        lines.append(f"not_kkt: KKT residual {res:.3g} > {kkt_tol:g}"
                     + ("" if polish else " (polish=False: a late trajectory point is KKT only up to O(1/log t))"))
    elif cert is not None:
        verdict = "not_local"
        lines.append(f"not_local: feasible theta' with ||theta' - theta~|| = {cert.distance:.3g} <= {eps:g} and "
                     f"||theta'||^2 = {cert.norm_sq:.12g} < {norm_sq:.12g} ({cert.method}); same construction "
                     f"certified at radii " + ", ".join(f"{c.radius:.3g} (gain {c.gain:.3g})" for c in cert.family))
        if local_condition:
            lines.append("WARNING: VSS Thm 4.3's condition also holds — inconsistent; please report this case")
    elif local_condition:
        verdict = "local"
        lines.append("local: KKT point with every pre-activation w_j.x_i non-zero (min |cos| = "
                     f"{np.min(np.abs(cos)):.3g}) — VSS Thm 4.3")
    else:
        verdict = "kkt_only"
        lines.append("kkt_only: KKT point, no certificate either way")
    if verdict != "not_local":
        cert = None
    per_layer = tuple(_layer_report(m, point, layer, eps, kkt_tol, global_rtol, global_opt) for layer in (1, 2))
    lines.append("per-layer max-margin (VSS Problem (4)), each layer with the other fixed:")
    lines += [f"  {lr.evidence}" for lr in per_layer]

    return Report(verdict=verdict, theta_tilde=point, norm_sq=norm_sq, kkt_residual=float(res), multipliers=lam,
                  support=support, certificate=cert, global_value=gv, gap=gap, pattern=pattern, per_layer=per_layer,
                  evidence="\n".join(lines), theta_raw=theta_raw, raw_norm_sq=float(theta_raw @ theta_raw),
                  raw_kkt_residual=float(raw_res), polished=polished, polish_distance=float(polish_dist), margins=q,
                  local_condition=local_condition, dual_value=dual, global_lower=lower, eps=eps)
