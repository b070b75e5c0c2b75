"""Flows that converge to a finite point (docs/mathematics.md §5): slides end only on exits proven beyond the
state's noise, and a square-loss flow ends "converged" once its field is within that noise, whatever t_max is."""
import collections

import numpy as np

import fastflow as ff


def chattering_problem(seed=1000, n=20, d=5, width=16):
    """Random targets, Xavier init: before exits had to be proven, seed 1000 logged ~4,500 slide_start/slide_end
    pairs on each of two switches as its residuals vanished, and took ~34,000 steps to converge at t = 167."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    net = ff.two_layer(d, width)
    return net, X, y, ff.init.xavier(net, rng)


def slides_per_switch(traj):
    starts = traj.events[traj.events["kind"] == "slide_start"]
    return collections.Counter(zip(starts["sample"].tolist(), starts["neuron"].tolist()))


def test_vanishing_residuals_do_not_chatter():
    net, X, y, theta0 = chattering_problem()
    traj = ff.flow(net, (X, y), theta0, loss="square", t_max=1000.0)
    assert traj.status == "converged", traj.message
    assert traj.loss < 1e-12
    assert max(slides_per_switch(traj).values()) <= 20
    assert traj.n_steps < 20_000


def test_settled_point_agrees_with_a_tighter_run():
    """The noise floor scales with the tolerance: a run at rtol 1e-13 settles ~1000x closer to the limit, and the
    default run's point lies within its own resolution (a few 1e-8 relative here) of it."""
    net, X, y, theta0 = chattering_problem()
    loose = ff.flow(net, (X, y), theta0, loss="square", t_max=1000.0)
    tight = ff.flow(net, (X, y), theta0, loss="square", t_max=1000.0, rtol=1e-13, atol=1e-15)
    assert tight.status == "converged", tight.message
    assert np.linalg.norm(loose.theta - tight.theta) <= 1e-6 * np.linalg.norm(tight.theta)
    assert max(slides_per_switch(tight).values()) <= 20


def test_settled_run_costs_the_same_whatever_t_max():
    net, X, y, theta0 = chattering_problem(seed=1004)
    short, long = (ff.flow(net, (X, y), theta0, loss="square", t_max=t_max) for t_max in (500.0, 1e6))
    assert short.status == long.status == "converged"
    assert short.t == long.t and short.n_steps == long.n_steps and short.n_rhs == long.n_rhs
    np.testing.assert_array_equal(short.theta, long.theta)


def test_explicit_gtol_is_the_only_stop():
    """gtol given: no settling at the noise floor (a run asked for ||grad L|| <= 1e-30 goes on to t_max)."""
    net, X, y, theta0 = chattering_problem(seed=1004)
    traj = ff.flow(net, (X, y), theta0, loss="square", t_max=60.0, gtol=1e-30)
    assert traj.status == "t_max", traj.message
    settled = ff.flow(net, (X, y), theta0, loss="square", t_max=60.0)
    assert settled.status == "converged" and settled.t < 60.0
