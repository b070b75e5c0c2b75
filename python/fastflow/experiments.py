"""The papers' random experiments, built in: `names()`, `get(name, **options) -> Experiment`.

vss-thm3.2      margin paper (Vardi, Shamir, Srebro) Thm 3.2: a KKT point that is not a local optimum, reached with
                constant probability from Xavier initialisation.
tvs-rank-2x2    rank paper (Timor, Vardi, Shamir) section 3.1: how often the 2x2 ReLU net reaches zero loss, and
                the ranks of the weight matrices when it does.
tvs-thm3        rank paper Thm 3: with v(0) = 0 and small rows of W1, GF converges far from low rank with
                probability >= 2 (angle / 2 pi)^2.
wp-orthogonal   convex-geometry paper (Wang, Pilanci) App. F.1: every grown neuron aligns with the convex program's
                optimal neurons.
random-sweep    random datasets on the sphere over a small grid of (n, d, width): the analysis verdict of the limit
                (defined in fastflow.sweep).
class-n-sweep   margin paper Table 1 measured: FC, diagonal and conv nets of the class N, the verdict of the limit by
                the horizon rule, per architecture (defined in fastflow.sweep_classn).
random-sweep-large  n to 1000, width to 128: status, fit, dead units, sliding, time per (n, width) (sweep_large).
deep-sweep      depth-3 ReLU nets, widths 4-8, on random separable data: P(converged direction) and P(dead units)
                per width, abnormal ends counted (sweep_deep).

Every sampler, outcome and figures hook here is a top-level function (or a functools.partial of one), so the
experiments pickle and run on worker processes or a Dask cluster.
"""
from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import numpy as np

from . import init as _init
from . import plots, sweep_classn
from .experiment import Experiment
from .networks import two_layer
from .rank import rank, stable_rank
from .stats import angle, fraction_line
from .sweep import random_sweep
from .sweep_deep import deep_sweep
from .sweep_large import random_sweep_large


# --------------------------------------------------------------------------------------------------------------
# shared pieces


def fixed_data(X, y, rng=None):
    """The same dataset for every sample (rng unused)."""
    return X.copy(), y.copy()


def _band(W1, X):
    """Pre-activations within this band of zero count as exactly zero (rounding of sliding neurons)."""
    return 64 * np.finfo(float).eps * (np.abs(X) @ np.abs(W1).T)


def _theta0(traj):
    """The initial parameters (the experiments below ask the flow for theta at t = 0 via t_eval=[0])."""
    return traj.theta_at[0]


def directions_figure(exp, est, out_dir):
    """The first-layer directions along the flow of a sample of each outcome (2-D data): directions.png."""
    path = Path(out_dir) / "directions.png"
    plots.label_directions(exp, est, path)
    return [path]


# --------------------------------------------------------------------------------------------------------------
# vss-thm3.2


VSS_X = np.array([[1.0, 0.25], [-1.0, 0.25]])


def thm32_probability(width=2, X=VSS_X):
    """Exact probability of Thm 3.2's sufficient initial condition under an isotropic init with symmetric output
    weights: one neuron active on both points with v > 0, all others dead on both. Each neuron's direction falls
    in the active cone (and, independently, in the dead cone) with probability q = (pi - angle(x1, x2)) / (2 pi);
    the active neuron can be any of the `width` neurons: width * (q / 2) * q^(width - 1)."""
    q = (math.pi - angle(X[0], X[1])) / (2 * math.pi)
    return width * q**width / 2


def _thm32_pattern(H, v, band, strict):
    """One neuron active on both points with v > 0, every other neuron contributing 0 on both points for ever
    (strictly dead, or on the boundary with v <= 0 so that the flow keeps it there)."""
    active = np.all(H > band, axis=0) & (v > 0)
    if active.sum() != 1:
        return False
    H, band, v = H[:, ~active], band[:, ~active], v[~active]
    dead = np.all(H < -band, axis=0)
    if strict:
        return bool(np.all(dead))
    zero = np.all(H <= band, axis=0) & (v <= 0)
    return bool(np.all(dead | zero))


