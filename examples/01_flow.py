"""The exact flow of a small ReLU network, on the margin paper's Thm 3.2 (Vardi, Shamir & Srebro).

Two points x = (+-1, 1/4) labelled +1, a two-layer ReLU network of width 2, the exponential loss. From this
initialisation neuron 0 is active on both points and neuron 1 dead on both, and the flow converges in direction to
(w1, w2, v) = (0, 1, 0, 0, 1, 0) / sqrt 2: a KKT point of the max-margin problem with normalized margin 1/8 that is
not a local optimum (example 02 proves it). Then a random problem, to see events.

    python examples/01_flow.py
FASTFLOW_EXAMPLE_SMALL=1 stops at log t = 50 instead of 1e6; FASTFLOW_EXAMPLE_OUT=DIR says where flow.png goes.
"""
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import fastflow as ff

SMALL = os.environ.get("FASTFLOW_EXAMPLE_SMALL") == "1"
OUT = Path(os.environ.get("FASTFLOW_EXAMPLE_OUT", "."))

X = np.array([[1.0, 0.25], [-1.0, 0.25]])
y = np.ones(2)
net = ff.two_layer(d_in=2, width=2)                       # Phi(x) = W2 relu(W1 x), theta = (W1, W2) flattened
theta0 = net.join([np.array([[0.1, 1.0], [0.3, -2.0]]), np.array([[0.8, -0.6]])])

# log_t_max: horizons far past float64 time (t = 1e30 is log t = 69); the cost grows with log log t
traj = ff.flow(net, (X, y), theta0, loss="exponential", log_t_max=50.0 if SMALL else 1e6)
print(f"status {traj.status}: log t = {traj.log_t:.6g} after {traj.n_steps} steps, {traj.n_events} events")
print(f"normalized margin {traj.margin:.6f} (limit 1/8); loss {traj.loss:.3e}")
print("direction", np.array2string(traj.direction, precision=4, suppress_small=True),
      "(limit (0, .7071, 0, 0, .7071, 0))")

# the exact flow conserves ||w_j||^2 - v_j^2 for every neuron, across events and sliding
(W1, W2), (W10, W20) = net.split(traj.theta), net.split(theta0)
drift = (np.sum(W1**2, axis=1) - W2[0]**2) - (np.sum(W10**2, axis=1) - W20[0]**2)
print(f"conservation ||w_j||^2 - v_j^2: largest change {np.max(np.abs(drift)):.1e} (||theta||^2 = "
      f"{traj.theta @ traj.theta:.1f})")

# dense samples: theta and the loss at given times t (here up to t = 1e12)
t_eval = np.logspace(-2, 12, 300)
dense = ff.flow(net, (X, y), theta0, t_max=t_eval[-1], t_eval=t_eval)
margins = np.array([np.min(y * net.forward(th, X)[:, 0]) / (th @ th) for th in dense.theta_at])

# a random problem (8 points labelled by a linear teacher) crosses switching surfaces: every crossing is an event,
# located exactly on the step's dense output; slides follow a surface (Filippov)
rng = np.random.default_rng(0)
Xr = rng.standard_normal((8, 2))
yr = np.sign(Xr @ np.array([1.0, -0.5]))
wide = ff.two_layer(2, 4)
random_run = ff.flow(wide, (Xr, yr), ff.init.xavier(wide, rng), log_t_max=20.0)
print(f"random problem: status {random_run.status}, {random_run.n_events} events; the first three:")
for e in random_run.events[:3]:
    print(f"  t = {e['t']:.6g}  {e['kind']:<11} sample {e['sample']} layer {e['layer']} neuron {e['neuron']}")
kinds, counts = np.unique(random_run.events["kind"], return_counts=True)
print("  by kind:", dict(zip(kinds.tolist(), counts.tolist())))

fig = Figure(figsize=(9, 3.5), layout="constrained")
ax1, ax2 = fig.subplots(1, 2)
ax1.loglog(dense.t_eval, dense.loss_at)
ax1.set(xlabel="t", ylabel="loss", title="Thm 3.2: loss along the exact flow")
ax2.semilogx(dense.t_eval, margins, label="min_i y_i Phi(x_i) / ||theta||^2")
ax2.axhline(1 / 8, color="k", ls="--", label="limit 1/8")
ax2.set(xlabel="t", ylabel="normalized margin", title="Thm 3.2: normalized margin")
ax2.legend(fontsize=8)
fig.savefig(OUT / "flow.png", dpi=100)
print(f"wrote {OUT / 'flow.png'}")
