"""The random-sweep-large experiment (issue #24): random datasets of up to 1000 points on the unit sphere and
two-layer nets up to width 128 (the asv suite's large grid), each run labelled by the flow's status, with whether
its loss ended below l(0)/n, its dead units and whether it slid; strata by n and width, each with its time per
sample."""
from __future__ import annotations

import math
from functools import partial

import numpy as np

from .experiment import Experiment
from .flow import STATUSES
from .stats import interval
from .sweep import sphere_sweep

LOSS_AT_ZERO = {"exponential": 1.0, "logistic": math.log(2.0)}


def large_outcome(traj, net, data, loss):
    X, _ = data
    W1, _ = net.split(traj.theta)
    n = X.shape[0]
    rec = {"n": n, "d": X.shape[1], "width": W1.shape[0],
           # L is a sum over samples, so L < l(0)/n puts every sample's loss below l(0)/n
           "below_l0_over_n": float(traj.loss < LOSS_AT_ZERO[loss] / n),
           # a unit no sample activates at the end: its weights get no gradient from the data
           "dead_units": float(np.count_nonzero(np.all(X @ W1.T <= 0.0, axis=0))),
           "slid": float(np.any(traj.events["kind"] == "slide_start"))}
    return traj.status, rec


def large_report(est):
    n = est.n
    lines = []
    for name, what in (("below_l0_over_n", "loss below l(0)/n"), ("slid", "slid on a switching surface")):
        k = int(np.nansum(est.records[name]))
        lo, hi = interval(k, n, est.confidence, est.method)
        lines.append(f"{what}: {k}/{n} = {k / n:.3f} [{lo:.3f}, {hi:.3f}]")
    dead = est.records["dead_units"]
    k = int(np.count_nonzero(dead > 0))
    lo, hi = interval(k, n, est.confidence, est.method)
    lines.append(f"with a dead unit at the end: {k}/{n} = {k / n:.3f} [{lo:.3f}, {hi:.3f}]; dead units per run "
                 f"{np.nanmean(dead):.2f} on average, {np.nanmax(dead):g} at most")
    return lines


# Today a flow at n = 1000, width 128 takes about 50 ms a step and needs tens of thousands of steps to log t = 10;
# the step cap keeps `fastflow run random-sweep-large --n 16` within an hour on 2 cores (such runs end max_steps).
def random_sweep_large(ns=(100, 300, 1000), ds=(10,), widths=(16, 64, 128), loss="logistic", log_t_max=10.0,
                       max_steps=5000, n=16):
    if loss not in LOSS_AT_ZERO:
        raise ValueError(f"loss must be one of {list(LOSS_AT_ZERO)} (the labels compare the loss with l(0)/n)")
    return Experiment(
        name="random-sweep-large",
        description=f"large random datasets: n in {list(ns)} points on the unit sphere of R^d, d in {list(ds)}, "
                    f"labels of a random linear teacher, two_layer(d, width), width in {list(widths)}, Xavier init, "
                    f"{loss} loss, flow to log t = {log_t_max:g} or {max_steps} steps; label = the status",
        prediction="none: a census of what large flows do (status, fit, dead units, sliding) and what they cost, "
                   "per (n, width)",
        **sphere_sweep(ns, ds, widths),
        loss=loss,
        flow={"log_t_max": log_t_max, "max_steps": max_steps},
        outcome=partial(large_outcome, loss=loss),
        labels=list(STATUSES),
        default_n=n,
        chunk_size=1,   # one slow sample per task: an interrupted run loses only the samples in flight
        strata=("n", "width"),
        report=large_report,
    )


__all__ = ["random_sweep_large"]
