"""Step 2 for class-N nets other than the fully connected two-layer one: the KKT system of a pattern (support S,
slopes s, zero pre-activations Z on the support) solved by the same Levenberg-Marquardt, unknowns (theta, lambda_S,
mu_Z):

    theta = sum_S lambda_i g_i(theta; s) + sum_Z mu_iu (g_i(theta; s + e_u) - g_i(theta; s)),
    q_i(theta; s) = 1 (i in S),    h_iu(theta; s) = 0 ((i, u) in Z),

g_i = y_i dPhi_i/dtheta (slopes 0 on Z). g_i is affine in each single slope, so mu_iu in [0, lambda_i] is the Clarke
freedom of (i, u). The theta-Jacobian's stationarity block is the C++ model's weighted Hessian (exact, dual numbers).

Units zeroed in the start (all their weights 0, none shared with a live unit) leave the system: every path through
such a unit carries two of its zero weights, so their gradients, their Hessian blocks with the rest, their h_iu and
g_i(s + e_u) - g_i(s) vanish identically while they are 0. Their rows of F are then 0 and their block of the
Jacobian is decoupled, so Levenberg-Marquardt never moves them: dropping their weights and zero pairs gives the
same steps with a system a fraction of the size (deep nets' limits often have several dead units, each with a zero
pair per support sample)."""
from __future__ import annotations

import numpy as np

from .kkt import _kkt_fit
from .model import _LADDER, _POLISH_TOL
from .optimum import _ldp
from .optimum_classn import _fully_connected
from .polish import _NEURON_LADDER, _levenberg_marquardt


class _PatternSystem:
    """free: the parameters that are unknowns (the others stay 0: the zeroed units of the module docstring)."""

    def __init__(self, m, support, slopes, zero, free):
        self.m, self.S, self.s, self.Z, self.free = m, np.asarray(support, int), slopes, zero, free
        self.row_of = {int(i): r for r, i in enumerate(self.S)}
        zs = slopes[zero[:, 0]].copy()                  # the slopes of g_i(theta; s + e_u)
        zs[np.arange(len(zero)), zero[:, 1]] = 1.0
        # one Jacobian call gives every gradient: the support at s, then each zero pair's sample at s + e_u
        rows = np.concatenate([self.S, zero[:, 0]])
        self.rX, self.ry, self.rs = self.m.X[rows], self.m.y[rows, None], np.vstack([slopes[self.S], zs])
        # the pre-activations and switch normals of the pairs' samples, once per sample (a sample has many pairs)
        samples, self.z_sample = np.unique(zero[:, 0], return_inverse=True)
        self.zX, self.zs = self.m.X[samples], np.ascontiguousarray(slopes[samples])
        self.z_sample = self.z_sample.ravel()
        self.z_row = np.array([self.row_of[int(i)] for i in zero[:, 0]], int)
        # Phi is affine in the slopes of one layer's units (a path crosses each layer once), so the Hessian of
        # sum_z mu_z g_i(s + e_u) takes one row per (sample, layer) of the pairs, at s_i + sum_z mu_z (1 - s_iu) e_u,
        # and the support rows: the C++ Hessian's cost goes with its rows
        groups, inverse = np.unique(np.column_stack([zero[:, 0], m.unit_layer[zero[:, 1]]]).astype(int), axis=0,
                                    return_inverse=True)
        self.z_group, self.z_lift = inverse.ravel(), 1.0 - slopes[zero[:, 0], zero[:, 1]]
        self.groups_of_row = np.bincount([self.row_of[int(i)] for i in groups[:, 0]], minlength=len(self.S))
        h_rows = np.concatenate([self.S, groups[:, 0]]).astype(int)
        self.hX, self.hy, self.hs = m.X[h_rows], m.y[h_rows], slopes[h_rows]
        self.o_l = len(free)
        self.o_mu = self.o_l + len(self.S)
        self.size = self.o_mu + len(zero)

    def split(self, z):
        """(theta with the fixed parameters at 0, lambda, mu)."""
        theta = np.zeros(self.m.p)
        theta[self.free] = z[:self.o_l]
        return theta, z[self.o_l:self.o_mu], z[self.o_mu:]

    def _grads(self, theta):
        return self.ry * self.m.core.jacobian(theta, self.rX, self.rs)[:, 0, self.free]

    def _weights(self, lam, mu):
        """w with lam @ G + mu @ D = w @ _grads (D_iu = g_i(s + e_u) - g_i(s))."""
        return np.concatenate([lam - np.bincount(self.z_row, mu, len(self.S)), mu])

    def _F(self, theta, lam, mu):
        A = self._grads(theta)
        G = A[:len(self.S)]
        H = self.m.core.preactivations(theta, self.zX, self.zs)[self.z_sample, self.Z[:, 1]] \
            if len(self.Z) else np.zeros(0)
        free = theta[self.free]
        return np.concatenate([free - self._weights(lam, mu) @ A, G @ free / self.m.degree - 1.0, H]), A

    def value(self, z):
        return self._F(*self.split(z))[0]

    def residual(self, z):
        """F and its Jacobian: d q_i / d theta = g_i (Euler), d h_iu / d theta = the switch normal, and the
        stationarity rows' d(w @ _grads)/d theta = sum_r w_r y_r d^2 Phi_r / d theta^2 (grouped as in __init__)."""
        theta, lam, mu = self.split(z)
        F, A = self._F(theta, lam, mu)
        nS = len(self.S)
        G, D = A[:nS], A[nS:] - A[self.z_row]
        lifted = self.hs.copy()
        np.add.at(lifted, (len(self.S) + self.z_group, self.Z[:, 1]), mu * self.z_lift)
        weights = np.concatenate([lam - self.groups_of_row, np.ones(len(self.hs) - len(self.S))])
        J = np.zeros((self.size, self.size))
        hess = self.m.core.hessian(theta, self.hX, (weights * self.hy)[:, None], lifted, rows=self.free)
        J[:self.o_l, :self.o_l] = np.eye(self.o_l) - hess[:, self.free]
        J[self.o_l:self.o_mu, :self.o_l] = G
        if len(self.Z):
            N = self.m.core.switch_normals(theta, self.zX, self.zs)
            J[self.o_mu:, :self.o_l] = N[self.z_sample, self.Z[:, 1]][:, self.free]
        J[:self.o_l, self.o_l:self.o_mu] = -G.T
        J[:self.o_l, self.o_mu:] = -D.T
        return F, J

    def start(self, theta):
        A = self._grads(theta)
        nS = len(self.S)
        mult = np.linalg.lstsq(np.vstack([A[:nS], A[nS:] - A[self.z_row]]).T, theta[self.free], rcond=None)[0]
        return np.concatenate([theta[self.free], mult])