def _split_pattern(H, v, band):
    """The global optimum's pattern: each point has its own neuron (v > 0) active on it alone, and no neuron with
    v > 0 is active on all points."""
    pos = v > 0
    act = H > band
    if np.any(np.all(act, axis=0) & pos):
        return False
    alone = act & (act.sum(axis=0) == 1)[None, :] & pos[None, :]
    return bool(np.all(alone.any(axis=1)))


def vss_outcome(traj, net, data):
    X, _ = data
    W1, W2 = net.split(traj.theta)
    W10, W20 = net.split(_theta0(traj))
    hyp = _thm32_pattern(X @ W10.T, W20[0], _band(W10, X), strict=True)
    rec = {"hypothesis": float(hyp), "margin": traj.margin}
    if not traj.margin > 0:
        return "not_separated", rec
    H, v, band = X @ W1.T, W2[0], _band(W1, X)
    if _thm32_pattern(H, v, band, strict=False):
        return "not_local", rec
    if _split_pattern(H, v, band):
        return "global_candidate", rec
    return "other", rec


def vss_report(est, p_hyp):
    hyp = est.records["hypothesis"] == 1
    k, n = int(hyp.sum()), est.n
    ended = int(np.sum(hyp & est.mask("not_local")))
    lo, hi = est.ci["not_local"]
    m = est.records["margin"][est.mask("not_local")]
    g = est.records["margin"][est.mask("global_candidate")]
    lines = [fraction_line("Thm 3.2 hypothesis at init", k, n, p_hyp, est.confidence),
             f"of those, ended not_local: {ended}/{k} (the theorem: all)",
             f"P(not_local) >= {p_hyp:.5f}: {'consistent' if hi >= p_hyp else 'CONTRADICTED'} "
             f"(upper end {hi:.5f})"]
    if m.size:
        lines.append(f"normalized margin of not_local runs: {np.nanmin(m):.4f}..{np.nanmax(m):.4f} "
                     "(KKT point: 1/8 = 0.125)")
    if g.size:
        lines.append(f"normalized margin of global_candidate runs: {np.nanmin(g):.4f}..{np.nanmax(g):.4f} "
                     "(global optimum: 1/3.8806 = 0.2577)")
    return lines


def vss_thm32(width=2, log_t_max=50.0, n=10_000):
    p = thm32_probability(width)
    return Experiment(
        name="vss-thm3.2",
        description=f"margin paper Thm 3.2: x = (+-1, 1/4), y = 1, two_layer(2, {width}), Xavier init, "
                    f"exponential loss, flow to log t = {log_t_max:g}",
        prediction=f"P(not_local) >= {p:.5f}, the exact probability of the theorem's sufficient initial condition "
                   f"((pi - angle)/(2 pi))^{width} * {width}/2; every run meeting the condition ends not_local",
        data=partial(fixed_data, VSS_X, np.ones(2)),
        net=two_layer(2, width),
        init=_init.xavier,
        loss="exponential",
        flow={"log_t_max": log_t_max, "t_eval": [0.0]},
        outcome=vss_outcome,
        labels=["not_local", "global_candidate", "other", "not_separated"],
        default_n=n,
        reference=[("not_local", p, "Thm 3.2 lower bound")],
        report=partial(vss_report, p_hyp=p),
        figures=directions_figure,
    )


# --------------------------------------------------------------------------------------------------------------
# the rank paper's 2x2 data


def rank_paper_data():
    X = np.array([[1.0, 0.99], [-1.0, 0.99]])
    return X / np.linalg.norm(X, axis=1, keepdims=True), np.eye(2)


TVS_X, TVS_Y = rank_paper_data()
TVS_ANGLE = angle(TVS_X[0], TVS_X[1])
ZERO_LOSS = 1e-4
ZERO_LOSS_LABELS = ("zero_loss_rank2", "zero_loss_rank1")


