"""Competitors of a two-layer KKT point: a zero neuron turned on along an infeasible dual direction (margin paper,
Thm 3.2) and neurons tilted onto samples they touch (Thm 4.2(2))."""
from __future__ import annotations

import numpy as np

from .model import _EXACT_TOL

def _dual_directions(m, lam, rng, n_random=8):
    """Unit u and sign s with s sum_i lam_i y_i relu(u.x_i) > 1: a small neuron (w, v) = c (u, s) then gains more
    margin than it costs (the infeasible dual directions of the convex-geometry paper, VSS Thm 3.2's competitor).
    Found by the fixed point u <- normalise(sum_{i: u.x_i > 0} s lam_i y_i x_i) from the samples and random
    directions. Sorted by value, best first."""
    starts = [m.X[i] / m.xnorm[i] for i in range(m.n) if m.xnorm[i] > 0 and lam[i] > 0]
    starts += list(rng.normal(size=(n_random, m.d)))
    found = {}
    for s in (1.0, -1.0):
        for u in starts:
            u = u / np.linalg.norm(u)
            for _ in range(50):
                active = (m.X @ u) > 0 if m.relu else np.ones(m.n, bool)
                g = s * (lam * m.y * active) @ m.X
                ng = np.linalg.norm(g)
                if ng == 0:
                    break
                u_new = g / ng
                if np.allclose(u_new, u, atol=1e-14):
                    break
                u = u_new
            val = s * np.sum(lam * m.y * m.act(m.X @ u))
            if val > 1 + 1e-9:
                found[(s, tuple(np.round(u, 10)))] = (val, u, s)
    return sorted(found.values(), key=lambda t: -t[0])


def _starts(m, theta, lam, radius, rng, n_random):
    """Initial perturbations delta for the local search, the papers' constructions first."""
    W, v = m.unpack(theta)
    norms = m.neuron_norms(theta)
    scale = np.linalg.norm(theta)
    c = 0.5 * radius
    out = []
    zero_neurons = np.flatnonzero(norms <= 1e-9 * scale)
    if len(zero_neurons):   # turn on a zero neuron along an infeasible dual direction (VSS Thm 3.2)
        j = zero_neurons[0]
        for val, u, s in _dual_directions(m, lam, rng)[:6]:
            dW, dv = np.zeros_like(W), np.zeros_like(v)
            dW[j], dv[j] = c / np.sqrt(2) * u, s * c / np.sqrt(2)
            out.append((f"turn on zero neuron {j} along a dual direction (value {val:.4g} > 1)", m.pack(dW, dv)))
    if m.relu:   # tilt neurons onto samples they touch and would help (VSS Thm 4.2(2))
        cos = m.cosines(theta)
        q = m.margins(theta)
        touch = (np.abs(cos) <= _EXACT_TOL) & (q[:, None] <= 1 + _EXACT_TOL) & (norms[None, :] > 1e-9 * scale) \
            & (m.y[:, None] * v[None, :] > 0) & (m.xnorm[:, None] > 0)
        pairs = np.argwhere(touch)
        for i, j in pairs[:8]:
            dW = np.zeros_like(W)
            dW[j] = c * m.X[i] / m.xnorm[i]
            out.append((f"tilt neuron {j} onto sample {i}", m.pack(dW, np.zeros_like(v))))
        neurons = np.unique(pairs[:, 1]) if len(pairs) else []
        if len(neurons) > 1:
            for r in range(4):
                dW = np.zeros_like(W)
                for j in neurons:
                    cand = pairs[pairs[:, 1] == j, 0]
                    i = cand[rng.integers(len(cand))]
                    dW[j] = c / np.sqrt(len(neurons)) * m.X[i] / m.xnorm[i]
                out.append((f"tilt neurons {list(map(int, neurons))} onto touched samples (draw {r})",
                            m.pack(dW, np.zeros_like(v))))
    for r in range(n_random):
        delta = rng.normal(size=theta.size)
        out.append((f"random perturbation {r}", c * delta / np.linalg.norm(delta)))
    return out

