"""Step 2, polishing: the KKT point of the pattern read off a late trajectory point, to machine precision."""
from __future__ import annotations

import numpy as np

from .kkt import _kkt_fit
from .model import _LADDER, _POLISH_TOL

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

    def value(self, z):
        return self.residual(z)[0]

    def start(self, theta):
        W, v = self.m.unpack(theta)
        z = np.concatenate([W[self.K].ravel(), v[self.K], np.zeros(self.size - self.o_l)])
        if self.size > self.o_l:   # multipliers: least squares of the stationarity rows, linear in (lambda, mu)
            F, J = self.residual(z)
            B = J[:self.o_l, self.o_l:]
            z[self.o_l:] = np.linalg.lstsq(B, -F[:self.o_l], rcond=None)[0]
        return z


def _levenberg_marquardt(system, z, budget, max_iter=100, stall=10):
    """Levenberg-Marquardt with damping mu = c ||F||^2 (Yamashita & Fukushima): quadratic convergence to a zero
    of F also where the zeros form a manifold (the Jacobian is then singular on it and nearly so near it). A run
    that has not halved ||F|| in its last `stall` steps has stalled at a non-zero local minimum of ||F|| (a wrong
    pattern): it stops there rather than at max_iter. budget: a model._Budget, spent by the Jacobian's entries at
    each step."""
    F, J = system.residual(z)
    nf = np.linalg.norm(F)
    history = [nf]
    c = 1.0
    eye = np.eye(len(z))
    for _ in range(max_iter):
        if nf <= 1e-15 * max(1.0, np.linalg.norm(z)) or len(history) > stall and nf > 0.5 * history[-1 - stall] \
                or not budget.spend(J.size):
            break
        JtJ, g = J.T @ J, J.T @ F
        for _ in range(30):
            mu = c * nf**2
            try:
                step = -np.linalg.solve(JtJ + mu * eye, g) if mu > 0 else -np.linalg.lstsq(J, F, rcond=None)[0]
            except np.linalg.LinAlgError:
                step = -np.linalg.lstsq(J, F, rcond=None)[0]
            nf_new = np.linalg.norm(system.value(z + step))   # the Jacobian only for a step taken
            if nf_new < nf:
                c = max(c / 10.0, 1e-8)
                break
            c *= 10.0
        else:
            break
        z = z + step
        F, J = system.residual(z)
        nf = np.linalg.norm(F)
        history.append(nf)
    return z, nf


def _solve_pattern(m, theta_raw, support, signs, keep, budget, max_corrections=12):
    """Polish for one pattern, with active-set corrections: a negative multiplier drops the sample from the
    support; mu_ij outside [0, lambda_i] moves the pair to the side it asks for; a pair that crosses its surface is
    put on it; a neuron dead on the support, or driven to zero, is removed (v_j = 0 and then w_j = 0 at any KKT
    point). budget: polishing's model._Budget. Returns (theta, number of corrections) or (None, reason)."""
    support, signs, keep = np.array(support), signs.copy(), keep.copy()
    for n_corr in range(max_corrections + 1):
        if m.relu:
            keep &= np.any(signs[support] > 0, axis=0) if len(support) else False
        if len(support) == 0 or not np.any(keep):
            return None, "empty pattern"
        system = _System(m, support, signs, keep)
        z, nf = _levenberg_marquardt(system, system.start(theta_raw), budget)
        if budget.cut:
            return None, "budget spent"
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


def _polish(m, theta_raw, radius, budget):
    """The KKT point closest to theta_raw among the patterns read with the thresholds of _LADDER (support and
    zero pre-activations) and _NEURON_LADDER (zero neurons), in that order until polishing's budget (model._Budget)
    is spent: ((theta, distance, description) or None, the thresholds the budget cut at or None)."""
    seen, best = set(), None
    norm = np.linalg.norm(theta_raw)
    for tau in _LADDER:
        for tau_n in _NEURON_LADDER:
            support, signs, keep = _read_pattern(m, theta_raw, tau, tau_n)
            key = (tuple(support), signs.tobytes(), keep.tobytes())
            if key in seen:
                continue
            seen.add(key)
            theta, info = _solve_pattern(m, theta_raw, support, signs, keep, budget)
            if budget.cut:
                return best, (tau, tau_n)
            if theta is None:
                continue
            res = _kkt_fit(m, theta)[0]
            dist = np.linalg.norm(theta - theta_raw)
            if res < _POLISH_TOL and dist <= radius * norm and (best is None or dist < best[1]):
                best = (theta, dist, f"thresholds {tau:g} (support, zero pre-activations) and {tau_n:g} (zero "
                                     f"neurons), {info} active-set corrections")
    return best, None