def rank_outcome(traj, net, data):
    W1, W2 = net.split(traj.theta)
    rec = {"stable_rank_W1": stable_rank(W1), "stable_rank_W2": stable_rank(W2), "loss": traj.loss,
           "slid": float(np.any(traj.events["kind"] == "slide_start"))}
    if traj.loss < ZERO_LOSS:
        return ("zero_loss_rank2" if rank(W1) == 2 and rank(W2) == 2 else "zero_loss_rank1"), rec
    if abs(traj.loss - 0.5) < 1e-3:
        return "stalled_0.5", rec
    if abs(traj.loss - 1.0) < 1e-3:
        return "stalled_1.0", rec
    return "other", rec


def rank_report(est):
    zero = est.mask(*ZERO_LOSS_LABELS)
    k, n = int(zero.sum()), est.n
    lines = [fraction_line("zero loss (any rank)", k, n, None, est.confidence)
             + "; exact-flow reference 0.22 (44 of 200 runs), paper's GD 79/288 = 0.274",
             f"zero-loss runs of rank 1: {est.counts['zero_loss_rank1']} (Thm 2: none)"]
    if k:
        s1, s2 = est.records["stable_rank_W1"][zero], est.records["stable_rank_W2"][zero]
        lines.append(f"stable ranks of zero-loss runs: W1 {s1.min():.3f}..{s1.max():.3f}, "
                     f"W2 {s2.min():.3f}..{s2.max():.3f} (paper: bounded away from 1)")
    lines.append(f"runs that slid on a switching surface: {int(np.nansum(est.records['slid']))}/{n}")
    return lines


def rank_figures(exp, est, out_dir):
    """Stable ranks of W1 and W2 at the end, zero-loss runs against the others (rank paper Fig. 1), and the
    directions figure."""
    path = Path(out_dir) / "stable_ranks.png"
    plots.record_histograms(est, ["stable_rank_W1", "stable_rank_W2"], est.mask(*ZERO_LOSS_LABELS), path,
                            bins=np.linspace(1.0, 2.0, 26), groups=("zero loss", "not converged"),
                            xlabels=[f"stable rank ||W{k}||_F^2 / ||W{k}||_2^2" for k in (1, 2)],
                            title=f"{est.experiment}: stable ranks at the end of the flow (n = {est.n})")
    return [path] + directions_figure(exp, est, out_dir)


def tvs_rank_2x2(radius=1e-4, t_max=300.0, n=288):
    return Experiment(
        name="tvs-rank-2x2",
        description=f"rank paper section 3.1: x = (+-1, 0.99)/norm, Y = I, two_layer(2, 2, d_out=2), rows of W1 "
                    f"and columns of W2 uniform on the sphere of radius {radius:g}, square loss, t = {t_max:g}",
        prediction="zero loss in 27% of runs for the paper's GD (79/288), 22% for the exact flow (reference "
                   "integrator, seeds 0-199); Thm 2: every zero-loss run has rank 2",
        data=partial(fixed_data, TVS_X, TVS_Y),
        net=two_layer(2, 2, d_out=2),
        init=partial(_sphere_init, radius=radius),
        loss="square",
        flow={"t_max": t_max, "rtol": 1e-10, "atol": 1e-14},
        outcome=rank_outcome,
        labels=[*ZERO_LOSS_LABELS, "stalled_0.5", "stalled_1.0", "other"],
        default_n=n,
        reference=[("zero_loss_rank2", 0.22, "exact flow 22%"), ("zero_loss_rank2", 79 / 288, "paper GD 27%")],
        report=rank_report,
        figures=rank_figures,
    )


def _sphere_init(net, rng, radius):
    return _init.sphere(net, radius, rng)


# --------------------------------------------------------------------------------------------------------------
# tvs-thm3


def thm3_bound(X=TVS_X):
    """Rank paper Thm 3: Pr[E] >= 2 (angle(x1, x2) / (2 pi))^2 (= the probability of the init region)."""
    return 2 * (angle(X[0], X[1]) / (2 * math.pi)) ** 2


