"""Step 3, certificates of non-local optimality: feasible points of smaller norm at radii eps, eps/4, eps/16,
re-checked with net.forward. The competitor families that seed the search live in the competitors_* modules."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from .competitors_classn import _classn_starts
from .competitors_twolayer import _starts
from .model import _RADII

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



def _local_min(m, theta, delta0, radius, accept, budget, maxiter=100):
    """SLSQP on min ||theta + delta||^2 s.t. q(theta + delta) >= 1, ||delta|| <= radius, in delta, stopped at the
    first iterate with a gain that `accept` (delta -> Certificate or None) certifies, or when the budget is spent.
    (certificate or None, last delta)."""
    r2 = (radius * (1 - 1e-6)) ** 2
    # the margins and the radius as one constraint, and the objective's gradient apart (needed at a fraction of the
    # line search's points): scipy's overhead per call, not the evaluations, is most of an iteration's cost
    cons = dict(type="ineq", fun=lambda d: np.append(m.margins(theta + d) - 1.0, r2 - d @ d),
                jac=lambda d: np.vstack([m.margins_jac(theta + d), -2.0 * d]))
    found, last = [], [delta0]

    def iteration(d):
        last[0] = np.array(d)
        if 2.0 * theta @ d + d @ d < 0 and (cert := accept(d)) is not None:
            found.append(cert)
            raise StopIteration
        if not budget.spend():
            raise StopIteration

    try:   # scipy >= 1.11 halts on StopIteration from the callback, older versions pass it on
        res = minimize(lambda d: 2.0 * theta @ d + d @ d, delta0, jac=lambda d: 2.0 * theta + 2.0 * d, method="SLSQP",
                       constraints=cons, callback=iteration, options=dict(maxiter=maxiter, ftol=1e-16))
        last[0] = res.x
    except StopIteration:
        pass
    return (found[0] if found else accept(last[0])), last[0]


def _restore(m, theta, norm_sq_max=np.inf, band=1e-7):
    """Put the nearly active margins (q_i < 1 + band) exactly on 1 by Gauss-Newton with minimal-norm steps: SLSQP
    stops a little infeasible (~1e-8), and restoring feasibility by scaling would cost more than the second-order
    gains of a small radius. None once a step ends with ||theta||^2 > norm_sq_max: the steps after the first
    correct only second-order residuals (on the AnalyzeRandom limits every certificate's first step kept more than
    3x the gain it needed, and 92% of the points tried had lost over half of it)."""
    for _ in range(8):
        q = m.margins(theta)
        act = q < 1.0 + band
        F = q[act] - 1.0
        if not np.any(act) or np.max(np.abs(F)) <= 1e-15:
            break
        theta = theta - np.linalg.lstsq(m.margins_jac(theta)[act], F, rcond=None)[0]
        if theta @ theta > norm_sq_max:
            return None
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
            cand = cand * qmin ** (-1.0 / m.degree) * (1 + 4e-16)
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


def _search(m, theta, lam, eps, residual, rng, n_random, budget):
    """A certificate at radius eps whose construction also works at eps/4 and eps/16, or None; the best certificate
    at radius eps alone (which does not prove non-locality on its own); and the starts the budget left unfinished
    (an empty list when the search was complete). At each smaller radius the search starts from the previous point
    scaled down, and, failing that, from the same construction made at that radius (the papers' families are
    curves, not rays)."""
    starts = _classn_starts if m.general else _starts
    abs_residual = residual * np.linalg.norm(theta)
    single, smaller = None, {}

    def local(delta0, r, method):
        def accept(d):
            gain_min = _gain_min(theta, abs_residual, r)
            restored = _restore(m, theta + d, theta @ theta - gain_min / 2)
            return None if restored is None else _verify(m, theta, restored, r, gain_min, method)
        return _local_min(m, theta, delta0, r, accept, budget)

    todo = starts(m, theta, lam, eps, rng, n_random)
    for k, (method, delta0) in enumerate(todo):
        cert, delta = local(delta0, eps, method)
        if cert is not None:
            single = single or cert
            family, d = [], delta
            for f in _RADII[1:]:
                r = eps * f
                c, d_new = local(d * (r / max(np.linalg.norm(d), r)), r, method)
                if c is None and not budget.cut:
                    if r not in smaller:   # the deterministic constructions at radius r
                        smaller[r] = dict(starts(m, theta, lam, r, np.random.default_rng(0), 0))
                    if method in smaller[r]:
                        c, d_new = local(smaller[r][method], r, method)
                if c is None:
                    break
                d = d_new
                family.append(c)
            if len(family) == len(_RADII) - 1:
                return Certificate(**{**cert.__dict__, "family": tuple(family)}), single, []
        if budget.cut:
            return None, single, [name for name, _ in todo[k:]]
    return None, single, []
