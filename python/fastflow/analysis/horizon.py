"""Verdicts of the limit, not of the horizon: `analyze_limit` flows on, doubling log t, until two successive
horizons agree (same verdict and ||theta~||^2, a KKT residual that stopped changing), within a caller-set budget;
otherwise the verdict is "undecided", with the KKT residual at every horizon as evidence. A late point is KKT only
up to O(1/log t), and a dying neuron decays like a power of log t, so a "not_kkt" at one horizon says nothing about
the limit on its own."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validate import choice, positive_int, real_scalar
from ..flow import flow
from .verdict import analyze


@dataclass(frozen=True)
class LimitReport:
    """verdict: the verdict two successive horizons agreed on, or "undecided" (budget spent first). report: the
    analysis (Report) at the last horizon. horizons: (log_t, verdict, kkt_residual, raw_kkt_residual, ||theta~||^2)
    per horizon. theta: the trajectory's last point. evidence: the horizons and the rule's outcome."""

    verdict: str
    report: object
    horizons: tuple
    theta: np.ndarray = field(repr=False)
    evidence: str = field(repr=False)

    def __str__(self):
        return f"verdict of the limit: {self.verdict}\n{self.evidence}"


def _settled(a, b, xtol, kkt_tol):
    """Same verdict, same ||theta~||^2 (KKT points of a pattern can form a manifold, along which polishing follows
    theta_raw) and a KKT residual that stopped changing: KKT both times, or within 1%."""
    same_res = max(a.kkt_residual, b.kkt_residual) <= kkt_tol or abs(a.kkt_residual - b.kkt_residual) <= \
        0.01 * b.kkt_residual
    return a.verdict == b.verdict and abs(a.norm_sq - b.norm_sq) <= xtol * b.norm_sq and same_res


def analyze_limit(net, data, theta0, *, loss="exponential", log_t=8.0, log_t_budget=512.0, xtol=1e-8,
                  max_steps=1_000_000, log_t0=None, **analyze_kwargs):
    """Flow from theta0 to t = e^log_t, analyse, then double log t (continuing the same trajectory) until two
    successive horizons give the same verdict with the same ||theta~||^2 (within xtol relative) and a KKT residual
    that stopped changing, or log t would pass log_t_budget: then the verdict is "undecided".

    loss: "exponential" or "logistic". max_steps: per flow segment. log_t0: theta0 is already the flow's point at
    t = e^log_t0 (the end of a trajectory: traj.log_t, at most log_t), so the flow continues from there; with
    log_t = log_t0 the first horizon analyses theta0 itself. analyze_kwargs go to `analyze` (eps, polish, kkt_tol,
    ...). Returns a LimitReport; raises ValueError for bad arguments and what `analyze` rejects.
    """
    loss = choice("loss", loss, ("exponential", "logistic"))
    log_t = real_scalar("log_t", log_t, low=0.0, low_open=True)
    log_t_budget = real_scalar("log_t_budget", log_t_budget, low=log_t)
    xtol = real_scalar("xtol", xtol, low=0.0)
    max_steps = positive_int("max_steps", max_steps)
    done = None if log_t0 is None else real_scalar("log_t0", log_t0, low=0.0, high=log_t)
    theta, reports, rows, status = net.check_theta(theta0, "theta0"), [], [], "t_max"
    while True:
        if done is None or log_t > done:
            # the flow is autonomous: from theta(t_done) it reaches theta(t) after t - t_done
            span = log_t if done is None else log_t + np.log(-np.expm1(done - log_t))
            traj = flow(net, data, theta, loss=loss, log_t_max=float(span), max_steps=max_steps)
            theta, status = traj.theta, traj.status
        done = log_t
        rep = analyze(net, data, theta, **analyze_kwargs)
        reports.append(rep)
        rows.append((float(log_t), rep.verdict, rep.kkt_residual, rep.raw_kkt_residual, rep.norm_sq))
        if len(reports) > 1 and _settled(reports[-2], rep, xtol, analyze_kwargs.get("kkt_tol", 1e-8)):
            verdict = rep.verdict
            break
        if 2 * log_t > log_t_budget or status not in ("t_max", "converged"):
            verdict = "undecided"
            break
        log_t *= 2
    lines = [f"log t = {r[0]:.4g}: {r[1]} (KKT residual {r[2]:.3g}, raw {r[3]:.3g}, ||theta~||^2 = {r[4]:.12g})"
             for r in rows]
    if verdict == "undecided":
        trend = " -> ".join(f"{r[3]:.3g}" for r in rows)
        lines.append(f"undecided: no two successive horizons agreed within log t <= {log_t_budget:g} (last flow "
                     f"status {status!r}); raw KKT residual by horizon {trend}")
    else:
        lines.append(f"settled: log t = {rows[-2][0]:.4g} and {rows[-1][0]:.4g} agree on {verdict} with the same "
                     f"||theta~||^2 (within {xtol:g})")
    return LimitReport(verdict=verdict, report=reports[-1], horizons=tuple(rows), theta=theta,
                       evidence="\n".join(lines))
