"""Section stiff: flows that converge to a finite point (bench_converging.py's batches: square loss n = 20, width
16; exponential and logistic loss n = 8, width 5; to t = 1000) against the SciPy yardstick with an implicit method,
Radau and BDF, at fastflow's default tolerance. Targets: theta within 1e-7 relative of the yardstick's, and
fastflow at least 10x faster, on every run.
"""
import numpy as np

import fastflow as ff
from benchmarks.bench_converging import batch_problem

from .methods import TimeLimit, timed, with_time_limit

BATCHES = ("square-n20-w16", "exponential-n8-w5", "logistic-n8-w5")
METHODS = ("Radau", "BDF")
RTOL, ATOL, T_MAX = 1e-10, 1e-12, 1000.0
MAX_THETA_ERROR, MIN_SPEEDUP = 1e-7, 10.0


def stiff_section(reference_flow, seeds, timeout):
    rows = []
    if reference_flow is None:
        return dict(rows=rows, seeds=list(seeds), timeout=timeout)
    for batch in BATCHES:
        for seed in seeds:
            net, (X, y), theta0, loss = batch_problem(batch, seed)
            tr, ff_seconds = timed(lambda: ff.flow(net, (X, y), theta0, loss=loss, t_max=T_MAX, rtol=RTOL, atol=ATOL))
            W1, W2 = net.split(theta0)
            for method in METHODS:
                row = dict(batch=batch, seed=seed, method=method, ff_seconds=ff_seconds, ff_status=tr.status)
                try:
                    ref, ref_seconds = timed(lambda: with_time_limit(timeout, lambda: reference_flow(
                        X, y, W1, W2, loss, T_MAX, rtol=RTOL, atol=ATOL, method=method)))
                except TimeLimit:
                    row.update(ref_status=f"time limit {timeout:g} s")
                    rows.append(row)
                    continue
                row.update(ref_status=ref["status"], ref_seconds=ref_seconds, speedup=ref_seconds / ff_seconds,
                           theta_error=float(np.linalg.norm(tr.theta - ref["theta"]) / np.linalg.norm(ref["theta"])),
                           events=len(tr.events), ref_events=len(ref["events"]))
                rows.append(row)
    return dict(rows=rows, seeds=list(seeds), timeout=timeout)


def targets(stiff):
    done = [r for r in stiff["rows"] if "speedup" in r]
    if not done:
        return {}
    worst_error = max(r["theta_error"] for r in done)
    least_speedup = min(r["speedup"] for r in done)
    return {
        "stiff: theta within 1e-7 of Radau/BDF": f"{'met' if worst_error <= MAX_THETA_ERROR else 'NOT met'} "
                                                   f"(worst {worst_error:.1e} over {len(done)} runs)",
        "stiff: >= 10x faster than Radau/BDF": f"{'met' if least_speedup >= MIN_SPEEDUP else 'NOT met'} "
                                                f"(least {least_speedup:.0f}x)",
    }


def summary_lines(stiff):
    head = (f"{'batch':<18} {'seed':>5} {'method':<6} {'status':<10} {'fastflow [s]':>12} {'SciPy [s]':>10} "
            f"{'speedup':>8} {'theta err':>10} {'events':>13}")
    lines = ["", f"stiff: fastflow against SciPy {' / '.join(METHODS)} with events (tests/reference.py), both at rtol "
                 f"{RTOL:g}, atol {ATOL:g}, to t = {T_MAX:g}", head, "-" * len(head)]
    for r in stiff["rows"]:
        if "speedup" not in r:
            lines.append(f"{r['batch']:<18} {r['seed']:>5} {r['method']:<6} {r['ff_status']:<10} "
                         f"{r['ff_seconds']:>12.3f} {r['ref_status']}")
            continue
        lines.append(f"{r['batch']:<18} {r['seed']:>5} {r['method']:<6} {r['ff_status']:<10} {r['ff_seconds']:>12.3f} "
                     f"{r['ref_seconds']:>10.2f} {r['speedup']:>7.0f}x {r['theta_error']:>10.1e} "
                     f"{r['events']:>6}/{r['ref_events']:<6}")
    return lines
