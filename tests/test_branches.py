"""Unstable branches (docs/mathematics.md §2) are logged where they happen, the flow staying on its minimal-norm
solution: a neuron pinned at w_j = 0, and a sliding surface turning repulsive (D_ij = G_i . v_j changing sign). Each
is checked against a NumPy re-evaluation of w_j or D_ij along the flow's own dense output."""
import dataclasses

import numpy as np
import pytest

import fastflow as ff
from fastflow.fuzz_checks import Problem, check_branches, check_problem


def pinned_problem():
    # one neuron, two samples with x1 . x2 < 0: it slides on sample 1's surface, is carried along it to w = 0 as
    # sample 0's pre-activation reaches 0 too, and stays (0 is in its subdifferential; GD would leave)
    X, y = np.array([[1.0, 0.0], [-0.5, 1.0]]), np.array([-1.0, -1.0])
    return ff.two_layer(2, 1), X, y, np.array([0.3, 0.3, 1.0])


def test_a_neuron_pinned_at_zero_is_a_branch():
    net, X, y, theta0 = pinned_problem()
    run = ff.flow(net, (X, y), theta0, loss="square", t_max=20.0)
    branches = run.events[run.events["kind"] == "branch"]
    assert len(branches) == 1 and branches[0]["neuron"] == 0
    t = float(branches[0]["t"])
    grid = np.linspace(0.0, 20.0, 401)
    at = ff.flow(net, (X, y), theta0, loss="square", t_max=20.0, t_eval=grid)
    w = np.linalg.norm(at.theta_at[:, :2], axis=1)
    assert np.all(w[grid < 0.99 * t] > 1e-3)             # not before
    assert np.all(w[grid > t] <= 1e-12)                  # pinned from then on
    assert np.linalg.matrix_rank(X) == 2


def square_problem(seed):
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(5, 3)), rng.normal(size=5)
    net = ff.two_layer(3, 3)
    return net, X, y, ff.init.xavier(net, rng)


def D(net, X, y, theta, i, j):
    W1, W2 = net.split(theta)
    return (y[i] - net.forward(theta, X)[i, 0]) * W2[0, j]


@pytest.mark.parametrize("seed", [9, 36])
def test_a_sliding_surface_turning_repulsive_is_a_branch(seed):
    net, X, y, theta0 = square_problem(seed)
    run = ff.flow(net, (X, y), theta0, loss="square", t_max=300.0)
    branches = run.events[run.events["kind"] == "branch"]
    assert len(branches) == 1
    i, j, t = int(branches[0]["sample"]), int(branches[0]["neuron"]), float(branches[0]["t"])
    # D changes sign there, from attracting (< 0) to repelling
    around = ff.flow(net, (X, y), theta0, loss="square", t_max=1.01 * t, t_eval=[t * (1 - 1e-4), t * (1 + 1e-4)])
    before, after = (D(net, X, y, th, i, j) for th in around.theta_at)
    assert before < -1e-7 and after > 1e-7
    # and nowhere else while the pair slides: D re-evaluated on a dense grid keeps its sign between the pair's
    # slide_start and slide_end except across t
    ev = run.events[(run.events["sample"] == i) & (run.events["neuron"] == j)]
    start = float(ev[ev["kind"] == "slide_start"]["t"][-1])
    ends = ev[(ev["kind"] == "slide_end") & (ev["t"] > start)]["t"]
    end = float(ends[0]) if len(ends) else float(run.t)
    grid = np.linspace(start, end, 402)[1:-1]
    dense = ff.flow(net, (X, y), theta0, loss="square", t_max=300.0, t_eval=grid)
    signs = np.sign([D(net, X, y, th, i, j) for th in dense.theta_at])
    assert np.all(signs[grid < t * (1 - 1e-4)] < 0) and np.all(signs[grid > t * (1 + 1e-4)] > 0)


def test_the_fuzz_checker_flags_a_branch_that_is_none():
    net, X, y, theta0 = square_problem(9)
    problem = Problem(net, X, y, theta0, "square", 300.0)
    traj, violations = check_problem(problem)
    assert violations == []
    events = traj.events.copy()
    fake = events[events["kind"] == "branch"].copy()
    fake["t"] = 0.5 * fake["t"]                          # the same pair, long before its surface turns
    traj = dataclasses.replace(traj, events=np.sort(np.concatenate([events, fake]), order="t"))
    again = problem.run(t_eval=np.unique(traj.events["t"]))
    found = check_branches(net, X, y, "square", traj, again, problem.rtol, problem.atol)
    assert [v.kind for v in found] == ["unexplained_branch"]
