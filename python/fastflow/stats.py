"""Confidence intervals for a binomial proportion (the probability of an outcome label)."""
from __future__ import annotations

import math
from statistics import NormalDist

from ._validate import choice

METHODS = ("wilson", "clopper-pearson")


def interval(count, n, confidence=0.95, method="wilson"):
    """Two-sided confidence interval (lo, hi) for a binomial proportion count/n."""
    choice("method", method, METHODS)
    if n <= 0:
        return (0.0, 1.0)
    alpha = 1.0 - confidence
    if method == "wilson":
        z = NormalDist().inv_cdf(1.0 - alpha / 2)
        p = count / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        lo, hi = max(0.0, centre - half), min(1.0, centre + half)
        # exact endpoints at the boundary (rounding would give e.g. 1e-17)
        return (0.0 if count == 0 else lo, 1.0 if count == n else hi)
    from scipy.stats import beta
    lo = 0.0 if count == 0 else float(beta.ppf(alpha / 2, count, n - count + 1))
    hi = 1.0 if count == n else float(beta.ppf(1 - alpha / 2, count + 1, n - count))
    return (lo, hi)
