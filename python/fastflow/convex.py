"""The convex program of two-layer ReLU max-margin training and its dual (convex-geometry paper, Prop. 2).

For binary labels y in {+-1}^n and the activation patterns D_j of X's cells (`arrangements`), the primal (14) is

    P* = min  sum_j ||u_j|| + ||u'_j||
         s.t. diag(y) sum_j D_j X (u'_j - u_j) >= 1,   (2 D_j - I) X u_j >= 0,   (2 D_j - I) X u'_j >= 0,

and P* = min 1/2 ||theta||^2 s.t. y_i Phi(theta; x_i) >= 1 over two-layer ReLU networks wide enough (one neuron per
non-zero block): u'_j -> neuron w = u'_j / sqrt||u'_j||, v = +sqrt||u'_j||, and u_j -> w = u_j / sqrt||u_j||,
v = -sqrt||u_j||. The paper takes every pattern 1[Xu >= 0]; the cells' suffice, because every u lies in the closure
of a cell, whose pattern D has (2D - I) X u >= 0 and D X u = (Xu)_+ (a lower-dimensional face's block moves to it at
no cost; the same covering makes `dual_feasible` exact). The dual is the SOCP (129) with the signs of the paper's
own derivation (App. B; as printed, (129) repeats one constraint and is unbounded; docs/mathematics.md §8),

    D* = max  y^T lam
         s.t. || X^T D_j lam + X^T (2 D_j - I) z_{j,+}|| <= 1,   ||-X^T D_j lam + X^T (2 D_j - I) z_{j,-}|| <= 1,
              z_{j,+-} >= 0,   diag(y) lam >= 0,

whose constraints say max_{||u|| <= 1} |lam^T (Xu)_+| <= 1 (per pattern, by Lemma 4 of Pilanci & Ergen:
max_{||u|| <= 1, A u >= 0} c^T u = min_{z >= 0} ||c + A^T z||). `dual_feasible` evaluates that maximum exactly with
one non-negative least-squares problem per pattern and sign: WP Thm 3's certificate that a KKT point of the
non-convex problem, with multipliers lam, is a global optimum.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ._validate import real_array, real_scalar
from .arrangements import arrangements

__all__ = ["ConvexMaxMargin", "Neuron", "convex_max_margin", "dual_feasible"]

_SOLVER = "CLARABEL"
# Clarabel's defaults are 1e-8; tighter so that the blocks which are zero at the optimum come out ~1e-11, far
# below _ZERO_BLOCK (interior-point solutions approach the optimal face from inside: on a non-unique optimum
# blocks shrink only like the gap).
_SOLVER_OPTIONS = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}
_GAP_WARN = 1e-6  # warn when value - certified lower bound exceeds this (relative)
_ZERO_BLOCK = 1e-8  # a block u_j with ||u_j|| <= this times the largest is the solver's zero
_SAME_DIRECTION = 1e-7  # neurons of one sign whose unit directions differ by less are one neuron


class Neuron(NamedTuple):
    """One non-zero block of the convex solution: output sign (+1 for u', -1 for u), vector u and its pattern."""

    sign: int
    u: np.ndarray  # (d,)
    pattern: np.ndarray  # (n,) bool, the D_j of the block (the largest block when parallel blocks were merged)


@dataclass(frozen=True)
class ConvexMaxMargin:
    """Solution of the convex program (14), with a dual certificate.

    value : P* = 1/2 ||theta*||^2 of the max-margin two-layer ReLU network (the solver's primal optimum).
    neurons : list of Neuron, the non-zero blocks (parallel blocks of one sign merged).
    dual : (n,) lam = y * mu from the multipliers mu >= 0 of the margin constraints (WP's sign convention).
    dual_max : max_{||u|| <= 1} |lam^T (Xu)_+| (exact, `dual_feasible`); 1 at an exact optimum.
    dual_value : y^T lam / max(1, dual_max), the objective of a feasible point of the dual: a certified lower bound
        on P*. gap = value - dual_value (>= 0 up to the solver's accuracy; ~0 is strong duality).
    socp_dual, socp_dual_value : lam and y^T lam from solving the corrected SOCP (129) directly (solve_dual=True),
        else None and nan.
    """

    value: float
    neurons: list
    dual: np.ndarray
    dual_max: float
    dual_value: float
    status: str
    socp_dual: np.ndarray | None = None
    socp_dual_value: float = np.nan
    socp_status: str = "not solved"
    patterns: np.ndarray = field(default=None, repr=False)

    @property
    def theta_norm_sq(self):
        """||theta*||^2 = 2 P* of the max-margin network."""
        return 2.0 * self.value

    @property
    def gap(self):
        return self.value - self.dual_value

    @property
    def width(self):
        """Number of neurons of the network the solution maps to."""
        return len(self.neurons)

    def weights(self):
        """Two-layer weights of the solution: W1 (k, d) with rows u / sqrt||u||, W2 (1, k) with sign * sqrt||u||.

        The network Phi(x) = W2 relu(W1 x) has margins y_i Phi(x_i) >= 1 and 1/2 (||W1||_F^2 + ||W2||^2) = value
        (up to the solver's accuracy). `fastflow.two_layer(d, k).join([W1, W2])` is its flat theta.
        """
        norms = np.array([np.linalg.norm(nr.u) for nr in self.neurons])
        W1 = np.array([nr.u for nr in self.neurons]) / np.sqrt(norms)[:, None]
        W2 = (np.array([nr.sign for nr in self.neurons]) * np.sqrt(norms))[None, :]
        return W1, W2


def _labels(y, n):
    y = real_array("y", y, ndim=1)
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} labels but X has {n} rows")
    if not np.all(np.abs(y) == 1.0):
        raise ValueError("y: labels must be +1 or -1")
    return y


