"""The networks `analyze` reads: the fully connected two-layer model in NumPy (any other homogeneous net of the class
N goes through the C++ model, `classn._ClassN`), the validation of the inputs, the normalisation to margin 1, and the
Clarke choices at zero pre-activations."""
from __future__ import annotations

from functools import cached_property

import itertools

import numpy as np

from ..arrangements import arrangements
from ..data import as_dataset

# thresholds tau for reading the limit's structure off a late trajectory point (support: q_i <= 1 + tau; zero
# pre-activation: |w_j.x_i| <= tau ||w_j|| ||x_i||; zero neuron: ||(w_j, v_j)|| <= tau ||theta||)
_LADDER = (0.0, 1e-12, 1e-9, 1e-6, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.2, 0.3)
_EXACT_TOL = 1e-9        # support / zero tolerances at a polished point (exact there up to rounding)
_POLISH_TOL = 1e-10      # a polished point must have a KKT residual below this
_MAX_RAYS = 1024         # Clarke freedom of one sample: 2^|zero pre-activations| extreme rays, at most this many
_RADII = (1.0, 0.25, 0.0625)   # certificates are sought at eps times these radii
# analyze's default budgets, each sized for the AnalyzeRandom limits that need the most of it (issue #20: under 2 s;
# none of them needs both near their full budget): Jacobian entries of polishing's Levenberg-Marquardt steps (a step
# costs about its Jacobian's size squared; ~1e-7 s of CPU per entry on one BLAS thread, so about 1.2 s; the not_kkt
# deep FC limits need up to 1.2e7), and SLSQP iterations of the certificate search (~0.25 ms each on deep FC nets,
# so about 0.75 s; their kkt_only points need up to 2200, 22 starts of 100 iterations on switching surfaces)
_POLISH_BUDGET = 12_000_000
_SEARCH_BUDGET = 3000


class _Budget:
    """Work left to a search, counted rather than timed so that a verdict does not depend on the machine's speed.
    cut: the search was stopped for it."""

    def __init__(self, amount):
        self.left, self.cut = amount, False

    def spend(self, amount=1):
        """Take `amount`: False (and cut) when less is left."""
        self.cut = self.cut or self.left < amount
        self.left -= 0 if self.cut else amount
        return not self.cut


def _clarke_subsets(free):
    """The units switched on in the extreme Clarke choices of one sample whose units `free` sit on their surfaces:
    all 2^|free| subsets up to _MAX_RAYS, else the empty and full sets, the singletons and their complements (an
    inner approximation of the cone). (subsets, exact)."""
    free = np.asarray(free, int)
    if 2 ** len(free) <= _MAX_RAYS:
        return [free[np.array(bits, bool)] for bits in itertools.product((0, 1), repeat=len(free))], True
    return ([free[:0], free] + [free[[t]] for t in range(len(free))] + [np.delete(free, t) for t in range(len(free))],
            False)