def thm3_init(net, rng, radius):
    """v(0) = 0, rows of W1 uniform on the sphere of `radius`."""
    (width, d_in), (d_out, _) = net.layer_shapes
    u = rng.normal(size=(width, d_in))
    W1 = radius * u / np.linalg.norm(u, axis=1, keepdims=True)
    return net.join([W1, np.zeros((d_out, width))])


def _partially_active(H):
    """S_i: active on x_i only. H is (2, width); returns (2, width) bool: [i, j] = neuron j in S_i."""
    return np.stack([(H[0] > 0) & (H[1] < 0), (H[1] > 0) & (H[0] < 0)])


def thm3_outcome(traj, net, data):
    X, _ = data
    ang = angle(X[0], X[1])
    W1, _ = net.split(traj.theta)
    S = _partially_active(X @ net.split(_theta0(traj))[0].T)
    in_S = bool((S[0, 0] and S[1, 1]) or (S[1, 0] and S[0, 1]))
    norms = np.linalg.norm(W1, axis=1)
    a = angle(W1[0], W1[1]) if np.all(norms > 0) else float("nan")
    rec = {"init_in_S": float(in_S), "angle_deg": math.degrees(a), "norm_w1": norms[0], "norm_w2": norms[1],
           "loss": traj.loss}
    if not traj.loss < ZERO_LOSS:
        return "no_zero_loss", rec
    lo, hi = math.pi - ang, math.pi / 2 + ang / 2
    nlo, nhi = math.sqrt(3) / 2, math.sqrt(0.25 + 4 / (3 * math.sin(ang) ** 2))
    E = lo <= a <= hi and bool(np.all((norms > nlo) & (norms < nhi)))
    return ("E" if E else "zero_loss_not_E"), rec


def thm3_report(est, bound):
    s = est.records["init_in_S"] == 1
    k, n = int(s.sum()), est.n
    lo, hi = est.ci["E"]
    return [fraction_line("init in S1 x S2 or S2 x S1", k, n, bound, est.confidence),
            f"of those, ended in E: {int(np.sum(s & est.mask('E')))}/{k} (the theorem: all)",
            f"P(E) >= {bound:.4f}: {'consistent' if hi >= bound else 'CONTRADICTED'} (upper end {hi:.4f})"]


def tvs_thm3(radius=0.008, t_max=300.0, n=2000):
    bound = thm3_bound()
    rmax = math.sqrt(3) / 2 * min(math.sin((math.pi - TVS_ANGLE) / 4), math.sin(TVS_ANGLE - math.pi / 2))
    if radius > rmax:
        raise ValueError(f"radius {radius} is above Thm 3's bound {rmax:.6f}")
    return Experiment(
        name="tvs-thm3",
        description=f"rank paper Thm 3 on the section 3.1 data: v(0) = 0, rows of W1 uniform on the sphere of "
                    f"radius {radius:g} (theorem: <= {rmax:.5f}), square loss, t = {t_max:g}; E = zero loss with "
                    "angle(w1, w2) in [pi - a, pi/2 + a/2] and |w_i| in (sqrt(3)/2, sqrt(1/4 + 4/(3 sin^2 a)))",
        prediction=f"Pr[E] >= 2 (angle/2pi)^2 = {bound:.4f}; every init in S1 x S2 or S2 x S1 ends in E",
        data=partial(fixed_data, TVS_X, TVS_Y),
        net=two_layer(2, 2, d_out=2),
        init=partial(thm3_init, radius=radius),
        loss="square",
        flow={"t_max": t_max, "rtol": 1e-10, "atol": 1e-14, "t_eval": [0.0]},
        outcome=thm3_outcome,
        labels=["E", "zero_loss_not_E", "no_zero_loss"],
        default_n=n,
        reference=[("E", bound, "Thm 3 lower bound")],
        report=partial(thm3_report, bound=bound),
        figures=directions_figure,
    )


# --------------------------------------------------------------------------------------------------------------
# wp-orthogonal


WP_X = np.array([[1.65, -0.47], [-0.47, 1.35]])
WP_Y = np.array([1.0, -1.0])
WP_MARGIN = 1 / (2 * 1.28243)  # normalized margin of the global optimum (1/||theta*||^2 with margin 1)


