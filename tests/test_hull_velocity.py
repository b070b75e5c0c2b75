"""A deeper net's sliding velocity (the hull's minimal-norm point, sliding.hpp) against the definition: the
minimal-norm point of the convex hull of the fields at every corner of the sliding units' slope box, each corner's
field evaluated by the kernel with those units put active or inactive, and the point found by a conic solver."""
import itertools

import cvxpy as cp
import numpy as np
import pytest

import fastflow as ff
from fastflow import _core
from fastflow.flow import FlowOptions, _problem

INACTIVE, ACTIVE, SLIDING = (_core.MODES.index(m) for m in ("inactive", "active", "sliding"))


def velocity(net, X, Y, core, theta, modes):
    return _core.velocity(net._core, X, Y, core, theta, 0.5, modes.astype(np.int32).ravel())


def min_norm_in_hull(corners):
    weights = cp.Variable(len(corners), nonneg=True)
    problem = cp.Problem(cp.Minimize(cp.sum_squares(corners.T @ weights)), [cp.sum(weights) == 1])
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-14, tol_gap_rel=1e-14, tol_feas=1e-14)
    return corners.T @ weights.value


def on_surfaces(net, X, theta, sliding):
    """theta with the pre-activation of every (sample, unit) of `sliding` at 0, layer by layer: each unit's incoming
    weights lose their component along the sample's input to its layer."""
    mats = net.split(theta)
    widths = [m.shape[0] for m in mats[:-1]]
    for layer in range(len(widths)):
        inputs = X if layer == 0 else np.maximum(net.preactivations(net.join(mats), X)[layer - 1], 0.0)
        first = sum(widths[:layer])
        for i, u in sliding:
            if first <= u < first + widths[layer]:
                row, x = mats[layer][u - first], inputs[i]
                mats[layer][u - first] = row - (row @ x) / (x @ x) * x
    theta = net.join(mats)
    h = np.hstack(net.preactivations(theta, X))
    assert all(abs(h[i, u]) < 1e-12 for i, u in sliding)
    return theta


@pytest.mark.parametrize("widths, sliding, seed", [
    ([6, 3], [(0, 0), (0, 1), (0, 2), (0, 4)], 4),             # one sample, one layer: its corner by sign
    ([3, 3], [(0, 0), (0, 2), (0, 3), (0, 5)], 4),             # one sample across two layers: the enumerated search
    ([4, 4], [(0, 1), (0, 4), (2, 0), (2, 2), (2, 5)], 1),     # two samples: a Minkowski sum of their hulls
])
def test_sliding_velocity_is_the_minimal_norm_point_of_the_corner_fields(widths, sliding, seed):
    rng = np.random.default_rng(seed)
    net = ff.fully_connected(3, widths)
    X, y = rng.normal(size=(4, 3)), np.array([1.0, -1.0, 1.0, -1.0])
    data, Y, _, _, core = _problem(net, (X, y), "logistic", FlowOptions.from_kwargs("flow", {}))
    theta = on_surfaces(net, data.X, ff.init.xavier(net, rng), sliding)
    modes = np.where(net._core.preactivations(theta, data.X) > 0, ACTIVE, INACTIVE).reshape(len(X), -1)
    on_surface = modes.copy()
    for i, u in sliding:
        on_surface[i, u] = SLIDING
    corners = []
    for choice in itertools.product((INACTIVE, ACTIVE), repeat=len(sliding)):
        corner = modes.copy()
        for (i, u), mode in zip(sliding, choice):
            corner[i, u] = mode
        corners.append(velocity(net, data.X, Y, core, theta, corner))
    corners = np.array(corners)
    assert np.ptp(corners, axis=0).max() > 1e-2  # the slopes matter
    want = min_norm_in_hull(corners)
    got = velocity(net, data.X, Y, core, theta, on_surface)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(corners).max())
