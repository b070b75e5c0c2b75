"""Step 5 for class-N nets other than the fully connected two-layer one: margin paper, Problem (4) for any layer l.
With the slopes fixed, q_i and every pre-activation h_iu are linear in u^(l) (Phi is 1-homogeneous in one layer),
so each activation pattern of the units that layer l feeds (its own and those above) is a polyhedron, and the
problem on it a least-distance program: one for a linear net (convex, Thm 5.2's global optimum); the patterns
around theta~ (local); all patterns when there are at most _MAX_LAYER_PROGRAMS (global)."""
from __future__ import annotations

import itertools

import numpy as np

from .model import _EXACT_TOL

_MAX_LAYER_PROGRAMS = 4096   # polyhedra per question (around theta~, or everywhere)


def _program(m, theta, block, dep, slopes):
    """(G, h) of layer `block`'s problem on the pattern `slopes` (the units dep take their sides from it)."""
    G, h = m.grads(theta, slopes)[:, block], np.ones(m.n)
    if m.relu and len(dep):
        N = m.core.switch_normals(theta, m.X, slopes)[:, dep][:, :, block]
        side = 2.0 * slopes[:, dep] - 1.0
        G = np.vstack([G, (side[:, :, None] * N).reshape(-1, N.shape[2])])
        h = np.concatenate([h, np.zeros(N.shape[0] * N.shape[1])])
    return G, h


def _patterns(base, pairs):
    """base with every 0/1 assignment of the (i, u) pairs."""
    for bits in itertools.product((0.0, 1.0), repeat=len(pairs)):
        s = base.copy()
        if len(pairs):
            s[pairs[:, 0], pairs[:, 1]] = bits
        yield s


def _classn_layer_programs(m, theta, layer, global_opt):
    """(around, everywhere, why) as the two-layer `_layer_programs`: lists of (G, h) or None."""
    block = m.blocks[layer - 1]
    base = m.slopes(theta)
    if not m.relu:
        one = [_program(m, theta, block, [], base)]
        return one, one, "convex: the margins are linear in this layer"
    dep = np.flatnonzero(m.unit_layer >= layer - 1)
    zero = np.argwhere(m.zero_ratio(theta)[:, dep] <= _EXACT_TOL)
    around = None
    if 2 ** len(zero) <= _MAX_LAYER_PROGRAMS:
        pairs = np.column_stack([zero[:, 0], dep[zero[:, 1]]]) if len(zero) else zero
        around = [_program(m, theta, block, dep, s) for s in _patterns(base, pairs)]
    count = 2 ** (m.n * len(dep))
    if not global_opt or count > _MAX_LAYER_PROGRAMS:
        return around, None, (f"global not decided: {count} activation patterns of the units this layer feeds "
                              f"(more than {_MAX_LAYER_PROGRAMS})" if global_opt else "")
    pairs = np.array([(i, u) for i in range(m.n) for u in dep])
    everywhere = [_program(m, theta, block, dep, s) for s in _patterns(base, pairs)]
    return around, everywhere, f"least over all {count} activation patterns of the units this layer feeds"