def _read(m, theta, tau):
    """(support, slopes, zero pairs on the support) read off theta with threshold tau."""
    support = np.flatnonzero(m.margins(theta) <= 1.0 + tau)
    slopes = m.slopes(theta)
    zero = np.zeros((0, 2), int)
    if m.relu:
        on = m.zero_ratio(theta) <= tau
        on[np.setdiff1d(np.arange(m.n), support)] = False
        slopes[on] = 0.0
        zero = np.argwhere(on)
    return support, slopes, zero


def _solve(m, theta_raw, support, slopes, zero, solved, budget, dead, max_corrections=12):
    """Polish one pattern with active-set corrections (as the two-layer `_solve_pattern`): a negative multiplier
    drops its sample; mu outside [0, lambda_i] moves its pair to the side it asks for; a pair that crosses its
    surface is put on it. solved: the Levenberg-Marquardt outcomes so far by (pattern, start) — the corrections
    from different thresholds often reach the same pattern. budget: polishing's model._Budget (a run it cuts
    is not stored). dead: (units, parameters) zeroed in theta_raw that stay out of the system (_dead). (theta,
    corrections) or (None, reason)."""
    slopes = slopes.copy()
    dead_units, free = dead[0], np.setdiff1d(np.arange(m.p), dead[1])
    zero = zero[~np.isin(zero[:, 1], dead_units)]
    for n_corr in range(max_corrections + 1):
        if not len(support):
            return None, "empty pattern"
        zero = zero[np.isin(zero[:, 0], support)]
        key = (support.tobytes(), slopes.tobytes(), zero.tobytes(), theta_raw.tobytes())
        system = _PatternSystem(m, support, slopes, zero, free)
        if key not in solved:
            with np.errstate(over="ignore", invalid="ignore"):   # a wrong pattern may send Newton off: nf not finite
                outcome = _levenberg_marquardt(system, system.start(theta_raw), budget)
            if budget.cut:
                return None, "budget spent"
            solved[key] = outcome
        z, nf = solved[key]
        if not nf <= 1e-12 * max(1.0, np.linalg.norm(z)):
            return None, f"Newton residual {nf:.2g}"
        theta, lam, mu = system.split(z)
        tol = 1e-9 * max(1.0, np.max(np.abs(lam), initial=0.0))
        if np.any(lam < -tol):
            support = support[lam >= -tol]
            continue
        li = lam[[system.row_of[int(i)] for i in zero[:, 0]]] if len(zero) else np.zeros(0)
        moved = (mu < -tol) | (mu > li + tol)
        if np.any(moved):
            slopes[zero[moved, 0], zero[moved, 1]] = (mu[moved] > 0).astype(float)
            zero = zero[~moved]
            continue
        if m.relu:
            h = m.pre(theta, slopes)
            band = 1e-12 * np.max(np.abs(h), initial=1.0)
            off = (slopes * 2 - 1) * h < -band
            off[np.setdiff1d(np.arange(m.n), support)] = False
            if np.any(off):
                slopes[off] = 0.0
                zero = np.vstack([zero, np.argwhere(off)])
                continue
        q = m.margins(theta)
        if np.min(q) < 1 - 1e-9:
            return None, "a margin off the support fell below 1"
        return theta * np.min(q) ** (-1.0 / m.degree), n_corr
    return None, "active-set corrections did not settle"


