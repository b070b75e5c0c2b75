"""The `fastflow` command: run the built-in Monte Carlo experiments.

    fastflow list
    fastflow run NAME [--n N] [--seed S] [--workers W] [--dask ADDRESS] [--out DIR] [--resume] [--branch B]
    fastflow show DIR

`run` writes DIR/checkpoint.jsonl as chunks finish, then DIR/results.json and the figures (PNG), and prints the
table. `--resume` continues an interrupted run from DIR's checkpoint. `show` prints the table and redraws the
figures of a finished run (or of the finished part of an interrupted one).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import experiments
from .flow import BRANCHES
from .montecarlo import estimate
from .plots import draw_all
from .results import Checkpoint, Estimate, load_checkpoint

CHECKPOINT = "checkpoint.jsonl"
RESULTS = "results.json"


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit code 2."""


def _parser():
    p = argparse.ArgumentParser(prog="fastflow", description="Monte Carlo experiments on the exact gradient flow "
                                "of small ReLU networks (the papers' experiments are built in).")
    sub = p.add_subparsers(dest="command", metavar="{list,run,show}")
    sub.required = True
    sub.add_parser("list", help="the built-in experiments, one per line")
    r = sub.add_parser("run", help="run an experiment", description="Estimate the outcome probabilities of a "
                       "built-in experiment; writes DIR/results.json, DIR/checkpoint.jsonl and PNG figures.")
    r.add_argument("name", help="a built-in experiment (see `fastflow list`)")
    r.add_argument("--n", type=int, default=None, help="samples (default: the experiment's default size)")
    r.add_argument("--seed", type=int, default=None, help="seed of the sample streams (default 0)")
    r.add_argument("--workers", type=int, default=None, help="worker processes (default: one per CPU)")
    r.add_argument("--dask", metavar="ADDRESS", default=None,
                   help="run on a Dask cluster: the scheduler's address, e.g. tcp://host:8786")
    r.add_argument("--out", metavar="DIR", default=None, help="output directory (default: fastflow-results/NAME)")
    r.add_argument("--resume", action="store_true", help="continue from DIR's checkpoint")
    r.add_argument("--target-halfwidth", type=float, default=None,
                   help="stop early once every interval's half-width is below this")
    r.add_argument("--confidence", type=float, default=0.95, help="interval level (default 0.95)")
    r.add_argument("--method", choices=("wilson", "clopper-pearson"), default="wilson")
    r.add_argument("--chunk-size", type=int, default=None,
                   help="samples per task (default: the experiment's, 64 for most)")
    r.add_argument("--no-plots", action="store_true", help="skip the figures")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--branch", choices=BRANCHES, default="stay",
                   help="the flows' branch option: at unstable branches stay on the minimal-norm solution (default) "
                        "or leave as gradient descent does (flows an outcome runs itself, e.g. the horizon rule's "
                        "continuations, keep the default)")
    s = sub.add_parser("show", help="print the table and redraw the figures of a run")
    s.add_argument("dir", metavar="DIR")
    s.add_argument("--no-plots", action="store_true", help="skip the figures")
    return p


def _list(args):
    width = max(map(len, experiments.names()))
    for name in experiments.names():
        exp = experiments.get(name)
        print(f"{name:<{width}} n={exp.default_n:<6} {exp.description}")
    return 0


def _experiment(name):
    if name not in experiments.names():
        raise CliError(f"unknown experiment {name!r}; built in: {', '.join(experiments.names())}")
    return experiments.get(name)


def _run(args):
    exp = _experiment(args.name)
    if args.branch != "stay":  # (a default run keeps the experiment's fingerprint, so its checkpoints resume)
        exp.flow = {**exp.flow, "branch": args.branch}
    out = Path(args.out) if args.out else Path("fastflow-results") / exp.name
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / CHECKPOINT
    seed, n = args.seed, args.n
    if args.resume:
        if ckpt.exists() and ckpt.stat().st_size > 0:
            header, chunks, _ = Checkpoint.read(ckpt)
            if header is not None:
                if header.get("experiment") != exp.name:
                    raise CliError(f"{ckpt} belongs to experiment {header.get('experiment')!r}, not {exp.name!r}")
                if seed is not None and seed != header["seed"]:
                    raise CliError(f"{ckpt} was written with --seed {header['seed']}, not {seed}")
                seed = header["seed"]
                n = header["n"] if n is None else n
                args.chunk_size = header["chunk_size"]
                print(f"resuming from {ckpt}: {len(chunks)} finished chunks", file=sys.stderr)
        else:
            print(f"no checkpoint in {out}; starting afresh", file=sys.stderr)
    else:
        for stale in (ckpt, out / RESULTS):
            if stale.exists():
                stale.unlink()
    seed = 0 if seed is None else seed
    n = exp.default_n if n is None else n
    executor, client = None, None
    if args.dask:
        try:
            from dask.distributed import Client
        except ImportError:
            raise CliError("--dask needs dask.distributed (pip install 'dask[distributed]')") from None
        try:
            client = Client(args.dask, timeout=30)
        except Exception as exc:
            raise CliError(f"cannot connect to the Dask scheduler at {args.dask}: {exc}") from None
        executor = client.get_executor()
    started = time.perf_counter()
    try:
        est = estimate(exp, n=n, seed=seed, workers=args.workers, executor=executor, checkpoint=ckpt,
                       progress=not args.quiet, confidence=args.confidence, target_halfwidth=args.target_halfwidth,
                       method=args.method, chunk_size=args.chunk_size)
    except KeyboardInterrupt:
        print(f"\ninterrupted; finished chunks are in {ckpt}: continue with\n"
              f"  fastflow run {exp.name} --out {out} --resume", file=sys.stderr)
        return 130
    finally:
        if client is not None:
            client.close()
    est.settings["cli_wall_time"] = time.perf_counter() - started
    if args.dask:
        est.settings["dask"] = args.dask
    est.to_json(out / RESULTS)
    print(est.table())
    print(f"wrote {out / RESULTS}")
    if not args.no_plots:
        for path in draw_all(est, out, exp):
            print(f"wrote {path}")
    return 0


def _show(args):
    out = Path(args.dir)
    if (out / RESULTS).exists():
        est = Estimate.from_json(out / RESULTS)
        exp = experiments.get(est.experiment) if est.experiment in experiments.names() else None
    elif (out / CHECKPOINT).exists():
        header, _, _ = Checkpoint.read(out / CHECKPOINT)
        if header is None:
            raise CliError(f"{out / CHECKPOINT} is empty")
        name = header.get("experiment")
        exp = experiments.get(name) if name in experiments.names() else None
        est = load_checkpoint(out / CHECKPOINT, exp)
    else:
        raise CliError(f"{out} holds neither {RESULTS} nor {CHECKPOINT}")
    print(est.table())
    if not args.no_plots:
        for path in draw_all(est, out, exp):
            print(f"wrote {path}")
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        return {"list": _list, "run": _run, "show": _show}[args.command](args)
    except CliError as exc:
        print(f"fastflow: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError) as exc:
        print(f"fastflow: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
