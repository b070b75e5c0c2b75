"""What every check shares: the tolerances, the problem and violation records, and the independent re-evaluation
of a network's pre-activations, bands and loss weights in NumPy."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..flow import flow

SENSIBLE_STATUSES = ("converged", "t_max", "stalled")
VIOLATION_KINDS = ("missed_crossing", "wrong_side", "off_surface_while_sliding", "spurious_event", "duplicate_event",
                   "inconsistent_kind", "unexplained_branch", "t_eval_perturbs", "unconfirmed_exit", "conservation",
                   "loss_increase", "nonfinite", "status", "timeout", "exception")
EPS = np.finfo(float).eps

# Tolerances, in units of what the integrator promises. Dense output between two accepted steps is accurate to
# about rtol * ||theta|| + atol, so a sliding pre-activation (held at 0 at step ends) may show that much at a grid
# point; a sign is "significant" beyond H_BAND times that.
H_BAND = 1e3
CONSERVATION_TOL = 1e4    # relative drift of ||w_j||^2 - ||v_j||^2 over a short run, in units of rtol
LOSS_TOL = 10.0           # relative increase of the loss between two dense samples (interpolation), in units of rtol
SAME_T = 1e-12            # relative tolerance when matching event times with grid intervals
LEAVE_LEAD = 64.0         # branch="leave" leaves a surface turning repulsive once D is this many noise levels past 0
DENSE_ERROR = 16.0        # ... its noise: a dense-output weight's error, in atol + rtol max|theta| (branches.hpp)
EXIT_BAND = 1e-6          # a slide ends where its multiplier reaches 0 or 1: how far inside [0, 1] it may be then


@dataclass
class Problem:
    """A ReLU problem: net, data, initial point, loss, horizon and the flow options."""

    net: object
    X: np.ndarray
    y: np.ndarray
    theta0: np.ndarray
    loss: str
    t_max: float
    rtol: float = 1e-10
    atol: float = 1e-12
    options: dict = field(default_factory=dict)

    def run(self, t_eval=None, **extra):
        """ff.flow on this problem; `extra` overrides any option (t_max, max_steps, ...)."""
        kwargs = dict(loss=self.loss, t_max=self.t_max, rtol=self.rtol, atol=self.atol, t_eval=t_eval)
        return flow(self.net, (self.X, self.y), self.theta0, **{**kwargs, **self.options, **extra})


@dataclass(frozen=True)
class Violation:
    kind: str
    detail: str

    def __str__(self):
        return f"{self.kind}: {self.detail}"


def _two_layer_blocks(net, thetas):
    """(W1s (m, width, d), W2s (m, d_out, width)) of the rows of thetas, for a plain two-layer network."""
    (width, d), (d_out, _) = net.layer_shapes
    thetas = np.atleast_2d(thetas)
    k = width * d
    return thetas[:, :k].reshape(-1, width, d), thetas[:, k:k + d_out * width].reshape(-1, d_out, width)


def preactivations_many(net, thetas, X):
    """Every hidden pre-activation (m, n, units) at the rows of thetas, computed in NumPy (two-layer) or through
    net.preactivations (other architectures)."""
    thetas = np.atleast_2d(thetas)
    if net.depth == 2 and net.is_homogeneous and not net.has_sharing and net.maps[0].min() > 0:
        W1s = _two_layer_blocks(net, thetas)[0]
        return np.einsum("id,mjd->mij", X, W1s)
    return np.stack([np.concatenate(net.preactivations(th, X), axis=1) for th in thetas])


def h_bands(net, thetas, X, rtol, atol):
    """What a pre-activation may show by integration error alone at each dense sample (m, n, units):
    H_BAND |x_i| (rtol ||theta|| + atol) + 64 eps |x_i| |w_j| (rounding)."""
    thetas = np.atleast_2d(thetas)
    xn = np.linalg.norm(X, axis=1)
    tn = np.linalg.norm(thetas, axis=1)
    # a unit of hidden layer l is a product of l weight layers: its integration error grows like ||theta||^(l-1)
    layer_of_unit = np.repeat(np.arange(len(net.hidden_widths)), net.hidden_widths)
    growth = np.maximum(tn, 1.0)[:, None] ** layer_of_unit[None, :]  # (m, units)
    band = H_BAND * xn[None, :, None] * (rtol * tn + atol)[:, None, None] * growth[:, None, :]
    if net.depth == 2 and not net.has_sharing and net.is_homogeneous and net.maps[0].min() > 0:
        wn = np.linalg.norm(_two_layer_blocks(net, thetas)[0], axis=2)  # (m, width)
        band = band + 64 * EPS * xn[None, :, None] * wn[:, None, :]
    return band + 1e-300


def balance(net, thetas):
    """Per hidden neuron of a two-layer network: ||w_j||^2 - ||v_j||^2 and ||w_j||^2 + ||v_j||^2, each (m, width)."""
    W1s, W2s = _two_layer_blocks(net, thetas)
    a, b = np.sum(W1s**2, axis=2), np.sum(W2s**2, axis=1)
    return a - b, a + b


def ell0(loss):
    return {"exponential": 1.0, "logistic": np.log(2.0)}[loss]


def _pair_events(events):
    """{(sample, layer, neuron): [(t, kind), ...]} in time order (branch events left out)."""
    out = {}
    for e in events:
        if str(e["kind"]) == "branch":
            continue
        out.setdefault((int(e["sample"]), int(e["layer"]), int(e["neuron"])), []).append((float(e["t"]),
                                                                                          str(e["kind"])))
    return out


def _units(net):
    """(layer, neuron) of every hidden unit, in the order of the last axis of preactivations_many."""
    return [(layer, r) for layer, width in enumerate(net.hidden_widths) for r in range(width)]


def _significant_signs(net, thetas, X, rtol, atol):
    """(pre-activations, their bands, their signs beyond the bands: +-1 or 0), each (m, n, units)."""
    H = preactivations_many(net, thetas, X)
    B = h_bands(net, thetas, X, rtol, atol)
    return H, B, np.where(H > B, 1, np.where(H < -B, -1, 0))


def dead_inputs(net, S):
    """(m, n, units) of the significant signs S: True where the unit's layer input is zero to rounding, every unit
    of the layer below off or on its surface (a dead signal path, no bias). Such a pre-activation is 0, and when
    the path revives its side is set without an event of its own."""
    dead = np.zeros(S.shape, dtype=bool)
    if net.bias:
        return dead
    ends = np.cumsum(net.hidden_widths)
    for below, (lo, hi) in enumerate(zip(ends[:-1], ends[1:])):
        start = ends[below] - net.hidden_widths[below]
        dead[:, :, lo:hi] = np.all(S[:, :, start:lo] <= 0, axis=2)[:, :, None]
    return dead


def jacobian_descent(net, X, y, loss, theta, eta, steps):
    """theta after `steps` steps of plain gradient descent at step eta on the loss summed over samples, through the
    model's per-sample Jacobians at the slopes of the pre-activations' signs (relu'(0) = 0): any network."""
    core, theta, Y = net._core, np.array(theta, dtype=float), np.asarray(y, dtype=float).reshape(len(X), -1)
    for _ in range(steps):
        slopes = (core.preactivations(theta, X) > 0).astype(float)
        G = sample_weights(loss, core.forward(theta, X), Y)
        theta = theta + eta * np.einsum("io,iop->p", G, core.jacobian(theta, X, slopes))
    return theta


def sample_weights(loss, out, y):
    """G = -dL/dPhi per sample and output (the time factor of classification left out: it scales every G alike)."""
    if loss == "square":
        return y.reshape(out.shape) - out
    y = y.reshape(out.shape)
    q = y * out
    # logistic: 1 / (1 + e^q) in log space (1 - tanh(q / 2) loses every digit of a weight below 1e-16)
    return y * np.exp(-q if loss == "exponential" else -np.logaddexp(0.0, q))
