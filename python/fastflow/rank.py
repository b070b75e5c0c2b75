"""Rank measures of weight matrices."""
from __future__ import annotations

import numpy as np

from ._validate import real_array, real_scalar


def stable_rank(W):
    """||W||_F^2 / ||W||_2^2 (0 for a zero matrix)."""
    W = real_array("W", W, ndim=2)
    s = np.linalg.svd(W, compute_uv=False)
    return float(np.sum(s**2) / s[0] ** 2) if s.size and s[0] > 0 else 0.0


def rank(W, tol=None):
    """Numerical rank: singular values above tol (default: max(shape) * eps * largest singular value)."""
    W = real_array("W", W, ndim=2)
    if tol is not None:
        tol = real_scalar("tol", tol, low=0.0)
    return int(np.linalg.matrix_rank(W, tol=tol))
