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


def test_samples_on_one_surface_take_one_slope():
    # Samples 0 and 1 have parallel inputs (x_1 = 2 x_0), so every unit's surface is one for both and they cross it
    # together: near it the loss has two pieces, and its Clarke set is the segment between the fields with both
    # inactive and both active, not the square of each sample's own two sides (a gradient-descent path sees both on
    # or both off: the fuzz draw 18:40 test in test_branches.py). With equal labels their corner fields are parallel
    # and the two sets have one minimal-norm point; with opposite ones, not.
    rng = np.random.default_rng(3)
    net = ff.fully_connected(3, [4, 4])
    X = rng.normal(size=(4, 3))
    X[1] = 2.0 * X[0]
    y = np.array([1.0, -1.0, -1.0, 1.0])  # opposite labels: one sample's side pulls against the other's
    data, Y, _, _, core = _problem(net, (X, y), "logistic", FlowOptions.from_kwargs("flow", {}))
    shared = [(0, 5), (1, 5)]
    theta = on_surfaces(net, data.X, ff.init.xavier(net, rng), shared)
    modes = np.where(net._core.preactivations(theta, data.X) > 0, ACTIVE, INACTIVE).reshape(len(X), -1)
    corners = {}
    for choice in itertools.product((INACTIVE, ACTIVE), repeat=2):
        corner = modes.copy()
        for (i, u), mode in zip(shared, choice):
            corner[i, u] = mode
        corners[choice] = velocity(net, data.X, Y, core, theta, corner)
    on_surface = modes.copy()
    for i, u in shared:
        on_surface[i, u] = SLIDING
    got = velocity(net, data.X, Y, core, theta, on_surface)
    scale = np.abs(np.array(list(corners.values()))).max()
    segment = min_norm_in_hull(np.array([corners[INACTIVE, INACTIVE], corners[ACTIVE, ACTIVE]]))
    square = min_norm_in_hull(np.array(list(corners.values())))
    assert np.linalg.norm(segment - square) > 1e-2 * scale  # the two sets have different minimal-norm points
    np.testing.assert_allclose(got, segment, rtol=0, atol=1e-6 * scale)


def dead_path_problem(flat=None, seed=7):
    """Sample 0's first layer is inactive but for units 0 and 1 on their surfaces, so the layer above gets no input;
    flat = (r, c): unit r of the layer above has weight exactly 0 from unit c."""
    rng = np.random.default_rng(seed)
    net = ff.fully_connected(3, [4, 5])
    X, y = rng.normal(size=(4, 3)), np.array([1.0, -1.0, 1.0, -1.0])
    data, Y, _, _, core = _problem(net, (X, y), "logistic", FlowOptions.from_kwargs("flow", {}))
    W1, W2, W3 = net.split(ff.init.xavier(net, rng))
    x = data.X[0]
    for u, target in ((0, 0.0), (1, 0.0), (2, -1.0), (3, -0.5)):
        W1[u] += (target - W1[u] @ x) / (x @ x) * x
    W2[:, :2] = [[1.0, -0.4], [-0.3, 1.0], [0.8, 0.7], [-0.6, -0.9], [0.5, -0.2]]  # sign changes along the ratio
    if flat:
        W2[flat] = 0.0
    theta = net.join([W1, W2, W3])
    h = net._core.preactivations(theta, data.X).reshape(len(X), -1)
    others = np.delete(h, 0, axis=0)
    assert np.all(h[0, 4:] == 0.0) and np.all((np.abs(others) > 1e-3) | (others == 0.0))
    return net, data.X, Y, core, theta, h


def region_fields(net, X, Y, core, theta, radius=1e-9):
    """The fields at theta of every region met on a circle around it in the plane of sample 0's units 0 and 1's
    normals: each with the slopes the pre-activations have there (the limits of the gradients in that region)."""
    normals = []
    for u in (0, 1):
        n = [np.zeros_like(m) for m in net.split(theta)]
        n[0][u] = X[0]
        normals.append(net.join(n))
    # (also close to each axis: a kink next to one leaves its region a sliver of angle)
    offsets = np.logspace(-10, -2, 81)
    near_axes = np.add.outer(np.arange(4) * np.pi / 2, np.concatenate([-offsets, offsets]))
    fields = {}
    for angle in np.concatenate([np.linspace(0.0, 2.0 * np.pi, 4001), near_axes.ravel()]):
        near = theta + radius * (np.cos(angle) * normals[0] + np.sin(angle) * normals[1])
        modes = np.where(net._core.preactivations(near, X) > 0, ACTIVE, INACTIVE).reshape(len(X), -1)
        fields.setdefault(modes.tobytes(), velocity(net, X, Y, core, theta, modes))
    return list(fields.values())


def sliding_velocities(net, X, Y, core, theta, h):
    """The kernel's velocity with sample 0's units 0 and 1 sliding, for either side the dead path holds (they must
    not matter)"""
    base = np.where(h > 0, ACTIVE, INACTIVE)
    base[0, :2] = SLIDING
    for sides in (INACTIVE, ACTIVE):
        modes = base.copy()
        modes[0, 4:] = sides
        yield velocity(net, X, Y, core, theta, modes)


def test_a_dead_path_above_two_sliding_units_takes_every_piece_they_open():
    """As the two units grow from 0 in any ratio the layer above takes that ratio's piece of the path. The Clarke
    set is the hull of the fields of every region around the point (sampled on a circle); its minimal-norm point is
    the velocity, whatever sides the dead path holds."""
    net, X, Y, core, theta, h = dead_path_problem()
    corners = np.array(region_fields(net, X, Y, core, theta))
    assert len(corners) > 4  # more pieces than the four corners of the two units' slopes
    want = min_norm_in_hull(corners)
    for got in sliding_velocities(net, X, Y, core, theta, h):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(corners).max())


def test_a_unit_of_a_dead_path_at_zero_along_a_seed_takes_both_sides():
    """Unit 1 above has weight exactly 0 from unit 0: while unit 0 grows alone it stays at 0, on its surface, and
    while both grow its kink sits at the end of their ratios where unit 0 is alone. The Clarke set holds the regions
    on both sides of it: those met around the point once that weight is +-1e-8 (the point's neighbourhood in
    parameter space), one of them a sliver of angle next to unit 0's axis. Taking the side of growing ratios alone
    left a minimal-norm point 1e-2 off."""
    net, X, Y, core, theta, h = dead_path_problem(flat=(1, 0))
    mats = net.split(theta)
    corners = []
    for nudge in (1e-8, -1e-8):
        mats[1][1, 0] = nudge
        nudged = net.join(mats)
        others = np.delete(net._core.preactivations(nudged, X).reshape(len(X), -1), 0, axis=0)
        assert np.array_equal(others > 0, np.delete(h, 0, axis=0) > 0)  # no other sample's region changes
        corners += region_fields(net, X, Y, core, nudged, radius=1e-6)
    corners = np.array(corners)
    want = min_norm_in_hull(corners)
    for got in sliding_velocities(net, X, Y, core, theta, h):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(corners).max())
