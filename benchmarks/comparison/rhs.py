"""Section rhs: one right-hand side at n = 1000, d = 50, width = 128 against NumPy's two matrix products."""
import os

import numpy as np

import fastflow as ff
from benchmarks.common import best_of, random_problem


def rhs_section():
    """Seconds per right-hand side at n = 1000, d = 50, width = 128 (a one-step flow: time / n_rhs) against NumPy's
    X @ W1.T plus delta.T @ X on the same shapes; and the C++ forward pass alone. Each is a best of calls filling
    about the same wall time (a quarter of a second): on shared cores a 10 ms flow is disturbed more often than a
    0.5 ms product."""
    n, d, width = 1000, 50, 128
    net, X, y, theta0 = random_problem(n, d, width, "exponential")
    W1 = net.split(theta0)[0]
    delta = np.random.default_rng(0).normal(size=(n, width))
    flow = lambda: ff.flow(net, (X, y), theta0, loss="exponential", t_max=1e-7, rtol=1e-10, atol=1e-12)  # noqa: E731
    seconds, tr = best_of(flow, repeat=20)
    matmuls, _ = best_of(lambda: (X @ W1.T, delta.T @ X), repeat=500)
    forward, _ = best_of(lambda: net.forward(theta0, X), repeat=500)
    per_rhs = seconds / tr.n_rhs
    return dict(n=n, d=d, width=width, flow_seconds=seconds, n_rhs=tr.n_rhs, n_steps=tr.n_steps,
                n_events=tr.n_events, seconds_per_rhs=per_rhs, numpy_two_matmuls=matmuls, cpp_forward_pass=forward,
                ratio_rhs_to_matmuls=per_rhs / matmuls, ratio_forward_to_one_matmul=forward / (matmuls / 2),
                blas_threads=os.environ.get("OPENBLAS_NUM_THREADS"))


def summary_lines(rhs):
    return [f"rhs at n=1000, d=50, width=128: {rhs['seconds_per_rhs'] * 1e3:.2f} ms per rhs (one-step flow / "
            f"{rhs['n_rhs']} rhs) vs NumPy two matmuls {rhs['numpy_two_matmuls'] * 1e3:.2f} ms "
            f"-> {rhs['ratio_rhs_to_matmuls']:.1f} x; C++ forward pass {rhs['cpp_forward_pass'] * 1e3:.2f} ms"]
