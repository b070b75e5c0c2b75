"""Is the limit of a flow a global, a local or not even a local max-margin network? `ff.analyze`, on cases of the
margin paper (Vardi, Shamir & Srebro) and the convex-geometry paper (Wang & Pilanci): two-layer nets, then deep
ones, and the verdict of the limit by the horizon rule (`analyze_limit`).

    python examples/02_analyze.py
FASTFLOW_EXAMPLE_SMALL=1 flows to log t = 30 instead of 1000 (analyze polishes the KKT point either way).
"""
import os

import numpy as np

import fastflow as ff
from fastflow.analysis import analyze_limit

SMALL = os.environ.get("FASTFLOW_EXAMPLE_SMALL") == "1"
LOG_T_MAX = 30.0 if SMALL else 1000.0


def limit_and_verdict(name, X, y, net, theta0):
    traj = ff.flow(net, (X, y), theta0, loss="exponential", log_t_max=LOG_T_MAX)
    report = ff.analyze(net, (X, y), traj.theta)
    print(f"{name}: {report.verdict}; ||theta~||^2 = {report.norm_sq:.6f} (margin 1), optimum ||theta*||^2 = "
          f"{report.global_value:.6f}, KKT residual {report.kkt_residual:.1e}, multipliers "
          f"{np.round(report.multipliers, 4)}")
    return report


# margin paper Thm 3.2: a KKT point with ||theta~||^2 = 8 that is not a local optimum (global: 3.8806)
X = np.array([[1.0, 0.25], [-1.0, 0.25]])
net = ff.two_layer(2, 2)
theta0 = net.join([np.array([[0.1, 1.0], [0.3, -2.0]]), np.array([[0.8, -0.6]])])
report = limit_and_verdict("Thm 3.2", X, np.ones(2), net, theta0)
# the certificate: a feasible point closer than eps with a smaller norm (and the same at eps/4, eps/16)
cert = report.certificate
print(f"  certificate: ||theta' - theta~|| = {cert.distance:.3g} <= {cert.radius:.3g}, ||theta'||^2 = "
      f"{cert.norm_sq:.9f} < {report.norm_sq:.9f}, min margin {cert.min_margin:.12f} ({cert.method})")
margins = net.forward(cert.theta, X)[:, 0]
assert np.all(margins >= 1 - 1e-12) and cert.theta @ cert.theta < report.norm_sq
print("  checked with net.forward: every margin >= 1")

# margin paper Lemma C.6: a local optimum (every pre-activation non-zero, Thm 4.3) that is not global
X = np.array([[1.0, 0.25], [-1.0, 0.25], [0.0, -1.0]])
theta0 = net.join([np.array([[0.0, 3.0], [0.0, -2.0]]), np.array([[3.0, 2.0]])])
limit_and_verdict("Lemma C.6", X, np.ones(3), net, theta0)

# convex-geometry paper App. F.2: from a small balanced initialisation the flow finds the global optimum,
# certified by the convex program over every activation pattern of X
X = np.array([[1.65, 0.47], [0.47, 1.35]])
wide = ff.two_layer(2, 4)
report = limit_and_verdict("App. F.2", X, np.ones(2), wide, ff.init.balanced(wide, 1e-3, rng=0))
print()
print(report)                                   # the whole evidence, per-layer verdicts included

W1, W2 = wide.split(report.theta_tilde)
print(f"\nrank of W1 {ff.rank(W1)}, stable rank {ff.stable_rank(W1):.4f}")

# deep nets, same call. Margin paper Thm 5.1: a depth-3 diagonal ReLU net on x = (1, 1) keeps every weight equal,
# 2^(-1/3) at margin 1, and is not a local optimum: rebalancing the two paths keeps the margin and lowers the norm
deep, one = ff.diagonal(2, depth=3), (np.ones((1, 2)), np.ones(1))
report = ff.analyze(deep, one, ff.flow(deep, one, np.ones(6), log_t_max=LOG_T_MAX).theta)
print(f"\nThm 5.1 (depth 3): {report.verdict}; ||theta~||^2 = {report.norm_sq:.6f} (6 * 2^(-2/3) = "
      f"{6 * 2 ** (-2 / 3):.6f}); certificate: {report.certificate.method}")

# Thm 3.1: a deep linear fully connected net converges to the global optimum, 3 ||u*||^(2/3) with u* = (0, 4) the
# SVM of Thm 3.2's data. analyze_limit flows on, doubling log t, until two horizons agree (else "undecided")
X = np.array([[1.0, 0.25], [-1.0, 0.25]])
lin = ff.fully_connected(2, [2, 2], activation="linear")
limit = analyze_limit(lin, (X, np.ones(2)), ff.init.xavier(lin, 0), log_t=8.0)
print(f"deep linear (Thm 3.1): {limit.verdict}; ||theta~||^2 = {limit.report.norm_sq:.6f} (3 * 4^(2/3) = "
      f"{3 * 4 ** (2 / 3):.6f})")
print(limit)
