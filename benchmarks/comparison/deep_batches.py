"""The deep batches of issue #23 (benchmarks/benchmarks/bench_deep.py: [6, 6, 6] and [8, 8] seeds 300-307, and
[8, 8] seeds 100-119), one thread: every run's status, events and CPU seconds, and per batch the statuses, the
median and worst time and worst/median. A run past --limit wall seconds is stopped ("interrupted").

    python benchmarks/comparison/deep_batches.py [--limit 120] [--batch mixed|w8]
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


def run(widths, seed, limit):
    net, data, theta0 = deep_problem(widths, seed)
    start = time.process_time()
    try:
        traj = with_time_limit(limit, lambda: ff.flow(net, data, theta0, **FLOW))
        status, events, note = traj.status, traj.n_events, traj.message or ""
    except TimeLimit:
        status, events, note = "interrupted", -1, ""
    except RuntimeError as err:
        status, events, note = "error", -1, str(err)
    return status, events, time.process_time() - start, note


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=float, default=120.0, help="wall seconds per run")
    ap.add_argument("--batch", choices=list(BATCHES), action="append")
    args = ap.parse_args(argv)
    for batch in args.batch or list(BATCHES):
        rows = []
        for widths, seed in BATCHES[batch]:
            status, events, seconds, note = run(widths, seed, args.limit)
            rows.append((status, seconds))
            print(f"{batch:6s} {str(list(widths)):10s} seed {seed:4d}  {status:12s} events {events:7d}  "
                  f"{seconds:8.2f} s  {note[:70]}", flush=True)
        times = np.array([s for _, s in rows])
        med = float(np.median(times))
        print(f"{batch}: {dict(Counter(s for s, _ in rows))}  median {med:.2f} s  worst {times.max():.2f} s  "
              f"worst/median {times.max() / med:.1f}\n", flush=True)


if __name__ == "__main__":
    main()
