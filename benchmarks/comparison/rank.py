"""Section rank2x2: the rank paper's 2x2 experiment, every method on the same seeds, and the paper's 288 runs with
flow_many."""
import os

import fastflow as ff
from benchmarks.common import RANK_RUNS, RANK_T_MAX, best_of, rank2x2_inits, rank2x2_problem

from . import config
from .config import FF, TOLS
from .report import fmt
from .workload import Workload, count_values, finite_mean


def rank_workload(args, reference_flow, torch):
    net, X, Y = rank2x2_problem()
    thetas = rank2x2_inits(net, max(args.runs, RANK_RUNS))
    problems = [(net, X, Y, thetas[s], s) for s in range(args.runs)]
    w = Workload("rank2x2", "rank2x2", "square", RANK_T_MAX, problems, args, reference_flow, torch)
    w.run_all(args.gd_runs)

    # the paper's 288 runs with flow_many (identical to a loop of ff.flow), best of 3
    rtol, atol = TOLS["rank2x2"][FF]
    kwargs = dict(loss="square", t_max=RANK_T_MAX, rtol=rtol, atol=atol, gtol=config.SQUARE_GTOL)
    many = {}
    for threads in sorted({1, min(2, os.cpu_count() or 1)}):
        seconds, trs = best_of(lambda: ff.flow_many(net, (X, Y), thetas[:RANK_RUNS], threads=threads, **kwargs))
        many[threads] = dict(seconds=seconds, per_run=seconds / RANK_RUNS,
                             statuses=count_values(t.status for t in trs),
                             slide_runs=sum(any(t.events["kind"] == "slide_start") for t in trs))
    gd = [r for r in w.runs if r["method"] == "gd-numpy"]
    gd_per_run = finite_mean([r["time"] for r in gd])
    paper = dict(runs=RANK_RUNS, fastflow_flow_many=many, gd_per_run=gd_per_run,
                 gd_total_extrapolated=gd_per_run * RANK_RUNS,
                 ratio_gd_total_to_fastflow_1_thread=gd_per_run * RANK_RUNS / many[1]["seconds"])
    # accuracy on the same seeds: fastflow's error against GD's error
    ff_err = {r["seed"]: r.get("theta_error") for r in w.runs if r["method"] == FF}
    paper["gd_vs_fastflow_error"] = [dict(seed=r["seed"], gd=r.get("theta_error"), fastflow=ff_err.get(r["seed"]))
                                     for r in gd]
    return w, paper


def summary_lines(paper):
    many = paper["fastflow_flow_many"]
    return [f"\nrank paper, {RANK_RUNS} runs: fastflow flow_many "
            + ", ".join(f"{k} thread{'s' if k > 1 else ''} {v['seconds']:.3f} s" for k, v in many.items())
            + f"; GD {fmt(paper['gd_per_run'], '.1f')} s/run -> {fmt(paper['gd_total_extrapolated'], '.0f')} s "
            f"extrapolated = {fmt(paper['ratio_gd_total_to_fastflow_1_thread'], '.3g')} x fastflow (1 thread)"]
