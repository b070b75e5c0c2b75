"""The random-sweep experiment: random datasets on the unit sphere over a small grid of (n, d, width), each run
labelled by the verdict of the flow's limit (`analyze_limit`: the horizon rule, continued from the run's end)."""
from __future__ import annotations

from functools import partial

import numpy as np

from . import init as _init
from ._validate import real_scalar
from .analysis import VERDICTS, analyze_limit, classifies
from .experiment import Experiment
from .flow import STATUSES
from .networks import two_layer


def sphere_data(rng, ns, ds):
    """n points uniform on the unit sphere of R^d, labels from a random linear separator; (n, d) drawn from the
    grid."""
    n, d = int(rng.choice(ns)), int(rng.choice(ds))
    X = rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    u = rng.normal(size=d)
    y = np.where(X @ u >= 0, 1.0, -1.0)
    return X, y


def sweep_net(data, rng, widths):
    X, _ = data
    return two_layer(X.shape[1], int(rng.choice(widths)))


def sphere_sweep(ns, ds, widths):
    """The data, net and init of an Experiment over a (n, d, width) grid: points on the sphere, Xavier init."""
    return dict(data=partial(sphere_data, ns=tuple(ns), ds=tuple(ds)), net=partial(sweep_net, widths=tuple(widths)),
                init=_init.xavier)


def limit_verdict(traj, net, data, log_t_budget, max_steps):
    """(label, records) of a run: the verdict of the limit by the horizon rule, continuing the trajectory from its
    end, with the last horizon, its raw KKT residual and ||theta~||^2 (margin 1); not_separated if the final margin
    is not positive or within the rounding of its terms (from the final point, not the status: a run that reaches its
    horizon is "t_max" whether it separated or not); undecided if the flow ended early (e.g. in the Zeno guard)."""
    if not traj.margin > 0 or not classifies(net, data, traj.theta):
        return "not_separated", {}
    if traj.status not in ("t_max", "converged"):
        return "undecided", {"log_t": traj.log_t}
    lim = analyze_limit(net, data, traj.theta, log_t=traj.log_t, log_t0=traj.log_t, log_t_budget=log_t_budget,
                        max_steps=max_steps)
    log_t, _, _, raw_residual, norm_sq = lim.horizons[-1]
    return lim.verdict, {"log_t": log_t, "raw_kkt_residual": raw_residual, "norm_sq": norm_sq}


def sweep_outcome(traj, net, data, use_analysis, log_t_budget):
    X, _ = data
    W1, _ = net.split(traj.theta)
    rec = {"n": X.shape[0], "d": X.shape[1], "width": W1.shape[0], "margin": traj.margin}
    if not use_analysis:
        return ("not_separated" if not traj.margin > 0 else traj.status), rec
    label, more = limit_verdict(traj, net, data, log_t_budget, max_steps=1_000_000)
    return label, {**rec, **more}


def random_sweep(ns=(4, 8), ds=(2, 3), widths=(2, 4), log_t_max=300.0, n=None, use_analysis=True,
                 log_t_budget=4800.0):
    # a long first horizon: directions converge like 1/log t, and a point still far from its limit reads "not_kkt";
    # the horizon rule then doubles log t up to log_t_budget until the verdict settles
    log_t_budget = real_scalar("log_t_budget", log_t_budget, low=log_t_max)
    if n is None:
        n = 200 if use_analysis else 1000   # the rule analyses each run at least twice, ~0.2 s each
    labels = (list(VERDICTS) if use_analysis else list(STATUSES)) + ["not_separated"]
    source = (f"the verdict of the limit by the horizon rule (log t doubled up to {log_t_budget:g} until two "
              "horizons agree, else undecided)" if use_analysis else "the trajectory status") + \
        " (not_separated if the final margin is not positive)"
    return Experiment(
        name="random-sweep",
        description=f"random datasets: n in {list(ns)} points on the unit sphere of R^d, d in {list(ds)}, labels "
                    f"of a random linear separator, two_layer(d, width), width in {list(widths)}, Xavier init, "
                    f"exponential loss, flow to log t = {log_t_max:g}; label = {source}",
        prediction="margin paper Table 1: depth-2 ReLU nets may converge to KKT points that are not local optima; "
                   "how often, per (n, d, width), is what this sweep measures",
        **sphere_sweep(ns, ds, widths),
        loss="exponential",
        flow={"log_t_max": log_t_max},
        outcome=partial(sweep_outcome, use_analysis=use_analysis, log_t_budget=log_t_budget),
        labels=labels,
        default_n=n,
        strata=("n", "d", "width"),
    )


__all__ = ["random_sweep"]
