"""Generic figures of Monte Carlo results (matplotlib, drawn on Agg canvases: no display and no pyplot state
needed). An experiment's own figures come from its `figures` hook, built from these.

probability_bars       outcome probabilities with confidence-interval whiskers (and the predicted values)
record_histograms      histograms of recorded numbers, a selection of samples against the others
neuron_directions      w_j / ||w_j|| over time for 2-D data, on the unit circle and as angles against log t
                       (convex-geometry paper Figs 3-5)
label_directions       neuron_directions of the first sample of each outcome label
draw_all               the probability bars and the experiment's own figures, written to a directory
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .experiment import draw
from .flow import flow


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def probability_bars(est, path=None):
    """Bars of p per label with their confidence intervals; reference values as dashed lines."""
    labels = est.labels
    p = np.array([est.p[s] for s in labels])
    ci = np.array([est.ci[s] for s in labels])
    fig = _figure(max(5.0, 1.1 * len(labels) + 2), 4.2)
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    err = np.vstack([np.clip(p - ci[:, 0], 0, None), np.clip(ci[:, 1] - p, 0, None)])
    ax.bar(x, p, color="#4C72B0", alpha=0.85, yerr=err, capsize=5, ecolor="black")
    for xi, s in zip(x, labels):
        ax.annotate(f"{est.counts[s]}", (xi, est.ci[s][1]), textcoords="offset points", xytext=(0, 4), ha="center",
                    fontsize=8)
    for k, (label, value, text) in enumerate(est.reference):
        if label in labels:
            xi = labels.index(label)
            ax.hlines(value, xi - 0.45, xi + 0.45, colors=f"C{(k % 8) + 1}", linestyles="--",
                      label=f"{text}: {value:.4g}")
    ax.set_xticks(x, labels, rotation=20 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center")
    ax.set_ylabel("probability")
    ax.set_ylim(0, min(1.05, max(0.05, 1.15 * float(np.max(ci[:, 1])) + 0.02)))
    method = "Wilson" if est.method == "wilson" else "Clopper-Pearson"
    ax.set_title(f"{est.experiment}: n = {est.n}, {100 * est.confidence:g}% {method} intervals"
                 + ("" if est.complete else " (partial)"), fontsize=10)
    if est.reference:
        ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def record_histograms(est, names, selected, path=None, *, bins, groups=("selected", "others"), xlabels=None,
                      title=None):
    """One panel per recorded number in `names`: its histogram over the samples in the boolean mask `selected`
    and over the others. `bins` are the bin edges (values outside them are counted in the end bins)."""
    bins = np.asarray(bins, dtype=float)
    selected = np.asarray(selected, dtype=bool)
    if selected.shape != (est.n,):
        raise ValueError(f"selected must be a boolean mask of the {est.n} samples, got shape {selected.shape}")
    fig = _figure(4.5 * len(names), 3.8)
    for k, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), k + 1)
        vals = est.records.get(name, np.zeros(0))
        for sel, color, text in ((selected, "#4C72B0", groups[0]), (~selected, "#BBBBBB", groups[1])):
            v = vals[sel] if vals.size else vals
            v = v[np.isfinite(v)]
            if v.size:
                ax.hist(np.clip(v, bins[0], bins[-1]), bins=bins, color=color, alpha=0.8, label=f"{text} ({v.size})")
        ax.set_xlabel(xlabels[k] if xlabels else name)
        ax.set_ylabel("runs")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title or f"{est.experiment} (n = {est.n})", fontsize=10)
    return _save(fig, path)


def _times(exp):
    opts = exp.flow
    if "log_t_max" in opts and opts["log_t_max"] is not None:
        t_end = float(np.exp(min(float(opts["log_t_max"]), 690.0)))
    else:
        t_end = float(opts.get("t_max", 1e6))
    return np.concatenate([[0.0], np.geomspace(min(1e-3, t_end / 10), t_end, 300)])


def neuron_directions(exp, seed, samples, path=None, titles=None):
    """Directions w_j/||w_j|| of the first-layer neurons along the flow, for samples `samples` of `exp` (2-D data).

    Left of each row: the unit circle with the data directions, each neuron's path (colour = time) and its end
    point (size = its final share of ||W1||); right: the angle of each neuron against time."""
    from matplotlib import colormaps

    samples = list(samples)
    fig = _figure(10, 3.9 * max(1, len(samples)))
    cmap = colormaps["viridis"]
    for row, k in enumerate(samples):
        net, (X, y), theta0 = draw(exp, seed, k)
        if X.shape[1] != 2 or not net.is_two_layer:
            raise ValueError("neuron_directions needs a plain two-layer network on 2-D inputs")
        t = _times(exp)
        opts = {key: v for key, v in exp.flow.items() if key != "t_eval"}
        tr = flow(net, (X, y), theta0, loss=exp.loss, t_eval=t, **opts)
        # samples past an early end other than converged (stalled, max_steps, ...) are NaN: drop them and add the
        # final point
        valid = np.all(np.isfinite(tr.theta_at), axis=1)
        thetas = np.vstack([tr.theta_at[valid], tr.theta[None, :]])
        t = np.concatenate([t[valid], [tr.t if np.isfinite(tr.t) else t[valid][-1]]])
        W = np.array([net.split(theta)[0] for theta in thetas])   # (time, neuron, 2)
        width = W.shape[1]
        norms = np.linalg.norm(W, axis=2)
        U = W / np.where(norms > 0, norms, 1)[..., None]
        share = norms[-1] / max(norms[-1].max(), 1e-300)
        W2 = net.split(tr.theta)[1]
        ax = fig.add_subplot(len(samples), 2, 2 * row + 1)
        circle = np.linspace(0, 2 * np.pi, 200)
        ax.plot(np.cos(circle), np.sin(circle), color="#DDDDDD", lw=1)
        for i, x in enumerate(X):
            u = x / np.linalg.norm(x)
            lab = y[i] if np.ndim(y) == 1 else int(np.argmax(y[i]))
            ax.plot([0, 1.15 * u[0]], [0, 1.15 * u[1]], color="black", lw=1, ls=":")
            ax.annotate(f"x{i + 1} ({lab:g})", 1.22 * u, ha="center", va="center", fontsize=8)
        colors = cmap(np.linspace(0, 1, len(t)))
        for j in range(width):
            r = 1.0 + 0.02 * j  # small offsets keep overlapping paths apart
            ax.scatter(r * U[:, j, 0], r * U[:, j, 1], c=colors, s=4)
            sign = np.sign(W2[0, j]) if W2.shape[0] == 1 else 1.0
            ax.scatter([r * U[-1, j, 0]], [r * U[-1, j, 1]], s=20 + 120 * share[j],
                       marker="^" if sign >= 0 else "v", color="C3" if sign >= 0 else "C0", edgecolor="black",
                       zorder=3)
        ax.set_aspect("equal")
        ax.set_xlim(-1.45, 1.45)
        ax.set_ylim(-1.45, 1.45)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(titles[row] if titles else f"sample {k}", fontsize=9)
        ax = fig.add_subplot(len(samples), 2, 2 * row + 2)
        ang = np.degrees(np.unwrap(np.arctan2(U[..., 1], U[..., 0]), axis=0))
        for j in range(width):
            ax.plot(np.maximum(t, t[1]), ang[:, j], lw=1 + 2 * share[j], label=f"w{j + 1}" if width <= 10 else None)
        for x in X:
            ax.axhline(np.degrees(np.arctan2(x[1], x[0])), color="black", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("t")
        ax.set_ylabel("angle of w_j (degrees)")
        ax.grid(alpha=0.3)
        if width <= 10:
            ax.legend(fontsize=7, ncol=2)
    fig.suptitle(f"{exp.name}: first-layer directions w_j/|w_j| along the flow (colour: time, early dark to late "
                 "yellow; end markers: up v_j > 0, down v_j < 0, size ~ final |w_j|)", fontsize=9)
    return _save(fig, path)


def label_directions(exp, est, path=None, most=4):
    """neuron_directions of the first sample of each label (most frequent labels first), at most `most` rows."""
    order = sorted(est.labels, key=lambda s: -est.counts[s])
    picks = [(int(np.flatnonzero(est.sample_labels == est.labels.index(label))[0]), label) for label in order
             if est.counts[label]][:most]
    return neuron_directions(exp, est.seed, [k for k, _ in picks], path,
                             [f"sample {k} ({label})" for k, label in picks])


def draw_all(est, out_dir, exp=None):
    """Write the probability bars and, for a non-empty result of an Experiment `exp` with a `figures` hook, its own
    figures into out_dir; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "probabilities.png"]
    probability_bars(est, paths[-1])
    if exp is not None and exp.figures is not None and est.n:
        paths += [Path(p) for p in exp.figures(exp, est, out_dir)]
    return paths


__all__ = ["draw_all", "label_directions", "neuron_directions", "probability_bars", "record_histograms"]
