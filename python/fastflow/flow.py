"""`flow` and `flow_many`: the exact (sub)gradient flow of a network on a dataset."""
from __future__ import annotations

import math
import os
import sys
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field, fields

import numpy as np

from . import _core
from ._validate import boolean, check_memory, choice, positive_int, real_array, real_scalar
from .data import as_dataset

LOSSES = _core.LOSSES
STATUSES = _core.STATUSES
EVENT_KINDS = _core.EVENT_KINDS
_EVENT_KIND_NAMES = np.asarray(EVENT_KINDS)  # indexed by the kernel's event codes
MODES = _core.MODES
# the square-loss flow converges to a point: stop there instead of resolving rounding noise until t_max
DEFAULT_SQUARE_GTOL = 1e-10
MEMORY_HINT = "fewer samples, a narrower network or fewer t_eval points"
BRANCHES = ("stay", "leave")
EVENT_DTYPE = np.dtype([("t", "f8"), ("log_t", "f8"), ("kind", f"U{max(map(len, EVENT_KINDS))}"), ("sample", "i8"),
                        ("layer", "i8"), ("neuron", "i8")])


@dataclass(frozen=True)
class FlowOptions:
    """The options of `flow` and `flow_many` (and of an Experiment's flows), with their defaults.

    t_max, or log_t_max for horizons past float64 (classification losses). gtol: stop ("converged") once
    ||grad L|| <= gtol. By default (None) the square loss stops at 1e-10, or earlier once the field is within the
    change that a state error at the tolerance (atol + rtol |theta|) makes in it: it cannot fall further at this
    tolerance. Classification losses have no gtol by default (0), but settle the same way while L >= l(0) and no
    switch slides (data the net does not separate). t_eval: sorted times for dense samples (theta_at, loss_at).
    branch: at an unstable branch (a sliding surface turning repulsive, a unit pinned at w = 0; logged as `branch`)
    "stay" on the minimal-norm solution, or "leave" as gradient descent does (the nets `Network.watched_for_branches`
    names)."""

    t_max: float = 1e6
    log_t_max: float = None
    rtol: float = 1e-10
    atol: float = 1e-12
    t_eval: object = None
    max_events: int = 100_000
    max_steps: int = 10_000_000
    gtol: float = None
    branch: str = "stay"

    @classmethod
    def from_kwargs(cls, where, kwargs):
        """FlowOptions from keyword arguments, naming `where` and the allowed names if one is unknown."""
        unknown = sorted(set(kwargs).difference(FLOW_OPTIONS))
        if unknown:
            raise TypeError(f"{where}: unknown options {unknown}; allowed: {', '.join(sorted(FLOW_OPTIONS))}")
        return cls(**kwargs)


FLOW_OPTIONS = tuple(f.name for f in fields(FlowOptions))


@dataclass(frozen=True)
class Trajectory:
    """The result of one flow. `events` is a structured array (t, log_t, kind, sample, layer, neuron).

    theta_at, loss_at: the state and the loss at each time of t_eval. Past the end of a "converged" run they are
    its stationary point and that point's loss (the flow stays there); past any other early end (max_steps,
    max_events, stalled, interrupted, error) they are NaN."""

    status: str
    message: str
    t: float
    log_t: float
    theta: np.ndarray
    loss: float
    log_loss: float
    grad_norm: float
    margin: float
    events: np.ndarray
    n_steps: int
    n_rejected: int
    n_rhs: int
    t_eval: np.ndarray = field(repr=False)
    theta_at: np.ndarray = field(repr=False)
    loss_at: np.ndarray = field(repr=False)
    modes: np.ndarray = field(repr=False, default=None)  # (n, hidden units): index into MODES of the final mode
    # max over hidden units of |change| of ||incoming||^2 - ||outgoing||^2 (conserved by the exact flow) from theta0
    # to theta, relative to max of ||incoming||^2 + ||outgoing||^2 at the two; NaN without such balances (bias,
    # sharing, skip)
    balance_drift: float = float("nan")

    @property
    def mode_names(self):
        """The final mode of every (sample, hidden unit) switch by name ("inactive", "active", "sliding")."""
        return np.asarray(MODES)[self.modes]

    @property
    def n_events(self):
        return len(self.events)

    @property
    def direction(self):
        norm = np.linalg.norm(self.theta)
        return self.theta / norm if norm > 0 else self.theta.copy()


class _TimeMap:
    """Classification losses integrate in tau = log(1 + t), the square loss in tau = t."""

    def __init__(self, loss):
        self.log_time = loss != "square"

    def tau(self, t):
        return np.log1p(t) if self.log_time else np.asarray(t, dtype=float)

    def tau_of_log_t(self, log_t):
        with np.errstate(over="ignore"):
            return np.logaddexp(0.0, log_t) if self.log_time else np.exp(log_t)

    def t_and_log_t(self, tau):
        """(t, log t); the caller ignores overflow and log(0) (np.errstate: one context for all of a run's times)."""
        tau = np.asarray(tau, dtype=float)
        if self.log_time:
            return np.expm1(tau), tau + np.log(-np.expm1(-tau))
        return tau, np.log(tau)


