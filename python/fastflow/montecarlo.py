"""Monte Carlo estimates of how often the flow ends one way or another, over random datasets and initialisations.

An `Experiment` says how to draw one sample (a dataset, a network, an initialisation), how to run the flow, and how
to name what happened (`outcome` -> one of `labels`). `estimate` runs many samples in chunks, on worker processes or
any `concurrent.futures.Executor` (a Dask cluster: `Client(address).get_executor()`), with an append-only
checkpoint, and returns the counts with confidence intervals per label.

Reproducibility: sample k draws everything from one generator,
    rng_k = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))
(the k-th child of `SeedSequence(seed).spawn(...)`): first the dataset `data(rng_k)`, then the network if `net` is a
sampler, then `init(net, rng_k)`. A sample's result therefore depends only on (seed, k), never on the chunking, the
number of workers or the executor, and samples are counted in index order.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import math
import os
import pickle
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ._validate import choice, positive_int, real_scalar
from .flow import LOSSES, flow_many
from .networks import Network

METHODS = ("wilson", "clopper-pearson")
FLOW_OPTIONS = ("t_max", "log_t_max", "rtol", "atol", "t_eval", "max_events", "max_steps", "gtol")
CHECKPOINT_FORMAT = "fastflow-montecarlo-checkpoint"


# --------------------------------------------------------------------------------------------------------------
# experiments


@dataclass
class Experiment:
    """A random experiment on the flow.

    data(rng) -> (X, y)                 the dataset of one sample (may ignore rng for a fixed dataset)
    net                                 a Network, or a sampler net((X, y), rng) -> Network
    init(net, rng) -> theta0            the initialisation
    loss, flow                          the loss and the options of `ff.flow` (t_max or log_t_max, rtol, ...)
    outcome(traj, net, (X, y))          -> a label, or (label, {name: number}) to also record per-sample numbers
    labels                              every label outcome can return, in display order
    prediction                          what the theory predicts, in words
    default_n                           the sample size the command line uses by default
    strata                              record names whose values split the table (e.g. ("n", "d", "width"))
    reference                           [(label, value, text)]: predicted/published probabilities drawn on the plot
    report(est) -> list[str]            extra lines for the table (e.g. a check of the theorem on its hypothesis)

    The functions must be picklable (top-level functions or functools.partial of them) to run on worker processes
    or a cluster.
    """

    name: str
    description: str
    prediction: str
    data: Callable
    net: Any
    init: Callable
    loss: str
    flow: dict
    outcome: Callable
    labels: Sequence[str]
    default_n: int = 1000
    strata: Sequence[str] = ()
    reference: Sequence[tuple] = ()
    report: Optional[Callable] = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("Experiment.name must be a non-empty string")
        choice("loss", self.loss, LOSSES)
        self.flow = dict(self.flow or {})
        unknown = set(self.flow) - set(FLOW_OPTIONS)
        if unknown:
            raise ValueError(f"Experiment.flow: unknown options {sorted(unknown)}; allowed: {', '.join(FLOW_OPTIONS)}")
        self.labels = list(self.labels)
        if not self.labels or not all(isinstance(s, str) and s for s in self.labels):
            raise ValueError("Experiment.labels must be a non-empty list of non-empty strings")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("Experiment.labels must be distinct")
        for name in ("data", "init", "outcome"):
            if not callable(getattr(self, name)):
                raise TypeError(f"Experiment.{name} must be callable")
        if not (isinstance(self.net, Network) or callable(self.net)):
            raise TypeError("Experiment.net must be a Network or a sampler net((X, y), rng) -> Network")
        self.default_n = positive_int("default_n", self.default_n)
        self.strata = tuple(self.strata)
        self.reference = [tuple(r) for r in self.reference]

    def fingerprint(self):
        """A digest of what defines the samples' labels (for checkpoints): name, loss, flow options, labels."""
        desc = json.dumps({"name": self.name, "loss": self.loss, "flow": _jsonable(self.flow),
                           "labels": self.labels}, sort_keys=True)
        return hashlib.sha256(desc.encode()).hexdigest()[:16]


