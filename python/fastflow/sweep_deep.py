"""The deep-sweep experiment (issue #23): random separable datasets on the unit sphere (as random-sweep's), fully
connected ReLU nets of depth 3, d -> w -> w -> 1 with one width w drawn per run, Xavier init, exponential or
logistic loss to log t = T. Each run is labelled

    abnormal             the flow stopped outside converged / t_max / stalled (Zeno guard, max_steps, error): its
                         end says nothing about the limit, so it is counted here rather than dropped
    not_separated        a normal end whose final normalized margin is not positive
    converged_direction  every sample classified (margin > 0) and the direction u = theta / ||theta|| in its
                         asymptotic regime at the horizon: the angle u turned through over the last doubling of log t,
                         (T/2, T], is at most both the angle it turned through over (T/4, T/2] and angle_tol
    still_turning        every sample classified, but the last turn was larger than the one before or than angle_tol

Why this rule. Late in the flow theta(t) ~ r(t) u* + c, with r^L ~ log t / margin and c what init left that the flow
does not grow (dead units' weights, the conserved balances), so even a run whose limit is decided keeps turning by
about |c| (1/r(T/2) - 1/r(T)) per doubling of log t: ~0.05 rad at T = 32 from Xavier init, falling like
(log t)^(-1/3). A fixed small angle would then only measure T; what the rule rejects is a turn that is speeding up
(a saddle escape or a neuron growing in progress) or too large to be that tail. Every run whose loss falls below
l(0)/n converges in direction eventually (Ji & Telgarsky 2020), so P(converged_direction) measures how many are in
that regime by T, not how many converge. Activation patterns keep changing late (events past log t = 100 are
common), mostly without changing the turn's course; each run records its events in (T/2, T], and the report counts
the converged runs that had any.

Each run that ends normally also records its dead units: hidden units inactive (pre-activation <= 0, within the
integration error band of `fuzz_checks.h_bands`, so that a unit held on a switching surface counts as inactive) on
every sample at the end. The report gives P(converged_direction) over all runs and P(some dead unit) over the normal
ends, with Wilson intervals, overall and per width, the mean fraction of dead units, and the abnormal ends by status.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from . import init as _init
from ._validate import choice, positive_int, real_scalar
from .experiment import Experiment
from .flow import STATUSES, FlowOptions
from .fuzz_checks import SENSIBLE_STATUSES, h_bands
from .networks import fully_connected
from .stats import angle, interval
from .sweep import sphere_data

LABELS = ["converged_direction", "still_turning", "not_separated", "abnormal"]
LOSSES = ("exponential", "logistic")


def deep_net(data, rng, widths):
    """d -> w -> w -> 1, ReLU, with w drawn from `widths` (one width for both hidden layers)."""
    w = int(rng.choice(widths))
    return fully_connected(data[0].shape[1], [w, w])


def dead_units(net, theta, X, rtol, atol):
    """Per hidden unit (layers in order): inactive on every sample, pre-activation <= the integration error band."""
    H = np.concatenate(net.preactivations(theta, X), axis=1)
    return np.all(H <= h_bands(net, theta, X, rtol, atol)[0], axis=0)


def deep_outcome(traj, net, data, log_t_max, angle_tol):
    """The label (module docstring) with (n, d, width), the margin and the status (index in STATUSES); after a
    normal end the dead units and their fraction; after a separating one the turns of the direction over
    (T/4, T/2] and (T/2, T] and the number of events in (T/2, T]."""
    X, _ = data
    rec = {"n": X.shape[0], "d": X.shape[1], "width": net.hidden_widths[0], "margin": traj.margin,
           "status": STATUSES.index(traj.status)}
    if traj.status not in SENSIBLE_STATUSES:
        return "abnormal", rec
    opts = FlowOptions()   # the experiment's flows keep the default tolerances
    dead = dead_units(net, traj.theta, X, opts.rtol, opts.atol)
    rec.update(dead_units=int(dead.sum()), dead_fraction=float(dead.mean()))
    if not traj.margin > 0:
        return "not_separated", rec
    u_quarter, u_half = traj.theta_at
    turn_before, turn = angle(u_quarter, u_half), angle(u_half, traj.theta)
    late = int(np.count_nonzero(traj.events["log_t"] > log_t_max / 2))
    rec.update(turn_before=turn_before, turn=turn, late_events=late)
    return ("converged_direction" if turn <= min(turn_before, angle_tol) else "still_turning"), rec


def _column(est, name):
    """A record of every sample, NaN where no run recorded it (e.g. the turns when no run separated)."""
    return est.records.get(name, np.full(est.n, np.nan))


def _share(what, k, n, est):
    lo, hi = interval(k, n, est.confidence, est.method)
    return f"{what} {k}/{n} = {k / n:.3f} [{lo:.3f}, {hi:.3f}]"


def deep_report(est):
    """Abnormal ends by status; P(converged_direction) over all runs and P(some dead unit) over the runs that ended
    normally, with intervals at the estimate's level, overall and per width; the mean fraction of dead units."""
    status = est.records["status"].astype(int)
    abnormal = est.mask("abnormal")
    by_status = ", ".join(f"{STATUSES[s]} {c}" for s, c in zip(*np.unique(status[abnormal], return_counts=True)))
    lines = [f"abnormal ends (status outside {', '.join(SENSIBLE_STATUSES)}): {int(abnormal.sum())}/{est.n}"
             + (f" ({by_status})" if by_status else "")]
    converged = est.mask("converged_direction")
    dead, fraction, late = (_column(est, name) for name in ("dead_units", "dead_fraction", "late_events"))
    widths = est.records["width"]
    for w in [None, *np.unique(widths)]:
        sel = np.ones(est.n, bool) if w is None else widths == w
        normal = sel & ~abnormal
        parts = [_share("converged direction", int(np.sum(converged & sel)), int(sel.sum()), est)
                 + f" ({int(np.sum(converged & sel & (late > 0)))} with events in the last half of log t)"]
        if normal.any():
            parts.append(_share("some dead unit", int(np.sum(dead[normal] > 0)), int(normal.sum()), est)
                         + f", mean dead fraction {np.mean(fraction[normal]):.3f}")
        lines.append(("all widths" if w is None else f"width {w:g}") + f" (n={int(sel.sum())}): " + "; ".join(parts))
    return lines