def _problem(net, data, loss, opts):
    """The validated dataset, targets, time map, t_eval and the kernel's options of one flow problem."""
    choice("loss", loss, LOSSES)
    data = as_dataset(data)
    if data.d != net.d_in:
        raise ValueError(f"X has {data.d} columns but the network has d_in = {net.d_in}")
    if loss == "square":
        y = data.targets(net.d_out)
    elif net.d_out == 1:
        y = data.binary_labels(loss)
    else:
        y = data.one_vs_all(loss, net.d_out)
    time = _TimeMap(loss)
    core = _core.Options()
    core.loss = loss
    core.rtol = real_scalar("rtol", opts.rtol, low=0.0, high=0.1, low_open=True)
    core.atol = real_scalar("atol", opts.atol, low=0.0)
    if opts.log_t_max is not None:
        tau_max = float(time.tau_of_log_t(real_scalar("log_t_max", opts.log_t_max)))
        if not np.isfinite(tau_max):
            raise ValueError(f"log_t_max = {opts.log_t_max} is past float64 time for the square loss; use t_max")
        if tau_max <= 0:
            raise ValueError(f"log_t_max = {opts.log_t_max} gives no positive horizon")
    else:
        tau_max = float(time.tau(real_scalar("t_max", opts.t_max, low=0.0, low_open=True)))
    core.tau_max = tau_max
    if opts.t_eval is None:
        t_eval = np.zeros(0)
    else:
        t_eval = real_array("t_eval", opts.t_eval, ndim=1)
        if np.any(t_eval < 0) or np.any(np.diff(t_eval) < 0):
            raise ValueError("t_eval must be non-negative and sorted in increasing order")
    gtol = opts.gtol
    core.settle = gtol is None
    if gtol is None:
        gtol = DEFAULT_SQUARE_GTOL if loss == "square" else 0.0
    core.gtol = real_scalar("gtol", gtol, low=0.0)
    core.max_steps = positive_int("max_steps", opts.max_steps)
    core.max_events = positive_int("max_events", opts.max_events)
    core.tau_eval = np.ascontiguousarray(time.tau(t_eval)).tolist()
    core.branch = choice("branch", opts.branch, BRANCHES)
    if core.branch == "leave" and not net.watched_for_branches:
        raise ValueError("branch='leave' needs a plain two-layer fully connected network or one of three or more "
                         "layers: on others unstable branches are not watched")
    return data, y, time, t_eval, core


def _loss_text(log_loss):
    # log-space losses fall far below float64 on long horizons: then the exponent is what is left to show
    if -700.0 < log_loss < 700.0 or not math.isfinite(log_loss):
        return f"loss={math.exp(log_loss):.3e}"
    return f"loss=e^{log_loss:.4g}"


class _Bar:
    """A tqdm bar on stderr, closed on leaving its `with` block. The kernel calls it at most every 200 ms."""

    def __init__(self, **kwargs):
        from tqdm.auto import tqdm  # imported only when a bar is asked for: tqdm.auto probes for notebooks
        self.bar = tqdm(file=sys.stderr, dynamic_ncols=True, **kwargs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


class _FlowBar(_Bar):
    """One flow, over its clock tau: log(1 + t) for the classification losses, t for the square loss."""

    def __init__(self, time, tau_max):
        # miniters=0: print at every call (the kernel limits the rate); n and total are floats
        super().__init__(total=tau_max, desc="log(1+t)" if time.log_time else "t", miniters=0,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.4g}/{total:.4g} "
                                    "[{elapsed}<{remaining}{postfix}]")

    def __call__(self, tau, n_steps, n_events, log_loss, status=None):
        text = f"steps={n_steps}, events={n_events}, {_loss_text(log_loss)}"
        self.bar.set_postfix_str(text if status is None else f"{text}, {status}", refresh=False)
        self.bar.update(tau - self.bar.n)

    def finish(self, raw):
        self(raw["tau"], raw["n_steps"], len(raw["event_tau"]), raw["log_loss"], STATUSES[raw["status"]])


class _ManyBar(_Bar):
    """flow_many, over the finished runs (as estimate's bar is over samples)."""

    def __init__(self, total):
        super().__init__(total=total, unit="run", smoothing=0.1)

    def __call__(self, finished):
        self.bar.update(finished - self.bar.n)

    def finish(self, raws):
        statuses = Counter(STATUSES[raw["status"]] for raw in raws)
        self.bar.set_postfix_str(", ".join(f"{s} {c}" for s, c in sorted(statuses.items())), refresh=False)
        self(len(raws) - statuses["interrupted"])


