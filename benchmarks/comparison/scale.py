"""Section scale: does a flow cost what the network's own arithmetic costs (issue #24)? On bench_large.py's grid and
problems (two-layer ReLU, teacher labels, Xavier init; logistic to log t = 10, square loss to t = 100), each flow's
accepted steps, events and fields (n_rhs), and its time per accepted step and per field in NumPy GD epochs of the
same net on the same data (forward + backward + update, timed in the same run). An exact flow is bounded by about
7 fields per accepted step: Dormand-Prince's 6 stages (FSAL) and a restart after an event.
"""
import numpy as np

import fastflow as ff
from benchmarks.bench_large import HORIZON, large_problem
from benchmarks.common import best_of

from .config import GD_LR
from .methods import TimeLimit, gd_numpy, timed, with_time_limit

BOUND = 7                  # fields per accepted step of an exact Dormand-Prince flow
LOSSES = ("logistic", "square")
FULL_GRID = [(n, d, width) for n in (100, 300, 1000) for d in (10, 50) for width in (16, 64, 128)]
# the grid's n = 100 corner: a few minutes on 2 cores today, three sizes n * width * d to fit a growth exponent
DEFAULT_GRID = [(100, 10, 16), (100, 50, 16), (100, 10, 64)]
QUICK_GRID = [(100, 10, 16)]
EPOCHS = 2000              # GD epochs timed per point (best of 3)
# the issue's targets
MAX_EPOCHS_PER_STEP = 10
MAX_FIELDS_PER_STEP = 8
MAX_GROWTH = 1.1
SPEED = dict(n=200, d=20, width=64, loss="logistic", t_max=100.0, min_ratio=20.0)
# --scale-full adds the papers' 3e6 epochs at the grid's largest point (and t = 100, printed without a target)
LARGE_SPEEDS = [dict(n=1000, d=50, width=128, loss="logistic", t_max=100.0, min_ratio=None),
                dict(n=1000, d=50, width=128, loss="logistic", t_max=300.0, min_ratio=6.0)]


def gd_epoch_seconds(net, data, theta0, loss, epochs=EPOCHS):
    """Wall seconds of one NumPy GD epoch of `net` on `data` from theta0 (best of 3 runs of `epochs` epochs)."""
    X, y = data
    W1, W2 = net.split(theta0)
    Y = y[:, None] if loss == "square" else y  # gd_numpy takes square-loss targets as (n, d_out)
    seconds, _ = best_of(lambda: gd_numpy(X, Y, W1, W2, loss, None, steps=epochs, track_switches=False))
    return seconds / epochs


def timed_flow(net, data, theta0, options, limit):
    """(trajectory or None, wall seconds); a flow past `limit` seconds returns the run so far ("interrupted")."""
    try:
        return timed(lambda: with_time_limit(limit, lambda: ff.flow(net, data, theta0, **options)))
    except TimeLimit:  # the alarm came while Python, not the integrator, held the thread
        return None, limit


def grid_point(loss, n, d, width, limit):
    net, data, theta0 = large_problem(loss, n, d, width)
    tr, seconds = timed_flow(net, data, theta0, dict(loss=loss, **HORIZON[loss]), limit)
    epoch = gd_epoch_seconds(net, data, theta0, loss)
    row = dict(loss=loss, n=n, d=d, width=width, nwd=n * width * d, seconds=seconds, gd_epoch=epoch,
               status="interrupted" if tr is None else tr.status)
    if tr is not None and tr.n_steps:
        row.update(steps=tr.n_steps, events=tr.n_events, fields=tr.n_rhs, fields_per_step=tr.n_rhs / tr.n_steps,
                   epochs_per_step=seconds / tr.n_steps / epoch, epochs_per_field=seconds / tr.n_rhs / epoch,
                   log_t=float(tr.log_t))
    return row


def speed_check(limit, s=SPEED):
    """Problem s against NumPy GD at step GD_LR to the same t. GD's time is extrapolated from EPOCHS timed epochs.
    The flow gets at most `limit` seconds, or GD's time / min_ratio when no limit is given (GD's time without a
    target): past that the target is missed whatever the flow's final time, so the ratio is then an upper bound."""
    net, data, theta0 = large_problem(s["loss"], s["n"], s["d"], s["width"])
    epochs = int(round(s["t_max"] / GD_LR))
    gd_seconds = gd_epoch_seconds(net, data, theta0, s["loss"]) * epochs
    budget = limit or gd_seconds / (s["min_ratio"] or 1.0)
    tr, seconds = timed_flow(net, data, theta0, dict(loss=s["loss"], t_max=s["t_max"]), budget)
    finished = tr is not None and tr.status != "interrupted"
    return dict(s, gd_epochs=epochs, gd_epochs_timed=EPOCHS, gd_seconds_extrapolated=gd_seconds, budget=budget,
                budget_from_target=not limit, flow_seconds=seconds, finished=finished,
                t_reached=None if tr is None else float(tr.t), steps=None if tr is None else tr.n_steps,
                ratio=gd_seconds / seconds, ratio_is_upper_bound=not finished)


def growth_exponent(rows):
    """Least-squares slope of log(time per step) against log(n * width * d), or None with fewer than 2 sizes."""
    pts = [(r["nwd"], r["epochs_per_step"] * r["gd_epoch"]) for r in rows if "epochs_per_step" in r]
    if len({x for x, _ in pts}) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def _announce(s):
    print(f"  speed: n={s['n']} d={s['d']} width={s['width']} {s['loss']} to t={s['t_max']:g} ...", flush=True)


