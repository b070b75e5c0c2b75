"""Monte Carlo estimates of how often the flow ends one way or another, over random datasets and initialisations.

`estimate` runs the samples of an `Experiment` in chunks, on worker processes or any `concurrent.futures.Executor`
(a Dask cluster: `Client(address).get_executor()`), with an append-only checkpoint, and returns an `Estimate`:
the counts with confidence intervals per label. Sample k depends only on (seed, k) (see `fastflow.experiment`),
and chunks are counted in index order, so the result does not depend on the chunking or the executor.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import math
import os
import pickle
import signal
import sys
import time

import numpy as np

from . import experiments
from ._json import jsonable
from ._validate import boolean, choice, positive_int, real_scalar
from .experiment import Experiment, draw
from .flow import flow_many
from .results import CHECKPOINT_FORMAT, RESERVED_RECORDS, Checkpoint, make_estimate, versions
from .stats import METHODS, interval


def run_samples(exp, seed, indices, threads=1):
    """Labels (list of str) and records ({name: list of float or None}) of the samples `indices`, in that order.
    Every sample also records "flow_seconds": the wall time of its flow (samples on one network and dataset run in
    one flow_many call and share its time equally), and "branched": 1 if its flow logged a `branch` event, else 0
    (None on networks whose flows are not watched for branches, see Network.watched_for_branches)."""
    drawn = [draw(exp, seed, k) for k in indices]
    groups = {}   # samples on the same network and dataset run in one flow_many call
    for pos, (net, (X, y), _) in enumerate(drawn):
        key = (net.structure, X.shape, X.tobytes(), y.shape, y.tobytes())
        groups.setdefault(key, []).append(pos)
    trajs, seconds = [None] * len(drawn), [None] * len(drawn)
    for positions in groups.values():
        net, data, _ = drawn[positions[0]]
        thetas = np.array([drawn[p][2] for p in positions])
        start = time.perf_counter()
        out = flow_many(net, data, thetas, threads=threads, loss=exp.loss, **exp.flow)
        share = (time.perf_counter() - start) / len(positions)
        if any(tr.status == "interrupted" for tr in out):
            raise KeyboardInterrupt
        for p, tr in zip(positions, out):
            trajs[p], seconds[p] = tr, share
    labels, rows = [], []
    for (net, data, _), tr in zip(drawn, trajs):
        res = exp.outcome(tr, net, data)
        label, rec = (res if isinstance(res, tuple) else (res, {}))
        if label not in exp.labels:
            raise ValueError(f"experiment {exp.name!r}: outcome returned {label!r}, which is not one of its labels "
                             f"{exp.labels}")
        reserved = sorted(set(rec or {}) & set(RESERVED_RECORDS))
        if reserved:
            raise ValueError(f"experiment {exp.name!r}: outcome records {reserved}, names every sample records "
                             "itself")
        labels.append(label)
        rows.append(rec or {})
    names = sorted({name for rec in rows for name in rec})
    records = {name: [_float_or_none(rec.get(name)) for rec in rows] for name in names}
    records["flow_seconds"] = seconds
    records["branched"] = [float(np.any(tr.events["kind"] == "branch")) if net.watched_for_branches else None
                           for (net, _, _), tr in zip(drawn, trajs)]
    return labels, records


def _float_or_none(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _chunk_result(exp, seed, chunk, start, stop, threads):
    t0 = time.perf_counter()
    labels, records = run_samples(exp, seed, range(start, stop), threads)
    return {"chunk": chunk, "start": start, "stop": stop, "labels": labels, "records": records,
            "time": time.perf_counter() - t0}


# worker side: the experiment arrives pickled with every chunk; each process unpickles each distinct one once
_WORKER_CACHE: dict = {}


def _run_chunk(payload, seed, chunk, start, stop, threads):
    """Run samples [start, stop) in a worker (top-level so that every executor can pickle it)."""
    digest, blob = payload
    exp = _WORKER_CACHE.get(digest)
    if exp is None:
        exp = pickle.loads(blob)
        if len(_WORKER_CACHE) > 8:
            _WORKER_CACHE.clear()
        _WORKER_CACHE[digest] = exp
    return _chunk_result(exp, seed, chunk, start, stop, threads)


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and cancels the sweep


class _Tally:
    """The counts of the chunks finished so far, taken in index order (a chunk counts once all before it have),
    and the early stop: the first multiple of `check_every` chunks (or the last chunk) at which every label's
    interval half-width is below the target."""

    def __init__(self, labels, n_chunks, target_halfwidth, check_every, confidence, method):
        self.labels = list(labels)
        self.index = {s: i for i, s in enumerate(self.labels)}
        self.n_chunks, self.check_every = n_chunks, check_every
        self.target_halfwidth, self.confidence, self.method = target_halfwidth, confidence, method
        self.chunks = {}         # chunk -> result, finished (counted or not)
        self.counts = np.zeros(len(self.labels), dtype=np.int64)
        self.counted = 0         # samples counted
        self.frontier = 0        # chunks counted
        self.stop_at = None      # chunks counted when the target was met

    def add(self, rec):
        self.chunks[rec["chunk"]] = rec
        while self.stop_at is None and self.frontier < self.n_chunks and self.frontier in self.chunks:
            for s in self.chunks[self.frontier]["labels"]:
                self.counts[self.index[s]] += 1
            self.counted += len(self.chunks[self.frontier]["labels"])
            self.frontier += 1
            if self._check_due() and self._target_met():
                self.stop_at = self.frontier

    def _check_due(self):
        f = self.frontier
        return self.target_halfwidth is not None and (f % self.check_every == 0 or f == self.n_chunks)

    def _target_met(self):
        return all((hi - lo) / 2 < self.target_halfwidth
                   for lo, hi in (interval(int(c), self.counted, self.confidence, self.method) for c in self.counts))

    @property
    def stopped(self):
        return self.stop_at is not None

    def leaders(self, top=3):
        """The most frequent labels so far with their frequencies (for the progress bar)."""
        order = sorted(range(len(self.counts)), key=lambda i: -self.counts[i])[:top]
        return " ".join(f"{self.labels[i]}={self.counts[i] / self.counted:.3f}" for i in order)


class _Sweep:
    """One run of `estimate`: where finished chunks go (the tally, the checkpoint, the progress bar)."""

    def __init__(self, exp, seed, bounds, tally, checkpoint, pbar):
        self.exp, self.seed, self.bounds = exp, seed, bounds
        self.tally, self.checkpoint, self.pbar = tally, checkpoint, pbar

    def finished(self, rec):
        if self.checkpoint is not None:
            self.checkpoint.add(rec)
        self.tally.add(rec)
        self.pbar.update(len(rec["labels"]))
        if self.tally.counted and not self.pbar.disable:
            self.pbar.set_postfix_str(self.tally.leaders(), refresh=False)

    def run_here(self, todo, threads):
        for c in todo:
            if self.tally.stopped:
                break
            self.finished(_chunk_result(self.exp, self.seed, c, *self.bounds[c], threads))

    def run_on(self, pool, todo, parallel):
        """Submit the chunks in index order, keeping about two per worker in flight."""
        blob = pickle.dumps(self.exp)
        payload = (hashlib.sha256(blob).hexdigest(), blob)
        queue = list(reversed(todo))
        running = {}
        try:
            while (queue or running) and not self.tally.stopped:
                while queue and len(running) < 2 * parallel + 1:
                    c = queue.pop()
                    running[pool.submit(_run_chunk, payload, self.seed, c, *self.bounds[c], 1)] = c
                ready, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                for fut in sorted(ready, key=lambda f: running[f]):
                    running.pop(fut)
                    self.finished(fut.result())
        finally:
            for fut in running:
                fut.cancel()


def _parallelism(executor, workers):
    client = getattr(executor, "_client", None)
    if client is not None:  # a dask ClientExecutor
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:
            pass
    return getattr(executor, "_max_workers", None) or workers or os.cpu_count() or 1


def _progress_bar(total, initial, enabled):
    from tqdm.auto import tqdm  # imported when a sweep starts: tqdm.auto probes for notebooks
    disable = not (enabled and sys.stderr.isatty())
    return tqdm(total=total, initial=initial, unit="sample", disable=disable, dynamic_ncols=True, smoothing=0.1,
                file=sys.stderr)


def _resumed_chunks(ckpt, bounds, exp):
    """The chunks of the checkpoint that this run would compute identically."""
    done = {}
    for c, rec in ckpt.open(resume=True).items():
        # a chunk of an earlier run with another n may cover other samples: keep only exact matches
        whole = len(rec["labels"]) == rec["stop"] - rec["start"]
        if c < len(bounds) and (rec["start"], rec["stop"]) == bounds[c] and whole:
            if any(s not in exp.labels for s in rec["labels"]):
                raise ValueError(f"checkpoint {ckpt.path}: chunk {c} has labels outside {exp.labels}")
            done[c] = rec
    return done


def _kill_pool(pool):
    """Stop a ProcessPoolExecutor now: cancel what is queued and terminate the workers."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        try:
            p.terminate()
        except Exception:
            pass
    for p in procs:
        try:
            p.join(timeout=5)
        except Exception:
            pass


