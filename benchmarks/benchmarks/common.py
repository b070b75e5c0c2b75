"""Problems and helpers shared by the asv suite (bench_flow.py) and benchmarks/compare.py.

Nothing here is a benchmark (asv collects only names starting with time_, peakmem_, mem_, track_).
"""
from __future__ import annotations

import os
import platform
import time

import numpy as np

import fastflow as ff

DATA_SEED = 20240601
LOSSES = ("exponential", "logistic", "square")

# The rank paper's 2x2 experiment (section 3.1): x = (+-1, 0.99)/norm, Y = I, width 2, square loss, rows of W1 and
# columns of W2 uniform on the sphere of radius 1e-4, horizon t = 300, 288 runs.
RANK_T_MAX = 300.0
RANK_RADIUS = 1e-4
RANK_RUNS = 288
RANK_FLOW = dict(loss="square", t_max=RANK_T_MAX, rtol=1e-10, atol=1e-14)


def unit_rows(rng, n, d):
    """n points uniform on the unit sphere of R^d."""
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def rank2x2_problem():
    """(net, X, Y) of the rank paper's 2x2 example."""
    X = np.array([[1.0, 0.99], [-1.0, 0.99]])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return ff.two_layer(2, 2, 2, "relu"), X, np.eye(2)


def rank2x2_inits(net, count, first_seed=0):
    """(count, n_params) spherical initialisations of radius RANK_RADIUS, seeds first_seed, first_seed + 1, ..."""
    return np.array([ff.init.sphere(net, RANK_RADIUS, seed) for seed in range(first_seed, first_seed + count)])


def random_problem(n, d, width, loss, seed=0):
    """A random two-layer ReLU problem: n points uniform on the unit sphere of R^d; labels +-1 of a random linear
    separator (exponential / logistic) or N(0, 1) targets (square loss, d_out = 1); He-normal init
    (W1 ~ N(0, 2/d), W2 ~ N(0, 2/width)). Deterministic in (n, d, width, loss, seed): returns (net, X, y, theta0)."""
    rng = np.random.default_rng([DATA_SEED, n, d, width, seed])
    X = unit_rows(rng, n, d)
    if loss == "square":
        y = rng.normal(size=n)
    else:
        y = np.where(X @ rng.normal(size=d) >= 0, 1.0, -1.0)
    net = ff.two_layer(d, width, 1, "relu")
    return net, X, y, ff.init.he(net, rng)


def large_enabled():
    """FASTFLOW_BENCH_LARGE=1 opts in to the big / slow benchmark combinations."""
    return os.environ.get("FASTFLOW_BENCH_LARGE", "") not in ("", "0")


def count_kind(trajectory, kind):
    return int(np.count_nonzero(trajectory.events["kind"] == kind))


def best_of(fn, repeat=3):
    """(min wall time over `repeat` calls, last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info():
    """Where the numbers come from: platform, CPU model (/proc/cpuinfo), cores, load, library versions, BLAS."""
    import scipy

    info = dict(platform=platform.platform(), python=platform.python_version(), cpu=cpu_model(),
                cores=os.cpu_count(), numpy=np.__version__, scipy=scipy.__version__,
                fastflow=getattr(ff, "__version__", "?"))
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001 - older numpy: no dict mode
        pass
    info["blas_threads_env"] = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
                                if k in os.environ}
    return info
