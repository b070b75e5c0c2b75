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
_CHUNK_ROWS = 1024   # samples x patterns per C++ call (the switch normals are rows x units x parameters)


def _programs(m, theta, block, dep, slopes):
    """The (G, h) of layer `block`'s problem on each pattern of `slopes` (patterns, n, n_hidden; the units dep take
    their sides from it), with one Jacobian call and one switch-normals call per chunk of patterns."""
    n = m.n
    h = np.concatenate([np.ones(n), np.zeros(n * len(dep) if m.relu else 0)])
    out, step = [], max(1, _CHUNK_ROWS // n)
    for a in range(0, len(slopes), step):
        S = slopes[a:a + step]
        X, flat = np.tile(m.X, (len(S), 1)), np.ascontiguousarray(S.reshape(len(S) * n, S.shape[2]))
        G = (np.tile(m.y, len(S))[:, None] * m.core.jacobian(theta, X, flat)[:, 0, block]).reshape(len(S), n, -1)
        if m.relu and len(dep):
            N = m.core.switch_normals(theta, X, flat, units=dep)[:, :, block].reshape(len(S), n * len(dep), -1)
            side = (2.0 * S[:, :, dep] - 1.0).reshape(len(S), -1)
            G = np.concatenate([G, side[:, :, None] * N], axis=1)
        out += [(g, h) for g in G]
    return out


def _patterns(base, pairs):
    """base with every 0/1 assignment of the (i, u) pairs: (2^len(pairs), n, n_hidden)."""
    bits = np.array(list(itertools.product((0.0, 1.0), repeat=len(pairs)))).reshape(2 ** len(pairs), len(pairs))
    out = np.repeat(base[None], len(bits), axis=0)
    if len(pairs):
        out[:, pairs[:, 0], pairs[:, 1]] = bits
    return out


def _classn_layer_programs(m, theta, layer, global_opt, local):
    """(around, everywhere, why) as the two-layer `_layer_programs`: lists of (G, h) or None."""
    block = m.blocks[layer - 1]
    base = m.slopes(theta)
    if not m.relu:
        one = _programs(m, theta, block, [], base[None])
        return one, one, "convex: the margins are linear in this layer"
    dep = np.flatnonzero(m.unit_layer >= layer - 1)
    zero = np.argwhere(m.zero_ratio(theta)[:, dep] <= _EXACT_TOL)
    around = None
    if local and 2 ** len(zero) <= _MAX_LAYER_PROGRAMS:
        pairs = np.column_stack([zero[:, 0], dep[zero[:, 1]]]) if len(zero) else zero
        around = _programs(m, theta, block, dep, _patterns(base, pairs))
    count = 2 ** (m.n * len(dep))
    if not global_opt or count > _MAX_LAYER_PROGRAMS:
        return around, None, (f"global not decided: {count} activation patterns of the units this layer feeds "
                              f"(more than {_MAX_LAYER_PROGRAMS})" if global_opt else "")
    pairs = np.array([(i, u) for i in range(m.n) for u in dep])
    everywhere = _programs(m, theta, block, dep, _patterns(base, pairs))
    return around, everywhere, f"least over all {count} activation patterns of the units this layer feeds"
