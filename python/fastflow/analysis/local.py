"""Sufficient conditions for a local optimum of (P) at a KKT point of a class-N net other than the fully connected
two-layer one (that one uses Thm 4.3 in `verdict`).

* Margin paper, Thm 4.3: depth 2, ReLU, no shared weights, every pre-activation w_j . x_i^j non-zero.
* Otherwise the second-order sufficient condition of the pattern's smooth problem: where no support sample sits on
  a switching surface, the q_i of the support are polynomials near theta~, and if the Hessian of the Lagrangian
  1/2 ||theta||^2 - lambda . q is positive definite on {d : grad q_i . d = 0 for lambda_i > 0} (a superset of the
  critical cone), theta~ is a strict local minimum. Its negative eigenvectors are second-order descent directions:
  the competitors of the papers' Thms 4.1, 4.4 and 5.1 are of this kind.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import eigh, null_space

from .model import _EXACT_TOL

_STRONG = 1e-6       # lambda_i > this x max lambda: a strongly active constraint (its tangent space is imposed)
_PD_TOL = 1e-7       # smallest reduced eigenvalue needed for "positive definite"


def _thm43(m, theta, is_kkt):
    """Thm 4.3's hypothesis: depth 2, ReLU, no sharing, all pre-activations non-zero (and KKT)."""
    return bool(is_kkt and m.relu and m.degree == 2 and not m.net.has_sharing
                and np.all(m.zero_ratio(theta) > _EXACT_TOL))


def _second_order(m, theta, lam, support, slopes=None):
    """(smallest eigenvalue of the reduced Hessian or None, note, negative-curvature unit directions). With slopes
    given, the check runs on that pattern even where support samples sit on its surfaces: its directions are then
    starts for the local search, its eigenvalue no evidence."""
    if slopes is None and m.relu and np.any(m.zero_ratio(theta)[support] <= _EXACT_TOL):
        return None, "a support sample sits on a switching surface: no smooth second-order check", []
    slopes = m.slopes(theta) if slopes is None else slopes
    strong = np.flatnonzero(lam > _STRONG * np.max(lam, initial=0.0))
    Q = null_space(m.grads(theta, slopes, strong)) if len(strong) else np.eye(m.p)
    if Q.shape[1] == 0:
        return np.inf, "the active gradients span the parameter space (first-order strict minimum)", []
    w, V = eigh(Q.T @ m.lagrangian_hessian(theta, lam, slopes) @ Q)
    dirs = [Q @ V[:, j] for j in np.flatnonzero(w < -_PD_TOL)]
    note = (f"reduced Hessian of the Lagrangian on the {Q.shape[1]}-dimensional tangent space of the {len(strong)} "
            f"strongly active margins: smallest eigenvalue {w[0]:.6g}")
    return float(w[0]), note, dirs
