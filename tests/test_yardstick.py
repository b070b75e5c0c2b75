"""fastflow against the slow SciPy yardstick (tests/reference.py, DOP853 at rtol 1e-12) on random problems."""
import numpy as np
import pytest

import fastflow as ff
from conftest import random_problem
from reference import reference_flow

LOSSES = ("exponential", "logistic", "square")
CASES = [(LOSSES[k % 3], k) for k in range(54)]


def compare(loss, seed, t_max=8.0):
    net, X, y, theta0 = random_problem(loss, 1000 + seed)
    W1, W2 = net.split(theta0)
    ref = reference_flow(X, y, W1, W2, loss, t_max)
    traj = ff.flow(net, (X, y), theta0, loss=loss, t_max=t_max, rtol=1e-12, atol=1e-14)
    return net, ref, traj


@pytest.mark.parametrize("loss,seed", CASES)
def test_agrees_with_yardstick(loss, seed):
    net, ref, traj = compare(loss, seed)
    assert traj.status in ("t_max", "stalled", "converged")
    np.testing.assert_allclose(traj.theta, ref["theta"], rtol=1e-8, atol=1e-8 * np.linalg.norm(ref["theta"]))
    events = traj.events[traj.events["kind"] != "branch"]  # the yardstick does not log branching points
    ours = [(str(e["kind"]), int(e["sample"]), int(e["layer"]), int(e["neuron"])) for e in events]
    theirs = [(kind, i, layer, j) for (_, kind, i, layer, j) in ref["events"]]
    assert ours == theirs
    np.testing.assert_allclose(events["t"], [e[0] for e in ref["events"]], rtol=1e-8, atol=1e-10)


def test_some_yardstick_cases_slide():
    slides = 0
    for loss, seed in CASES[:12]:
        _, ref, _ = compare(loss, seed)
        slides += any(e[1] == "slide_start" for e in ref["events"])
    assert slides >= 3
