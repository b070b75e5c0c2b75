"""Activation patterns, exactly, and the convex program of two-layer ReLU max-margin training.

`ff.arrangements(X)` lists the activation pattern 1[Xw > 0] of every cell of the hyperplane arrangement
{w : x_i . w = 0} (Cover's count in general position), `ff.sign_patterns(X)` every sign vector sign(Xw).
`ff.convex_max_margin(X, y)` solves the convex-geometry paper's program (Wang & Pilanci, Prop. 2) over all of them:
its value is 1/2 ||theta*||^2 of the max-margin two-layer ReLU network, and its blocks are the optimal neurons.

    python examples/05_arrangements_convex.py
FASTFLOW_EXAMPLE_SMALL=1 enumerates 40 points in R^3 instead of 100 points in R^4.
"""
import os
from math import comb

import numpy as np

import fastflow as ff

SMALL = os.environ.get("FASTFLOW_EXAMPLE_SMALL") == "1"

# general position: the count is Cover's 2 sum_{k<d} C(n-1, k); random gates would find only part of them
n, d = (40, 3) if SMALL else (100, 4)
X = np.random.default_rng(0).standard_normal((n, d))
cells = ff.arrangements(X)
cover = 2 * sum(comb(n - 1, k) for k in range(d))
print(f"{n} points in R^{d}: {len(cells)} activation patterns (Cover: {cover})")
assert len(cells) == cover
gates = np.random.default_rng(1).standard_normal((d, 10_000))
sampled = np.unique((X @ gates > 0).T, axis=0)
print(f"  10,000 random gates find {len(sampled)} of them ({100 * len(sampled) / len(cells):.0f}%)")

# degenerate data: repeated, antiparallel and zero rows are handled exactly
Xd = np.array([[1.0, 0.0], [2.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
print("degenerate 2-D data: cells\n", ff.arrangements(Xd).astype(int))
print("  sign vectors (faces, w = 0 included):", len(ff.sign_patterns(Xd)))

# the convex program on the margin paper's Thm 3.2 data: the global optimum has one neuron per point
X = np.array([[1.0, 0.25], [-1.0, 0.25]])
y = np.ones(2)
cvx = ff.convex_max_margin(X, y)
print(f"Thm 3.2 data: P* = {cvx.value:.6f}, so ||theta*||^2 = 2 P* = {2 * cvx.value:.6f} (the flow's KKT point: 8)")
for neuron in cvx.neurons:
    print(f"  neuron: output sign {neuron.sign:+d}, u = {np.round(neuron.u, 4)}, active on {neuron.pattern.astype(int)}")
print(f"  dual lambda = {np.round(cvx.dual, 4)}, max_(||u||<=1) |lambda^T (Xu)_+| = {cvx.dual_max:.6f} (<= 1: feasible)")

# the network the program describes: each block u is a neuron w = u / sqrt||u||, v = sign sqrt||u||
W1, W2 = cvx.weights()
net = ff.two_layer(2, cvx.width)
theta_star = net.join([W1, W2])
print(f"  as a network: margins {np.round(net.forward(theta_star, X)[:, 0], 6)}, ||theta||^2 = "
      f"{theta_star @ theta_star:.6f}")
