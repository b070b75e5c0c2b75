"""The golden runs: a fixed set of flows whose every result field is hashed, so that a refactor of the kernel can
prove it changed nothing. `python tests/golden/runs.py --write` regenerates hashes.json (only in a commit that is
meant to change results, saying why)."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from pathlib import Path

def _has_avx2():
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx2" in line for line in f)
    except OSError:
        return False


# NumPy and OpenBLAS pick their SIMD kernels by CPU, and the AVX-512 ones round differently from the AVX2 ones (inputs
# built with NumPy differ in the last bit on such a machine, and so does every run). The runs pin the AVX2 kernels,
# so that the hashes are those of any x86-64 machine with AVX2; they must be set before NumPy loads. (OpenBLAS's
# Haswell kernels would crash a CPU without AVX2: there nothing is pinned.)
PINNED_ENV = ({"OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}
              if platform.machine() in ("x86_64", "AMD64") and _has_avx2() else {})
if __name__ == "__main__" and any(os.environ.get(k) != v for k, v in PINNED_ENV.items()):
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **PINNED_ENV})

import numpy as np  # noqa: E402

import fastflow as ff  # noqa: E402
from fastflow import experiments, fuzz  # noqa: E402

HASHES = Path(__file__).with_name("hashes.json")
TRAJECTORY_FIELDS = ("status", "message", "t", "log_t", "theta", "loss", "log_loss", "grad_norm", "margin",
                     "events", "n_steps", "n_rejected", "n_rhs", "t_eval", "theta_at", "loss_at")


def digest(traj):
    """SHA-256 over every field of a Trajectory, byte for byte."""
    h = hashlib.sha256()
    for name in TRAJECTORY_FIELDS:
        value = getattr(traj, name)
        h.update(name.encode())
        if isinstance(value, np.ndarray):
            h.update(str(value.dtype).encode() + str(value.shape).encode())
            h.update(np.ascontiguousarray(value).tobytes())
        else:
            h.update(repr(value).encode())
    return h.hexdigest()


def _fuzz_runs(count=300, seed=0):
    for index in range(count):
        problem = fuzz.random_problem(fuzz._rng_for(seed, index))
        grid = fuzz.time_grid(problem.loss, problem.t_max, n_grid=16)
        yield f"fuzz-{seed}:{index}", lambda p=problem, g=grid: p.run(t_eval=g)


# random-sweep-large's own grid takes minutes a draw
EXPERIMENT_OPTIONS = {"random-sweep-large": dict(ns=(6,), ds=(2,), widths=(2,), log_t_max=3.0)}


def _experiment_runs(per_experiment=6):
    for name in experiments.names():
        exp = experiments.get(name, **EXPERIMENT_OPTIONS.get(name, {}))
        for index in range(per_experiment):
            def run(exp=exp, index=index):
                rng = np.random.default_rng([2026, index])
                X, y = exp.data(rng)
                net = exp.net if isinstance(exp.net, ff.Network) else exp.net((X, y), rng)
                theta0 = exp.init(net, rng)
                return ff.flow(net, (X, y), theta0, loss=exp.loss, **exp.flow)
            yield f"{name}:{index}", run


def _architecture_runs():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(6, 3))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.where(rng.random(6) < 0.5, -1.0, 1.0)
    nets = {
        "fc-3-3": ff.fully_connected(3, [3, 3]),
        "fc-2-2-2": ff.fully_connected(3, [2, 2, 2]),
        "fc-bias": ff.fully_connected(3, [3, 2], bias=True),
        "skip": ff.Network(ff.fully_connected(3, [3]).maps, skip=True),
        "diagonal-3": ff.diagonal(3, 3),
        "conv": ff.conv_disjoint(1, 3),
        "linear-fc": ff.fully_connected(3, [3, 3], activation="linear"),
    }
    for name, net in nets.items():
        theta0 = np.random.default_rng([11, len(name)]).normal(0.0, 0.8, net.n_params)
        for loss in ("exponential", "logistic"):
            yield f"{name}-{loss}", lambda net=net, theta0=theta0, loss=loss: ff.flow(
                net, (X, y), theta0, loss=loss, log_t_max=20.0, t_eval=np.geomspace(1e-3, 1e6, 9))
    labels = np.arange(6) % 3
    net = ff.two_layer(3, 4, d_out=3)
    theta0 = np.random.default_rng(12).normal(0.0, 0.5, net.n_params)
    yield "one-vs-all", lambda: ff.flow(net, (X, labels), theta0, loss="logistic", log_t_max=15.0)
    net2 = ff.two_layer(3, 4, d_out=2)
    targets = np.random.default_rng(13).normal(size=(6, 2))
    theta2 = np.random.default_rng(14).normal(0.0, 0.5, net2.n_params)
    yield "square-dout2", lambda: ff.flow(net2, (X, targets), theta2, loss="square", t_max=50.0,
                                          t_eval=np.linspace(0.0, 60.0, 13))


def _wide_runs():
    """Flows past the small nets' passes: samples over several panels and rows of 16 inputs or more, through the
    tiled products (factored for one output), the screened event location and the sliding blocks."""
    rng = np.random.default_rng(15)
    X = rng.normal(size=(48, 20))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    score = X @ rng.normal(size=20)
    for width, d_out, loss in ((12, 1, "logistic"), (12, 1, "square"), (6, 2, "square")):
        net = ff.two_layer(20, width, d_out=d_out)
        theta0 = ff.init.xavier(net, np.random.default_rng([16, width, d_out]))
        if loss == "square":
            targets = score if d_out == 1 else np.stack([score, np.tanh(score)], axis=1)
            options = dict(t_max=50.0)
        else:
            targets, options = np.where(score >= 0, 1.0, -1.0), dict(log_t_max=8.0)

        def run(net=net, data=(X, targets), theta0=theta0, loss=loss, options=options):
            return ff.flow(net, data, theta0, loss=loss, **options)
        yield f"wide-{width}x{d_out}-{loss}", run


def _paper_runs():
    X = np.array([[1.0, 0.25], [-1.0, 0.25]])
    net = ff.two_layer(2, 2)
    theta0 = net.join([np.array([[0.1, 1.0], [0.3, -2.0]]), np.array([[0.8, -0.6]])])
    yield "thm3.2-logt-1e8", lambda: ff.flow(net, (X, np.ones(2)), theta0, loss="exponential", log_t_max=1e8)


def _many_runs():
    problem = fuzz.random_problem(np.random.default_rng(99), n=(6, 6), d=(3, 3), width=(4, 4),
                                  losses=("logistic",), t_max=100.0)
    thetas = np.random.default_rng(100).normal(0.0, 0.7, (8, problem.net.n_params))
    for threads in (1, 2):
        def run(threads=threads):
            return ff.flow_many(problem.net, (problem.X, problem.y), thetas, threads=threads, loss="logistic",
                                t_max=100.0, t_eval=[0.5, 5.0, 50.0])
        yield f"flow_many-threads{threads}", run


def runs():
    """(name, thunk) of every golden run; a thunk returns a Trajectory or a list of them."""
    for group in (_fuzz_runs, _experiment_runs, _architecture_runs, _wide_runs, _paper_runs, _many_runs):
        yield from group()


def combined(trajs):
    return hashlib.sha256("".join(digest(t) for t in trajs).encode()).hexdigest()


def compute():
    out = {}
    for name, thunk in runs():
        result = thunk()
        out[name] = combined(result if isinstance(result, list) else [result])
    return out


if __name__ == "__main__":
    hashes = compute()
    if "--json" in sys.argv:  # for tests/test_golden.py
        print(json.dumps(hashes))
    elif "--write" in sys.argv:
        HASHES.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(hashes)} hashes to {HASHES}")
    else:
        old = json.loads(HASHES.read_text())
        changed = sorted(k for k in hashes if old.get(k) != hashes[k])
        print(f"{len(hashes)} runs, {len(changed)} changed: {changed[:20]}")
