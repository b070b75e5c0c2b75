"""Competitors of a KKT point of a class-N net other than the fully connected two-layer one, as starts of the local
search: the papers' rebalancing of end-to-end path products in diagonal nets (margin paper, Thm 4.1: (sqrt(1-eps),
sqrt(eps/2)); Thm 5.1: ((1 +- eps)/2)^(1/m)), the negative-curvature directions of the reduced Hessian (second-order
descent; Thm 4.4's (sqrt(eps), 1 - eps), v +- sqrt(eps)/2 is one; on a switching surface, those of the patterns on
either side, e.g. a dead unit turned on as in Thm 3.2), and random perturbations."""
from __future__ import annotations

import itertools

import numpy as np
from scipy.linalg import null_space

from .local import _second_order
from .model import _EXACT_TOL

_MAX_SIDES = 64   # patterns around a point on switching surfaces whose curvature is searched
# negative-curvature directions searched per pattern, the most negative first: on the 700 AnalyzeRandom limits
# (issue #20's benchmark) every certificate came from a pattern's first two, and a deep FC point on switching
# surfaces has up to 14, each a start of 100 SLSQP iterations when no certificate exists
_MAX_DIRECTIONS = 4


def _diagonal_paths(net):
    """For a diagonal net (every hidden map diagonal, one parameter per entry), path p's parameter indices in theta,
    one per layer: an (d, L) array; None for other architectures."""
    maps, offset, cols = net.maps, 0, []
    d = maps[0].shape[1]
    for l, g in enumerate(maps):
        last = l == len(maps) - 1
        expected = (1, d) if last else (d, d)
        entries = g[0] if last else np.diagonal(g)
        if g.shape != expected or np.count_nonzero(g) != d or np.any(entries == 0) or len(set(entries)) != d:
            return None
        cols.append(offset + entries - 1)
        offset += int(g.max())
    return np.array(cols).T


def _balanced(theta, paths, beta):
    """The balanced theta' with path products beta: |beta_p|^(1/L) on every layer, theta's signs (+ where zero),
    the last layer's sign fixing the product's."""
    out = theta.copy()
    L = paths.shape[1]
    signs = np.where(theta[paths] < 0, -1.0, 1.0)
    signs[:, -1] = np.sign(beta) * np.prod(signs[:, :-1], axis=1)
    signs[:, -1][beta == 0] = 1.0
    out[paths] = signs * np.abs(beta)[:, None] ** (1.0 / L)
    return out


def _path_starts(m, theta, support, radius):
    """Shift the end-to-end products beta_p within the null space of the support's samples (the margins stay 1
    to first order), each layer of each path rebalanced, until ||theta' - theta~|| = radius / 2."""
    paths = _diagonal_paths(m.net)
    if paths is None or m.relu and np.any(m.X[support] < 0):   # ReLU paths are linear on non-negative inputs only
        return []
    beta = np.prod(theta[paths], axis=1)
    out = []
    for k, delta in enumerate(null_space(m.X[support]).T):
        for s in (1.0, -1.0):
            lo, hi = 0.0, 1.0
            for _ in range(60):   # bisection on the step whose distance is radius / 2
                t = 0.5 * (lo + hi)
                lo, hi = (t, hi) if np.linalg.norm(_balanced(theta, paths, beta + t * s * delta) - theta) \
                    < 0.5 * radius else (lo, t)
            cand = _balanced(theta, paths, beta + lo * s * delta)
            out.append((f"rebalance the path products along null-space direction {k} ({'+' if s > 0 else '-'}; "
                        f"margin paper, Thms 4.1 and 5.1)", cand - theta))
    return out


def _classn_starts(m, theta, lam, radius, rng, n_random):
    support = np.flatnonzero(lam > 0)
    out = _path_starts(m, theta, support, radius)
    value, _, dirs = _second_order(m, theta, lam, support)
    named = [("", d) for d in dirs[:_MAX_DIRECTIONS]]
    if value is None:   # on switching surfaces: the patterns on their sides (all of them up to _MAX_SIDES)
        zero = np.argwhere(m.zero_ratio(theta) <= _EXACT_TOL)
        sides = itertools.product((0.0, 1.0), repeat=len(zero)) if 2 ** len(zero) <= _MAX_SIDES else \
            [(0.0,) * len(zero), (1.0,) * len(zero)]
        for bits in sides:
            slopes = m.slopes(theta)
            slopes[zero[:, 0], zero[:, 1]] = bits
            named += [(f" on the side {''.join(str(int(b)) for b in bits)} of the zero pre-activations", d)
                      for d in _second_order(m, theta, lam, support, slopes)[2][:_MAX_DIRECTIONS]]
    for k, (where, d) in enumerate(named):
        for s in (1.0, -1.0):
            out.append((f"negative-curvature direction {k} of the reduced Hessian{where} ({'+' if s > 0 else '-'})",
                        0.5 * radius * s * d))
    for r in range(n_random):
        delta = rng.normal(size=theta.size)
        out.append((f"random perturbation {r}", 0.5 * radius * delta / np.linalg.norm(delta)))
    return out
