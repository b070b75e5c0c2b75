"""Networks of the margin paper's class N: the parameter layout (split/join), forward passes, and the C++ model the
integrator runs."""
from __future__ import annotations

import numpy as np

from . import _core
from ._validate import choice, positive_int, real_array

ACTIVATIONS = ("relu", "linear")


def _check_maps(maps):
    if not isinstance(maps, (list, tuple)) or len(maps) < 2:
        raise ValueError("maps must be a list of at least two 2-D index maps (one per layer)")
    checked = []
    for l, g in enumerate(maps):
        g = np.asarray(g)
        if g.ndim != 2 or g.size == 0 or g.dtype.kind not in "iub":
            raise ValueError(f"maps[{l}] must be a non-empty 2-D integer array, got {g.dtype} of shape {g.shape}")
        g = g.astype(np.int64)
        if np.any(g < 0):
            raise ValueError(f"maps[{l}] holds 0 (absent) or parameter numbers k > 0")
        used = np.unique(g[g > 0])
        if used.size == 0 or not np.array_equal(used, np.arange(1, used.size + 1)):
            raise ValueError(f"maps[{l}] must number its parameters 1..p without gaps")
        if l > 0 and g.shape[1] != checked[-1].shape[0]:
            raise ValueError(f"maps[{l}] has {g.shape[1]} columns but layer {l} has {checked[-1].shape[0]} units")
        checked.append(g)
    return checked


class Network:
    """A network of the class N (margin paper, section 2).

    maps[l] is the index map of layer l+1, shape (d_{l+1}, d_l): 0 = structural zero, k > 0 = parameter k of that
    layer (a repeated k is a shared weight). Hidden layers use `activation`; the output layer none. `bias` adds a
    bias to every hidden unit and `skip` a linear skip connection x -> U x (both make the network
    non-homogeneous). theta = [layer 1 parameters, ..., layer m parameters, hidden biases, U (d_out x d_in)].
    """

    def __init__(self, maps, activation="relu", bias=False, skip=False):
        self.maps = _check_maps(maps)
        self.activation = choice("activation", activation, ACTIVATIONS)
        self.bias, self.skip = bool(bias), bool(skip)
        self.layer_shapes = [g.shape for g in self.maps]
        self.layer_params = [int(g.max()) for g in self.maps]
        self.hidden_widths = [s[0] for s in self.layer_shapes[:-1]]
        self.is_homogeneous = not (self.bias or self.skip)
        self.degree = len(self.maps)  # of the layered part; with bias/skip the network is not homogeneous
        sizes = [self.layer_shapes[0][1]] + [s[0] for s in self.layer_shapes]
        if self.is_two_layer:
            self._core = _core.TwoLayer(sizes[0], sizes[1], sizes[2], activation)
        else:
            self._core = _core.Layered(sizes, [g.ravel().tolist() for g in self.maps], activation, self.bias,
                                       self.skip)

    @property
    def is_two_layer(self):
        """A plain two-layer fully connected network W2 sigma(W1 x) (every weight its own parameter, no bias, no
        skip): theta = [W1 row-major, W2 row-major], the layout `split` returns as [W1, W2]."""
        return (len(self.maps) == 2 and not self.bias and not self.skip
                and all(np.array_equal(g.ravel(), np.arange(1, g.size + 1)) for g in self.maps))

    @property
    def watched_for_branches(self):
        """Whether flows log this network's unstable branches: plain two-layer nets (sliding surfaces entered or
        turning repulsive, units pinned at w = 0), and nets of three or more layers (sliding surfaces entered or
        turning repulsive where their switches slide alone in their samples, and units pinned at w = 0 whose incoming
        weights are their own parameters). `branch="leave"` leaves every branch these logs find."""
        return self.is_two_layer or self.depth >= 3

    @property
    def structure(self):
        """What defines the network (equal for networks built alike): activation, bias, skip and the index maps."""
        return (self.activation, self.bias, self.skip, tuple((g.shape, g.tobytes()) for g in self.maps))

    def __reduce__(self):
        # the C++ model does not pickle: rebuild it from the definition (for worker processes and Dask)
        return type(self), (self.maps, self.activation, self.bias, self.skip)

    @property
    def n_params(self):
        return self._core.n_params

    @property
    def depth(self):
        return len(self.maps)

    @property
    def d_in(self):
        return self._core.d_in

    @property
    def d_out(self):
        return self._core.d_out

    @property
    def has_sharing(self):
        return any(np.count_nonzero(g) != g.max() for g in self.maps)

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

    def layer_parameters(self, theta):
        """theta's parameter vectors u^(1)..u^(m) (then the hidden biases and U when present)."""
        theta = self.check_theta(theta)
        cuts = np.cumsum(self.layer_params)
        parts = np.split(theta[:cuts[-1]], cuts[:-1])
        rest = theta[cuts[-1]:]
        if self.bias:
            parts.append(rest[:sum(self.hidden_widths)])
            rest = rest[sum(self.hidden_widths):]
        if self.skip:
            parts.append(rest.reshape(self.d_out, self.d_in))
        return [p.copy() for p in parts]

    def split(self, theta):
        """The weight matrices W1..Wm of theta (structural zeros filled in), then the hidden bias vectors (one per
        hidden layer) if `bias`, then U if `skip`."""
        parts = self.layer_parameters(theta)
        mats = []
        for g, u in zip(self.maps, parts):
            W = np.zeros(g.shape)
            W[g > 0] = u[g[g > 0] - 1]
            mats.append(W)
        rest = parts[len(self.maps):]
        if self.bias:
            mats += np.split(rest.pop(0), np.cumsum(self.hidden_widths)[:-1])
        if self.skip:
            mats.append(rest.pop(0))
        return mats

    def join(self, mats):
        """The flat theta of matrices laid out as `split` returns them (shared entries must agree, structural
        zeros must be zero)."""
        expected = len(self.maps) + (len(self.hidden_widths) if self.bias else 0) + int(self.skip)
        if len(mats) != expected:
            raise ValueError(f"mats must hold {expected} arrays, got {len(mats)}")
        parts = []
        for l, (g, W) in enumerate(zip(self.maps, mats)):
            W = real_array(f"mats[{l}]", W, ndim=2)
            if W.shape != g.shape:
                raise ValueError(f"mats[{l}] must have shape {g.shape}, got {W.shape}")
            u = np.zeros(g.max())
            u[g[g > 0] - 1] = W[g > 0]
            if np.any(W[g == 0] != 0) or np.any(u[g[g > 0] - 1] != W[g > 0]):
                raise ValueError(f"mats[{l}] breaks the layer's structure (structural zeros / shared weights)")
            parts.append(u)
        k = len(self.maps)
        if self.bias:
            for j, w in enumerate(self.hidden_widths):
                b = real_array(f"mats[{k}]", mats[k], ndim=1)
                if b.shape != (w,):
                    raise ValueError(f"mats[{k}] must be a bias of length {w}")
                parts.append(b)
                k += 1
        if self.skip:
            U = real_array(f"mats[{k}]", mats[k], ndim=(1, 2)).reshape(-1)
            if U.size != self.d_out * self.d_in:
                raise ValueError(f"mats[{k}] must be U of shape ({self.d_out}, {self.d_in})")
            parts.append(U)
        return np.concatenate(parts)

    def forward(self, theta, X):
        """Phi(theta; X) as an (n, d_out) array."""
        return self._core.forward(self.check_theta(theta), self.check_X(X))

    def preactivations(self, theta, X):
        """The hidden pre-activations, one (n, width_l) array per hidden layer."""
        h = self._core.preactivations(self.check_theta(theta), self.check_X(X))
        if self.activation != "relu":
            return []
        return np.split(h, np.cumsum(self.hidden_widths)[:-1], axis=1)

    def normalized_margin(self, theta, X, y):
        """min_i y_i Phi(theta; x_i) / ||theta||^L; for a skip connection, each homogeneous part over ||theta|| to
        its own degree (margin paper, ICLR version, section 6). NaN with hidden biases (parts of mixed degree)."""
        norm = np.linalg.norm(theta)
        if self.bias:
            return float("nan")
        if norm == 0:
            return 0.0
        y = np.asarray(y, dtype=float).reshape(len(X), -1)   # +-1 labels, one column per output
        out = self.forward(theta, X)
        if not self.skip:
            return float(np.min(y * out) / norm**self.degree)
        skip = X @ self.split(theta)[-1].T
        return float(np.min(y * ((out - skip) / norm**self.degree + skip / norm)))

    def __repr__(self):
        shapes = " -> ".join(str(s[1]) for s in self.layer_shapes) + f" -> {self.d_out}"
        extras = "".join([", bias" if self.bias else "", ", skip" if self.skip else ""])
        return f"Network({shapes}, {self.activation}{extras}, n_params={self.n_params})"