def _data(X):
    X = real_array("X", X, ndim=2)
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must have at least one row and one column, got shape {X.shape}")
    return X


def _patterns(patterns, X):
    """The patterns as a (p, n) bool array: X's cells by default, else validated (0/1 or bool)."""
    if patterns is None:
        return arrangements(X)
    P = np.asarray(patterns)
    if P.ndim != 2 or P.shape[1] != X.shape[0]:
        raise ValueError(f"patterns must be a (p, {X.shape[0]}) array of 0/1, got shape {P.shape}")
    if P.dtype != bool:
        P = real_array("patterns", P, ndim=2)
        if not np.all((P == 0) | (P == 1)):
            raise ValueError("patterns must hold only 0/1 (or booleans)")
        P = P.astype(bool)
    if P.shape[0] == 0:
        raise ValueError("patterns must hold at least one pattern")
    return np.unique(P, axis=0)


def _neurons(blocks, sign, P, scale):
    """Rows of blocks (p, d) above _ZERO_BLOCK * scale, parallel ones merged (their sum is the same ReLU neuron at
    the same cost)."""
    norms = np.linalg.norm(blocks, axis=1)
    out = []
    for j in np.argsort(-norms, kind="stable"):
        if norms[j] <= _ZERO_BLOCK * scale:
            break
        direction = blocks[j] / norms[j]
        for k, (u, pat) in enumerate(out):
            if np.linalg.norm(u / np.linalg.norm(u) - direction) <= _SAME_DIRECTION:
                out[k] = (u + blocks[j], pat)
                break
        else:
            out.append((blocks[j].copy(), P[j]))
    return [Neuron(sign, u, pat.copy()) for u, pat in out]