def sample_rng(seed, k):
    """The generator of sample k: the k-th child of SeedSequence(seed)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(k),)))


def draw(exp, seed, k):
    """Sample k of `exp` under `seed`: (net, (X, y), theta0), exactly as `estimate` draws it."""
    rng = sample_rng(seed, k)
    X, y = exp.data(rng)
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    net = exp.net if isinstance(exp.net, Network) else exp.net((X, y), rng)
    theta0 = np.asarray(exp.init(net, rng), dtype=np.float64)
    return net, (X, y), theta0


def run_samples(exp, seed, indices, threads=1):
    """Labels (list of str) and records ({name: list of float}) of the samples `indices`, in that order."""
    indices = list(indices)
    drawn = [draw(exp, seed, k) for k in indices]
    groups = {}   # samples on the same network and dataset run in one flow_many call
    for pos, (net, (X, y), theta0) in enumerate(drawn):
        key = (net.structure, X.shape, X.tobytes(), y.shape, y.tobytes())
        groups.setdefault(key, []).append(pos)
    trajs = [None] * len(drawn)
    for positions in groups.values():
        net, data, _ = drawn[positions[0]]
        thetas = np.array([drawn[p][2] for p in positions])
        out = flow_many(net, data, thetas, threads=threads, loss=exp.loss, **exp.flow)
        if any(tr.status == "interrupted" for tr in out):
            raise KeyboardInterrupt
        for p, tr in zip(positions, out):
            trajs[p] = tr
    labels, rows = [], []
    for (net, data, _), tr in zip(drawn, trajs):
        res = exp.outcome(tr, net, data)
        label, rec = (res if isinstance(res, tuple) else (res, {}))
        if label not in exp.labels:
            raise ValueError(f"experiment {exp.name!r}: outcome returned {label!r}, which is not one of its labels "
                             f"{exp.labels}")
        labels.append(label)
        rows.append(rec or {})
    names = sorted({name for rec in rows for name in rec})
    records = {name: [_float_or_none(rec.get(name)) for rec in rows] for name in names}
    return labels, records


def _float_or_none(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


# worker side: experiments arrive pickled once per chunk; unpickle each distinct one once per process
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


def _chunk_result(exp, seed, chunk, start, stop, threads):
    t0 = time.perf_counter()
    labels, records = run_samples(exp, seed, range(start, stop), threads)
    return {"chunk": chunk, "start": start, "stop": stop, "labels": labels, "records": records,
            "time": time.perf_counter() - t0}


def _ignore_sigint():
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and cancels the sweep


# --------------------------------------------------------------------------------------------------------------
# confidence intervals


def interval(count, n, confidence=0.95, method="wilson"):
    """Two-sided confidence interval (lo, hi) for a binomial proportion count/n."""
    choice("method", method, METHODS)
    if n <= 0:
        return (0.0, 1.0)
    alpha = 1.0 - confidence
    if method == "wilson":
        z = NormalDist().inv_cdf(1.0 - alpha / 2)
        p = count / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        lo, hi = max(0.0, centre - half), min(1.0, centre + half)
        # exact endpoints at the boundary (rounding would give e.g. 1e-17)
        return (0.0 if count == 0 else lo, 1.0 if count == n else hi)
    from scipy.stats import beta
    lo = 0.0 if count == 0 else float(beta.ppf(alpha / 2, count, n - count + 1))
    hi = 1.0 if count == n else float(beta.ppf(1 - alpha / 2, count + 1, n - count))
    return (lo, hi)


# --------------------------------------------------------------------------------------------------------------
# results


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, (np.bool_,)):
        return bool(x)
    return x


def versions():
    import scipy

    from . import __version__
    return {"fastflow": __version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


@dataclass
class Estimate:
    """Counts, probabilities and confidence intervals per outcome label.

    n, counts {label: int}, p {label: float}, ci {label: (lo, hi)}; `sample_labels` holds each sample's label (in
    sample order) and `records` the per-sample numbers the outcome recorded (NaN where missing).
    """

    experiment: str
    labels: list
    sample_labels: np.ndarray
    records: dict
    seed: int
    confidence: float = 0.95
    method: str = "wilson"
    description: str = ""
    prediction: str = ""
    settings: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    wall_time: float = float("nan")
    notes: list = field(default_factory=list)
    strata: tuple = ()
    reference: list = field(default_factory=list)
    complete: bool = True

    @property
    def n(self):
        return int(len(self.sample_labels))

    @property
    def counts(self):
        c = np.bincount(self.sample_labels, minlength=len(self.labels)) if self.n else np.zeros(len(self.labels))
        return {label: int(c[i]) for i, label in enumerate(self.labels)}

    @property
    def p(self):
        n = self.n
        return {label: (c / n if n else float("nan")) for label, c in self.counts.items()}

    @property
    def ci(self):
        return {label: interval(c, self.n, self.confidence, self.method) for label, c in self.counts.items()}

    def halfwidths(self):
        return {label: (hi - lo) / 2 for label, (lo, hi) in self.ci.items()}

    def mask(self, *labels):
        """Boolean mask of the samples whose label is one of `labels`."""
        idx = [self.labels.index(s) for s in labels]
        return np.isin(self.sample_labels, idx)

    def record(self, name):
        return self.records[name]

    def table(self, strata=None):
        """The result as a text table (plus the prediction and the experiment's notes)."""
        pct = f"{100 * self.confidence:g}%"
        method = "Wilson" if self.method == "wilson" else "Clopper-Pearson"
        head = f"{self.experiment}: n = {self.n}, seed = {self.seed}, {pct} {method} intervals"
        if not self.complete:
            head += "  [partial: finished chunks only]"
        lines = [head]
        if self.description:
            lines.append(f"  {self.description}")
        width = max(12, *(len(s) for s in self.labels))
        lines.append(f"  {'outcome':<{width}} {'count':>7} {'p':>8}   {pct + ' CI':<20}")
        for label in self.labels:
            c, p, (lo, hi) = self.counts[label], self.p[label], self.ci[label]
            lines.append(f"  {label:<{width}} {c:>7d} {p:>8.4f}   [{lo:.4f}, {hi:.4f}]")
        strata = self.strata if strata is None else tuple(strata)
        if strata and self.n and all(s in self.records for s in strata):
            lines.append(f"  by {', '.join(strata)}:")
            keys = np.stack([self.records[s] for s in strata], axis=1)
            for key in sorted({tuple(k) for k in keys.tolist()}, key=lambda k: tuple(np.nan_to_num(k))):
                sel = np.all(keys == np.array(key), axis=1)
                c = np.bincount(self.sample_labels[sel], minlength=len(self.labels))
                cell = ", ".join(f"{s}={v:g}" for s, v in zip(strata, key))
                parts = ", ".join(f"{label} {c[i] / sel.sum():.3f}" for i, label in enumerate(self.labels) if c[i])
                lines.append(f"    {cell} (n={int(sel.sum())}): {parts}")
        if self.prediction:
            lines.append(f"  prediction: {self.prediction}")
        lines += [f"  {s}" for s in self.notes]
        if math.isfinite(self.wall_time):
            lines.append(f"  wall time {self.wall_time:.2f} s")
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def to_dict(self):
        return _jsonable({
            "experiment": self.experiment, "description": self.description, "prediction": self.prediction,
            "labels": self.labels, "n": self.n, "counts": self.counts, "p": self.p,
            "ci": {k: list(v) for k, v in self.ci.items()}, "confidence": self.confidence, "method": self.method,
            "seed": self.seed, "settings": self.settings, "versions": self.versions, "wall_time": self.wall_time,
            "notes": self.notes, "strata": list(self.strata), "reference": [list(r) for r in self.reference],
            "complete": self.complete,
            "samples": {"labels": [self.labels[i] for i in self.sample_labels],
                        "records": {k: v for k, v in self.records.items()}},
        })

    def to_json(self, path):
        """Write the result (with every sample's label and records) as JSON, atomically."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f, indent=1)
            f.write("\n")
        os.replace(tmp, path)

    @classmethod
    def from_dict(cls, d):
        labels = list(d["labels"])
        index = {s: i for i, s in enumerate(labels)}
        samples = d.get("samples", {})
        sample_labels = np.array([index[s] for s in samples.get("labels", [])], dtype=np.int64)
        records = {k: np.array([np.nan if v is None else v for v in vals], dtype=np.float64)
                   for k, vals in samples.get("records", {}).items()}
        est = cls(experiment=d["experiment"], labels=labels, sample_labels=sample_labels, records=records,
                  seed=d["seed"], confidence=d.get("confidence", 0.95), method=d.get("method", "wilson"),
                  description=d.get("description", ""), prediction=d.get("prediction", ""),
                  settings=d.get("settings", {}), versions=d.get("versions", {}),
                  wall_time=float("nan") if d.get("wall_time") is None else d["wall_time"],
                  notes=d.get("notes", []), strata=tuple(d.get("strata", ())),
                  reference=[tuple(r) for r in d.get("reference", [])], complete=d.get("complete", True))
        if est.n != d["n"] or est.counts != d["counts"]:
            raise ValueError("inconsistent results file: the per-sample labels do not match the counts")
        return est

    @classmethod
    def from_json(cls, path):
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def plot(self, path=None):
        """Bar chart of the probabilities with confidence-interval whiskers; saved to `path` if given."""
        from .plots import probability_bars
        return probability_bars(self, path)


def _make_estimate(exp_meta, chunks, seed, confidence, method, settings, wall_time, complete, exp=None):
    """An Estimate from the chunk results `chunks` (list, in index order)."""
    labels = list(exp_meta["labels"])
    index = {s: i for i, s in enumerate(labels)}
    sample_labels = np.array([index[s] for c in chunks for s in c["labels"]], dtype=np.int64)
    names = sorted({name for c in chunks for name in c["records"]})
    records = {}
    for name in names:
        vals = []
        for c in chunks:
            vals += c["records"].get(name, [None] * len(c["labels"]))
        records[name] = np.array([np.nan if v is None else v for v in vals], dtype=np.float64)
    est = Estimate(experiment=exp_meta["name"], labels=labels, sample_labels=sample_labels, records=records,
                   seed=seed, confidence=confidence, method=method, description=exp_meta.get("description", ""),
                   prediction=exp_meta.get("prediction", ""), settings=settings, versions=versions(),
                   wall_time=wall_time, strata=tuple(exp_meta.get("strata", ())),
                   reference=[tuple(r) for r in exp_meta.get("reference", [])], complete=complete)
    if exp is not None and exp.report is not None and est.n:
        est.notes = list(exp.report(est))
    return est


def _exp_meta(exp):
    return {"name": exp.name, "description": exp.description, "prediction": exp.prediction, "labels": exp.labels,
            "strata": list(exp.strata), "reference": [list(r) for r in exp.reference], "loss": exp.loss,
            "flow": _jsonable(exp.flow), "fingerprint": exp.fingerprint()}


# --------------------------------------------------------------------------------------------------------------
# checkpoints: JSON lines, a header then one line per finished chunk; appended, flushed and fsync'ed per chunk


class Checkpoint:
    def __init__(self, path, header):
        self.path = Path(path)
        self.header = header
        self.chunks = {}
        self._file = None

    @staticmethod
    def read(path):
        """(header, {chunk: record}, offset of the end of the last complete line). A trailing partial line (from a
        kill during a write) is ignored."""
        with open(path, "rb") as f:
            raw = f.read()
        end = raw.rfind(b"\n") + 1  # bytes after the last newline: an unfinished write
        lines = raw[:end].split(b"\n")[:-1]
        if not lines:
            return None, {}, 0
        records, good_end, pos = [], 0, 0
        for i, line in enumerate(lines):
            pos += len(line) + 1
            try:
                records.append(json.loads(line))
                good_end = pos
            except json.JSONDecodeError:
                if i == len(lines) - 1:
                    break  # a damaged last line: drop it
                raise ValueError(f"checkpoint {path}: line {i + 1} is not valid JSON") from None
        if not records:
            return None, {}, 0
        header = records[0]
        if not isinstance(header, dict) or header.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a fastflow Monte Carlo checkpoint")
        chunks = {}
        for rec in records[1:]:
            if rec.get("format") == CHECKPOINT_FORMAT:
                header = rec  # a resumed run appends its own header (its n may differ)
            else:
                chunks[int(rec["chunk"])] = rec  # a later line for the same chunk replaces an earlier one
        return header, chunks, good_end

    def open(self, resume=True):
        """Read what is there (if resume) and open for appending."""
        existing = self.path.exists() and self.path.stat().st_size > 0
        if existing and resume:
            header, chunks, good_end = self.read(self.path)
            if header is not None:
                for key in ("experiment", "fingerprint", "seed", "chunk_size"):
                    if header.get(key) != self.header.get(key):
                        raise ValueError(f"checkpoint {self.path} was written with {key} = {header.get(key)!r}, "
                                         f"this run has {self.header.get(key)!r}")
                self.chunks = chunks
                with open(self.path, "r+b") as f:  # cut a partial last line so appends start on a fresh line
                    f.truncate(good_end)
                self._file = open(self.path, "a")
                self._write(self.header)
                return self.chunks
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w")
        self._write(self.header)
        return self.chunks

    def _write(self, rec):
        self._file.write(json.dumps(_jsonable(rec), separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def add(self, rec):
        self.chunks[rec["chunk"]] = rec
        self._write(rec)

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None


def load_checkpoint(path, exp=None):
    """A (possibly partial) Estimate from a checkpoint file: the chunks finished in a row from chunk 0 (counting a
    later chunk without its predecessors could bias the estimate towards quick outcomes)."""
    header, chunks, _ = Checkpoint.read(path)
    if header is None:
        raise ValueError(f"checkpoint {path} is empty")
    prefix, c = [], 0
    while c in chunks:
        prefix.append(chunks[c])
        c += 1
    n_chunks = math.ceil(header["n"] / header["chunk_size"])
    settings = {k: header.get(k) for k in ("n", "chunk_size", "target_halfwidth")}
    settings["finished_chunks"] = len(chunks)
    return _make_estimate(header["meta"], prefix, header["seed"], header.get("confidence", 0.95),
                          header.get("method", "wilson"), settings, float("nan"), c >= n_chunks, exp)


# --------------------------------------------------------------------------------------------------------------
# the sweep


def _parallelism(executor, workers):
    client = getattr(executor, "_client", None)
    if client is not None:  # a dask ClientExecutor
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:
            pass
    return getattr(executor, "_max_workers", None) or workers or os.cpu_count() or 1


def _progress_bar(total, initial, enabled):
    from tqdm.auto import tqdm
    disable = not (enabled and sys.stderr.isatty())
    return tqdm(total=total, initial=initial, unit="sample", disable=disable, dynamic_ncols=True, smoothing=0.1,
                file=sys.stderr)


def estimate(exp, n=10_000, seed=0, workers=None, executor=None, checkpoint=None, progress=True, confidence=0.95,
             target_halfwidth=None, method="wilson", *, chunk_size=64, check_every=4, threads=None):
    """Estimate the probability of each outcome label of `exp` (an Experiment or a built-in name) from n samples.

    workers: processes (None: one per CPU; 1: in this process, `threads` C++ threads per chunk).
    executor: any concurrent.futures.Executor instead, e.g. dask.distributed.Client(address).get_executor().
    checkpoint: a file; finished chunks are appended as they finish, and chunks already there are not rerun.
    target_halfwidth: stop early once every label's interval half-width is below it (checked after every
    `check_every` chunks, counting chunks in index order, so the stopping point does not depend on the executor).
    method: "wilson" or "clopper-pearson". Ctrl-C: finished chunks stay in the checkpoint; KeyboardInterrupt is
    re-raised.
    """
    if isinstance(exp, str):
        from . import experiments
        exp = experiments.get(exp)
    if not isinstance(exp, Experiment):
        raise TypeError(f"exp must be an Experiment or a built-in experiment name, got {type(exp).__name__}")
    n = positive_int("n", n)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    confidence = real_scalar("confidence", confidence, low=0.0, high=1.0, low_open=True)
    if confidence >= 1.0:
        raise ValueError("confidence must be < 1")
    choice("method", method, METHODS)
    if target_halfwidth is not None:
        target_halfwidth = real_scalar("target_halfwidth", target_halfwidth, low=0.0, high=0.5, low_open=True)
    chunk_size = positive_int("chunk_size", chunk_size)
    check_every = positive_int("check_every", check_every)
    if workers is not None:
        workers = positive_int("workers", workers)
    if executor is not None and not isinstance(executor, cf.Executor):
        raise TypeError("executor must be a concurrent.futures.Executor")
    in_process_threads = positive_int("threads", threads) if threads is not None else (os.cpu_count() or 1)

    started = time.perf_counter()
    n_chunks = math.ceil(n / chunk_size)
    bounds = [(c * chunk_size, min(n, (c + 1) * chunk_size)) for c in range(n_chunks)]
    meta = _exp_meta(exp)

    ckpt = None
    done = {}
    if checkpoint is not None:
        header = {"format": CHECKPOINT_FORMAT, "version": 1, "experiment": exp.name, "fingerprint": exp.fingerprint(),
                  "seed": seed, "chunk_size": chunk_size, "n": n, "check_every": check_every,
                  "target_halfwidth": target_halfwidth, "confidence": confidence, "method": method, "meta": meta,
                  "versions": versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        ckpt = Checkpoint(checkpoint, header)
        for c, rec in ckpt.open(resume=True).items():
            # a chunk of an earlier run with another n may cover other samples: keep only exact matches
            whole = len(rec["labels"]) == rec["stop"] - rec["start"]
            if c < n_chunks and (rec["start"], rec["stop"]) == bounds[c] and whole:
                if any(s not in exp.labels for s in rec["labels"]):
                    raise ValueError(f"checkpoint {checkpoint}: chunk {c} has labels outside {exp.labels}")
                done[c] = rec
    resumed = len(done)

    counts = np.zeros(len(exp.labels), dtype=np.int64)
    index = {s: i for i, s in enumerate(exp.labels)}
    state = {"frontier": 0, "stop_at": None, "counted": 0}

    def halfwidth_ok():
        m = state["counted"]
        return all((hi - lo) / 2 < target_halfwidth
                   for lo, hi in (interval(int(c), m, confidence, method) for c in counts))

    def advance():
        while state["stop_at"] is None and state["frontier"] < n_chunks and state["frontier"] in done:
            rec = done[state["frontier"]]
            for s in rec["labels"]:
                counts[index[s]] += 1
            state["counted"] += len(rec["labels"])
            state["frontier"] += 1
            f = state["frontier"]
            if target_halfwidth is not None and (f % check_every == 0 or f == n_chunks) and halfwidth_ok():
                state["stop_at"] = f

    advance()
    pbar = _progress_bar(n, sum(len(r["labels"]) for r in done.values()), progress)

    def postfix():
        m = state["counted"]
        if m and not pbar.disable:
            top = sorted(range(len(counts)), key=lambda i: -counts[i])[:3]
            pbar.set_postfix_str(" ".join(f"{exp.labels[i]}={counts[i] / m:.3f}" for i in top), refresh=False)

    def finished(rec):
        if ckpt is not None:
            ckpt.add(rec)
        done[rec["chunk"]] = rec
        pbar.update(len(rec["labels"]))
        advance()
        postfix()

    todo = [c for c in range(n_chunks) if c not in done]
    own_pool = None
    mode = "in-process"
    parallel = 1
    try:
        if state["stop_at"] is None and todo:
            if executor is None:
                workers_eff = min(workers or os.cpu_count() or 1, len(todo))
                if workers_eff > 1:
                    # the platform's default start method, as a plain ProcessPoolExecutor would use (fork on
                    # Linux up to Python 3.13: scripts need no __main__ guard)
                    own_pool = cf.ProcessPoolExecutor(workers_eff, initializer=_ignore_sigint)
                    pool, mode, parallel = own_pool, f"processes({workers_eff})", workers_eff
                else:
                    pool = None
            else:
                pool, mode = executor, type(executor).__module__ + "." + type(executor).__name__
                parallel = _parallelism(executor, workers)
            if pool is None:
                for c in todo:
                    if state["stop_at"] is not None:
                        break
                    finished(_chunk_result(exp, seed, c, *bounds[c], in_process_threads))
            else:
                blob = pickle.dumps(exp)
                payload = (hashlib.sha256(blob).hexdigest(), blob)
                queue = list(reversed(todo))
                running = {}
                max_inflight = 2 * parallel + 1
                try:
                    while (queue or running) and state["stop_at"] is None:
                        while queue and len(running) < max_inflight:
                            c = queue.pop()
                            running[pool.submit(_run_chunk, payload, seed, c, *bounds[c], 1)] = c
                        ready, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                        for fut in sorted(ready, key=lambda f: running[f]):
                            running.pop(fut)
                            finished(fut.result())
                finally:
                    for fut in running:
                        fut.cancel()
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

    used = state["stop_at"] if state["stop_at"] is not None else state["frontier"]
    if used != n_chunks and state["stop_at"] is None:
        raise RuntimeError(f"internal error: {n_chunks - used} chunks were not run")
    chunks = [done[c] for c in range(used)]
    settings = {"n_requested": n, "chunk_size": chunk_size, "check_every": check_every,
                "target_halfwidth": target_halfwidth, "stopped_early": state["stop_at"] is not None and used < n_chunks,
                "executor": mode, "parallelism": parallel, "threads_in_process": in_process_threads,
                "resumed_chunks": resumed, "compute_time": float(sum(c.get("time", 0.0) for c in chunks)),
                "loss": exp.loss, "flow": _jsonable(exp.flow), "fingerprint": exp.fingerprint()}
    return _make_estimate(meta, chunks, seed, confidence, method, settings, time.perf_counter() - started, True, exp)


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


__all__ = ["Estimate", "Experiment", "draw", "estimate", "interval", "load_checkpoint", "run_samples",
           "sample_rng"]
