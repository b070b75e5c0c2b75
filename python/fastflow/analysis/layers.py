"""Step 5, the per-layer max-margin problem (margin paper, Problem (4)): the report of any layer, and the programs of
the fully connected two-layer net (those of other class-N nets are in layers_classn)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .certificates import Certificate, _gain_min, _verify
from .kkt import _kkt_fit
from .layers_classn import _MAX_LAYER_PROGRAMS, _classn_layer_programs
from .model import _EXACT_TOL, _RADII
from .optimum import _ldp

# per-layer max-margin (Problem (4)), two-layer: min 1/2 ||u||^2 over one layer, the other fixed, s.t. q_i >= 1. The
# margins are linear in v, and linear in W on each closed activation pattern A (a_ij = 1[w_j.x_i >= 0], imposed by
# (2 a_ij - 1) w_j.x_i >= 0; a zero pre-activation contributes 0 either way), so the problem is a union of polyhedra
# with a strictly convex objective: one least-distance program each. The patterns around theta~ (every side of each
# zero pre-activation) cover a neighbourhood of it: local optimality. Every u lies in the closure of a cell of X, so
# the combinations of cells, one per neuron, cover the whole feasible set: global optimality.

_LAYER_NAMES = {1: "layer 1 (W, v fixed)", 2: "layer 2 (v, W fixed)"}


@dataclass(frozen=True)
class LayerReport:
    """Margin paper Problem (4) for one layer of theta~ with the others fixed: min 1/2 ||u||^2 s.t. every margin of
    theta~ with this layer replaced by u is >= 1.

    layer: 1..L (two-layer: 1 = W, the hidden weights; 2 = v, the output weights). verdict, with the meanings of
    Report's for this problem: "global" (norm_sq within global_rtol of `optimum`), "local" (theta~'s layer is
    optimal on every polyhedron the activation patterns around it cut the feasible set into), "not_local"
    (`certificate`), "kkt_only" (KKT, undecided: more than 4096 patterns around theta~, or a better point there
    failed the checks), "not_kkt" (kkt_residual above kkt_tol). kkt_residual: the relative residual of this layer's
    stationarity, with the Clarke freedom of (P). norm_sq: ||u~||^2. optimum: min ||u||^2 of the problem, None when
    not computed (a ReLU layer: global_opt=False, or more than 4096 combinations of cells or activation patterns;
    the evidence says so). certificate: theta' differing from theta~ in this layer only, feasible and of smaller
    norm: within eps of theta~ for "not_local" (with the same construction at eps/4 and eps/16 in `family`), the
    optimum (radius inf) for "local" when that is not global; else None. evidence: one line, also in the Report's
    text.
    """

    layer: int
    verdict: str
    kkt_residual: float
    norm_sq: float
    optimum: float | None
    certificate: Certificate | None
    evidence: str = field(repr=False)


def _layer1_program(m, v, J, A):
    """(G, h) of the first layer's problem on the pattern A (n, len(J)) of the neurons J (those with v_j != 0; the
    other w_j do not enter the margins, so their optimum is 0), in the coordinates of ravel(W)."""
    G = np.zeros((m.n, m.k, m.d))
    G[:, J] = (m.y[:, None] * v[J] * A)[:, :, None] * m.X[:, None, :]
    blocks = [G.reshape(m.n, m.nw)]
    if m.relu:
        Xs = m.X[m.xnorm > 0]
        S = np.zeros((len(Xs), len(J), m.k, m.d))
        S[:, np.arange(len(J)), J] = (2.0 * A[m.xnorm > 0] - 1.0)[:, :, None] * Xs[:, None, :]
        blocks.append(S.reshape(-1, m.nw))
    G = np.vstack(blocks)
    h = np.zeros(len(G))
    h[:m.n] = 1.0
    return G, h


def _layer_programs(m, theta, layer, global_opt, local):
    """(around, everywhere, why): the (G, h) of the polyhedra around theta~ and of all of them, each a list, or None
    beyond _MAX_LAYER_PROGRAMS (everywhere also without global_opt, for the first layer of a ReLU net; around also
    without `local`, which only a KKT layer's verdict reads)."""
    W, v = m.unpack(theta)
    if layer == 2:
        one = [(m.y[:, None] * m.act(m.X @ W.T), np.ones(m.n))]
        return one, one, "convex: an SVM in v on the hidden features"
    J = np.flatnonzero(v)
    if not m.relu:
        one = [_layer1_program(m, v, J, np.ones((m.n, len(J))))]
        return one, one, "convex: the margins are linear in W"
    zero = np.argwhere((np.abs(m.cosines(theta)[:, J]) <= _EXACT_TOL) & (m.xnorm[:, None] > 0))
    around = None
    if local and 2 ** len(zero) <= _MAX_LAYER_PROGRAMS:
        around = []
        base = m.pre(theta)[:, J] > 0
        for bits in itertools.product((False, True), repeat=len(zero)):
            A = base.copy()
            A[zero[:, 0], zero[:, 1]] = bits
            around.append(_layer1_program(m, v, J, A))
    if not global_opt or len(m.cells) ** len(J) > _MAX_LAYER_PROGRAMS:
        return around, None, ""
    combos = itertools.product(range(len(m.cells)), repeat=len(J))
    everywhere = [_layer1_program(m, v, J, m.cells[list(c)].T) for c in combos]
    return around, everywhere, f"least over all {len(everywhere)} combinations of cells, one per neuron with v_j != 0"


def _layer_min(programs):
    """(min ||u||^2, argmin) over the feasible ones of the least-distance programs, or None."""
    best = None
    for G, h in programs:
        u = _ldp(G, h)
        if u is not None and (best is None or u @ u < best[0]):
            best = (float(u @ u), u)
    return best


def _layer_segment(m, theta, block, u, eps, abs_residual):
    """Certificates at eps, eps/4, eps/16 on the segment from theta~'s layer towards u, the better optimum of a
    polyhedron around theta~: by convexity the segment stays feasible and its norm decreases from theta~ on."""
    step = u - theta[block]
    certs = []
    for f in _RADII:
        r = eps * f
        cand = theta.copy()
        cand[block] += min(1.0, r * (1 - 1e-9) / np.linalg.norm(step)) * step
        cert = _verify(m, theta, cand, r, _gain_min(theta, abs_residual, r),
                       "towards the optimum of an activation-pattern polyhedron around theta~", block)
        if cert is None:
            return None
        certs.append(cert)
    return Certificate(**{**certs[0].__dict__, "family": tuple(certs[1:])})


def _layer_report(m, theta, layer, eps, kkt_tol, rtol, global_opt):
    block = m.blocks[layer - 1]
    u = theta[block]
    norm_sq = float(u @ u)
    res = _kkt_fit(m, theta, rows=block)[0]
    around, everywhere, why = (_classn_layer_programs if m.general else _layer_programs)(m, theta, layer, global_opt,
                                                                                         res <= kkt_tol)
    best = None if everywhere is None else _layer_min(everywhere)
    optimum = None if best is None else best[0]
    cert = None
    if res > kkt_tol:
        verdict, text = "not_kkt", f"KKT residual {res:.3g} > {kkt_tol:g}"
    elif optimum is not None and norm_sq <= optimum * (1 + rtol):
        verdict, text = "global", f"||u~||^2 = {norm_sq:.10g} is the optimum {optimum:.10g} ({why})"
    else:
        near = None if around is None else _layer_min(around)
        if near is None:
            verdict = "kkt_only"
            text = "KKT; " + (f"more than {_MAX_LAYER_PROGRAMS} activation patterns around theta~" if around is None
                              else "no activation-pattern polyhedron around theta~ solved")
        elif norm_sq <= near[0] * (1 + rtol):
            verdict = "local"
            text = (f"||u~||^2 = {norm_sq:.10g} is optimal on the {len(around)} activation-pattern polyhedra around "
                    f"theta~")
            if optimum is not None:
                cand = theta.copy()
                cand[block] = best[1]
                cert = _verify(m, theta, cand, np.inf, _gain_min(theta, 0.0, 0.0), "the per-layer optimum", block)
                text += f"; not global: the optimum is {optimum:.10g} ({why})"
            elif why:
                text += f"; {why}"
        else:
            cert = _layer_segment(m, theta, block, near[1], eps, res * np.sqrt(norm_sq))
            verdict = "kkt_only" if cert is None else "not_local"
            text = (f"a pattern polyhedron around theta~ has the smaller optimum {near[0]:.10g} < {norm_sq:.10g}"
                    + ("" if cert is None else f": feasible theta' at distance {cert.distance:.3g} <= {eps:g} with "
                       f"||u'||^2 = {norm_sq - cert.gain:.10g}, only this layer changed"))
    name = f"layer {layer} (the others fixed)" if m.general else _LAYER_NAMES[layer]
    return LayerReport(layer=layer, verdict=verdict, kkt_residual=float(res), norm_sq=norm_sq, optimum=optimum,
                       certificate=cert, evidence=f"{name}: {verdict} — {text}")

