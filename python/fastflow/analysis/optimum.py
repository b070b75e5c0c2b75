"""Step 4, the global optimum: certified lower bounds on ||theta*||^2."""
from __future__ import annotations

import warnings

import numpy as np

from .kkt import _nnls

def _ldp(G, h):
    """argmin ||u|| s.t. G u >= h (least-distance programming via NNLS, Lawson & Hanson ch. 23), None if infeasible.

    With alpha the NNLS solution of [G^T; h^T] alpha ~ e_last and r its residual, ||r||^2 = -r_last = 1 - h.alpha is
    0 exactly when the constraints are infeasible, and u = -r[:-1] / r_last. Rounding near infeasibility is caught by
    re-checking the constraints, each to the rounding of u's scale (a row orthogonal to u sees all of u's error)."""
    E = np.vstack([G.T, h[None, :]])
    f = np.zeros(E.shape[0])
    f[-1] = 1.0
    r = E @ _nnls(E, f) - f
    if -r[-1] < 1e-14:
        return None
    u = -r[:-1] / r[-1]
    if np.any(h - G @ u > 1e-9 * (np.linalg.norm(G, axis=1) * np.linalg.norm(u) + np.abs(h))):
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
        from ..convex import convex_max_margin
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
        from ..convex import dual_feasible
    except ImportError:
        return None
    out = dual_feasible(m.X, m.y * lam, m.cells)
    return float(out[0] if isinstance(out, tuple) else out)

