"""Initialisations. `rng` is an int seed or a numpy Generator."""
from __future__ import annotations

import numpy as np

from ._validate import real_scalar


def _rng(rng):
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def gaussian(net, std, rng=None):
    """Every parameter i.i.d. N(0, std^2)."""
    std = real_scalar("std", std, low=0.0)
    return _rng(rng).normal(0.0, std, net.n_params) if std > 0 else np.zeros(net.n_params)


def _scaled(net, rng, variance):
    """Each layer's parameters N(0, variance(fan_out, fan_in)); biases 0; a skip matrix like a layer d_in -> d_out."""
    rng = _rng(rng)
    parts = [rng.normal(0.0, np.sqrt(variance(*shape)), p) for shape, p in zip(net.layer_shapes, net.layer_params)]
    if net.bias:
        parts.append(np.zeros(sum(net.hidden_widths)))
    if net.skip:
        parts.append(rng.normal(0.0, np.sqrt(variance(net.d_out, net.d_in)), net.d_out * net.d_in))
    return np.concatenate(parts)


def xavier(net, rng=None):
    """Glorot normal: W_l entries N(0, 2/(fan_in + fan_out))."""
    return _scaled(net, rng, lambda fan_out, fan_in: 2.0 / (fan_in + fan_out))


def he(net, rng=None):
    """He normal: W_l entries N(0, 2/fan_in)."""
    return _scaled(net, rng, lambda fan_out, fan_in: 2.0 / fan_in)


def _unit_rows(rng, rows, cols):
    while True:
        u = rng.normal(size=(rows, cols))
        norms = np.linalg.norm(u, axis=1, keepdims=True)
        if np.all(norms > 0):
            return u / norms


def sphere(net, radius, rng=None):
    """Rows of the hidden layers' matrices and columns of the output matrix uniform on the sphere of `radius`
    (the rank paper's section 3.1)."""
    radius = real_scalar("radius", radius, low=0.0)
    if net.has_sharing or net.bias or net.skip or any(np.any(g == 0) for g in net.maps):
        raise ValueError("sphere initialisation is defined for fully connected networks")
    rng = _rng(rng)
    mats = [radius * _unit_rows(rng, *s) for s in net.layer_shapes[:-1]]
    out_rows, out_cols = net.layer_shapes[-1]
    mats.append(radius * _unit_rows(rng, out_cols, out_rows).T)
    return net.join(mats)


def balanced(net, scale, rng=None):
    """Two-layer 'scaled' initialisation |v_j| = ||w_j|| = scale with uniform directions and random output signs
    (the convex-geometry paper's Lemma 1)."""
    if net.depth != 2 or net.has_sharing or net.bias or net.skip or any(np.any(g == 0) for g in net.maps):
        raise ValueError("balanced initialisation is defined for fully connected two-layer networks")
    scale = real_scalar("scale", scale, low=0.0)
    rng = _rng(rng)
    (width, d_in), (d_out, _) = net.layer_shapes
    W1 = scale * _unit_rows(rng, width, d_in)
    W2 = scale * _unit_rows(rng, width, d_out).T
    return net.join([W1, W2])
