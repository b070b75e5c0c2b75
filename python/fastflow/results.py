"""Results of a Monte Carlo estimate: `Estimate` (counts, intervals, table, JSON file) and the append-only
checkpoint a sweep writes as its chunks finish.

A chunk result is a dict {"chunk", "start", "stop", "labels": [label per sample], "records": {name: [number or
None per sample]}, "time"}; a checkpoint is JSON lines: a header, then one chunk result per line.
"""
from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy

from ._json import jsonable
from ._version import __version__
from .plots import probability_bars
from .stats import fraction_line, interval

CHECKPOINT_FORMAT = "fastflow-montecarlo-checkpoint"
# the records every sample has (montecarlo.run_samples), whatever its experiment's outcome records
RESERVED_RECORDS = ("flow_seconds", "branched")


def versions():
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
        counts, p, ci = self.counts, self.p, self.ci
        for label in self.labels:
            (lo, hi) = ci[label]
            lines.append(f"  {label:<{width}} {counts[label]:>7d} {p[label]:>8.4f}   [{lo:.4f}, {hi:.4f}]")
        strata = self.strata if strata is None else tuple(strata)
        if strata and self.n and all(s in self.records for s in strata):
            lines.append(f"  by {', '.join(strata)}:")
            keys = np.stack([self.records[s] for s in strata], axis=1)
            for key in sorted({tuple(k) for k in keys.tolist()}, key=lambda k: tuple(np.nan_to_num(k))):
                sel = np.all(keys == np.array(key), axis=1)
                c = np.bincount(self.sample_labels[sel], minlength=len(self.labels))
                cell = ", ".join(f"{s}={v:g}" for s, v in zip(strata, key))
                parts = ", ".join(f"{label} {c[i] / sel.sum():.3f}" for i, label in enumerate(self.labels) if c[i])
                seconds = self.records.get("flow_seconds", np.full(self.n, np.nan))[sel]
                if np.isfinite(seconds).any():
                    parts += f"; {np.nanmean(seconds):.3g} s/sample"
                lines.append(f"    {cell} (n={int(sel.sum())}): {parts}")
        if self.n:
            lines.append(f"  {self.branch_line()}")
        if self.prediction:
            lines.append(f"  prediction: {self.prediction}")
        lines += [f"  {s}" for s in self.notes]
        if math.isfinite(self.wall_time):
            lines.append(f"  wall time {self.wall_time:.2f} s")
        return "\n".join(lines)

    def branch_line(self):
        """The fraction of runs whose flow logged a `branch` event (an unstable branch), with its interval, over the
        runs that record it."""
        branched = self.records.get("branched", np.full(self.n, np.nan))
        recorded = np.isfinite(branched)
        m = int(recorded.sum())
        if m == 0:
            return ("runs with a branch event: not recorded (flows are watched for branches on plain two-layer nets "
                    "and nets of three or more layers only, and results written before fastflow recorded them have "
                    "none)")
        line = fraction_line("runs with a branch event", int(np.sum(branched[recorded] == 1)), m, None,
                             self.confidence, self.method)
        if m < self.n:
            line += (f" (the {m} of {self.n} runs that record it: on nets watched for branches, in chunks written "
                     "since fastflow records it)")
        return line

    def __str__(self):
        return self.table()

    def to_dict(self):
        return jsonable({
            "experiment": self.experiment, "description": self.description, "prediction": self.prediction,
            "labels": self.labels, "n": self.n, "counts": self.counts, "p": self.p,
            "ci": {k: list(v) for k, v in self.ci.items()}, "confidence": self.confidence, "method": self.method,
            "seed": self.seed, "settings": self.settings, "versions": self.versions, "wall_time": self.wall_time,
            "notes": self.notes, "strata": list(self.strata), "reference": [list(r) for r in self.reference],
            "complete": self.complete,
            "samples": {"labels": [self.labels[i] for i in self.sample_labels], "records": dict(self.records)},
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
        records = {k: _float_array(vals) for k, vals in samples.get("records", {}).items()}
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
        return probability_bars(self, path)


def _float_array(values):
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def make_estimate(meta, chunks, seed, confidence, method, settings, wall_time, complete, report=None):
    """An Estimate from the chunk results `chunks` (in index order) of the experiment described by `meta`
    (`Experiment.metadata()`); `report(est)` adds the experiment's notes."""
    labels = list(meta["labels"])
    index = {s: i for i, s in enumerate(labels)}
    sample_labels = np.array([index[s] for c in chunks for s in c["labels"]], dtype=np.int64)
    names = sorted({name for c in chunks for name in c["records"]})
    records = {name: _float_array([v for c in chunks for v in c["records"].get(name, [None] * len(c["labels"]))])
               for name in names}
    est = Estimate(experiment=meta["name"], labels=labels, sample_labels=sample_labels, records=records,
                   seed=seed, confidence=confidence, method=method, description=meta.get("description", ""),
                   prediction=meta.get("prediction", ""), settings=settings, versions=versions(),
                   wall_time=wall_time, strata=tuple(meta.get("strata", ())),
                   reference=[tuple(r) for r in meta.get("reference", [])], complete=complete)
    if report is not None and est.n:
        est.notes = list(report(est))
    return est


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
        self._file.write(json.dumps(jsonable(rec), separators=(",", ":")) + "\n")
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
    later chunk without its predecessors could bias the estimate towards quick outcomes). With the Experiment
    `exp`, its report adds the notes."""
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
    return make_estimate(header["meta"], prefix, header["seed"], header.get("confidence", 0.95),
                         header.get("method", "wilson"), settings, float("nan"), c >= n_chunks,
                         exp.report if exp is not None else None)


__all__ = ["Checkpoint", "Estimate", "load_checkpoint", "make_estimate"]
