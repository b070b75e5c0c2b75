"""Step 4 for class-N nets other than the fully connected two-layer one: certified lower bounds on ||theta*||^2
where a convex program gives one, and a statement of why not otherwise.

* Linear, no shared weights: ||theta||^2 = sum_l ||W_l||_F^2 >= L prod_l ||W_l||_F^(2/L) >= L ||beta||^(2/L) (AM-GM,
  submultiplicativity) with beta = W_L ... W_1 the end-to-end predictor, and y_i beta . x_i >= 1, so ||theta*||^2 >=
  L ||u*||^(2/L) with u* the hard-margin SVM. Fully connected nets attain it (rank-one layers; margin paper, Thm 3.1):
  there it is the optimum.
* Depth 2, no sharing, linear (each neuron j sees the coordinates x^j wired to it): ||theta||^2 >= 2 sum_j |v_j|
  ||w_j|| = 2 sum_j ||u_j|| with u_j = v_j w_j, and for any lambda >= 0 weak duality of min sum_j ||u_j|| s.t.
  y_i sum_j u_j . x_i^j >= 1 (margin paper, Problem (8)) gives sum_j ||u_j|| >= sum_i lambda_i / max(1, max_j
  ||sum_i lambda_i y_i x_i^j||). With theta~'s own multipliers this is tight at a global optimum (Thm 4.2(1)); for
  a diagonal net the program is the LP min ||beta||_1, solved too (the optimum).
* Depth 2, no sharing, ReLU: the same with max_j max_(||u|| <= 1) |sum_i lambda_i y_i relu(u . x_i^j)| (the
  convex-geometry paper's dual constraint, Thm 3, on each neuron's inputs; `fastflow.convex.dual_feasible` over the
  cells of those inputs): a certified lower bound; no primal value.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from .optimum import _svm_norm


def _fully_connected(net):
    return all(np.array_equal(np.ravel(g), np.arange(1, g.size + 1)) for g in net.maps)


def _neuron_inputs(net):
    """Depth 2 without sharing: for each neuron j with an output weight, the input coordinates wired to it."""
    first, second = net.maps
    return [np.flatnonzero(first[j]) for j in range(first.shape[0]) if second[0, j] > 0]


def _group_bound(m, lam):
    """2 sum_i lambda_i / max(1, dual), dual = max_j max_(||u|| <= 1) |sum_i lambda_i y_i sigma(u . x_i^j)|, and
    dual."""
    if m.relu:
        from ..arrangements import arrangements
        from ..convex import dual_feasible
        values = []
        for cols in {tuple(c) for c in _neuron_inputs(m.net)}:
            Xj = m.X[:, list(cols)]
            values.append(dual_feasible(Xj, m.y * lam, arrangements(Xj))[0])
        dual = max(values, default=0.0)
    else:
        g = (lam * m.y) @ m.X
        dual = max((np.linalg.norm(g[cols]) for cols in _neuron_inputs(m.net)), default=0.0)
    return 2.0 * float(np.sum(lam)) / max(1.0, dual), float(dual)


def _global_classn(m, compute, lam):
    """(||theta*||^2 or None, certified lower bound or None, note)."""
    if not compute:
        return None, None, "global optimum not computed (global_opt=False)"
    net, L = m.net, m.degree
    if net.has_sharing:
        return None, None, ("no certified global bound: with shared weights ||theta|| does not bound the layer norms, "
                            "and no convex program is known")
    if m.relu and L == 2:
        lower, dual = _group_bound(m, lam)
        return None, lower, (f"depth-2 ReLU net without sharing: weak duality with theta~'s multipliers on each "
                             f"neuron's inputs (convex-geometry paper Thm 3; dual value {dual:.6g}): ||theta*||^2 >= "
                             f"{lower:.12g}")
    if m.relu:
        return None, None, "no certified global bound: no convex program is known for deep ReLU nets"
    u = _svm_norm(m.X, m.y)
    if u is None:
        return None, None, "data not linearly separable"
    lower = L * u ** (2.0 / L)
    if _fully_connected(net):
        return lower, lower, (f"deep linear FC net: ||theta*||^2 = L ||u*||^(2/L) with u* the hard-margin SVM, L = {L} "
                              f"(margin paper, Thm 3.1)")
    note = f"linear net without sharing: ||theta*||^2 >= L ||u*||^(2/L) = {lower:.12g} (u* the hard-margin SVM)"
    value = None
    if L == 2:
        group, dual = _group_bound(m, lam)
        note += (f"; weak duality of the group-norm program (margin paper, Problem (8)) with theta~'s multipliers "
                 f"(dual value {dual:.6g}): ||theta*||^2 >= {group:.12g}")
        lower = max(lower, group)
        value = _lp_value(m)
        if value is not None:
            note += "; every neuron sees one input (diagonal): ||theta*||^2 = 2 min ||beta||_1, an LP"
            lower = max(lower, value)
    return value, lower, note


def _lp_value(m):
    """Depth 2 without sharing, every neuron wired to one input: 2 min sum_j |beta_j| s.t. y_i sum_j beta_j x_i[c_j]
    >= 1 (HiGHS, exact at a vertex), or None for other wirings or an infeasible LP."""
    inputs = _neuron_inputs(m.net)
    if not inputs or any(len(cols) != 1 for cols in inputs):
        return None
    A = m.y[:, None] * m.X[:, [int(cols[0]) for cols in inputs]]
    k = A.shape[1]
    res = linprog(np.ones(2 * k), A_ub=-np.hstack([A, -A]), b_ub=-np.ones(m.n), bounds=(0, None), method="highs")
    return 2.0 * float(res.fun) if res.status == 0 else None
