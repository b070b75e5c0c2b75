"""asv benchmarks of the exact arrangement enumeration (numba kernels in fastflow.arrangements).

Kernels are warmed up in setup (loaded from numba's cache, or compiled once), so time_* measure enumeration only;
track_compile_seconds measures the first call without a cache, in a fresh interpreter.
"""
import os
import subprocess
import sys
import tempfile
import time
from math import comb

import numpy as np

from fastflow.arrangements import arrangements, sign_patterns

DATA_SEED = 20240601
LARGE = os.environ.get("FASTFLOW_BENCH_LARGE") == "1"


def gaussian_data(n, d):
    return np.random.default_rng(DATA_SEED).standard_normal((n, d))


def degenerate_data(n, d):
    """Gaussian rows, then a repeated row, an antiparallel row, a zero row and a block in a 2-D subspace."""
    X = gaussian_data(n, d)
    X[1], X[2], X[3] = X[0], -2.0 * X[0], 0.0
    X[4:8] = np.random.default_rng(DATA_SEED + 1).standard_normal((4, 2)) @ X[8:10]
    return X


def warm_up():
    X = degenerate_data(12, 3)  # reaches every kernel: reduction, cells, flats, packing
    arrangements(X)
    sign_patterns(X)


def cover(n, d):
    """Cells of n hyperplanes in general position through the origin of R^d (Cover 1965)."""
    return 2 * sum(comb(n - 1, k) for k in range(min(n, d)))


class Arrangements:
    """General position: the output is Cover's count of cells, 2 sum_{k<d} C(n-1, k) (track_count)."""

    params = ([20, 100, 200, 300], [2, 3, 4, 6, 8])
    param_names = ["n", "d"]
    timeout = 300

    def setup(self, n, d):
        if cover(n, d) > 3_000_000 and not LARGE:
            raise NotImplementedError(f"{cover(n, d):,} patterns (~1 s and n bytes each per million); "
                                      "set FASTFLOW_BENCH_LARGE=1")
        warm_up()
        self.X = gaussian_data(n, d)

    def time_arrangements(self, n, d):
        arrangements(self.X)

    def peakmem_arrangements(self, n, d):
        arrangements(self.X)

    def track_count(self, n, d):
        return len(arrangements(self.X))

    def track_cells_per_second(self, n, d):
        """Patterns per CPU second of this process (one core; robust to other load on the machine), best of 3."""
        best = np.inf
        for _ in range(3):
            start = time.process_time()
            count = len(arrangements(self.X))
            best = min(best, time.process_time() - start)
        return count / best

    track_count.unit = "patterns"
    track_cells_per_second.unit = "patterns/s"


class Degenerate:
    """Repeated, antiparallel, zero and coplanar rows: the cells of the reduced arrangement (arrangements), and
    the recursion over every flat (sign_patterns)."""

    params = ([20, 100], [3, 4])
    param_names = ["n", "d"]
    timeout = 300

    def setup(self, n, d):
        if (n, d) == (100, 4) and not LARGE:
            raise NotImplementedError("n=100, d=4: ~1 s; set FASTFLOW_BENCH_LARGE=1")
        warm_up()
        self.X = degenerate_data(n, d)

    def time_arrangements(self, n, d):
        arrangements(self.X)

    def time_sign_patterns(self, n, d):
        sign_patterns(self.X)

    def track_count(self, n, d):
        return len(arrangements(self.X))

    def track_faces(self, n, d):
        return len(sign_patterns(self.X))

    track_count.unit = "patterns"
    track_faces.unit = "faces"


_COMPILE = """
import sys
import time
import numpy as np
import fastflow
X = np.array([[1.0, 0, 0], [2, 0, 0], [-1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0], [0.3, -1, 1], [1, 2, 3]])
start = time.perf_counter()
getattr(fastflow, sys.argv[1])(X)
print(time.perf_counter() - start)
"""


def track_compile_seconds(function):
    """Seconds of the first call of `function` in a fresh interpreter with an empty numba cache (NUMBA_CACHE_DIR
    set to a new directory): the compile time every new environment pays once."""
    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run([sys.executable, "-c", _COMPILE, function], env={**os.environ, "NUMBA_CACHE_DIR": cache},
                             capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


track_compile_seconds.params = ["arrangements", "sign_patterns"]
track_compile_seconds.param_names = ["function"]
track_compile_seconds.unit = "seconds"
track_compile_seconds.timeout = 600
