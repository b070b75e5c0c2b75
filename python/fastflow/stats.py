"""Confidence intervals for a binomial proportion (the probability of an outcome label), from scipy.stats."""
from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

from ._validate import choice

METHODS = ("wilson", "clopper-pearson")
_SCIPY_METHOD = {"wilson": "wilson", "clopper-pearson": "exact"}


def interval(count, n, confidence=0.95, method="wilson"):
    """Two-sided confidence interval (lo, hi) for a binomial proportion count/n; (0, 1) when n = 0."""
    choice("method", method, METHODS)
    if n <= 0:
        return (0.0, 1.0)
    ci = binomtest(int(count), int(n)).proportion_ci(confidence_level=confidence, method=_SCIPY_METHOD[method])
    # exact endpoints at the boundary (Wilson's formula rounds to e.g. 1e-17 there)
    return (0.0 if count == 0 else float(ci.low), 1.0 if count == n else float(ci.high))


def fraction_line(name, k, n, exact=None, confidence=0.95, method="wilson"):
    """"name: k/n = p [lo, hi]" with the interval of k/n, and whether `exact` (a predicted probability) is inside."""
    lo, hi = interval(k, n, confidence, method)
    s = f"{name}: {k}/{n} = {k / n:.5f} [{lo:.5f}, {hi:.5f}]"
    if exact is not None:
        s += f"; exact {exact:.5f} ({'inside' if lo <= exact <= hi else 'OUTSIDE'} the interval)"
    return s


def angle(a, b):
    """The angle between vectors a and b, in radians."""
    return float(np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1.0, 1.0)))
