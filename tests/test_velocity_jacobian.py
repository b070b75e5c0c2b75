"""The Jacobian of the velocity that the implicit steps use (exact: Hessians, and on a deeper net's sliding set the
derivative of the hull's minimal-norm point with its corral held fixed), against central differences of the kernel's
own velocity at states a flow reached just after a slide started, along directions tangent to the sliding surfaces."""
import numpy as np
import pytest

import fastflow as ff
from fastflow import _core
from fastflow.flow import FlowOptions, _problem

SLIDING = _core.MODES.index("sliding")
ACTIVE = _core.MODES.index("active")


def velocity_and_jacobian(net, X, Y, core, theta, tau, modes):
    return _core.velocity_jacobian(net._core, X, Y, core, theta, tau, modes.astype(np.int32).ravel())


def state_just_after_slide_start(net, X, y, loss, theta0, nth):
    events = ff.flow(net, (X, y), theta0, loss=loss, t_max=50.0).events
    starts = events[events["kind"] == "slide_start"]
    t = starts[nth]["t"] * (1 + 1e-6) + 1e-9
    run = ff.flow(net, (X, y), theta0, loss=loss, t_max=t)
    assert (run.modes == SLIDING).any()
    return run.theta, run.modes, t


CASES = [([5], 3, "square", 2), ([3, 3], 1, "exponential", 2), ([4, 4], 2, "square", 0), ([3, 3, 3], 5, "logistic", 0)]


@pytest.mark.parametrize("widths, seed, loss, nth", CASES)
def test_jacobian_matches_differences_of_the_velocity_while_sliding(widths, seed, loss, nth):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(8, 3))
    y = rng.normal(size=8) if loss == "square" else rng.choice([-1.0, 1.0], 8)
    net = ff.fully_connected(3, widths)
    theta, modes, t = state_just_after_slide_start(net, X, y, loss, ff.init.xavier(net, rng), nth)
    data, Y, time, _, core = _problem(net, (X, y), loss, FlowOptions.from_kwargs("flow", {}))
    tau = float(time.tau(t))
    _, J = velocity_and_jacobian(net, data.X, Y, core, theta, tau, modes)
    # tangent directions: off the normals of the sliding switches
    N = net._core.switch_normals(theta, data.X, (modes == ACTIVE).astype(float)).reshape(-1, net.n_params)
    N = N[(modes == SLIDING).ravel()]
    P = np.eye(net.n_params) - N.T @ np.linalg.pinv(N.T)
    step = 1e-6 * np.linalg.norm(theta)
    for _ in range(3):
        direction = P @ rng.normal(size=net.n_params)
        direction /= np.linalg.norm(direction)
        plus, _ = velocity_and_jacobian(net, data.X, Y, core, theta + step * direction, tau, modes)
        minus, _ = velocity_and_jacobian(net, data.X, Y, core, theta - step * direction, tau, modes)
        differences = P @ (plus - minus) / (2 * step)
        assert np.linalg.norm(differences) > 0.1
        np.testing.assert_allclose(J @ direction, differences, rtol=0, atol=1e-8 * np.linalg.norm(differences))


@pytest.mark.parametrize("make", [lambda: ff.fully_connected(2, [3, 3]), lambda: ff.diagonal(2, 3),
                                  lambda: ff.conv_disjoint(2, 2), lambda: ff.fully_connected(2, [3], bias=True)])
def test_jacobian_matches_differences_of_the_velocity_off_the_surfaces(make):
    net = make()
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(6, net.d_in)), rng.choice([-1.0, 1.0], 6)
    theta = rng.normal(size=net.n_params)
    data, Y, _, _, core = _problem(net, (X, y), "logistic", FlowOptions.from_kwargs("flow", {}))
    modes = np.where(net._core.preactivations(theta, data.X) > 0, ACTIVE, _core.MODES.index("inactive"))
    _, J = velocity_and_jacobian(net, data.X, Y, core, theta, 0.7, modes)
    step = 1e-6
    differences = np.stack([(velocity_and_jacobian(net, data.X, Y, core, theta + step * e, 0.7, modes)[0]
                             - velocity_and_jacobian(net, data.X, Y, core, theta - step * e, 0.7, modes)[0])
                            / (2 * step) for e in np.eye(net.n_params)], axis=1)
    np.testing.assert_allclose(J, differences, rtol=0, atol=1e-7 * np.abs(differences).max())


@pytest.mark.parametrize("evaluate", [_core.velocity, _core.velocity_jacobian])
def test_velocity_jacobian_rejects_bad_modes(evaluate):
    net = ff.fully_connected(2, [3, 3])
    data, Y, _, _, core = _problem(net, (np.eye(2), np.ones(2)), "exponential", FlowOptions.from_kwargs("flow", {}))
    with pytest.raises(ValueError, match="modes must"):
        evaluate(net._core, data.X, Y, core, np.ones(net.n_params), 0.0, np.zeros(5, np.int32))
    with pytest.raises(ValueError, match="modes must be in MODES"):
        evaluate(net._core, data.X, Y, core, np.ones(net.n_params), 0.0, np.full(12, 7, np.int32))
    with pytest.raises(ValueError, match="theta must"):
        evaluate(net._core, data.X, Y, core, np.ones(3), 0.0, np.zeros(12, np.int32))
