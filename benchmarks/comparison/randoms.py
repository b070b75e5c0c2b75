"""Section random problems: every method on common.random_problem at n = 10 and 100, exponential and logistic."""
from benchmarks.common import random_problem

from .config import LOSS_ABBREV, RANDOM_CASES, RANDOM_SHAPE, RANDOM_T_MAX
from .workload import Workload


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