def wp_outcome(traj, net, data, pos_dir, neg_dir, grown_ratio=1e-2, min_cos=0.999):
    W1, W2 = net.split(traj.theta)
    v = W2[0]
    norms = np.linalg.norm(W1, axis=1)
    grown = norms > grown_ratio * norms.max()
    cos = [W1[j] @ (pos_dir if v[j] > 0 else neg_dir) / norms[j] for j in np.flatnonzero(grown)]
    rec = {"n_grown": float(grown.sum()), "min_cos": min(cos) if cos else float("nan"), "margin": traj.margin}
    if not traj.margin > 0:
        return "not_separated", rec
    return ("global_directions" if min(cos) > min_cos else "spurious"), rec


def wp_report(est):
    g = est.records["margin"][est.mask("global_directions")]
    c = est.records["min_cos"][est.mask("global_directions", "spurious")]
    lines = []
    if c.size:
        lines.append(f"worst cosine of a grown neuron with the optimal direction: {np.nanmin(c):.6f}")
    if g.size:
        lines.append(f"normalized margin of global_directions runs: {np.nanmin(g):.4f}..{np.nanmax(g):.4f} "
                     f"(global optimum 1/(2 * 1.28243) = {WP_MARGIN:.4f})")
    lines.append("not_separated: no neuron of the right sign/pattern for one class at init, so the flow cannot "
                 "classify (outside WP Thm 4's 'almost all' small initialisations for this width)")
    return lines


def wp_orthogonal(width=10, scale=1e-3, log_t_max=30.0, n=1000):
    pos = WP_X[0] / np.linalg.norm(WP_X[0])   # optimal neurons x_n / ||x_n||^2: (0.9617, -0.2740)
    neg = WP_X[1] / np.linalg.norm(WP_X[1])   # (-0.3288, 0.9444)
    return Experiment(
        name="wp-orthogonal",
        description=f"convex-geometry paper App. F.1: X = [[1.65, -0.47], [-0.47, 1.35]], y = (1, -1), "
                    f"two_layer(2, {width}), balanced init of scale {scale:g}, logistic loss, flow to log t = "
                    f"{log_t_max:g}; grown neurons (norm > 1% of the largest) compared with the convex optimum's "
                    "directions (0.9617, -0.2740) / (-0.3288, 0.9444), cos > 0.999",
        prediction="WP Thm 4: for orthogonal separable data and small scaled inits, almost surely the flow converges "
                   "in direction to a global max-margin solution: every grown neuron aligns with the optimal ones",
        data=partial(fixed_data, WP_X, WP_Y),
        net=two_layer(2, width),
        init=partial(_balanced_init, scale=scale),
        loss="logistic",
        flow={"log_t_max": log_t_max},
        outcome=partial(wp_outcome, pos_dir=pos, neg_dir=neg),
        labels=["global_directions", "spurious", "not_separated"],
        default_n=n,
        report=wp_report,
        figures=directions_figure,
    )


def _balanced_init(net, rng, scale):
    return _init.balanced(net, scale, rng)


# --------------------------------------------------------------------------------------------------------------
# registry


_REGISTRY = {
    "vss-thm3.2": vss_thm32,
    "tvs-rank-2x2": tvs_rank_2x2,
    "tvs-thm3": tvs_thm3,
    "wp-orthogonal": wp_orthogonal,
    "random-sweep": random_sweep,
    "class-n-sweep": sweep_classn.class_n_sweep,
    "random-sweep-large": random_sweep_large,
    "deep-sweep": deep_sweep,
}


def names():
    """The built-in experiments' names."""
    return list(_REGISTRY)


def get(name, **options):
    """A fresh built-in Experiment; `options` are the factory's parameters (e.g. width=3 for vss-thm3.2)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown experiment {name!r}; built in: {', '.join(_REGISTRY)}") from None
    return factory(**options)


__all__ = ["get", "names", "thm32_probability", "thm3_bound"]