def estimate(exp, n=10_000, seed=0, workers=None, executor=None, checkpoint=None, progress=True, confidence=0.95,
             target_halfwidth=None, method="wilson", *, chunk_size=None, check_every=4, threads=None):
    """Estimate the probability of each outcome label of `exp` (an Experiment or a built-in name) from n samples.

    workers: processes (None: one per CPU; 1: in this process, `threads` C++ threads per chunk).
    executor: any concurrent.futures.Executor instead, e.g. dask.distributed.Client(address).get_executor().
    checkpoint: a file; finished chunks are appended as they finish, and chunks already there are not rerun.
    target_halfwidth: stop early once every label's interval half-width is below it (checked after every
    `check_every` chunks, counting chunks in index order, so the stopping point does not depend on the executor).
    method: "wilson" or "clopper-pearson". chunk_size: samples per task (None: the experiment's). Ctrl-C: finished
    chunks stay in the checkpoint; KeyboardInterrupt is re-raised.
    """
    if isinstance(exp, str):
        exp = experiments.get(exp)
    if not isinstance(exp, Experiment):
        raise TypeError(f"exp must be an Experiment or a built-in experiment name, got {type(exp).__name__}")
    n = positive_int("n", n)
    progress = boolean("progress", progress)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    confidence = real_scalar("confidence", confidence, low=0.0, high=1.0, low_open=True)
    if confidence >= 1.0:
        raise ValueError("confidence must be < 1")
    choice("method", method, METHODS)
    if target_halfwidth is not None:
        target_halfwidth = real_scalar("target_halfwidth", target_halfwidth, low=0.0, high=0.5, low_open=True)
    chunk_size = exp.chunk_size if chunk_size is None else positive_int("chunk_size", chunk_size)
    check_every = positive_int("check_every", check_every)
    if workers is not None:
        workers = positive_int("workers", workers)
    if executor is not None and not isinstance(executor, cf.Executor):
        raise TypeError("executor must be a concurrent.futures.Executor")
    in_process_threads = positive_int("threads", threads) if threads is not None else (os.cpu_count() or 1)

    started = time.perf_counter()
    n_chunks = math.ceil(n / chunk_size)
    bounds = [(c * chunk_size, min(n, (c + 1) * chunk_size)) for c in range(n_chunks)]
    meta = exp.metadata()
    ckpt, done = None, {}
    if checkpoint is not None:
        header = {"format": CHECKPOINT_FORMAT, "version": 1, "experiment": exp.name, "fingerprint": exp.fingerprint(),
                  "seed": seed, "chunk_size": chunk_size, "n": n, "check_every": check_every,
                  "target_halfwidth": target_halfwidth, "confidence": confidence, "method": method, "meta": meta,
                  "versions": versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        ckpt = Checkpoint(checkpoint, header)
        done = _resumed_chunks(ckpt, bounds, exp)

    tally = _Tally(exp.labels, n_chunks, target_halfwidth, check_every, confidence, method)
    for c in sorted(done):
        tally.add(done[c])
    pbar = _progress_bar(n, sum(len(r["labels"]) for r in done.values()), progress)
    sweep = _Sweep(exp, seed, bounds, tally, ckpt, pbar)
    todo = [c for c in range(n_chunks) if c not in done]
    own_pool, mode, parallel = None, "in-process", 1
    processes = min(workers or os.cpu_count() or 1, len(todo))
    try:
        if not tally.stopped and todo:
            if executor is not None:
                mode = type(executor).__module__ + "." + type(executor).__name__
                parallel = _parallelism(executor, workers)
                sweep.run_on(executor, todo, parallel)
            elif processes > 1:
                parallel = processes
                # the platform's default start method, as a plain ProcessPoolExecutor would use (fork on Linux up
                # to Python 3.13: scripts need no __main__ guard)
                own_pool = cf.ProcessPoolExecutor(parallel, initializer=_ignore_sigint)
                mode = f"processes({parallel})"
                sweep.run_on(own_pool, todo, parallel)
            else:
                sweep.run_here(todo, in_process_threads)
    except KeyboardInterrupt:
        if own_pool is not None:
            _kill_pool(own_pool)
            own_pool = None
        raise
    finally:
        pbar.close()
        if ckpt is not None:
            ckpt.close()
        if own_pool is not None:
            own_pool.shutdown(wait=True, cancel_futures=True)

    used = tally.stop_at if tally.stopped else tally.frontier
    if used != n_chunks and not tally.stopped:
        raise RuntimeError(f"internal error: {n_chunks - used} chunks were not run")
    chunks = [tally.chunks[c] for c in range(used)]
    settings = {"n_requested": n, "chunk_size": chunk_size, "check_every": check_every,
                "target_halfwidth": target_halfwidth, "stopped_early": tally.stopped and used < n_chunks,
                "executor": mode, "parallelism": parallel, "threads_in_process": in_process_threads,
                "resumed_chunks": len(done), "compute_time": float(sum(c.get("time", 0.0) for c in chunks)),
                "loss": exp.loss, "flow": jsonable(exp.flow), "fingerprint": exp.fingerprint()}
    return make_estimate(meta, chunks, seed, confidence, method, settings, time.perf_counter() - started, True,
                         exp.report)


__all__ = ["estimate", "run_samples"]