def _rank_one(m, theta_raw):
    """Fully connected linear nets: the rank-one KKT point of margin paper Thm 3.1 aligned with theta_raw, W_l =
    C a_l a_(l-1)^T with a_0 = u*/||u*|| (the hard-margin SVM), a_l = W_l a_(l-1) normalised (theta_raw's layers),
    C = ||u*||^(1/L). Its KKT system is singular along the rotations of the hidden layers, where Newton wanders."""
    u = _ldp(m.y[:, None] * m.X, np.ones(m.n))
    if m.relu or u is None or not _fully_connected(m.net):
        return None
    C = np.linalg.norm(u) ** (1.0 / m.degree)
    a, mats = u / np.linalg.norm(u), []
    for W in m.net.split(theta_raw)[:-1]:
        b = W @ a
        b = b / np.linalg.norm(b) if np.linalg.norm(b) > 0 else np.linalg.svd(W)[0][:, 0]
        mats.append(C * np.outer(b, a))
        a = b
    mats.append(C * a[None, :])
    return m.net.join(mats)


def _dead(m, units, zeroed):
    """The zeroed units that can leave the system, and their parameters: (units, parameters). A parameter leaves
    when every edge that carries it (several under sharing) touches one of those units, and a unit when all of its
    parameters leave: then every path through a parameter that left crosses a unit whose every weight left."""
    dead = set(zeroed)
    while True:
        touching = {}
        for k, us in m.param_edges:
            touching[k] = touching.get(k, True) and any(u in dead for u in us)
        keep = {u for u in dead if all(touching[k] for k in units[u])}
        if keep == dead:
            break
        dead = keep
    dead = sorted(dead)
    return np.array(dead, int), np.unique(np.concatenate([np.zeros(0, int)] + [units[u] for u in dead]))


def _polish_classn(m, theta_raw, radius, budget):
    """The KKT point closest to theta_raw among the patterns read with the thresholds of _LADDER (support, zero
    pre-activations) and _NEURON_LADDER (units whose weights are zeroed in the start, where they then stay), in that
    order until the budget (model._Budget) is spent, and the rank-one point of a fully connected linear
    net (exempt from `radius`): ((theta, distance, description) or None, the thresholds the budget cut at or None)."""
    seen, solved, best = set(), {}, None
    norm = np.linalg.norm(theta_raw)
    theta = _rank_one(m, theta_raw)
    if theta is not None and _kkt_fit(m, theta)[0] < _POLISH_TOL:   # no radius: by Thm 3.1 the limit is of this form
        best = (theta, np.linalg.norm(theta - theta_raw), "the rank-one layers of margin paper Thm 3.1 aligned with "
                "theta_raw (where the limit lies)")
    units = m.unit_params()
    for tau in _LADDER:
        for tau_n in _NEURON_LADDER:
            start = theta_raw.copy()
            zeroed = [u for u, idx in enumerate(units) if np.linalg.norm(theta_raw[idx]) <= tau_n * norm]
            for u in zeroed:
                start[units[u]] = 0.0
            support, slopes, zero = _read(m, start, tau)
            key = (tuple(support), slopes.tobytes(), zero.tobytes(), start.tobytes())
            if key in seen:
                continue
            seen.add(key)
            theta, info = _solve(m, start, support, slopes, zero, solved, budget, _dead(m, units, zeroed))
            if budget.cut:
                return best, (tau, tau_n)
            if theta is None:
                continue
            dist = np.linalg.norm(theta - theta_raw)
            if _kkt_fit(m, theta)[0] < _POLISH_TOL and dist <= radius * norm and (best is None or dist < best[1]):
                best = (theta, dist, f"thresholds {tau:g} (support, zero pre-activations) and {tau_n:g} (zero "
                                     f"units), {info} active-set corrections")
    return best, None