def _solve(problem, solver_options):
    """Solve with CLARABEL, tolerances 1e-10 unless the caller overrides. CVXPY's "may be inaccurate" warning is
    silenced: Clarabel often stops just short of 1e-10 ("AlmostSolved"), and the result's certified gap, not the
    solver's status, says how good the solution is."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Solution may be inaccurate")
        problem.solve(solver=_SOLVER, **{**_SOLVER_OPTIONS, **(solver_options or {})})


def convex_max_margin(X, y, patterns=None, *, solve_dual=False, solver_options=None):
    """Solve the convex program (14) over all activation patterns of X, and its dual (129).

    Parameters
    ----------
    X : (n, d) array_like, the inputs.
    y : (n,) array_like of +-1, the labels.
    patterns : (p, n) array_like of bool/0-1, optional. Default: the pattern of every cell, `arrangements(X)`
        (what the global optimum needs; a subset gives an upper bound).
    solve_dual : bool. Also solve the SOCP (129) for lam (socp_dual); larger than the primal (2 p n multipliers z)
        and often solved less accurately, so off by default: `dual` always comes from the margin constraints'
        multipliers, certified by the exact check `dual_feasible`.
    solver_options : dict, optional, passed to CVXPY's solve (solver CLARABEL), over the default tolerances 1e-10.

    Returns
    -------
    ConvexMaxMargin with value = P* = 1/2 ||theta*||^2, neurons, dual lam with its certified bound dual_value,
    theta_norm_sq, gap, and weights() -> (W1, W2) of a max-margin two-layer ReLU network.
    """
    import cvxpy as cp

    X = _data(X)
    n, d = X.shape
    y = _labels(y, n)
    P = _patterns(patterns, X)
    P = P[P.any(axis=1)]  # D = 0 adds nothing to the network's output
    if P.shape[0] == 0:
        raise ValueError("patterns: no pattern activates any sample, so no network can classify the data")
    p = P.shape[0]
    D = P.astype(float)
    S = 2.0 * D - 1.0  # rows: the diagonals of 2 D_j - I

    U = cp.Variable((p, d))  # u_j: negative-output neurons
    Up = cp.Variable((p, d))  # u'_j: positive-output neurons
    margin = cp.sum(cp.multiply(D.T * y[:, None], X @ (Up - U).T), axis=1) >= 1
    cones = [cp.multiply(S.T, X @ U.T) >= 0, cp.multiply(S.T, X @ Up.T) >= 0]
    objective = cp.Minimize(cp.sum(cp.norm(U, 2, axis=1)) + cp.sum(cp.norm(Up, 2, axis=1)))
    primal = cp.Problem(objective, [margin, *cones])
    _solve(primal, solver_options)
    if primal.status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"convex program: solver status {primal.status} (infeasible means no ReLU network without "
                           "biases separates the data, e.g. a zero row, or opposite labels on one ray)")

    scale = max(np.linalg.norm(Up.value, axis=1).max(), np.linalg.norm(U.value, axis=1).max())
    neurons = _neurons(Up.value, 1, P, scale) + _neurons(U.value, -1, P, scale)
    lam = y * np.maximum(np.asarray(margin.dual_value, dtype=float).ravel(), 0.0)
    lam_max, _ = dual_feasible(X, lam, P)
    dual_value = float(y @ lam) / max(1.0, lam_max)
    socp = dict(socp_dual=None, socp_dual_value=np.nan, socp_status="not solved")
    if solve_dual:
        lv = cp.Variable(n)
        Zp = cp.Variable((p, n), nonneg=True)
        Zm = cp.Variable((p, n), nonneg=True)
        DlX = D @ (cp.diag(lv) @ X)  # rows: (X^T D_j lam)^T
        constraints = [cp.norm(DlX + cp.multiply(S, Zp) @ X, 2, axis=1) <= 1,
                       cp.norm(-DlX + cp.multiply(S, Zm) @ X, 2, axis=1) <= 1,
                       cp.multiply(y, lv) >= 0]
        dual_problem = cp.Problem(cp.Maximize(y @ lv), constraints)
        _solve(dual_problem, solver_options)
        socp["socp_status"] = dual_problem.status
        if dual_problem.status in ("optimal", "optimal_inaccurate"):
            socp.update(socp_dual=np.asarray(lv.value, dtype=float), socp_dual_value=float(dual_problem.value))
    result = ConvexMaxMargin(float(primal.value), neurons, lam, lam_max, dual_value, primal.status, patterns=P,
                             **socp)
    if not result.gap <= _GAP_WARN * max(1.0, result.value):
        warnings.warn(f"convex program solved inaccurately: certified gap {result.gap:.3g} at value "
                      f"{result.value:.6g} (solver status {primal.status})", RuntimeWarning, stacklevel=2)
    return result


def dual_feasible(X, lam, patterns=None, *, tol=1e-7):
    """max_{||u|| <= 1} |lam^T (Xu)_+| via the per-pattern form (17), and whether it is <= 1 + tol.

    For each pattern D_j with A_j = (2 D_j - I) X and c_j = X^T D_j lam,
    max_{||u|| <= 1, A_j u >= 0} +-c_j^T u = min_{z >= 0} ||+-c_j + A_j^T z||, a non-negative least-squares problem.

    Parameters
    ----------
    X : (n, d) array_like.
    lam : (n,) array_like, the multipliers (WP sign convention: lam_i = y_i mu_i).
    patterns : (p, n) array_like, optional; default the patterns of X's cells (`arrangements`), whose closures
        cover the ball.
    tol : float >= 0.

    Returns
    -------
    (max_value, ok) : float, bool. ok means lam is dual feasible, WP Thm 3's certificate of global optimality.
    """
    from scipy.optimize import nnls

    X = _data(X)
    lam = real_array("lam", lam, ndim=1)
    if lam.shape[0] != X.shape[0]:
        raise ValueError(f"lam has {lam.shape[0]} entries but X has {X.shape[0]} rows")
    tol = real_scalar("tol", tol, low=0.0)
    P = _patterns(patterns, X)
    best = 0.0
    for pat in P:
        A = (np.where(pat, 1.0, -1.0)[:, None] * X)  # (2 D - I) X
        c = X.T @ (pat * lam)
        if not c.any():
            continue
        for sign in (1.0, -1.0):
            _, residual = nnls(A.T, -sign * c)
            best = max(best, float(residual))
    return best, best <= 1.0 + tol
