"""One workload: every method on a list of problems of one loss and horizon, scored against the reference."""
import traceback

import numpy as np

import fastflow as ff

from . import config
from .accuracy import match_events, match_first_switches, slides, theta_error
from .config import AGREE, FF, GD_LR, METHODS, REF, TOLS
from .methods import TimeLimit, ff_events, gd_numpy, gd_torch, timed, with_time_limit


class Workload:
    """Runs every method on a list of problems (net, X, y, theta0, seed) of one loss and horizon."""

    def __init__(self, name, kind, loss, t_max, problems, args, reference_flow, torch):
        self.name, self.kind, self.loss, self.t_max = name, kind, loss, t_max
        self.problems, self.args = problems, args
        self.reference_flow, self.torch = reference_flow, torch
        self.gtol = config.SQUARE_GTOL if loss == "square" else None
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
        ff_time = finite_mean([r["time"] for r in self.runs if r["method"] == FF])
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
            t = finite_mean(times)
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


def finite_mean(xs):
    xs = [x for x in xs if x == x]
    return float(np.mean(xs)) if xs else float("nan")


def count_values(items):
    out = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out
