"""fastflow against small-step gradient descent and the SciPy yardstick: time and accuracy on the same workloads.

    python benchmarks/compare.py [--runs N] [--gd-runs K] [--quick]

Methods (all single-threaded per run; BLAS is pinned to one thread before NumPy loads, unless the caller set
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS):
  gd-numpy        full-batch gradient descent in NumPy, the rank paper's protocol: step 1e-4 up to the same t,
                  relu'(0) = 0
  gd-torch        the same in PyTorch (CPU, float64), if `import torch` works
  scipy@1e-12     tests/reference.py (DOP853 + dense-output event location + brentq, at its defaults rtol 1e-12,
                  atol 1e-14): the tight reference every accuracy figure is measured against
  scipy@1e-10     the same yardstick at fastflow's default rtol
  fastflow@1e-10  ff.flow at rtol 1e-10
  fastflow@1e-12  ff.flow at rtol 1e-12

Workloads:
  rank2x2     the rank paper's 2x2 experiment: x = (+-1, 0.99)/norm, Y = I, two_layer(2, 2, d_out=2), square
              loss, sphere init of radius 1e-4, t = 300. fastflow also runs the paper's 288 runs with flow_many on
              1 and 2 threads; GD's total for 288 runs is extrapolated from its per-run time.
  n=10 exp, n=10 log, n=100 exp, n=100 log
              random problems (common.random_problem: d = 5, width 16, points on the sphere, labels of a random
              linear separator, He init), exponential / logistic loss, t = 50.

Accuracy, per run, against scipy@1e-12 on the same initialisation:
  theta error    ||theta - theta_ref|| / ||theta_ref|| at the end
  event dt       max |t - t_ref| over matched events (same kind, sample and neuron, k-th occurrence with k-th);
                 for GD, which has no events, the first sign change of each pre-activation against the
                 reference's first event of that pair
  slides         over the runs where the reference slides: how many end within AGREE of its final theta

Also measured (the issue's targets): time per right-hand-side evaluation at n = 1000, d = 50, width = 128 next to
NumPy's two matrix products; flow_many throughput on 1 and 2 threads over 1000 trajectories, with the CPU time
of each thread; memory per trajectory against the number of parameters (child processes, sampled RSS).

Writes results/compare.json and results/compare.png next to this script. Times are wall-clock on this machine in
this run; the JSON records the machine and its load average (other processes share the cores).
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fastflow as ff  # noqa: E402
from fastflow._json import jsonable  # noqa: E402
from benchmarks.common import (RANK_RUNS, RANK_T_MAX, best_of, machine_info, random_problem,  # noqa: E402
                               rank2x2_inits, rank2x2_problem)

GD_LR = 1e-4
AGREE = 1e-3            # "followed the slide": final theta within this relative distance of the reference
RANDOM_T_MAX = 50.0
SQUARE_GTOL = 1e-13     # replaced by tests/reference.py's GTOL when the yardstick loads
RANDOM_SHAPE = dict(d=5, width=16)
RANDOM_CASES = [(10, "exponential"), (10, "logistic"), (100, "exponential"), (100, "logistic")]
LOSS_ABBREV = {"exponential": "exp", "logistic": "log", "square": "sq"}
REF = "scipy@1e-12"
FF = "fastflow@1e-10"
METHODS = ["gd-numpy", "gd-torch", REF, "scipy@1e-10", FF, "fastflow@1e-12"]
# (rtol, atol) per method; the rank problem starts at |theta| ~ 1e-4, so its atol is 100x smaller. The square loss
# stops at a stationary point: fastflow is given the yardstick's rule (||grad|| <= GTOL of tests/reference.py, 1e-13)
# instead of its default gtol 1e-10, which would leave the drift still to come (~1e-10) in the final-theta error.
TOLS = {"random": {REF: (1e-12, 1e-14), "scipy@1e-10": (1e-10, 1e-12), FF: (1e-10, 1e-12),
                   "fastflow@1e-12": (1e-12, 1e-14)},
        "rank2x2": {REF: (1e-12, 1e-14), "scipy@1e-10": (1e-10, 1e-14), FF: (1e-10, 1e-14),
                    "fastflow@1e-12": (1e-12, 1e-16)}}


# ------------------------------------------------------------------------------------------------------------------
# time limits (SIGALRM): the yardstick is pure Python, so the alarm's exception stops it; fastflow polls signals
# every 50 ms and returns the run so far with status "interrupted"
# ------------------------------------------------------------------------------------------------------------------


class TimeLimit(Exception):
    pass


def _alarm(signum, frame):
    raise TimeLimit()


def with_time_limit(seconds, fn):
    if not seconds or not hasattr(signal, "SIGALRM"):
        return fn()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


# ------------------------------------------------------------------------------------------------------------------
# the methods: each returns dict(theta, events or first_switch, status)
# ------------------------------------------------------------------------------------------------------------------


def loss_gradient_numpy(phi, y, loss):
    """dL/dPhi (n, d_out) for L = sum_i l(y_i Phi_i) (classification, d_out = 1) or 1/2 |Phi - Y|^2."""
    if loss == "square":
        return phi - y
    q = y * phi[:, 0]
    if loss == "exponential":
        return (-y * np.exp(-q))[:, None]
    return (-y * 0.5 * (1.0 - np.tanh(0.5 * q)))[:, None]  # -y / (1 + e^q), overflow-free


def gd_numpy(X, y, W1, W2, loss, t_max, lr=GD_LR, steps=None):
    """Full-batch GD with step lr for round(t_max / lr) steps; (H > 0) is relu' with relu'(0) = 0. Also records the
    first time (k * lr) each pre-activation h_ij changes sign, and how often it does (chattering = GD's sliding)."""
    steps = int(round(t_max / lr)) if steps is None else steps
    W1, W2 = W1.copy(), W2.copy()
    prev = X @ W1.T > 0
    prev_code = prev.tobytes()
    first = np.full(prev.size, np.nan)
    flips = np.zeros(prev.size, dtype=np.int64)
    for k in range(steps):
        H = X @ W1.T
        M = H > 0
        code = M.tobytes()
        if code != prev_code:  # cheap test; the bookkeeping runs only when the pattern changed
            changed = (M != prev).ravel()
            flips += changed
            first[changed & np.isnan(first)] = k * lr
            prev, prev_code = M, code
        A = np.maximum(H, 0.0)
        R = loss_gradient_numpy(A @ W2.T, y, loss)
        dW1 = ((R @ W2) * M).T @ X
        W2 -= lr * (R.T @ A)
        W1 -= lr * dW1
    return dict(W1=W1, W2=W2, first_switch=first, flips=flips, status=f"{steps} steps")


def load_torch():
    try:
        import torch
        torch.set_num_threads(1)
        return torch, None
    except Exception as exc:  # noqa: BLE001 - not installed, or broken
        return None, f"import torch failed: {exc!r}"


def gd_torch(torch, X, y, W1, W2, loss, t_max, lr=GD_LR, steps=None):
    """gd_numpy in PyTorch (CPU, float64), final state only (no event bookkeeping)."""
    steps = int(round(t_max / lr)) if steps is None else steps
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    W1, W2 = torch.as_tensor(W1).clone(), torch.as_tensor(W2).clone()
    with torch.no_grad():
        for _ in range(steps):
            H = X @ W1.T
            M = (H > 0).to(H.dtype)
            A = H * M
            phi = A @ W2.T
            if loss == "square":
                R = phi - y
            else:
                q = y * phi[:, 0]
                w = torch.exp(-q) if loss == "exponential" else torch.sigmoid(-q)
                R = (-y * w)[:, None]
            dW1 = ((R @ W2) * M).T @ X
            W2 -= lr * (R.T @ A)
            W1 -= lr * dW1
    return dict(W1=W1.numpy(), W2=W2.numpy(), status=f"{steps} steps")


def load_reference():
    """The SciPy yardstick tests/reference.py, or (None, reason)."""
    global SQUARE_GTOL
    sys.path.insert(0, str(HERE.parent / "tests"))
    try:
        import reference
        SQUARE_GTOL = getattr(reference, "GTOL", SQUARE_GTOL)
        return reference.reference_flow, None
    except Exception as exc:  # noqa: BLE001
        return None, f"import failed: {exc!r}"


def ff_events(tr):
    return [(float(e["t"]), str(e["kind"]), int(e["sample"]), int(e["layer"]), int(e["neuron"]))
            for e in tr.events if e["kind"] != "branch"]  # "branch" marks a slide, the yardstick has no such kind


# ------------------------------------------------------------------------------------------------------------------
# accuracy
# ------------------------------------------------------------------------------------------------------------------


def theta_error(theta, ref):
    return float(np.linalg.norm(theta - ref) / max(np.linalg.norm(ref), 1e-300))


def match_events(ref_events, events):
    """Pair the k-th event of each (kind, sample, neuron) with the reference's k-th; max |dt| over the pairs."""
    def by_key(evs):
        out = {}
        for t, kind, i, _, j in sorted(evs):
            out.setdefault((kind, i, j), []).append(t)
        return out
    a, b = by_key(ref_events), by_key(events)
    dts = [abs(x - y) for key in a.keys() & b.keys() for x, y in zip(a[key], b[key])]
    return dict(n_ref=len(ref_events), n_method=len(events), n_matched=len(dts),
                event_dt=max(dts) if dts else None)


def match_first_switches(ref_events, first_switch, width):
    """GD: first sign change of each pair (i, j) against the reference's first event of that pair at t > 0."""
    ref_first = {}
    for t, _, i, _, j in sorted(ref_events):
        if t > 0:
            ref_first.setdefault((i, j), t)
    dts, gd_pairs = [], 0
    for k, t in enumerate(first_switch):
        if np.isnan(t):
            continue
        gd_pairs += 1
        key = (k // width, k % width)
        if key in ref_first:
            dts.append(abs(t - ref_first[key]))
    return dict(n_ref=len(ref_first), n_method=gd_pairs, n_matched=len(dts), event_dt=max(dts) if dts else None)


def slides(events):
    return any(kind == "slide_start" for _, kind, *_ in events)


# ------------------------------------------------------------------------------------------------------------------
# one workload
# ------------------------------------------------------------------------------------------------------------------


class Workload:
    """Runs every method on a list of problems (net, X, y, theta0, seed) of one loss and horizon."""

    def __init__(self, name, kind, loss, t_max, problems, args, reference_flow, torch):
        self.name, self.kind, self.loss, self.t_max = name, kind, loss, t_max
        self.problems, self.args = problems, args
        self.reference_flow, self.torch = reference_flow, torch
        self.gtol = SQUARE_GTOL if loss == "square" else None
        self.runs = []      # one dict per (method, problem)
        self.ref = {}       # seed -> reference result

    def record(self, method, seed, seconds, theta=None, status="", events=None, extra=None):
        rec = dict(workload=self.name, method=method, seed=seed, time=seconds, status=status,
                   theta=None if theta is None else np.asarray(theta, float))
        rec["events"] = events
        rec.update(extra or {})
        self.runs.append(rec)
        return rec

    def run_reference(self, method):
        rtol, atol = TOLS[self.kind][method]
        for net, X, y, theta0, seed in self.problems:
            W1, W2 = net.split(theta0)
            call = lambda: self.reference_flow(X, y, W1, W2, self.loss, self.t_max, activation="relu",  # noqa: E731
                                               rtol=rtol, atol=atol)
            try:
                r, dt = timed(lambda: with_time_limit(self.args.ref_timeout, call))
            except TimeLimit:
                self.record(method, seed, float("nan"), status=f"time limit {self.args.ref_timeout:g} s")
                continue
            except Exception:  # noqa: BLE001 - a yardstick failure is reported, not fatal
                self.record(method, seed, float("nan"), status="error: " + traceback.format_exc(limit=2))
                continue
            rec = self.record(method, seed, dt, r["theta"], r["status"], [tuple(e) for e in r["events"]])
            if method == REF:
                self.ref[seed] = rec

    def run_fastflow(self, method):
        rtol, atol = TOLS[self.kind][method]
        net0, X0, y0, th0, _ = self.problems[0]
        warm_up = lambda: ff.flow(net0, (X0, y0), th0, loss=self.loss, t_max=1e-3 * self.t_max,  # noqa: E731
                                  rtol=rtol, atol=atol, gtol=self.gtol)
        try:
            with_time_limit(self.args.ff_timeout, warm_up)  # first-call costs out of the timed runs
        except TimeLimit:
            pass
        for net, X, y, theta0, seed in self.problems:
            call = lambda: ff.flow(net, (X, y), theta0, loss=self.loss, t_max=self.t_max, rtol=rtol,  # noqa: E731
                                   atol=atol, gtol=self.gtol)
            try:
                tr, dt = timed(lambda: with_time_limit(self.args.ff_timeout, call))
            except TimeLimit:  # the alarm came while Python, not the integrator, held the thread
                self.record(method, seed, self.args.ff_timeout, status="interrupted")
                continue
            self.record(method, seed, dt, tr.theta, tr.status, ff_events(tr),
                        dict(n_steps=tr.n_steps, n_rejected=tr.n_rejected, n_rhs=tr.n_rhs, t_end=float(tr.t)))

    def gd_seeds(self, count):
        """The GD runs: half of them (rounded up) on problems where the reference slides, if there are any."""
        seeds = [p[4] for p in self.problems]
        sliding = [s for s in seeds if s in self.ref and slides(self.ref[s]["events"])]
        other = [s for s in seeds if s not in sliding]
        k = min(len(sliding), (count + 1) // 2)
        chosen = sliding[:k] + other[:count - k]
        return sorted(chosen, key=seeds.index)

    def run_gd(self, method, count):
        by_seed = {p[4]: p for p in self.problems}
        steps = int(round(self.t_max / GD_LR))
        run_steps = max(1, int(steps * self.args.gd_fraction))
        for seed in self.gd_seeds(count):
            net, X, y, theta0, _ = by_seed[seed]
            W1, W2 = net.split(theta0)
            if method == "gd-numpy":
                out, dt = timed(lambda: gd_numpy(X, y, W1, W2, self.loss, self.t_max, steps=run_steps))
            else:
                out, dt = timed(lambda: gd_torch(self.torch, X, y, W1, W2, self.loss, self.t_max, steps=run_steps))
            truncated = run_steps < steps
            extra = dict(steps=steps, steps_run=run_steps, measured_time=dt)
            if "first_switch" in out and not truncated:
                extra["first_switch"] = out["first_switch"]
                extra["max_flips_per_pair"] = int(out["flips"].max())
            theta = None if truncated else net.join([out["W1"], out["W2"]])
            self.record(method, seed, dt * steps / run_steps, theta,
                        out["status"] + (f" of {steps} (time extrapolated)" if truncated else ""), None, extra)

    def run_all(self, gd_count):
        if self.reference_flow is not None:
            self.run_reference(REF)
        self.run_fastflow(FF)
        self.run_fastflow("fastflow@1e-12")
        if self.reference_flow is not None:
            self.run_reference("scipy@1e-10")
        if gd_count > 0:
            self.run_gd("gd-numpy", gd_count)
            if self.torch is not None:
                self.run_gd("gd-torch", gd_count)
        self.score()

    def score(self):
        width = self.problems[0][0].split(self.problems[0][3])[0].shape[0]
        for rec in self.runs:
            ref = self.ref.get(rec["seed"])
            if ref is None or rec["theta"] is None or ref["theta"] is None:
                continue
            rec["theta_error"] = theta_error(rec["theta"], ref["theta"])
            rec["ref_slides"] = slides(ref["events"])
            if rec["events"] is not None:
                rec.update(match_events(ref["events"], rec["events"]))
            elif "first_switch" in rec:
                rec.update(match_first_switches(ref["events"], rec["first_switch"], width))

    def summary(self):
        rows = []
        ff_time = _mean([r["time"] for r in self.runs if r["method"] == FF])
        for method in METHODS:
            rs = [r for r in self.runs if r["method"] == method]
            if not rs:
                continue
            times = [r["time"] for r in rs]
            errs = [r["theta_error"] for r in rs if r.get("theta_error") is not None]
            dts = [r["event_dt"] for r in rs if r.get("event_dt") is not None]
            sliding = [r for r in rs if r.get("ref_slides")]
            statuses = {}
            for r in rs:
                key = r["status"].split(":")[0]
                statuses[key] = statuses.get(key, 0) + 1
            t = _mean(times)
            stopped = any(r["status"] == "interrupted" for r in rs)
            rows.append(dict(
                workload=self.name, method=method, runs=len(rs), time_per_run=t, time_is_lower_bound=stopped,
                ratio_to_fastflow=t / ff_time if ff_time and t == t else None,
                theta_error_median=float(np.median(errs)) if errs else None,
                theta_error_max=max(errs) if errs else None,
                event_dt_max=max(dts) if dts else None,
                events_matched=sum(r.get("n_matched", 0) for r in rs),
                events_ref=sum(r.get("n_ref", 0) for r in rs if r.get("n_matched") is not None),
                slide_runs=len(sliding),
                slides_followed=sum(r["theta_error"] < AGREE for r in sliding),
                statuses=statuses))
        return rows


def _mean(xs):
    xs = [x for x in xs if x == x]
    return float(np.mean(xs)) if xs else float("nan")


# ------------------------------------------------------------------------------------------------------------------
# the sections
# ------------------------------------------------------------------------------------------------------------------


def rank_workload(args, reference_flow, torch):
    net, X, Y = rank2x2_problem()
    thetas = rank2x2_inits(net, max(args.runs, RANK_RUNS))
    problems = [(net, X, Y, thetas[s], s) for s in range(args.runs)]
    w = Workload("rank2x2", "rank2x2", "square", RANK_T_MAX, problems, args, reference_flow, torch)
    w.run_all(args.gd_runs)

    # the paper's 288 runs with flow_many (identical to a loop of ff.flow), best of 3
    rtol, atol = TOLS["rank2x2"][FF]
    kwargs = dict(loss="square", t_max=RANK_T_MAX, rtol=rtol, atol=atol, gtol=SQUARE_GTOL)
    many = {}
    for threads in sorted({1, min(2, os.cpu_count() or 1)}):
        seconds, trs = best_of(lambda: ff.flow_many(net, (X, Y), thetas[:RANK_RUNS], threads=threads, **kwargs))
        many[threads] = dict(seconds=seconds, per_run=seconds / RANK_RUNS,
                             statuses=_count(t.status for t in trs),
                             slide_runs=sum(any(t.events["kind"] == "slide_start") for t in trs))
    gd = [r for r in w.runs if r["method"] == "gd-numpy"]
    gd_per_run = _mean([r["time"] for r in gd])
    paper = dict(runs=RANK_RUNS, fastflow_flow_many=many, gd_per_run=gd_per_run,
                 gd_total_extrapolated=gd_per_run * RANK_RUNS,
                 ratio_gd_total_to_fastflow_1_thread=gd_per_run * RANK_RUNS / many[1]["seconds"])
    # accuracy on the same seeds: fastflow's error against GD's error
    ff_err = {r["seed"]: r.get("theta_error") for r in w.runs if r["method"] == FF}
    paper["gd_vs_fastflow_error"] = [dict(seed=r["seed"], gd=r.get("theta_error"), fastflow=ff_err.get(r["seed"]))
                                     for r in gd]
    return w, paper


def _count(items):
    out = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def random_workloads(args, reference_flow, torch):
    out = []
    for n, loss in RANDOM_CASES:
        if args.quick and n > 10 and loss != "exponential":
            continue
        problems = []
        for seed in range(args.problems):
            net, X, y, theta0 = random_problem(n, RANDOM_SHAPE["d"], RANDOM_SHAPE["width"], loss, seed)
            problems.append((net, X, y, theta0, seed))
        name = f"n={n} {LOSS_ABBREV[loss]}"
        print(f"  {name} ...", flush=True)
        w = Workload(name, "random", loss, RANDOM_T_MAX, problems, args, reference_flow, torch)
        w.run_all(min(args.gd_random_runs, args.problems))
        out.append(w)
    return out


def rhs_section():
    """Seconds per right-hand side at n = 1000, d = 50, width = 128 (a one-step flow: time / n_rhs) against NumPy's
    X @ W1.T plus delta.T @ X on the same shapes; and the C++ forward pass alone. Each is a best of calls filling
    about the same wall time (a quarter of a second): on shared cores a 10 ms flow is disturbed more often than a
    0.5 ms product."""
    n, d, width = 1000, 50, 128
    net, X, y, theta0 = random_problem(n, d, width, "exponential")
    W1 = net.split(theta0)[0]
    delta = np.random.default_rng(0).normal(size=(n, width))
    flow = lambda: ff.flow(net, (X, y), theta0, loss="exponential", t_max=1e-7, rtol=1e-10, atol=1e-12)  # noqa: E731
    seconds, tr = best_of(flow, repeat=20)
    matmuls, _ = best_of(lambda: (X @ W1.T, delta.T @ X), repeat=500)
    forward, _ = best_of(lambda: net.forward(theta0, X), repeat=500)
    per_rhs = seconds / tr.n_rhs
    return dict(n=n, d=d, width=width, flow_seconds=seconds, n_rhs=tr.n_rhs, n_steps=tr.n_steps,
                n_events=tr.n_events, seconds_per_rhs=per_rhs, numpy_two_matmuls=matmuls, cpp_forward_pass=forward,
                ratio_rhs_to_matmuls=per_rhs / matmuls, ratio_forward_to_one_matmul=forward / (matmuls / 2),
                blas_threads=os.environ.get("OPENBLAS_NUM_THREADS"))


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
    cases = {"rank2x2": (net, (X, Y), rank2x2_inits(net, count), dict(loss="square", t_max=RANK_T_MAX,
                                                                        rtol=1e-10, atol=1e-14, gtol=SQUARE_GTOL))}
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


SCALING_MAX_STEPS = 2_000
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
        cmd = [sys.executable, str(Path(__file__).resolve()), "--memory-child", str(n), str(width), str(count)]
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


# ------------------------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------------------------


def fmt(x, spec=".2e"):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return format(x, spec)


def print_table(rows):
    head = (f"{'workload':<10} {'method':<15} {'runs':>4} {'time/run [s]':>12} {'x fastflow':>10} "
            f"{'theta err med':>13} {'theta err max':>13} {'event dt max':>12} {'matched':>9} {'slides ok':>9}  status")
    print(head)
    print("-" * len(head))
    for r in rows:
        matched = f"{r['events_matched']}/{r['events_ref']}" if r["events_ref"] else "-"
        slides_ok = f"{r['slides_followed']}/{r['slide_runs']}" if r["slide_runs"] else "-"
        status = ", ".join(f"{k} {v}" for k, v in r["statuses"].items())
        t = (">" if r["time_is_lower_bound"] else "") + fmt(r["time_per_run"])
        print(f"{r['workload']:<10} {r['method']:<15} {r['runs']:>4} {t:>12} "
              f"{fmt(r['ratio_to_fastflow'], '.3g'):>10} {fmt(r['theta_error_median']):>13} "
              f"{fmt(r['theta_error_max']):>13} {fmt(r['event_dt_max']):>12} {matched:>9} {slides_ok:>9}  {status}")


def per_run_ratios(workloads, slow, fast):
    """{workload: [time of `slow` / time of `fast` on the same problem]} over the problems both finished."""
    out = {}
    for w in workloads:
        fast_t = {r["seed"]: r["time"] for r in w.runs if r["method"] == fast and r["status"] != "interrupted"}
        out[w.name] = [r["time"] / fast_t[r["seed"]] for r in w.runs
                       if r["method"] == slow and r["seed"] in fast_t and r["time"] == r["time"]]
    return out


def targets(rows, paper, rhs, scaling, memory, workloads=()):
    out = {}
    if paper:
        ff_errs = [e for e in paper["gd_vs_fastflow_error"] if e["gd"] is not None and e["fastflow"] is not None]
        ratio = paper["ratio_gd_total_to_fastflow_1_thread"]
        out["rank288_vs_gd"] = dict(
            figure=ratio, target=">= 1e4 x, and at least as accurate",
            accurate=all(e["fastflow"] <= e["gd"] for e in ff_errs) if ff_errs else None,
            met=bool(ratio >= 1e4 and ff_errs and all(e["fastflow"] <= e["gd"] for e in ff_errs)))
    same = {}
    for r in rows:
        if r["method"] == "scipy@1e-10" and r["ratio_to_fastflow"] is not None:
            same[r["workload"]] = r["ratio_to_fastflow"]
    if same:
        out["vs_scipy_same_rtol"] = dict(figure=same, min=min(same.values()), target=">= 100 x for n <= 100",
                                         per_run_where_fastflow_finished=per_run_ratios(workloads, "scipy@1e-10", FF),
                                         met=min(same.values()) >= 100)
    if rhs:
        out["rhs_vs_two_matmuls"] = dict(figure=rhs["ratio_rhs_to_matmuls"], target="<= 3 x",
                                         met=rhs["ratio_rhs_to_matmuls"] <= 3)
    if scaling and "rank2x2" in scaling:
        s = {k: v["speedup_2_threads"] for k, v in scaling.items()}
        est = {k: v.get("speedup_2_threads_on_free_cores_estimate") for k, v in scaling.items()}
        cores = {k: v[2]["cores_obtained"] for k, v in scaling.items()}
        out["flow_many_2_threads"] = dict(figure=s, estimate_on_free_cores=est, cores_obtained_2_threads=cores,
                                          target=">= 1.8 x on 1000 trajectories",
                                          met=all(v >= 1.8 for v in s.values()))
    if memory and memory.get("linear_fit_n10"):
        rows_ok = [r for r in memory["rows"] if "error" not in r]
        per_param = {f"n={r['n']} width={r['width']} p={r['n_params']}": r["peak_bytes_per_trajectory"] / r["n_params"]
                     for r in rows_ok}
        out["memory_per_trajectory"] = dict(figure=memory["linear_fit_n10"], peak_bytes_per_parameter=per_param,
                                            target="O(parameters)")
    return out


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    markers = {"gd-numpy": "s", "gd-torch": "P", REF: "*", "scipy@1e-10": "^", FF: "o", "fastflow@1e-12": "D"}
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    colors = dict(zip(workloads, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    floor = 1e-16
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for r in rows:
        t, med, top = r["time_per_run"], r["theta_error_median"], r["theta_error_max"]
        if t is None or t != t:
            continue
        if r["method"] == REF:
            med = top = floor
        if med is None:
            continue
        c = colors[r["workload"]]
        ax.plot([t, t], [max(med, floor), max(top, floor)], color=c, lw=1, alpha=0.6)
        ax.scatter(t, max(med, floor), marker=markers[r["method"]], s=60, color=c,
                   facecolors="none" if r["time_is_lower_bound"] else c,
                   edgecolors="k" if r["method"] == REF else c)
    for m, mk in markers.items():
        if any(r["method"] == m for r in rows):
            ax.scatter([], [], marker=mk, color="gray", label=m + (" (reference, drawn at 1e-16)" if m == REF else ""))
    for wl, c in colors.items():
        ax.scatter([], [], marker="o", color=c, label=wl)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wall time per run [s] (hollow: some runs stopped at the time limit, a lower bound)")
    ax.set_ylabel("relative error of the final theta vs scipy@1e-12\n(marker: median over runs, line: up to max)")
    ax.set_title("fastflow vs GD vs SciPy yardstick (same machine, same run)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=48,
                    help="rank2x2 seeds 0..runs-1 for fastflow and the yardstick (default 48)")
    ap.add_argument("--gd-runs", type=int, default=2, help="rank2x2 GD runs (3e6 steps, ~40 s each; default 2)")
    ap.add_argument("--problems", type=int, default=2, help="random problems (seeds) per (n, loss) (default 2)")
    ap.add_argument("--gd-random-runs", type=int, default=1,
                    help="GD runs per random (n, loss) (5e5 steps, ~5-10 s each; default 1)")
    ap.add_argument("--ref-timeout", type=float, default=120.0,
                    help="time limit per yardstick run [s]; such a run has no time and no reference")
    ap.add_argument("--ff-timeout", type=float, default=10.0,
                    help="time limit per fastflow run [s]; a run stopped there counts with that time (a lower bound)")
    ap.add_argument("--trajectories", type=int, default=1000, help="flow_many thread scaling (default 1000)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test (~1 min): 8 rank runs, 1 random problem, GD for 10%% of its steps (time "
                         "extrapolated, no accuracy), 200 trajectories")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "compare.json")
    ap.add_argument("--memory-child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    args.gd_fraction = 1.0
    if args.quick:
        args.runs, args.problems, args.trajectories = min(args.runs, 8), 1, 200
        args.gd_runs, args.gd_random_runs, args.gd_fraction = min(args.gd_runs, 1), min(args.gd_random_runs, 1), 0.1
        args.ref_timeout = min(args.ref_timeout, 30.0)

    started = time.perf_counter()
    machine = machine_info()
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['platform']}; "
          f"load average {', '.join(f'{x:.2f}' for x in machine.get('load_average', []))}")
    print(f"numpy {machine['numpy']} ({machine.get('blas', '?')}, BLAS threads {machine['blas_threads_env']}), "
          f"scipy {machine['scipy']}, python {machine['python']}")
    reference_flow, ref_error = load_reference()
    if ref_error:
        print(f"SciPy yardstick skipped ({ref_error}); accuracy columns stay empty")
    torch, torch_error = load_torch()
    if torch_error:
        print(f"gd-torch skipped ({torch_error})")

    def progress(what):
        print(f"[{time.perf_counter() - started:5.0f} s] {what}", flush=True)

    progress("rank2x2 ...")
    rank, paper = rank_workload(args, reference_flow, torch)
    progress("random problems ...")
    randoms = random_workloads(args, reference_flow, torch)
    progress("rhs ...")
    rhs = rhs_section()
    progress("flow_many thread scaling ...")
    scaling = scaling_section(args.trajectories)
    progress("memory ...")
    memory = memory_section(500 if args.quick else 2000)
    progress("done")
    rows = rank.summary() + [r for w in randoms for r in w.summary()]

    print()
    print_table(rows)
    print(f"(time/run > x: some runs were stopped at the {args.ff_timeout:g} s limit, status interrupted; "
          f"x fastflow = time / fastflow@1e-10's time; errors against {REF})")
    many = paper["fastflow_flow_many"]
    print(f"\nrank paper, {RANK_RUNS} runs: fastflow flow_many "
          + ", ".join(f"{k} thread{'s' if k > 1 else ''} {v['seconds']:.3f} s" for k, v in many.items())
          + f"; GD {fmt(paper['gd_per_run'], '.1f')} s/run -> {fmt(paper['gd_total_extrapolated'], '.0f')} s "
          f"extrapolated = {fmt(paper['ratio_gd_total_to_fastflow_1_thread'], '.3g')} x fastflow (1 thread)")
    print(f"rhs at n=1000, d=50, width=128: {rhs['seconds_per_rhs'] * 1e3:.2f} ms per rhs (one-step flow / "
          f"{rhs['n_rhs']} rhs) vs NumPy two matmuls {rhs['numpy_two_matmuls'] * 1e3:.2f} ms "
          f"-> {rhs['ratio_rhs_to_matmuls']:.1f} x; C++ forward pass {rhs['cpp_forward_pass'] * 1e3:.2f} ms")
    for name, s in scaling.items():
        if isinstance(s, dict) and 1 in s:
            est = s.get("speedup_2_threads_on_free_cores_estimate")
            print(f"flow_many {name}, {s['trajectories']} trajectories: 1 thread {s[1]['seconds']:.2f} s "
                  f"(cpu {s[1]['cpu_seconds']:.2f}), 2 threads {s[2]['seconds']:.2f} s (cpu {s[2]['cpu_seconds']:.2f},"
                  f" {s[2]['cores_obtained']:.2f} cores obtained, main thread {fmt(s[2]['main_thread_cpu'], '.2f')} s, "
                  f"workers {', '.join(f'{c:.2f}' for c in s[2]['worker_cpu'])} s) -> {s['speedup_2_threads']:.2f} x "
                  f"measured, {fmt(est, '.2f')} x estimated on two free cores")
    for r in memory["rows"]:
        if "error" in r:
            print(f"memory n={r['n']} width={r['width']}: child failed")
        else:
            print(f"memory n={r['n']} width={r['width']} (p={r['n_params']}): per trajectory "
                  f"{r['peak_bytes_per_trajectory']:.0f} B at the peak, {r['kept_bytes_per_trajectory']:.0f} B kept "
                  f"({r['array_bytes_per_trajectory']:.0f} B of it in arrays), {r['events_per_trajectory']:.1f} events")
    goals = targets(rows, paper, rhs, scaling, memory, [rank] + randoms)
    print("\ntargets:")
    for k, v in goals.items():
        print(f"  {k}: {v}")

    machine_end = machine_info().get("load_average")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = []
    for w in [rank] + randoms:
        for r in w.runs:
            # the event lists stay out (n_ref / n_method / n_matched / event_dt summarise them)
            r = {k: v for k, v in r.items() if k not in ("first_switch", "events")}
            runs.append(r)
    result = dict(
        command=" ".join(sys.argv), machine=machine, load_average_end=machine_end,
        wall_seconds=time.perf_counter() - started,
        setup=dict(gd_lr=GD_LR, agree=AGREE, tolerances=TOLS, square_gtol=SQUARE_GTOL, rank_t_max=RANK_T_MAX,
                   random_t_max=RANDOM_T_MAX, ff_timeout=args.ff_timeout, ref_timeout=args.ref_timeout,
                   random_shape=RANDOM_SHAPE, runs=args.runs, gd_runs=args.gd_runs, problems=args.problems,
                   gd_random_runs=args.gd_random_runs, quick=args.quick, reference_error=ref_error,
                   torch_error=torch_error),
        summary=rows, rank_paper_288=paper, rhs=rhs, flow_many_scaling=scaling, memory=memory, targets=goals,
        runs=runs)
    args.out.write_text(json.dumps(jsonable(result), indent=1))
    png = args.out.with_suffix(".png")
    plot(rows, png)
    print(f"\nwrote {args.out} and {png} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
