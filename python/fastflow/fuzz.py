"""Randomised end-to-end checks of the event-driven flow: `python -m fastflow.fuzz --n 100000 --seed 0`.

Draws random two-layer problems (`--nets deep`: deep nets of 2-3 hidden layers of width 2-8) and applies every check
of fastflow.fuzz_checks to each trajectory. A run past its
budget of CPU seconds is stopped through the Ctrl-C path and counted as a "timeout" (CPU time: a loaded machine
must not turn a slow run into a finding). Exit status 1 if any violation is found; `--replay SEED:INDEX` prints one
trajectory in detail. `--branch leave` fuzzes the flows' branch="leave" option. `--log FILE.jsonl` records every
finished chunk (one JSON line each) and `--resume` continues from it: sample k depends only on (seed, k), so a run
resumed any number of times reports the same totals as one uninterrupted run.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections import Counter

import numpy as np

from .flow import BRANCHES
from .fuzz_checks import (CONSERVATION_TOL, SENSIBLE_STATUSES, VIOLATION_KINDS, Problem, Violation, check_conservation,
                          check_crossings, check_event_sequence, check_events_on_surface, check_loss_monotone,
                          check_problem, check_status, ell0, event_sample_times, random_deep_problem, random_problem,
                          time_grid)

__all__ = ["CONSERVATION_TOL", "SENSIBLE_STATUSES", "VIOLATION_KINDS", "Problem", "Violation", "check_conservation",
           "check_crossings", "check_event_sequence", "check_events_on_surface", "check_loss_monotone",
           "check_problem", "check_status", "check_with_budget", "ell0", "event_sample_times", "main",
           "random_deep_problem", "random_problem", "read_log", "replay", "run", "time_grid"]

NETS = {"two-layer": random_problem, "deep": random_deep_problem}

def _rng_for(seed, index):
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


class _Budget(Exception):
    """Raised by SIGPROF: inside the C++ loop it stops the run (status "interrupted"), elsewhere it aborts."""


def _alarm(signum, frame):
    raise _Budget


def check_with_budget(problem, budget, **kwargs):
    """check_problem (same keyword arguments) with a budget of CPU seconds (0: none): a run still going after
    `budget` seconds of this process's CPU time is stopped through the same path as Ctrl-C and reported as a
    "timeout" violation (a hang or a crawl). CPU time, not wall time: the verdict must not depend on what else the
    machine runs. Uses SIGPROF: call it from the main thread."""
    if budget <= 0 or not hasattr(signal, "setitimer"):
        return check_problem(problem, **kwargs)
    previous = signal.signal(signal.SIGPROF, _alarm)
    signal.setitimer(signal.ITIMER_PROF, budget)
    try:
        traj, violations = check_problem(problem, **kwargs)
    except _Budget:
        return None, [Violation("timeout", f"still running after {budget} CPU s (outside the integrator)")]
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
    if traj.status == "interrupted":
        violations = [Violation("timeout", f"still running after {budget} CPU s: stopped at t = {traj.t:.6g} after "
                                           f"{traj.n_steps} steps and {traj.n_events} events")]
    return traj, violations


def _problem(seed, index, branch, nets="two-layer"):
    problem = NETS[nets](_rng_for(seed, index))
    problem.options["branch"] = branch
    return problem


def _work(args):
    seed, start, stop, budget, branch, nets = args
    statuses, kinds, examples, slowest = Counter(), Counter(), {}, (0.0, -1)
    for index in range(start, stop):
        problem = _problem(seed, index, branch, nets)
        started = time.perf_counter()
        try:
            traj, violations = check_with_budget(problem, budget)
            statuses[traj.status if traj is not None else "timeout"] += 1
        except Exception as exc:  # noqa: BLE001 - an exception is a finding, not a crash of the fuzzer
            statuses["exception"] += 1
            violations = [Violation("exception", f"{type(exc).__name__}: {exc}")]
        slowest = max(slowest, (time.perf_counter() - started, index))
        for kind in {v.kind for v in violations}:  # trajectories with at least one violation of the kind
            kinds[kind] += 1
            first = next(v for v in violations if v.kind == kind)
            examples.setdefault(kind, [])
            if len(examples[kind]) < 3:
                examples[kind].append((index, problem.loss, str(first)))
        kinds["any"] += bool(violations)
    return statuses, kinds, examples, slowest


def _work_job(job):
    return job, _work(job)


def _chunk_record(seed, start, stop, result, branch, nets):
    statuses, kinds, examples, slowest = result
    return {"seed": seed, "start": start, "stop": stop, "statuses": dict(statuses), "kinds": dict(kinds),
            "examples": examples, "slowest": list(slowest), "branch": branch, "nets": nets}


def read_log(path, seed, branch="stay", nets="two-layer"):
    """The chunk records of a --log file (a last line cut short by a kill is skipped); ValueError if a record is
    of another seed, branch option or family of nets."""
    records = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record["seed"] != seed:
                raise ValueError(f"{path} holds seed {record['seed']}, not {seed}")
            if record.get("branch", "stay") != branch:
                raise ValueError(f"{path} holds branch={record['branch']!r} runs, not {branch!r}")
            if record.get("nets", "two-layer") != nets:
                raise ValueError(f"{path} holds {record['nets']} nets, not {nets}")
            records.append(record)
    return records


def _uncovered(n, records, chunk):
    """Index ranges of [0, n) that no record covers, cut into chunks."""
    out, at = [], 0
    for start, stop in sorted((r["start"], r["stop"]) for r in records) + [(n, n)]:
        for a in range(at, min(start, n), chunk):
            out.append((a, min(a + chunk, start, n)))
        at = max(at, stop)
    return out


def _totals(results):
    statuses, kinds, examples, slowest = Counter(), Counter(), {}, (0.0, -1)
    for s, k, e, slow in results:
        statuses.update(s), kinds.update(k)
        for kind, found in e.items():
            examples[kind] = sorted(examples.get(kind, []) + [tuple(x) for x in found])[:3]
        slowest = max(slowest, tuple(slow))
    return statuses, kinds, examples, slowest


def run(n, seed=0, workers=1, budget=60.0, chunk=None, log=None, resume=False, branch="stay", nets="two-layer"):
    """Fuzz n random trajectories. Returns (status counts, counts of trajectories with a violation of each kind
    (and "any"), {kind: the first few (index, loss, message)}, (seconds, index) of the slowest trajectory, wall
    seconds, trajectories run now).

    log: a JSON-lines file, one record per finished chunk (seed, index range, status counts, violation kinds with
    examples, slowest); the totals are then those of the whole log. resume: skip the indices the log already
    covers (without it, an existing non-empty log is an error). branch: the flows' branch option. nets: "two-layer"
    or "deep" (the problems drawn)."""
    chunk = chunk or max(1, min(250, n // (4 * max(workers, 1)) or 1))
    records = []
    if log is not None and os.path.exists(log) and os.path.getsize(log):
        if not resume:
            raise FileExistsError(f"{log} exists: resume from it (--resume) or choose another file")
        records = read_log(log, seed, branch, nets)
    jobs = [(seed, a, b, budget, branch, nets) for a, b in _uncovered(n, records, chunk)]
    start = time.perf_counter()
    results = [(r["statuses"], r["kinds"], r["examples"], r["slowest"]) for r in records]
    out = open(log, "a+") if log is not None else None
    pool = None
    try:
        if out is not None and out.tell():
            out.seek(out.tell() - 1)
            if out.read(1) != "\n":
                out.write("\n")  # a line cut short by a kill must not swallow the next record
        if workers > 1:
            import multiprocessing as mp

            pool = mp.get_context("fork").Pool(workers)
            done = pool.imap_unordered(_work_job, jobs)
        else:
            done = map(_work_job, jobs)
        for (_, a, b, *_), result in done:
            results.append(result)
            if out is not None:
                out.write(json.dumps(_chunk_record(seed, a, b, result, branch, nets)) + "\n")
                out.flush()
    finally:
        if out is not None:
            out.close()
        if pool is not None:
            pool.terminate()
    return (*_totals(results), time.perf_counter() - start, sum(b - a for _, a, b, *_ in jobs))


def replay(seed, index, budget=60.0, branch="stay", nets="two-layer"):
    """Print one fuzz trajectory in detail (the problem, the events and every violation)."""
    problem = _problem(seed, index, branch, nets)
    traj, violations = check_with_budget(problem, budget)
    if traj is None:
        print(*violations, sep="\n")
        return violations
    np.set_printoptions(precision=17, linewidth=160)
    print(f"net {problem.net}, loss {problem.loss}, t_max {problem.t_max!r}")
    print(f"X = np.{problem.X!r}\ny = np.{problem.y!r}\ntheta0 = np.{problem.theta0!r}")
    print(f"status {traj.status} ({traj.message}), {traj.n_steps} steps, {traj.n_events} events")
    for e in traj.events:
        print(f"  t = {e['t']:.17g} {e['kind']:<11} sample {e['sample']} layer {e['layer']} neuron {e['neuron']}")
    for v in violations:
        print(v)
    return violations


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastflow.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="number of random trajectories")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="CPU seconds one trajectory may take before it is stopped as a 'timeout' (0: no limit)")
    parser.add_argument("--replay", metavar="SEED:INDEX", help="print one trajectory and its violations")
    parser.add_argument("--log", metavar="FILE.jsonl",
                        help="append one JSON line per finished chunk; the totals are then the whole log's")
    parser.add_argument("--resume", action="store_true", help="skip the chunks already in --log")
    parser.add_argument("--branch", choices=BRANCHES, default="stay",
                        help="the flows' branch option: stay on unstable branches (default) or leave them")
    parser.add_argument("--nets", choices=tuple(NETS), default="two-layer",
                        help="the problems drawn: two-layer nets (default) or deep ones (2-3 hidden layers)")
    args = parser.parse_args(argv)
    if args.replay:
        seed, index = (int(v) for v in args.replay.split(":"))
        return 1 if replay(seed, index, args.budget, args.branch, args.nets) else 0
    if args.n < 0 or args.workers < 1:
        parser.error("--n must be >= 0 and --workers >= 1")
    if args.resume and not args.log:
        parser.error("--resume needs --log")
    try:
        statuses, kinds, examples, slowest, seconds, now = run(args.n, args.seed, args.workers, args.budget,
                                                               log=args.log, resume=args.resume, branch=args.branch,
                                                               nets=args.nets)
    except (FileExistsError, ValueError) as exc:
        parser.error(str(exc))
    total = sum(statuses.values())
    also = ("" if args.branch == "stay" else f" --branch {args.branch}") + (
        "" if args.nets == "two-layer" else f" --nets {args.nets}")
    where = f" in {args.log} ({now} run now)" if args.log else ""
    print(f"{total} trajectories{where} in {seconds:.1f} s ({now / max(seconds, 1e-9):.1f} trajectories/s, "
          f"{args.workers} worker{'s' if args.workers > 1 else ''}); slowest: {slowest[0]:.2f} s "
          f"(--replay {args.seed}:{slowest[1]}{also})")
    # (a run stopped by --budget counts as "interrupted" here and as a "timeout" violation below)
    print("status:", ", ".join(f"{s} {statuses[s]}" for s in sorted(statuses)) or "-")
    n_viol = kinds.pop("any", 0)
    print(f"violations: {n_viol}" + (" trajectories (by kind: " + ", ".join(f"{k} {kinds[k]}" for k in sorted(kinds))
                                     + ")" if n_viol else ""))
    for kind in sorted(examples):
        for index, loss, msg in examples[kind]:
            print(f"  --replay {args.seed}:{index}{also} ({loss}) {msg[:300]}")
    return 1 if n_viol else 0


if __name__ == "__main__":
    sys.exit(main())