def _dense(rows, cols):
    return np.arange(1, rows * cols + 1).reshape(rows, cols)


def fully_connected(d_in, widths, d_out=1, activation="relu", bias=False):
    """Fully connected layers d_in -> widths[0] -> ... -> d_out (every weight its own parameter)."""
    d_in, d_out = positive_int("d_in", d_in), positive_int("d_out", d_out)
    if isinstance(widths, (int, np.integer)):
        widths = [widths]
    widths = [positive_int(f"widths[{k}]", w) for k, w in enumerate(widths)]
    if not widths:
        raise ValueError("widths must name at least one hidden layer")
    sizes = [d_in] + widths + [d_out]
    return Network([_dense(sizes[l + 1], sizes[l]) for l in range(len(sizes) - 1)], activation, bias=bias)


def two_layer(d_in, width, d_out=1, activation="relu"):
    """Phi(x) = W2 sigma(W1 x): W1 is (width, d_in) with rows w_j, W2 is (d_out, width) with columns v_j."""
    choice("activation", activation, ACTIVATIONS)
    return fully_connected(d_in, [positive_int("width", width)], d_out, activation)


def diagonal(d, depth, activation="relu"):
    """h_l = sigma(diag(w_l) h_{l-1}) for l < depth, Phi = w_depth . h_{depth-1} (margin paper, section 2)."""
    d, depth = positive_int("d", d), positive_int("depth", depth, minimum=2)
    diag = np.diag(np.arange(1, d + 1))
    return Network([diag] * (depth - 1) + [np.arange(1, d + 1)[None, :]], activation)


def conv_disjoint(patch, n_patches, activation="relu"):
    """A shared filter w (length `patch`) over `n_patches` disjoint patches, then output weights v:
    Phi(x) = sum_j v_j sigma(w . x^(j)) (margin paper, Thm 4.4)."""
    patch, n_patches = positive_int("patch", patch), positive_int("n_patches", n_patches)
    first = np.zeros((n_patches, patch * n_patches), dtype=np.int64)
    for j in range(n_patches):
        first[j, j * patch:(j + 1) * patch] = np.arange(1, patch + 1)
    return Network([first, np.arange(1, n_patches + 1)[None, :]], activation)
