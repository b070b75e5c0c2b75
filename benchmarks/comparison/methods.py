"""The methods compare.py runs (GD in NumPy and PyTorch, the SciPy yardstick, fastflow's events) and the time limits
that stop them. Each method returns dict(theta, events or first_switch, status)."""
import signal
import sys
import time
from pathlib import Path

import numpy as np

from . import config
from .config import GD_LR


# time limits (SIGALRM): the yardstick is pure Python, so the alarm's exception stops it; fastflow polls signals
# every 50 ms and returns the run so far with status "interrupted"


class TimeLimit(Exception):
    pass


def _alarm(signum, frame):
    raise TimeLimit()


def with_time_limit(seconds, fn):
    if not seconds or not hasattr(signal, "SIGALRM"):
        return fn()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def loss_gradient_numpy(phi, y, loss):
    """dL/dPhi (n, d_out) for L = sum_i l(y_i Phi_i) (classification, d_out = 1) or 1/2 |Phi - Y|^2."""
    if loss == "square":
        return phi - y
    q = y * phi[:, 0]
    if loss == "exponential":
        return (-y * np.exp(-q))[:, None]
    return (-y * 0.5 * (1.0 - np.tanh(0.5 * q)))[:, None]  # -y / (1 + e^q), overflow-free


def gd_numpy(X, y, W1, W2, loss, t_max, lr=GD_LR, steps=None, track_switches=True):
    """Full-batch GD with step lr for round(t_max / lr) steps; (H > 0) is relu' with relu'(0) = 0. Also records the
    first time (k * lr) each pre-activation h_ij changes sign, and how often it does (chattering = GD's sliding);
    track_switches=False leaves that out, so each step is a plain epoch (forward + backward + update)."""
    steps = int(round(t_max / lr)) if steps is None else steps
    W1, W2 = W1.copy(), W2.copy()
    prev = X @ W1.T > 0
    prev_code = prev.tobytes()
    first = np.full(prev.size, np.nan)
    flips = np.zeros(prev.size, dtype=np.int64)
    for k in range(steps):
        H = X @ W1.T
        M = H > 0
        if track_switches:
            code = M.tobytes()
            if code != prev_code:  # cheap test; the bookkeeping runs only when the pattern changed
                changed = (M != prev).ravel()
                flips += changed
                first[changed & np.isnan(first)] = k * lr
                prev, prev_code = M, code
        A = np.maximum(H, 0.0)
        R = loss_gradient_numpy(A @ W2.T, y, loss)
        dW1 = ((R @ W2) * M).T @ X
        W2 -= lr * (R.T @ A)
        W1 -= lr * dW1
    return dict(W1=W1, W2=W2, first_switch=first, flips=flips, status=f"{steps} steps")


def load_torch():
    try:
        import torch
        torch.set_num_threads(1)
        return torch, None
    except Exception as exc:  # noqa: BLE001 - not installed, or broken
        return None, f"import torch failed: {exc!r}"


def gd_torch(torch, X, y, W1, W2, loss, t_max, lr=GD_LR, steps=None):
    """gd_numpy in PyTorch (CPU, float64), final state only (no event bookkeeping)."""
    steps = int(round(t_max / lr)) if steps is None else steps
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    W1, W2 = torch.as_tensor(W1).clone(), torch.as_tensor(W2).clone()
    with torch.no_grad():
        for _ in range(steps):
            H = X @ W1.T
            M = (H > 0).to(H.dtype)
            A = H * M
            phi = A @ W2.T
            if loss == "square":
                R = phi - y
            else:
                q = y * phi[:, 0]
                w = torch.exp(-q) if loss == "exponential" else torch.sigmoid(-q)
                R = (-y * w)[:, None]
            dW1 = ((R @ W2) * M).T @ X
            W2 -= lr * (R.T @ A)
            W1 -= lr * dW1
    return dict(W1=W1.numpy(), W2=W2.numpy(), status=f"{steps} steps")


def load_reference():
    """The SciPy yardstick tests/reference.py, or (None, reason)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
    try:
        import reference
        config.SQUARE_GTOL = getattr(reference, "GTOL", config.SQUARE_GTOL)
        return reference.reference_flow, None
    except Exception as exc:  # noqa: BLE001
        return None, f"import failed: {exc!r}"


def ff_events(tr):
    return [(float(e["t"]), str(e["kind"]), int(e["sample"]), int(e["layer"]), int(e["neuron"]))
            for e in tr.events if e["kind"] != "branch"]  # "branch" marks a slide, the yardstick has no such kind
