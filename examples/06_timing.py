"""Timing a workload of your own: one flow at a time against `ff.flow_many` on C++ threads.

The rank paper's 2x2 problem (Timor, Vardi & Shamir, section 3.1): x = (+-1, 0.99)/||.||, identity targets, the
square loss, rows of W1 and columns of W2 uniform on the sphere of radius 1e-4, t = 300. flow_many gives the same
trajectories bit for bit whatever the number of threads. For the project's own benchmark suite see
`cd benchmarks && asv machine --yes && asv run --quick --python=same`.

    python examples/06_timing.py
FASTFLOW_EXAMPLE_SMALL=1 times 48 runs instead of 1000.
"""
import os
import time

import numpy as np

import fastflow as ff

SMALL = os.environ.get("FASTFLOW_EXAMPLE_SMALL") == "1"
RUNS = 48 if SMALL else 1000

X = np.array([[1.0, 0.99], [-1.0, 0.99]]) / np.hypot(1.0, 0.99)
Y = np.eye(2)
net = ff.two_layer(2, 2, d_out=2)
rng = np.random.default_rng(0)
thetas0 = np.array([ff.init.sphere(net, 1e-4, rng) for _ in range(RUNS)])

start = time.perf_counter()
loop = [ff.flow(net, (X, Y), th, loss="square", t_max=300.0) for th in thetas0]
per_run = (time.perf_counter() - start) / RUNS
print(f"{RUNS} runs, one at a time: {1e3 * per_run:.3f} ms per run")

for threads in (1, 2):
    start = time.perf_counter()
    batch = ff.flow_many(net, (X, Y), thetas0, threads=threads, loss="square", t_max=300.0)
    elapsed = time.perf_counter() - start
    assert all(np.array_equal(a.theta, b.theta) for a, b in zip(batch, loop))
    print(f"flow_many, {threads} thread(s): {1e3 * elapsed / RUNS:.3f} ms per run, identical results")

zero_loss = sum(tr.loss < 1e-4 for tr in loop)
print(f"{zero_loss} of {RUNS} runs reach loss < 1e-4 by t = 300")
