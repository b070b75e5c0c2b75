"""Networks: the parameter layout (split/join), forward passes, and the C++ model the integrator runs."""
from __future__ import annotations

import numpy as np

from . import _core
from ._validate import choice, positive_int, real_array

ACTIVATIONS = ("relu", "linear")


class Network:
    """A network of the margin paper's class N with its flat parameter vector theta.

    theta is the concatenation of the layer matrices W1..Wm, each row-major; `split` and `join` convert.
    """

    def __init__(self, core, layer_shapes, activation, *, is_homogeneous=True, degree=None):
        self._core = core
        self.layer_shapes = [tuple(s) for s in layer_shapes]
        self.activation = activation
        self.is_homogeneous = is_homogeneous
        self.degree = len(self.layer_shapes) if degree is None else degree

    @property
    def n_params(self):
        return self._core.n_params

    @property
    def depth(self):
        return len(self.layer_shapes)

    @property
    def d_in(self):
        return self._core.d_in

    @property
    def d_out(self):
        return self._core.d_out

    def check_theta(self, theta, name="theta"):
        theta = real_array(name, theta, ndim=1)
        if theta.shape[0] != self.n_params:
            raise ValueError(f"{name} must have length n_params = {self.n_params}, got {theta.shape[0]}")
        return theta

    def check_X(self, X):
        X = real_array("X", X, ndim=2)
        if X.shape[1] != self.d_in:
            raise ValueError(f"X must have d_in = {self.d_in} columns, got {X.shape[1]}")
        return X

    def split(self, theta):
        """The weight matrices W1..Wm (copies) of a flat theta."""
        theta = self.check_theta(theta)
        mats, start = [], 0
        for shape in self.layer_shapes:
            size = shape[0] * shape[1]
            mats.append(theta[start:start + size].reshape(shape).copy())
            start += size
        return mats

    def join(self, mats):
        """The flat theta of weight matrices W1..Wm."""
        if len(mats) != len(self.layer_shapes):
            raise ValueError(f"mats must hold {len(self.layer_shapes)} matrices, got {len(mats)}")
        parts = []
        for k, (m, shape) in enumerate(zip(mats, self.layer_shapes)):
            m = real_array(f"mats[{k}]", m, ndim=2)
            if m.shape != shape:
                raise ValueError(f"mats[{k}] must have shape {shape}, got {m.shape}")
            parts.append(m.ravel())
        return np.concatenate(parts)

    def forward(self, theta, X):
        """Phi(theta; X) as an (n, d_out) array."""
        return self._core.forward(self.check_theta(theta), self.check_X(X))

    def preactivations(self, theta, X):
        """The hidden pre-activations, one (n, width_l) array per hidden layer."""
        h = self._core.preactivations(self.check_theta(theta), self.check_X(X))
        widths = [s[0] for s in self.layer_shapes[:-1]] if self.activation == "relu" else []
        return np.split(h, np.cumsum(widths)[:-1], axis=1) if widths else []

    def __repr__(self):
        shapes = " -> ".join(str(s[1]) for s in self.layer_shapes) + f" -> {self.d_out}"
        return f"Network({shapes}, {self.activation}, n_params={self.n_params})"


def two_layer(d_in, width, d_out=1, activation="relu"):
    """Phi(x) = W2 sigma(W1 x): W1 is (width, d_in) with rows w_j, W2 is (d_out, width) with columns v_j."""
    d_in = positive_int("d_in", d_in)
    width = positive_int("width", width)
    d_out = positive_int("d_out", d_out)
    choice("activation", activation, ACTIVATIONS)
    core = _core.TwoLayer(d_in, width, d_out, activation)
    return Network(core, [(width, d_in), (d_out, width)], activation)