def deep_sweep(ns=(8, 16), ds=(2, 3), widths=(4, 5, 6, 7, 8), loss="exponential", log_t_max=32.0,
               angle_tol=0.1, max_steps=20_000, n=200):
    """ns, ds: the grids of sample sizes and input dimensions; widths: the hidden width w of d -> w -> w -> 1;
    loss: "exponential" or "logistic"; log_t_max: the horizon T; angle_tol: the largest turn of the direction over
    the last doubling of log t a settled run may make (radians); max_steps: per flow (more: abnormal)."""
    ns = tuple(positive_int("ns", k) for k in ns)
    ds = tuple(positive_int("ds", k) for k in ds)
    widths = tuple(positive_int("widths", k) for k in widths)
    if not (ns and ds and widths):
        raise ValueError("ns, ds and widths must be non-empty")
    loss = choice("loss", loss, LOSSES)
    # the direction is sampled at t = e^(T/4) and e^(T/2): both must be finite
    log_t_max = real_scalar("log_t_max", log_t_max, low=0.0, high=1400.0, low_open=True)
    angle_tol = real_scalar("angle_tol", angle_tol, low=0.0, high=np.pi, low_open=True)
    max_steps = positive_int("max_steps", max_steps)
    return Experiment(
        name="deep-sweep",
        description=f"random datasets: n in {list(ns)} points on the unit sphere of R^d, d in {list(ds)}, labels of "
                    f"a random linear separator; fully_connected(d, [w, w]) ReLU, w in {list(widths)}, Xavier init, "
                    f"{loss} loss to log t = {log_t_max:g} (at most {max_steps} steps); converged_direction = margin "
                    f"> 0 and the direction's turn over ({log_t_max / 2:g}, "
                    f"{log_t_max:g}] at most min(its turn over ({log_t_max / 4:g}, {log_t_max / 2:g}], "
                    f"{angle_tol:g} rad); abnormal = a stop outside {'/'.join(SENSIBLE_STATUSES)}",
        prediction="every run whose loss falls below l(0)/n converges in direction eventually (Ji & Telgarsky "
                   "2020): P(converged_direction) is how many are in that regime by the horizon, not how many "
                   "converge; no prediction for dead units",
        data=partial(sphere_data, ns=ns, ds=ds),
        net=partial(deep_net, widths=widths),
        init=_init.xavier,
        loss=loss,
        flow={"log_t_max": log_t_max, "max_steps": max_steps,
              "t_eval": [float(np.exp(log_t_max / 4)), float(np.exp(log_t_max / 2))]},
        outcome=partial(deep_outcome, log_t_max=log_t_max, angle_tol=angle_tol),
        labels=LABELS,
        default_n=n,
        chunk_size=4,   # a few seconds a sample: small chunks spread over the workers and lose little on Ctrl-C
        strata=("width",),
        report=deep_report,
    )


__all__ = ["deep_sweep"]
