"""Section memory: resident memory per trajectory against the number of parameters, measured in child processes
(compare.py --memory-child)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import fastflow as ff
from benchmarks.common import random_problem

COMPARE = Path(__file__).resolve().parents[1] / "compare.py"
MEMORY_CHILD_WIDTHS = [(10, 4), (10, 16), (10, 64), (10, 256), (100, 16)]


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_child(n, width, count):
    """(run in a child process) resident memory that flow_many over `count` short trajectories adds, per
    trajectory: at its peak (RSS sampled every ms while the C++ workers run) and kept afterwards (the list of
    Trajectory objects alive). Linux (/proc/self/statm)."""
    import gc
    import threading
    net, X, y, _ = random_problem(n, 5, width, "exponential")
    thetas = np.array([ff.init.he(net, np.random.default_rng([5, k])) for k in range(count)])
    kw = dict(loss="exponential", t_max=0.01)
    ff.flow_many(net, (X, y), thetas[:4], threads=1, **kw)  # warm-up: allocator arenas, lazy imports
    gc.collect()
    base = _rss_bytes()
    peak, stop = [base], threading.Event()

    def sample():
        while not stop.wait(0.001):
            peak[0] = max(peak[0], _rss_bytes())
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    trs = ff.flow_many(net, (X, y), thetas, threads=1, **kw)
    stop.set()
    sampler.join()
    gc.collect()
    kept = _rss_bytes()
    arrays = sum(t.theta.nbytes + t.events.nbytes + t.theta_at.nbytes + t.loss_at.nbytes + t.t_eval.nbytes
                 for t in trs)
    print(json.dumps(dict(n=n, width=width, n_params=net.n_params, trajectories=count,
                          peak_bytes_per_trajectory=(max(peak[0], kept) - base) / count,
                          kept_bytes_per_trajectory=(kept - base) / count,
                          array_bytes_per_trajectory=arrays / count,
                          events_per_trajectory=float(np.mean([t.n_events for t in trs])))))


def memory_section(count):
    rows = []
    for n, width in MEMORY_CHILD_WIDTHS:
        cmd = [sys.executable, str(COMPARE), "--memory-child", str(n), str(width), str(count)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            rows.append(dict(n=n, width=width, error=proc.stderr[-2000:]))
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    ok = [r for r in rows if "error" not in r and r["n"] == 10]
    fit = None
    if len(ok) >= 2:
        p = np.array([r["n_params"] for r in ok], float)
        fit = {}
        for key in ("peak_bytes_per_trajectory", "kept_bytes_per_trajectory"):
            slope, intercept = np.polyfit(p, np.array([r[key] for r in ok]), 1)
            fit[key] = dict(bytes_per_parameter=float(slope), bytes_fixed=float(intercept))
    return dict(rows=rows, linear_fit_n10=fit)


def summary_lines(memory):
    lines = []
    for r in memory["rows"]:
        if "error" in r:
            lines.append(f"memory n={r['n']} width={r['width']}: child failed")
        else:
            lines.append(f"memory n={r['n']} width={r['width']} (p={r['n_params']}): per trajectory "
                         f"{r['peak_bytes_per_trajectory']:.0f} B at the peak, {r['kept_bytes_per_trajectory']:.0f} B "
                         f"kept ({r['array_bytes_per_trajectory']:.0f} B of it in arrays), "
                         f"{r['events_per_trajectory']:.1f} events")
    return lines
