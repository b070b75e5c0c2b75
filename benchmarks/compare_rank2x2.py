"""fastflow vs. small-step gradient descent vs. the SciPy yardstick on the rank paper's 2x2 example.

Setup: x1 = (1, 0.99)/|.|, x2 = (-1, 0.99)/|.| (rows of X), Y = I, Phi(x) = W2 relu(W1 x) with two hidden
neurons, square loss 1/2 sum |Phi(x_i) - y_i|^2, rows of W1 and columns of W2 uniform on the sphere of radius
1e-4, horizon t = 300. Full-batch GD with step 1e-4 for 3e6 steps approximates the same flow (relu'(0) = 0).

    python compare_rank2x2.py [--runs 20] [--gd-runs 2]

Prints a table and writes results/compare_rank2x2.json next to this script.
"""
import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

import fastflow as ff

HERE = Path(__file__).resolve().parent
T_MAX, RADIUS, LOSS_OK = 300.0, 1e-4, 1e-4


def problem():
    x1, x2 = np.array([1.0, 0.99]), np.array([-1.0, 0.99])
    X = np.vstack([x1 / np.linalg.norm(x1), x2 / np.linalg.norm(x2)])
    return ff.two_layer(2, 2, 2, "relu"), X, np.eye(2)


def square_loss(X, Y, W1, W2):
    R = np.maximum(X @ W1.T, 0.0) @ W2.T - Y
    return 0.5 * float(np.sum(R * R))


def gd(X, Y, W1, W2, lr, steps):
    """Plain full-batch gradient descent; (H > 0) is relu' with relu'(0) = 0."""
    W1, W2 = W1.copy(), W2.copy()
    for _ in range(steps):
        H = X @ W1.T
        A = np.maximum(H, 0.0)
        R = A @ W2.T - Y
        dW1 = ((R @ W2) * (H > 0)).T @ X
        W2 -= lr * (R.T @ A)
        W1 -= lr * dW1
    return W1, W2


def load_reference():
    """The SciPy yardstick in tests/reference.py, or (None, reason) if it is missing or broken."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    try:
        from reference import reference_flow
        return reference_flow, None
    except Exception as exc:  # a colleague may still be writing it
        return None, f"import failed: {exc!r}"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20, help="seeds 0..runs-1 for fastflow and the yardstick")
    ap.add_argument("--gd-runs", type=int, default=2, help="seeds for GD (~45 s each)")
    ap.add_argument("--gd-steps", type=int, default=3_000_000)
    ap.add_argument("--gd-lr", type=float, default=1e-4)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "compare_rank2x2.json")
    args = ap.parse_args()

    net, X, Y = problem()
    inits = [ff.init.sphere(net, RADIUS, seed) for seed in range(args.runs)]
    flow = lambda th: ff.flow(net, (X, Y), th, loss="square", t_max=T_MAX, rtol=1e-10, atol=1e-14)  # noqa: E731
    flow(inits[0])  # warm-up, so the first timed run does not pay one-off costs

    runs = {"fastflow": [], "reference": [], "gd": []}
    for seed, th in enumerate(inits):
        tr, dt = timed(lambda: flow(th))
        runs["fastflow"].append(dict(seed=seed, time=dt, theta=tr.theta, status=tr.status, loss=tr.loss))

    reference_flow, ref_error = load_reference()
    if reference_flow is not None:
        try:
            for seed, th in enumerate(inits):
                W1, W2 = net.split(th)
                r, dt = timed(lambda: reference_flow(X, Y, W1, W2, "square", T_MAX, activation="relu", rtol=1e-12,
                                                     atol=1e-14))
                w1, w2 = net.split(r["theta"])
                runs["reference"].append(dict(seed=seed, time=dt, theta=r["theta"], status=r["status"],
                                              loss=square_loss(X, Y, w1, w2)))
        except Exception:
            ref_error = "run failed:\n" + traceback.format_exc()
            runs["reference"] = []
    if ref_error:
        print(f"SciPy yardstick skipped ({ref_error})")

    for seed, th in enumerate(inits[:args.gd_runs]):
        (W1, W2), dt = timed(lambda: gd(X, Y, *net.split(th), args.gd_lr, args.gd_steps))
        runs["gd"].append(dict(seed=seed, time=dt, theta=net.join([W1, W2]), status="steps",
                               loss=square_loss(X, Y, W1, W2)))

    # Compare against the yardstick when it ran, else against fastflow itself.
    ref_name = "reference" if runs["reference"] else "fastflow"
    ref_theta = {r["seed"]: r["theta"] for r in runs[ref_name]}
    ff_time = np.mean([r["time"] for r in runs["fastflow"]])
    summary = {}
    print(f"\nrank paper 2x2, t = {T_MAX:g}; theta compared with: {ref_name}")
    print(f"{'method':<10} {'runs':>4} {'time/run [s]':>13} {'x fastflow':>11} {'max|dtheta|':>12} "
          f"{'loss<1e-4':>9}")
    for name, rs in runs.items():
        if not rs:
            continue
        for r in rs:
            r["dtheta"] = float(np.max(np.abs(r["theta"] - ref_theta[r["seed"]])))
        t = float(np.mean([r["time"] for r in rs]))
        s = dict(runs=len(rs), time_per_run=t, ratio_to_fastflow=t / ff_time,
                 max_dtheta=max(r["dtheta"] for r in rs), n_loss_below=sum(r["loss"] < LOSS_OK for r in rs))
        summary[name] = s
        print(f"{name:<10} {s['runs']:>4} {t:>13.3e} {s['ratio_to_fastflow']:>11.3g} {s['max_dtheta']:>12.2e} "
              f"{s['n_loss_below']:>5}/{s['runs']}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = dict(setup=dict(t_max=T_MAX, radius=RADIUS, loss_threshold=LOSS_OK, gd_lr=args.gd_lr,
                             gd_steps=args.gd_steps, fastflow=dict(rtol=1e-10, atol=1e-14),
                             reference=dict(rtol=1e-12, atol=1e-14)),
                  theta_compared_with=ref_name, reference_error=ref_error, summary=summary,
                  runs={k: [dict(r, theta=r["theta"].tolist()) for r in rs] for k, rs in runs.items()})
    args.out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
