"""Any homogeneous network of the class N other than the fully connected two-layer one (any depth, structural zeros,
shared weights; no bias, no skip; d_out = 1), through the C++ model: margins, per-sample gradients and
pre-activations for a given activation pattern (slopes), and the weighted Hessians of Phi (dual numbers in C++).

With the slopes fixed, Phi is a homogeneous polynomial of degree L (the depth) in theta, so q_i = g_i . theta / L
(Euler)."""
from __future__ import annotations

from functools import cached_property

import numpy as np

from .model import _clarke_subsets


class _ClassN:
    general = True

    def __init__(self, net, X, y):
        self.net, self.core = net, net._core
        self.X, self.y = np.ascontiguousarray(X, dtype=float), y
        self.n, self.p, self.degree = self.X.shape[0], net.n_params, net.depth
        self.relu = net.activation == "relu"
        cuts = np.concatenate([[0], np.cumsum(net.layer_params)]).astype(int)
        self.blocks = [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]
        self.unit_layer = np.repeat(np.arange(len(net.hidden_widths)), net.hidden_widths)
        self.xnorm = np.linalg.norm(self.X, axis=1)

    def unit_params(self):
        """For each hidden unit, the indices in theta of its incoming and outgoing weights."""
        out = []
        for k, width in enumerate(self.net.hidden_widths):
            g_in, g_out = self.net.maps[k], self.net.maps[k + 1]
            for r in range(width):
                idx = np.concatenate([self.blocks[k].start + g_in[r][g_in[r] > 0] - 1,
                                      self.blocks[k + 1].start + g_out[:, r][g_out[:, r] > 0] - 1])
                out.append(np.unique(idx))
        return out

    @cached_property
    def param_edges(self):
        """(parameter, the hidden units at the edge's ends) for every edge of the net: several edges carry one
        parameter under weight sharing."""
        offsets = np.cumsum([0] + self.net.hidden_widths)   # global index of each hidden layer's first unit
        last = len(self.net.maps) - 1
        out = []
        for l, g in enumerate(self.net.maps):
            for r, c in np.argwhere(g > 0):
                ends = ([offsets[l - 1] + c] if l > 0 else []) + ([offsets[l] + r] if l < last else [])
                out.append((self.blocks[l].start + g[r, c] - 1, ends))
        return out

    def pre(self, theta, slopes=None):
        """(n, n_hidden) pre-activations (n_hidden = 0 for linear nets)."""
        return self.core.preactivations(theta, self.X, slopes)

    def slopes(self, theta):
        return (self.pre(theta) > 0).astype(float)

    def margins(self, theta, slopes=None):
        return self.y * self.core.forward(theta, self.X, slopes)[:, 0]

    def grads(self, theta, slopes=None, rows=None):
        """(len(rows), p): y_i dPhi_i/dtheta at the given slopes (n, n_hidden; default: theta's own)."""
        rows = np.arange(self.n) if rows is None else np.asarray(rows, int)
        sl = None if slopes is None else np.ascontiguousarray(slopes[rows])
        return self.y[rows, None] * self.core.jacobian(theta, self.X[rows], sl)[:, 0, :]

    def margins_jac(self, theta):
        return self.grads(theta)

    def checked_margins(self, theta):
        return self.y * self.net.forward(theta, self.X)[:, 0]

    def terms(self, theta):
        """The size of the terms that cancel into each Phi(x_i): the network of |theta| on |x_i|, same pattern."""
        return np.abs(self.core.forward(np.abs(theta), np.abs(self.X), self.slopes(theta))[:, 0])

    def zero_ratio(self, theta):
        """|h_iu| / (||x_i|| prod_{l <= layer of u} ||W_l||_F): small on a switching surface, and for a unit whose
        weights die relative to its layer's."""
        norms = np.cumprod([np.linalg.norm(W) for W in self.net.split(theta)[:-1]])
        scale = np.outer(self.xnorm, norms[self.unit_layer])
        h = np.abs(self.pre(theta))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(scale > 0, h / np.where(scale > 0, scale, 1.0), 0.0)

    def clarke_columns(self, theta, support, zero_tol):
        """y_i g_i for every extreme slope choice (0 or 1 on each of sample i's zero pre-activations) of each support
        sample. (columns, owners, exact)."""
        if not self.relu:
            return list(self.grads(theta, rows=support)), list(support), True
        zero = self.zero_ratio(theta) <= zero_tol
        base = self.slopes(theta)
        base[zero] = 0.0
        cols, owner, exact = [], [], True
        for i in support:
            subsets, ok = _clarke_subsets(np.flatnonzero(zero[i]))
            exact &= ok
            S = np.repeat(base[i][None], len(subsets), axis=0)
            for r, sub in enumerate(subsets):
                S[r, sub] = 1.0
            J = self.core.jacobian(theta, np.repeat(self.X[i:i + 1], len(subsets), axis=0), S)[:, 0, :]
            cols += list(self.y[i] * J)
            owner += [i] * len(subsets)
        return cols, owner, exact

    def lagrangian_hessian(self, theta, lam, slopes):
        """I - sum_i lam_i d^2 q_i / d theta^2 on the pattern `slopes`: the Hessian of 1/2 ||theta||^2 - lam . q."""
        rows = np.flatnonzero(lam)
        if not len(rows):
            return np.eye(self.p)
        H = np.eye(self.p) - self.core.hessian(theta, self.X[rows], (lam * self.y)[rows, None],
                                               np.ascontiguousarray(slopes[rows]))
        return 0.5 * (H + H.T)
