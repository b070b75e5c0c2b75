"""The deep batches of issue #23 (benchmarks/benchmarks/bench_deep.py: [6, 6, 6] and [8, 8] seeds 300-307, and
[8, 8] seeds 100-119), one thread: every run's status, events and CPU seconds, and per batch the statuses, the
median and worst time and worst/median. A run past --limit wall seconds is stopped ("interrupted").
--zeno: for every max_events stop, is it an accumulation of events in the flow? Every pre-activation is
re-evaluated in NumPy on 400 dense samples approaching the stop geometrically (from t (1 - 1e-3) to t (1 - 1e-12))
and the pairs whose sign changes beyond the fuzz target's integration bands are listed (none: the events repeat at
one t, a classification that re-fires, not a Zeno point of the exact flow).

    python benchmarks/comparison/deep_batches.py [--limit 120] [--batch mixed|w8] [--zeno]
"""
import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import fastflow as ff  # noqa: E402
from benchmarks.bench_deep import BATCHES, FLOW, deep_problem  # noqa: E402
from comparison.methods import TimeLimit, with_time_limit  # noqa: E402
from fastflow.fuzz_checks import h_bands  # noqa: E402

RTOL, ATOL = 1e-10, 1e-12  # the flow's defaults, which FLOW keeps


def run(widths, seed, limit):
    net, data, theta0 = deep_problem(widths, seed)
    start = time.process_time()
    try:
        traj = with_time_limit(limit, lambda: ff.flow(net, data, theta0, **FLOW))
        status, events, note, t = traj.status, traj.n_events, traj.message or "", float(traj.t)
    except TimeLimit:
        status, events, note, t = "interrupted", -1, "", np.nan
    except RuntimeError as err:
        status, events, note, t = "error", -1, str(err), np.nan
    return status, events, time.process_time() - start, note, t


def sign_changes_before_stop(widths, seed, t_stop):
    """{(sample, unit): count} of significant sign changes of the pre-activations approaching t_stop."""
    net, data, theta0 = deep_problem(widths, seed)
    grid = t_stop * (1.0 - np.logspace(-3, -12, 400))
    traj = ff.flow(net, data, theta0, t_eval=grid, **FLOW)
    thetas = traj.theta_at[np.all(np.isfinite(traj.theta_at), axis=1)]
    H = np.stack([np.concatenate(net.preactivations(th, data[0]), axis=1) for th in thetas])
    B = h_bands(net, thetas, data[0], RTOL, ATOL)
    S = np.where(H > B, 1, np.where(H < -B, -1, 0))
    out = {}
    for i, u in np.ndindex(*H.shape[1:]):
        s = S[:, i, u][S[:, i, u] != 0]
        if np.any(s[1:] != s[:-1]):
            out[(i, u)] = int(np.sum(s[1:] != s[:-1]))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=float, default=120.0, help="wall seconds per run")
    ap.add_argument("--batch", choices=list(BATCHES), action="append")
    ap.add_argument("--zeno", action="store_true", help="check every max_events stop for an accumulation")
    args = ap.parse_args(argv)
    for batch in args.batch or list(BATCHES):
        rows = []
        for widths, seed in BATCHES[batch]:
            status, events, seconds, note, t = run(widths, seed, args.limit)
            rows.append((status, seconds))
            print(f"{batch:6s} {str(list(widths)):10s} seed {seed:4d}  {status:12s} events {events:7d}  "
                  f"{seconds:8.2f} s  {note[:70]}", flush=True)
            if args.zeno and status == "max_events":
                changes = sign_changes_before_stop(widths, seed, t)
                print(f"    sign changes beyond the bands before the stop: {changes or 'none (not an accumulation)'}")
        times = np.array([s for _, s in rows])
        med = float(np.median(times))
        print(f"{batch}: {dict(Counter(s for s, _ in rows))}  median {med:.2f} s  worst {times.max():.2f} s  "
              f"worst/median {times.max() / med:.1f}\n", flush=True)


if __name__ == "__main__":
    main()
