"""The class-n-sweep experiment: the margin paper's Table 1 measured. Random separable datasets on the unit sphere,
a random architecture of the class N (fully connected of depth 2-4, diagonal of depth 2-4, a shared filter over 2
disjoint patches), ReLU or linear, Xavier init, exponential loss; each run is labelled by the verdict of its limit
under the horizon rule (`ff.analysis.analyze_limit`: log t doubles until two horizons agree, else "undecided").
The report gives each verdict's probability per architecture with Wilson intervals, and the undecided count."""
from __future__ import annotations

from functools import partial

import numpy as np

from . import init as _init
from ._validate import choice, positive_int, real_scalar
from .analysis import VERDICTS
from .experiment import Experiment
from .networks import conv_disjoint, diagonal, fully_connected
from .stats import interval
from .sweep import limit_verdict, sphere_data

FAMILIES = ("fc", "diagonal", "conv")   # records hold the index
ARCHITECTURES = (("fc", 2), ("fc", 3), ("fc", 4), ("diagonal", 2), ("diagonal", 3), ("diagonal", 4), ("conv", 2))
ACTIVATIONS = ("relu", "linear")
LABELS = list(VERDICTS) + ["not_separated"]


def arch_name(family, depth, relu):
    """'fc-3 relu', 'diagonal-2 linear', 'conv-2 relu' (conv: the number of patches)."""
    return f"{family}-{depth} {'relu' if relu else 'linear'}"


def classn_net(data, rng, architectures, activations, widths):
    """One architecture and activation, uniformly; fully connected hidden widths from `widths`; a conv net's
    patches split x in equal parts."""
    family, depth = architectures[int(rng.integers(len(architectures)))]
    activation = activations[int(rng.integers(len(activations)))]
    d = data[0].shape[1]
    if family == "fc":
        return fully_connected(d, [int(rng.choice(widths)) for _ in range(depth - 1)], activation=activation)
    if family == "diagonal":
        return diagonal(d, depth, activation)
    return conv_disjoint(d // depth, depth, activation)


def architecture_of(net):
    """(family, depth) of a net `classn_net` drew (the outcome sees only the net)."""
    if net.has_sharing:
        return "conv", net.maps[0].shape[0]
    if net.structure == diagonal(net.d_in, net.depth, net.activation).structure:
        return "diagonal", net.depth
    return "fc", net.depth


def classn_outcome(traj, net, data, log_t_budget, max_steps):
    """The verdict of the limit by the horizon rule (`sweep.limit_verdict`), with the architecture (family index in
    FAMILIES, depth, relu) and (n, d) recorded."""
    family, depth = architecture_of(net)
    X, _ = data
    rec = {"family": FAMILIES.index(family), "depth": depth, "relu": float(net.activation == "relu"),
           "n": X.shape[0], "d": X.shape[1], "margin": traj.margin}
    label, more = limit_verdict(traj, net, data, log_t_budget, max_steps)
    return label, {**rec, **more}


def classn_report(est, architectures, activations):
    """Each verdict's probability per architecture (Wilson intervals at the estimate's level), and how many runs
    stayed undecided."""
    lines = [f"undecided (no two horizons agreed within the budget): {est.counts['undecided']}/{est.n}"]
    if not est.n:
        return lines
    labels = np.asarray(est.labels)[est.sample_labels]
    for family, depth in architectures:
        for activation in activations:
            sel = ((est.records["family"] == FAMILIES.index(family)) & (est.records["depth"] == depth)
                   & (est.records["relu"] == float(activation == "relu")))
            k = int(sel.sum())
            if not k:
                continue
            parts = []
            for label in est.labels:
                c = int(np.sum(labels[sel] == label))
                if c:
                    lo, hi = interval(c, k, est.confidence, est.method)
                    parts.append(f"{label} {c / k:.3f} [{lo:.3f}, {hi:.3f}]")
            lines.append(f"{arch_name(family, depth, activation == 'relu')} (n={k}): {', '.join(parts)}")
    return lines


def class_n_sweep(architectures=ARCHITECTURES, activations=ACTIVATIONS, ns=(4, 6), ds=(2, 4), widths=(2, 3),
                  log_t=16.0, log_t_budget=256.0, max_steps=20_000, n=280):
    """architectures: (family, depth) pairs, family in FAMILIES (conv: depth = the number of patches, each d in ds
    divisible by it); activations: "relu" and/or "linear"; ns, ds, widths: the grids of sample sizes, input
    dimensions and fully connected hidden widths; log_t: the first horizon; log_t_budget: the horizon rule's largest
    log t; max_steps: per flow segment (a run that needs more is undecided)."""
    try:
        architectures = tuple((str(f), int(k)) for f, k in architectures)
    except (TypeError, ValueError):
        raise ValueError(f"architectures must be (family, depth) pairs, got {architectures!r}") from None
    for f, k in architectures:
        choice("architectures: family", f, FAMILIES)
        positive_int("architectures: depth", k, minimum=2)
    activations = tuple(choice("activations", a, ACTIVATIONS) for a in activations)
    ns = tuple(positive_int("ns", k) for k in ns)
    ds = tuple(positive_int("ds", k) for k in ds)
    widths = tuple(positive_int("widths", k) for k in widths)
    if not (architectures and activations and ns and ds and widths):
        raise ValueError("architectures, activations, ns, ds and widths must be non-empty")
    for f, k in architectures:
        if f == "conv" and any(d % k for d in ds):
            raise ValueError(f"ds: a conv net over {k} patches needs every d divisible by {k}, got {list(ds)}")
    log_t = real_scalar("log_t", log_t, low=0.0, low_open=True)
    log_t_budget = real_scalar("log_t_budget", log_t_budget, low=log_t)
    max_steps = positive_int("max_steps", max_steps)
    names = ", ".join(f"{f}-{k}" for f, k in architectures)
    return Experiment(
        name="class-n-sweep",
        description=f"random datasets: n in {list(ns)} points on the unit sphere of R^d, d in {list(ds)}, labels of "
                    f"a random linear separator; a net drawn from {names} (family-depth; conv: patches), "
                    f"{' or '.join(activations)}, fully connected widths in {list(widths)}, Xavier init, exponential "
                    f"loss to log t = {log_t:g}; label = the verdict of the limit by the horizon rule (log t doubled "
                    f"up to {log_t_budget:g} until two horizons agree, else undecided; not_separated if the final "
                    "margin is not positive)",
        prediction="margin paper Table 1: deep linear fully connected nets converge to the global optimum (Thm 3.1); "
                   "ReLU (Thm 3.2), diagonal (Thms 4.1, 5.1) and shared-filter (Thm 4.4) nets can converge to KKT "
                   "points that are not local optima; how often, per architecture, is what this sweep measures",
        data=partial(sphere_data, ns=ns, ds=ds),
        net=partial(classn_net, architectures=architectures, activations=activations, widths=widths),
        init=_init.xavier,
        loss="exponential",
        flow={"log_t_max": log_t, "max_steps": max_steps},
        outcome=partial(classn_outcome, log_t_budget=log_t_budget, max_steps=max_steps),
        labels=LABELS,
        default_n=n,
        report=partial(classn_report, architectures=architectures, activations=activations),
    )


__all__ = ["class_n_sweep"]
