"""fastflow against small-step gradient descent and the SciPy yardstick: time and accuracy on the same workloads.

    python benchmarks/compare.py [--runs N] [--gd-runs K] [--quick] [--scale-full] [--scale-timeout S]
                                 [--stiff-seeds N] [--stiff-timeout S]

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

Scale (issue #24): on benchmarks/bench_large.py's problems (two-layer ReLU, teacher labels, Xavier init; logistic to
log t = 10 and square loss to t = 100), per grid point the accepted steps, events, fields (n_rhs), fields per step
against the bound 7, and the time per step and per field in NumPy GD epochs of the same net on the same data, timed
in this run. Default grid: the n = 100 corner (d 10 and 50 at width 16, width 64 at d 10; a few minutes);
--scale-full: n 100-1000, d 10/50, width 16-128. Targets, each met or not with its figure: time per step <= 10 GD
epochs and fields per step <= 8 at every point; n = 200, d = 20, width 64, logistic to t = 100 at least 20x faster
than NumPy GD at step 1e-4 (GD's 1e6 epochs extrapolated from 2000 timed ones); the exponent of time per step
against n * width * d <= 1.1 (log-log least squares, per loss); with --scale-full, n = 1000, d = 50, width 128,
logistic to t = 300 (the papers' 3e6 epochs) at least 6x faster, and t = 100 printed (the errors of flow and GD
against a flow at rtol 1e-12 are not measured: GD's own run would take hours).

Stiff (flows that converge to a finite point): bench_converging.py's square, exponential and logistic batches (seeds
1000.. --stiff-seeds) against the SciPy yardstick with Radau and BDF instead of DOP853, at rtol 1e-10. Targets: theta
within 1e-7 relative, fastflow at least 10x faster.

Each section is a module of benchmarks/comparison/ (rank, randoms, rhs, scaling, memory, scale, stiff); this script
parses the arguments, runs them in turn and writes the report.

Writes results/compare.json and results/compare.png next to this script. Times are wall-clock on this machine in
this run; the JSON records the machine and its load average (other processes share the cores).
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fastflow._json import jsonable  # noqa: E402
from benchmarks.common import RANK_T_MAX, machine_info  # noqa: E402
from comparison import config, memory, methods, randoms, rank, report, rhs, scale, scaling, stiff  # noqa: E402
from comparison.config import AGREE, GD_LR, RANDOM_SHAPE, RANDOM_T_MAX, REF, TOLS  # noqa: E402


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
    ap.add_argument("--scale-full", action="store_true",
                    help="scale section on the issue's whole grid (n 100-1000, d 10/50, width 16-128; hours today) "
                         "and the speed check's flow up to --scale-timeout instead of GD's time / 20")
    ap.add_argument("--scale-timeout", type=float, default=60.0,
                    help="time limit per flow of the scale section [s] (default 60); a stopped flow counts so far")
    ap.add_argument("--stiff-seeds", type=int, default=3,
                    help="seeds (from 1000) per batch of the stiff section (default 3; 1 with --quick)")
    ap.add_argument("--stiff-timeout", type=float, default=300.0,
                    help="time limit per SciPy Radau/BDF run of the stiff section [s] (default 300)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "compare.json")
    ap.add_argument("--memory-child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory.memory_child(*args.memory_child)
        return
    args.gd_fraction = 1.0
    if args.quick:
        args.runs, args.problems, args.trajectories = min(args.runs, 8), 1, 200
        args.gd_runs, args.gd_random_runs, args.gd_fraction = min(args.gd_runs, 1), min(args.gd_random_runs, 1), 0.1
        args.ref_timeout = min(args.ref_timeout, 30.0)
        args.stiff_seeds = min(args.stiff_seeds, 1)
    grid = scale.FULL_GRID if args.scale_full else scale.QUICK_GRID if args.quick else scale.DEFAULT_GRID

    started = time.perf_counter()
    machine = machine_info()
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['platform']}; "
          f"load average {', '.join(f'{x:.2f}' for x in machine.get('load_average', []))}")
    print(f"numpy {machine['numpy']} ({machine.get('blas', '?')}, BLAS threads {machine['blas_threads_env']}), "
          f"scipy {machine['scipy']}, python {machine['python']}")
    reference_flow, ref_error = methods.load_reference()
    if ref_error:
        print(f"SciPy yardstick skipped ({ref_error}); accuracy columns stay empty")
    torch, torch_error = methods.load_torch()
    if torch_error:
        print(f"gd-torch skipped ({torch_error})")

    def progress(what):
        print(f"[{time.perf_counter() - started:5.0f} s] {what}", flush=True)

    progress("rank2x2 ...")
    rank_w, paper = rank.rank_workload(args, reference_flow, torch)
    progress("random problems ...")
    randoms_w = randoms.random_workloads(args, reference_flow, torch)
    progress("rhs ...")
    rhs_r = rhs.rhs_section()
    progress("flow_many thread scaling ...")
    scaling_r = scaling.scaling_section(args.trajectories)
    progress("memory ...")
    memory_r = memory.memory_section(500 if args.quick else 2000)
    progress("scale ...")
    scale_r = scale.scale_section(grid, args.scale_timeout, args.scale_timeout if args.scale_full else None,
                                  large=args.scale_full)
    progress("stiff ...")
    stiff_r = stiff.stiff_section(reference_flow, range(1000, 1000 + args.stiff_seeds), args.stiff_timeout)
    progress("done")
    rows = rank_w.summary() + [r for w in randoms_w for r in w.summary()]

    print()
    report.print_table(rows)
    print(f"(time/run > x: some runs were stopped at the {args.ff_timeout:g} s limit, status interrupted; "
          f"x fastflow = time / fastflow@1e-10's time; errors against {REF})")
    for line in (rank.summary_lines(paper) + rhs.summary_lines(rhs_r) + scaling.summary_lines(scaling_r)
                 + memory.summary_lines(memory_r)):
        print(line)
    goals = report.targets(rows, paper, rhs_r, scaling_r, memory_r, [rank_w] + randoms_w)
    scale_goals = scale.targets(scale_r)
    for line in scale.summary_lines(scale_r, scale_goals):
        print(line)
    goals.update(scale_goals)
    for line in stiff.summary_lines(stiff_r):
        print(line)
    goals.update(stiff.targets(stiff_r))
    print("\ntargets:")
    for k, v in goals.items():
        print(f"  {k}: {v}")

    machine_end = machine_info().get("load_average")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = []
    for w in [rank_w] + randoms_w:
        for r in w.runs:
            # the event lists stay out (n_ref / n_method / n_matched / event_dt summarise them)
            r = {k: v for k, v in r.items() if k not in ("first_switch", "events")}
            runs.append(r)
    result = dict(
        command=" ".join(sys.argv), machine=machine, load_average_end=machine_end,
        wall_seconds=time.perf_counter() - started,
        setup=dict(gd_lr=GD_LR, agree=AGREE, tolerances=TOLS, square_gtol=config.SQUARE_GTOL, rank_t_max=RANK_T_MAX,
                   random_t_max=RANDOM_T_MAX, ff_timeout=args.ff_timeout, ref_timeout=args.ref_timeout,
                   random_shape=RANDOM_SHAPE, runs=args.runs, gd_runs=args.gd_runs, problems=args.problems,
                   gd_random_runs=args.gd_random_runs, quick=args.quick, reference_error=ref_error,
                   torch_error=torch_error, scale_grid=grid),
        summary=rows, rank_paper_288=paper, rhs=rhs_r, flow_many_scaling=scaling_r, memory=memory_r, scale=scale_r,
        stiff=stiff_r, targets=goals, runs=runs)
    args.out.write_text(json.dumps(jsonable(result), indent=1))
    png = args.out.with_suffix(".png")
    report.plot(rows, png)
    print(f"\nwrote {args.out} and {png} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
