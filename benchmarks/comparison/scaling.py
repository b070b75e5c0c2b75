"""Section flow_many thread scaling: throughput on 1 and 2 threads, with the CPU time of each thread."""
import os
import time

import numpy as np

import fastflow as ff
from benchmarks.common import RANK_T_MAX, random_problem, rank2x2_inits, rank2x2_problem

from . import config
from .config import RANDOM_T_MAX
from .report import fmt

SCALING_MAX_STEPS = 2_000


class ThreadCpu:
    """Samples /proc/self/task/*/stat every few ms in a Python thread (flow_many releases the GIL) and keeps each
    thread's last CPU time (user + system), so the CPU of the C++ workers and of the main thread can be told apart.
    Linux only; clock-tick resolution (10 ms)."""

    def __init__(self):
        self.cpu, self._stop = {}, None
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def _sample(self):
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                self.cpu[int(tid)] = (int(fields[11]) + int(fields[12])) / self.tick
            except (OSError, IndexError, ValueError):
                pass

    def __enter__(self):
        import threading
        if not os.path.isdir("/proc/self/task"):
            return self
        self._stop = threading.Event()
        self._sample()
        self.start = dict(self.cpu)

        def loop():
            while not self._stop.wait(0.002):
                self._sample()
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        self.monitor_tid = self._thread.native_id
        return self

    def __exit__(self, *exc):
        if self._stop is not None:
            self._sample()
            self._stop.set()
            self._thread.join()

    def split(self, main_tid):
        """(main thread CPU, [CPU of every other thread but the sampler])."""
        if self._stop is None:
            return None, []
        used = {t: c - self.start.get(t, 0.0) for t, c in self.cpu.items() if t != self.monitor_tid}
        return used.pop(main_tid, 0.0), sorted(used.values(), reverse=True)


def scaling_section(count):
    """flow_many throughput on 1 and 2 threads (best of 3 for the short rank runs). The cores are shared with
    whatever else runs on the machine, so next to the wall times: the process CPU time, the CPU of the main thread
    (Python wrapping of the results: serial) and of each C++ worker, and from them the wall time the 2-thread run
    would take on two free cores (main thread + busiest worker)."""
    if (os.cpu_count() or 1) < 2:
        return dict(skipped=f"{os.cpu_count()} CPU")
    import threading
    main_tid = threading.get_native_id()
    net, X, Y = rank2x2_problem()
    cases = {"rank2x2": (net, (X, Y), rank2x2_inits(net, count),
                         dict(loss="square", t_max=RANK_T_MAX, rtol=1e-10, atol=1e-14, gtol=config.SQUARE_GTOL))}
    net2, X2, y2, _ = random_problem(10, 5, 16, "exponential", 0)
    thetas2 = np.array([ff.init.he(net2, np.random.default_rng([11, k])) for k in range(count)])
    # some of these initialisations send the integrator into long runs of tiny steps: cap each trajectory's work
    cases["n=10 exp"] = (net2, (X2, y2), thetas2, dict(loss="exponential", t_max=RANDOM_T_MAX, rtol=1e-10,
                                                         atol=1e-12, max_steps=SCALING_MAX_STEPS))
    out = {}
    for name, (net_, data, thetas, kw) in cases.items():
        res = {}
        for threads in (1, 2):
            best = None
            for _ in range(3 if name == "rank2x2" else 1):
                with ThreadCpu() as mon:
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    ff.flow_many(net_, data, thetas, threads=threads, **kw)
                    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
                if best is None or wall < best["seconds"]:
                    main_cpu, workers = mon.split(main_tid)
                    best = dict(seconds=wall, cpu_seconds=cpu, per_second=count / wall, cores_obtained=cpu / wall,
                                main_thread_cpu=main_cpu, worker_cpu=workers[:threads])
            res[threads] = best
        res["speedup_2_threads"] = res[1]["seconds"] / res[2]["seconds"]
        r1, r2 = res[1], res[2]
        if r2["main_thread_cpu"] is not None and r2["worker_cpu"]:
            free1 = r1["main_thread_cpu"] + max(r1["worker_cpu"] or [0.0])
            free2 = r2["main_thread_cpu"] + max(r2["worker_cpu"])
            res["speedup_2_threads_on_free_cores_estimate"] = free1 / free2 if free2 > 0 else None
        res["trajectories"] = count
        out[name] = res
    return out


def summary_lines(scaling):
    lines = []
    for name, s in scaling.items():
        if isinstance(s, dict) and 1 in s:
            est = s.get("speedup_2_threads_on_free_cores_estimate")
            lines.append(
                f"flow_many {name}, {s['trajectories']} trajectories: 1 thread {s[1]['seconds']:.2f} s "
                f"(cpu {s[1]['cpu_seconds']:.2f}), 2 threads {s[2]['seconds']:.2f} s (cpu {s[2]['cpu_seconds']:.2f},"
                f" {s[2]['cores_obtained']:.2f} cores obtained, main thread {fmt(s[2]['main_thread_cpu'], '.2f')} s, "
                f"workers {', '.join(f'{c:.2f}' for c in s[2]['worker_cpu'])} s) -> {s['speedup_2_threads']:.2f} x "
                f"measured, {fmt(est, '.2f')} x estimated on two free cores")
    return lines
