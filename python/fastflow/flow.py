"""`flow` and `flow_many`: the exact (sub)gradient flow of a network on a dataset."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from . import _core
from ._validate import check_memory, choice, positive_int, real_array, real_scalar
from .data import as_dataset

LOSSES = ("exponential", "logistic", "square")
STATUSES = ("converged", "t_max", "max_steps", "max_events", "stalled", "interrupted", "error")
EVENT_KINDS = ("activate", "deactivate", "slide_start", "slide_end", "branch")
# the square-loss flow converges to a point: stop there instead of resolving rounding noise until t_max
DEFAULT_SQUARE_GTOL = 1e-10
MEMORY_HINT = "fewer samples, a narrower network or fewer t_eval points"
EVENT_DTYPE = np.dtype([("t", "f8"), ("log_t", "f8"), ("kind", "U11"), ("sample", "i8"), ("layer", "i8"),
                        ("neuron", "i8")])


@dataclass(frozen=True)
class Trajectory:
    """The result of one flow. `events` is a structured array (t, log_t, kind, sample, layer, neuron)."""

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
        tau = np.asarray(tau, dtype=float)
        with np.errstate(over="ignore", divide="ignore"):
            if self.log_time:
                return np.expm1(tau), tau + np.log(-np.expm1(-tau))
            return tau, np.log(tau)


def _problem(net, data, loss, t_max, log_t_max, rtol, atol, t_eval, max_events, max_steps, gtol):
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
    rtol = real_scalar("rtol", rtol, low=0.0, high=0.1, low_open=True)
    atol = real_scalar("atol", atol, low=0.0)
    time = _TimeMap(loss)
    if log_t_max is not None:
        tau_max = float(time.tau_of_log_t(real_scalar("log_t_max", log_t_max)))
        if not np.isfinite(tau_max):
            raise ValueError(f"log_t_max = {log_t_max} is past float64 time for the square loss; use t_max")
        if tau_max <= 0:
            raise ValueError(f"log_t_max = {log_t_max} gives no positive horizon")
    else:
        tau_max = float(time.tau(real_scalar("t_max", t_max, low=0.0, low_open=True)))
    if t_eval is None:
        t_eval = np.zeros(0)
    else:
        t_eval = real_array("t_eval", t_eval, ndim=1)
        if np.any(t_eval < 0) or np.any(np.diff(t_eval) < 0):
            raise ValueError("t_eval must be non-negative and sorted in increasing order")
    if gtol is None:
        gtol = DEFAULT_SQUARE_GTOL if loss == "square" else 0.0
    gtol = real_scalar("gtol", gtol, low=0.0)
    options = dict(loss=loss, tau_max=tau_max, rtol=rtol, atol=atol,
                   max_steps=positive_int("max_steps", max_steps),
                   max_events=positive_int("max_events", max_events), gtol=gtol,
                   tau_eval=np.ascontiguousarray(time.tau(t_eval)))
    return data, y, time, t_eval, options


def _margin(net, data, theta, loss, y):
    return float("nan") if loss == "square" else net.normalized_margin(theta, data.X, y)


def _trajectory(raw, net, data, y, loss, time, t_eval):
    t, log_t = time.t_and_log_t(raw["tau"])
    ev_t, ev_log_t = time.t_and_log_t(raw["event_tau"])
    events = np.zeros(len(ev_t), dtype=EVENT_DTYPE)
    events["t"], events["log_t"] = ev_t, ev_log_t
    events["kind"] = np.asarray(EVENT_KINDS)[raw["event_kind"]] if len(ev_t) else []
    events["sample"], events["layer"], events["neuron"] = raw["event_sample"], raw["event_layer"], raw["event_neuron"]
    theta = raw["theta"]
    with np.errstate(under="ignore", over="ignore"):
        loss_value, grad_norm = np.exp(raw["log_loss"]), np.exp(raw["log_grad_norm"])
        loss_at = np.exp(raw["log_loss_eval"])
    return Trajectory(
        status=STATUSES[raw["status"]], message=raw["message"], t=float(t), log_t=float(log_t), theta=theta,
        loss=float(loss_value), log_loss=float(raw["log_loss"]), grad_norm=float(grad_norm),
        margin=_margin(net, data, theta, loss, y), events=events, n_steps=int(raw["n_steps"]),
        n_rejected=int(raw["n_rejected"]), n_rhs=int(raw["n_rhs"]), t_eval=t_eval, theta_at=raw["theta_eval"],
        loss_at=loss_at)


def flow(net, data, theta0, loss="exponential", t_max=1e6, log_t_max=None, rtol=1e-10, atol=1e-12, t_eval=None,
         max_events=100_000, max_steps=10_000_000, gtol=None):
    """Integrate the minimal-norm (sub)gradient flow d theta/dt = -m(theta) from theta0.

    loss: "exponential" | "logistic" (y of +-1, log-space, any horizon; with d_out = K > 1 one-vs-all over
    integer class labels in [0, K)) | "square" (real targets).
    t_max, or log_t_max for horizons past float64 (classification losses). gtol: stop ("converged") once
    ||grad L|| <= gtol (default 1e-10 for the square loss, 0 otherwise). t_eval: sorted times for dense samples (theta_at, loss_at). Ctrl-C returns the run so far
    with status "interrupted".
    """
    data, y, time, t_eval, options = _problem(net, data, loss, t_max, log_t_max, rtol, atol, t_eval, max_events,
                                              max_steps, gtol)
    theta0 = net.check_theta(theta0, "theta0")
    check_memory("this flow", _core.integrator_bytes(net._core, data.n, len(t_eval)), MEMORY_HINT)
    raw = _core.integrate(net._core, data.X, y, theta0, **options)
    return _trajectory(raw, net, data, y, loss, time, t_eval)


def flow_many(net, data, thetas0, threads=None, **kwargs):
    """`flow` from each row of thetas0, on C++ threads with the GIL released; identical to a loop of `flow`
    whatever `threads` is."""
    loss = kwargs.pop("loss", "exponential")
    args = {k: kwargs.pop(k) for k in list(kwargs) if k in ("t_max", "log_t_max", "rtol", "atol", "t_eval",
                                                            "max_events", "max_steps", "gtol")}
    if kwargs:
        raise TypeError(f"flow_many got unexpected arguments: {', '.join(kwargs)}")
    defaults = dict(t_max=1e6, log_t_max=None, rtol=1e-10, atol=1e-12, t_eval=None, max_events=100_000,
                    max_steps=10_000_000, gtol=None)
    defaults.update(args)
    data, y, time, t_eval, options = _problem(net, data, loss, **defaults)
    thetas0 = real_array("thetas0", thetas0, ndim=2)
    if thetas0.shape[1] != net.n_params:
        raise ValueError(f"thetas0 must have n_params = {net.n_params} columns, got {thetas0.shape[1]}")
    threads = os.cpu_count() or 1 if threads is None else positive_int("threads", threads)
    results = 16.0 * thetas0.size * (1 + len(t_eval))  # C++ results and their NumPy copies
    workers = min(threads, len(thetas0))
    check_memory(f"flow_many of {len(thetas0)} runs on {workers} threads",
                 workers * _core.integrator_bytes(net._core, data.n, len(t_eval)) + results,
                 MEMORY_HINT + ", fewer threads or fewer rows at once")
    raws = _core.integrate_many(net._core, data.X, y, thetas0, threads=threads, **options)
    return [_trajectory(raw, net, data, y, loss, time, t_eval) for raw in raws]