def _margin(net, data, theta, loss, y):
    return float("nan") if loss == "square" else net.normalized_margin(theta, data.X, y)


def _trajectory(raw, net, data, y, loss, time, t_eval):
    with np.errstate(under="ignore", over="ignore", divide="ignore"):
        t, log_t = time.t_and_log_t(raw["tau"])
        ev_t, ev_log_t = time.t_and_log_t(raw["event_tau"])
        loss_value, grad_norm = np.exp(raw["log_loss"]), np.exp(raw["log_grad_norm"])
        loss_at = np.exp(raw["log_loss_eval"])
    events = np.zeros(len(ev_t), dtype=EVENT_DTYPE)
    events["t"], events["log_t"] = ev_t, ev_log_t
    events["kind"] = _EVENT_KIND_NAMES[raw["event_kind"]] if len(ev_t) else []
    events["sample"], events["layer"], events["neuron"] = raw["event_sample"], raw["event_layer"], raw["event_neuron"]
    theta = raw["theta"]
    return Trajectory(
        status=STATUSES[raw["status"]], message=raw["message"], t=float(t), log_t=float(log_t), theta=theta,
        loss=float(loss_value), log_loss=float(raw["log_loss"]), grad_norm=float(grad_norm),
        margin=_margin(net, data, theta, loss, y), events=events, n_steps=int(raw["n_steps"]),
        n_rejected=int(raw["n_rejected"]), n_rhs=int(raw["n_rhs"]), t_eval=t_eval, theta_at=raw["theta_eval"],
        loss_at=loss_at, modes=raw["modes"].reshape(data.n, -1), balance_drift=float(raw["balance_drift"]))


def flow(net, data, theta0, loss="exponential", *, progress=False, **options):
    """Integrate the minimal-norm (sub)gradient flow d theta/dt = -m(theta) from theta0.

    loss: "exponential" | "logistic" (y of +-1, log-space, any horizon; with d_out = K > 1 one-vs-all over
    integer class labels in [0, K)) | "square" (real targets). options: those of FlowOptions (t_max = 1e6,
    log_t_max, rtol = 1e-10, atol = 1e-12, t_eval, max_events = 100000, max_steps = 1e7, gtol, branch = "stay"
    | "leave"). progress: a tqdm bar on stderr over log(1 + t) (over t for the square loss) with steps, events and
    the loss, updated at most every 200 ms; the result is the same either way. Ctrl-C returns the run so far with
    status "interrupted".
    """
    progress = boolean("progress", progress)
    opts = FlowOptions.from_kwargs("flow", options)
    data, y, time, t_eval, core = _problem(net, data, loss, opts)
    theta0 = net.check_theta(theta0, "theta0")
    check_memory("this flow", _core.integrator_bytes(net._core, data.n, len(t_eval)), MEMORY_HINT)
    with _FlowBar(time, core.tau_max) if progress else nullcontext() as bar:
        raw = _core.integrate(net._core, data.X, y, theta0, core, progress=bar)
        if bar is not None:
            bar.finish(raw)
    return _trajectory(raw, net, data, y, loss, time, t_eval)


def flow_many(net, data, thetas0, threads=None, loss="exponential", *, progress=False, **options):
    """`flow` from each row of thetas0, on C++ threads with the GIL released; identical to a loop of `flow`
    whatever `threads` is. progress: a tqdm bar on stderr over the finished runs, updated at most every 200 ms."""
    progress = boolean("progress", progress)
    opts = FlowOptions.from_kwargs("flow_many", options)
    data, y, time, t_eval, core = _problem(net, data, loss, opts)
    thetas0 = real_array("thetas0", thetas0, ndim=2)
    if thetas0.shape[1] != net.n_params:
        raise ValueError(f"thetas0 must have n_params = {net.n_params} columns, got {thetas0.shape[1]}")
    threads = os.cpu_count() or 1 if threads is None else positive_int("threads", threads)
    results = 16.0 * thetas0.size * (1 + len(t_eval))  # C++ results and their NumPy copies
    workers = min(threads, len(thetas0))
    check_memory(f"flow_many of {len(thetas0)} runs on {workers} threads",
                 workers * _core.integrator_bytes(net._core, data.n, len(t_eval)) + results,
                 MEMORY_HINT + ", fewer threads or fewer rows at once")
    with _ManyBar(len(thetas0)) if progress else nullcontext() as bar:
        raws = _core.integrate_many(net._core, data.X, y, thetas0, core, threads=threads, progress=bar)
        if bar is not None:
            bar.finish(raws)
    return [_trajectory(raw, net, data, y, loss, time, t_eval) for raw in raws]
