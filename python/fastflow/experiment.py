"""The definition of a random experiment on the flow, and how its k-th sample is drawn.

Reproducibility: sample k draws everything from one generator,
    rng_k = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))
(the k-th child of `SeedSequence(seed).spawn(...)`): first the dataset `data(rng_k)`, then the network if `net` is a
sampler, then `init(net, rng_k)`. A sample's result therefore depends only on (seed, k), never on the chunking, the
number of workers or the executor.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ._json import jsonable
from ._validate import choice, positive_int
from .flow import BRANCHES, FLOW_OPTIONS, LOSSES
from .networks import Network


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
    chunk_size                          samples per task by default (a resumed run keeps finished chunks only, so
                                        slow samples want small chunks)
    strata                              record names whose values split the table (e.g. ("n", "d", "width"))
    reference                           [(label, value, text)]: predicted/published probabilities drawn on the plot
    report(est) -> list[str]            extra lines for the table (e.g. a check of the theorem on its hypothesis)
    figures(exp, est, out_dir)          -> paths of the experiment's own figures, written into out_dir (the
                                        probability bars are drawn for every experiment)

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
    chunk_size: int = 64
    strata: Sequence[str] = ()
    reference: Sequence[tuple] = ()
    report: Optional[Callable] = None
    figures: Optional[Callable] = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("Experiment.name must be a non-empty string")
        choice("loss", self.loss, LOSSES)
        self.flow = dict(self.flow or {})
        unknown = set(self.flow) - set(FLOW_OPTIONS)
        if unknown:
            raise ValueError(f"Experiment.flow: unknown options {sorted(unknown)}; allowed: {', '.join(FLOW_OPTIONS)}")
        if "branch" in self.flow:
            choice("branch", self.flow["branch"], BRANCHES)
        self.labels = list(self.labels)
        if not self.labels or not all(isinstance(s, str) and s for s in self.labels):
            raise ValueError("Experiment.labels must be a non-empty list of non-empty strings")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("Experiment.labels must be distinct")
        for name in ("data", "init", "outcome"):
            if not callable(getattr(self, name)):
                raise TypeError(f"Experiment.{name} must be callable")
        for name in ("report", "figures"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise TypeError(f"Experiment.{name} must be callable or None")
        if not (isinstance(self.net, Network) or callable(self.net)):
            raise TypeError("Experiment.net must be a Network or a sampler net((X, y), rng) -> Network")
        self.default_n = positive_int("default_n", self.default_n)
        self.chunk_size = positive_int("chunk_size", self.chunk_size)
        self.strata = tuple(self.strata)
        self.reference = [tuple(r) for r in self.reference]

    def fingerprint(self):
        """A digest of what defines the samples' labels (for checkpoints): name, loss, flow options, labels."""
        desc = json.dumps({"name": self.name, "loss": self.loss, "flow": jsonable(self.flow),
                           "labels": self.labels}, sort_keys=True)
        return hashlib.sha256(desc.encode()).hexdigest()[:16]

    def metadata(self):
        """What a results file or checkpoint keeps of the experiment (enough to rebuild its Estimate)."""
        return {"name": self.name, "description": self.description, "prediction": self.prediction,
                "labels": self.labels, "strata": list(self.strata), "reference": [list(r) for r in self.reference],
                "loss": self.loss, "flow": jsonable(self.flow), "fingerprint": self.fingerprint()}


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


__all__ = ["Experiment", "draw", "sample_rng"]