class _Model:
    """Phi = sum_j v_j sigma(w_j . x), fully connected, in NumPy (closed forms for polishing and the dual checks)."""

    degree = 2
    general = False

    def __init__(self, net, X, y):
        (self.k, self.d), _ = net.layer_shapes
        self.net, self.X, self.y = net, X, y
        self.n = X.shape[0]
        self.relu = net.activation == "relu"
        self.nw = self.k * self.d
        self.blocks = [slice(0, self.nw), slice(self.nw, None)]
        self.xnorm = np.linalg.norm(X, axis=1)

    @cached_property
    def cells(self):
        """The activation patterns of X's cells, enumerated once for the convex program, the dual check and the
        per-layer problem."""
        return arrangements(self.X)

    def unpack(self, theta):
        return theta[:self.nw].reshape(self.k, self.d), theta[self.nw:]

    def pack(self, W, v):
        return np.concatenate([np.ravel(W), v])

    def pre(self, theta):
        return self.X @ self.unpack(theta)[0].T

    def act(self, h):
        return np.maximum(h, 0.0) if self.relu else h

    def margins(self, theta):
        W, v = self.unpack(theta)
        return self.y * (self.act(self.X @ W.T) @ v)

    def margins_jac(self, theta):
        W, v = self.unpack(theta)
        h = self.X @ W.T
        s = (h > 0).astype(float) if self.relu else np.ones_like(h)
        dW = (self.y[:, None, None] * (s * v)[:, :, None] * self.X[:, None, :]).reshape(self.n, self.nw)
        return np.hstack([dW, self.y[:, None] * self.act(h)])

    def checked_margins(self, theta):
        return self.y * self.net.forward(theta, self.X)[:, 0]

    def neuron_norms(self, theta):
        W, v = self.unpack(theta)
        return np.sqrt(np.sum(W**2, axis=1) + v**2)

    def cosines(self, theta):
        """w_j . x_i / (||w_j|| ||x_i||), 0 where either is zero."""
        W, _ = self.unpack(theta)
        h = self.X @ W.T
        scale = np.outer(self.xnorm, np.linalg.norm(W, axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(scale > 0, h / np.where(scale > 0, scale, 1.0), 0.0)

    def terms(self, theta):
        """The size of the terms that cancel into each Phi(x_i): the network of |theta| on |x_i|, same pattern (an
        active unit whose pre-activation is a rounding residue, a switch the flow left on its surface, adds noise
        of the size of its inputs' terms)."""
        W, v = self.unpack(theta)
        pattern = (self.X @ W.T > 0) if self.relu else 1.0
        return (np.abs(self.X) @ np.abs(W.T) * pattern) @ np.abs(v)

    def clarke_columns(self, theta, support, zero_tol):
        """The extreme rays y_i g_i of each support sample's Clarke subdifferential: at a zero pre-activation (i, j)
        the w_j-block of g_i is s y_i v_j x_i with s in [0, 1] (the v_j-block is 0). (columns, owners, exact)."""
        W, v = self.unpack(theta)
        h = self.X @ W.T
        zero = (np.abs(self.cosines(theta)) <= zero_tol) if self.relu else np.zeros(h.shape, bool)
        cols, owner, exact = [], [], True
        for i in support:
            a = ((h[i] > 0) & ~zero[i]).astype(float) if self.relu else np.ones(self.k)
            Wpart = (self.y[i] * v * a)[:, None] * self.X[i][None, :]
            vpart = self.y[i] * np.where(zero[i], 0.0, self.act(h[i]))
            subsets, ok = _clarke_subsets(np.flatnonzero(zero[i] & (v != 0)) if self.xnorm[i] > 0 else [])
            exact &= ok
            for sub in subsets:
                Wp = Wpart.copy()
                Wp[sub] += (self.y[i] * v[sub])[:, None] * self.X[i][None, :]
                cols.append(self.pack(Wp, vpart))
                owner.append(i)
        return cols, owner, exact



def _setup(net, data, theta):
    if not getattr(net, "is_homogeneous", False):
        raise ValueError("analyze needs a homogeneous network (no bias, no skip connection)")
    if net.activation not in ("relu", "linear"):
        raise ValueError(f"analyze supports ReLU and linear activations; got {net.activation!r}")
    if net.d_out != 1:
        raise ValueError(f"analyze needs a binary classifier with d_out = 1; got d_out = {net.d_out}")
    data = as_dataset(data)
    if data.d != net.d_in:
        raise ValueError(f"X has {data.d} columns but the network has d_in = {net.d_in}")
    y = data.y.reshape(data.n, -1)
    if y.shape[1] != 1:
        raise ValueError(f"analyze needs binary labels +-1 (one per sample); got targets of shape {data.y.shape} "
                         f"(square-loss regression targets are not supported)")
    y = np.ascontiguousarray(y[:, 0])
    if not np.all(np.abs(y) == 1.0):
        raise ValueError("analyze needs binary labels +1 or -1 (square-loss regression targets are not supported)")
    theta = net.check_theta(theta)
    maps = net.maps
    dense = len(maps) == 2 and all(np.array_equal(np.ravel(g), np.arange(1, np.size(g) + 1)) for g in maps)
    if dense:
        return _Model(net, data.X, y), theta
    from .classn import _ClassN   # imported here: classn builds on this module
    return _ClassN(net, data.X, y), theta


def _unresolved_margin(m, theta, q):
    """Why theta, with margins q, cannot be normalised to margin 1 (a margin not positive, or within the rounding of
    its terms), or None."""
    qmin = float(np.min(q))
    if not qmin > 0:
        return (f"min_i y_i Phi(theta; x_i) = {qmin:.6g} <= 0: theta does not classify every sample, so it cannot be "
                f"normalised to margin 1")
    terms = m.terms(theta)
    if np.any(q <= 1e-9 * terms):
        i = int(np.argmax(terms / np.maximum(q, 1e-300)))
        return (f"the margin of sample {i} ({q[i]:.3g}) is at the rounding level of its terms ({terms[i]:.3g}): theta "
                f"cannot be normalised to margin 1 reliably")
    return None


def _normalise(m, theta):
    q = m.checked_margins(theta)
    reason = _unresolved_margin(m, theta, q)
    if reason is not None:
        raise ValueError(reason)
    return theta * float(np.min(q)) ** (-1.0 / m.degree)


def classifies(net, data, theta):
    """Whether theta classifies every sample with a margin beyond the rounding of its terms: what `analyze` needs to
    normalise theta to margin 1. A flow can end with a sample's margin a rounding residue of either sign (a sample
    whose only active unit slides on its surface has Phi = 0): its positive sign says nothing."""
    m, theta = _setup(net, data, theta)
    return _unresolved_margin(m, theta, m.checked_margins(theta)) is None