def scale_section(grid, limit, speed_limit=None, large=False):
    """large: also LARGE_SPEEDS, each flow with no limit but its target's (or GD's time)."""
    rows = []
    for loss in LOSSES:
        for n, d, width in grid:
            print(f"  {loss} n={n} d={d} width={width} ...", flush=True)
            rows.append(grid_point(loss, n, d, width, limit))
    _announce(SPEED)
    speed = speed_check(speed_limit)
    large_speeds = []
    for s in LARGE_SPEEDS if large else ():
        _announce(s)
        large_speeds.append(speed_check(None, s))
    return dict(rows=rows, limit=limit, bound=BOUND, speed=speed, large_speeds=large_speeds,
                growth={loss: growth_exponent([r for r in rows if r["loss"] == loss]) for loss in LOSSES})


def _where(r):
    return f"{r['loss']} n={r['n']} d={r['d']} width={r['width']}"


def targets(scale):
    """The issue's targets, each {figure, target, met}."""
    rows = [r for r in scale["rows"] if "epochs_per_step" in r]
    out = {}
    if rows:
        worst = max(rows, key=lambda r: r["epochs_per_step"])
        out["scale_time_per_step"] = dict(
            figure=worst["epochs_per_step"], at=_where(worst), target=f"<= {MAX_EPOCHS_PER_STEP} GD epochs at every "
            "grid point", met=worst["epochs_per_step"] <= MAX_EPOCHS_PER_STEP)
        worst = max(rows, key=lambda r: r["fields_per_step"])
        out["scale_fields_per_step"] = dict(
            figure=worst["fields_per_step"], at=_where(worst), target=f"<= {MAX_FIELDS_PER_STEP} at every grid point",
            met=worst["fields_per_step"] <= MAX_FIELDS_PER_STEP)
    for key, sp in [("scale_speed_vs_gd", scale["speed"])] + [
            (f"scale_speed_vs_gd_n{s['n']}", s) for s in scale.get("large_speeds", []) if s["min_ratio"]]:
        out[key] = dict(
            figure=sp["ratio"], upper_bound=sp["ratio_is_upper_bound"],
            target=f">= {sp['min_ratio']:g} x NumPy GD (step {GD_LR:g}) at n={sp['n']}, d={sp['d']}, "
                   f"width={sp['width']}, {sp['loss']} to t={sp['t_max']:g}",
            met=sp["finished"] and sp["ratio"] >= sp["min_ratio"])
    fitted = [v for v in scale["growth"].values() if v is not None]   # None: fewer than two sizes
    out["scale_growth"] = dict(figure=scale["growth"], target=f"exponent of time per step in n*width*d <= {MAX_GROWTH}",
                               met=all(v <= MAX_GROWTH for v in fitted) if fitted else None)
    return out


def _num(x, spec):
    return "-" if x is None else format(x, spec)


def summary_lines(scale, goals):
    head = (f"{'loss':<8} {'n':>5} {'d':>3} {'width':>5} {'n*w*d':>8} {'status':<11} {'time [s]':>8} {'steps':>6} "
            f"{'events':>6} {'fields':>7} {'fields/step':>11} {'bound':>5} {'GD epoch':>9} {'time/step':>9} "
            f"{'time/field':>10} {'log t':>6}")
    lines = ["", f"scale: time/step and time/field in NumPy GD epochs of the same net on the same data (forward + "
                 f"backward + update, best of 3 x {EPOCHS} epochs in this run); flows stopped at {scale['limit']:g} s "
                 "are 'interrupted' and counted up to where they got (log t)",
             head, "-" * len(head)]
    for r in scale["rows"]:
        lines.append(
            f"{r['loss']:<8} {r['n']:>5} {r['d']:>3} {r['width']:>5} {r['nwd']:>8} {r['status']:<11} "
            f"{r['seconds']:>8.2f} {_num(r.get('steps'), 'd'):>6} {_num(r.get('events'), 'd'):>6} "
            f"{_num(r.get('fields'), 'd'):>7} {_num(r.get('fields_per_step'), '.1f'):>11} {BOUND:>5} "
            f"{r['gd_epoch'] * 1e3:>6.3f} ms {_num(r.get('epochs_per_step'), '.0f'):>9} "
            f"{_num(r.get('epochs_per_field'), '.1f'):>10} {_num(r.get('log_t'), '.3g'):>6}")
    for sp in [scale["speed"]] + scale.get("large_speeds", []):
        lines.append(
            f"speed: n={sp['n']} d={sp['d']} width={sp['width']} {sp['loss']} to t={sp['t_max']:g}: NumPy GD at step "
            f"{GD_LR:g} = {sp['gd_epochs']} epochs, {sp['gd_seconds_extrapolated']:.1f} s extrapolated from "
            f"{sp['gd_epochs_timed']} timed epochs; flow "
            + (f"{sp['flow_seconds']:.1f} s ({sp['steps']} steps)" if sp["finished"] else
               f"stopped at its {sp['budget']:.1f} s budget at t = {_num(sp['t_reached'], '.3g')}"
               + (" (GD's time / the target ratio: a slower flow misses the target)" if sp["budget_from_target"]
                  else ""))
            + f" -> {'< ' if sp['ratio_is_upper_bound'] else ''}{sp['ratio']:.3g} x")
    lines.append("scale targets:")
    for key, g in goals.items():
        fig = g["figure"]
        fig = (", ".join(f"{k} {_num(v, '.2f')}" for k, v in fig.items()) if isinstance(fig, dict) else
               ("< " if g.get("upper_bound") else "") + f"{fig:.3g}" + (f" at {g['at']}" if "at" in g else ""))
        verdict = {True: "met", False: "NOT met", None: "not measured"}[g["met"]]
        lines.append(f"  {key}: {verdict}: {fig} (target {g['target']})")
    return lines
