"""A user-defined Monte Carlo experiment (imported by examples 03 and 04).

Question: three points on the upper unit half-circle, all labelled +1, a two-layer ReLU network of width 2 from a
Xavier initialisation, the exponential loss. How often is the limit direction of the flow a global max-margin
network, and how often only a KKT point?

Everything `ff.estimate` sends to worker processes or a Dask cluster must pickle: the sampler and the outcome are
top-level functions of an importable module (this one), parameters go in with functools.partial, and a two-layer
network travels as its recipe.
"""
from functools import partial

import numpy as np

import fastflow as ff

LABELS = ["global", "local", "not_local", "kkt_only", "not_kkt", "not_separated"]


def half_circle(rng, n):
    """n points uniform on the upper unit half-circle, labels +1 (separable: w = (0, 1) classifies them all)."""
    angles = rng.uniform(0.0, np.pi, n)
    return np.column_stack([np.cos(angles), np.sin(angles)]), np.ones(n)


def verdict(traj, net, data):
    """The label of one sample, and numbers recorded per sample (NaN where a sample records nothing)."""
    X, y = data
    angles = np.arctan2(X[:, 1], X[:, 0])
    record = {"spread_deg": np.degrees(np.ptp(angles)), "events": traj.n_events, "margin": traj.margin}
    # stalled before classifying every point, or a margin within rounding of 0: nothing to analyse
    if not traj.margin > 0 or not ff.analysis.classifies(net, data, traj.theta):
        return "not_separated", record
    report = ff.analyze(net, data, traj.theta)
    record["gap"] = np.nan if report.gap is None else report.gap
    return report.verdict, record


def experiment(n_points=3, width=2, log_t_max=1000.0):
    return ff.Experiment(
        name="half-circle",
        description=f"{n_points} points on the upper half-circle, width {width}, Xavier init, exponential loss",
        prediction="every separated sample converges in direction to a KKT point (Lyu & Li); not_kkt: too short a "
                   "horizon to read the KKT point off the trajectory",
        data=partial(half_circle, n=n_points),
        net=ff.two_layer(2, width),
        init=ff.init.xavier,
        loss="exponential",
        flow={"log_t_max": log_t_max},
        outcome=verdict,
        labels=LABELS,
    )
