"""The models' weighted Hessians sum_i G_i d^2 Phi_i / dtheta^2 at fixed slopes (the exact Jacobian of the implicit
steps): against central differences of the per-sample Jacobians, which are polynomials in theta of degree depth - 1
for fixed slopes, so the differences are exact to rounding up to depth 3 and to O(step^2) beyond. Asked for some
rows (the Hessian) or some units (the switch normals), the bindings return those of the full result bit for bit."""
import numpy as np
import pytest

import fastflow as ff
from fastflow import _core

NETS = {
    "two-layer relu": lambda: ff.two_layer(3, 4),
    "two-layer linear, 2 outputs": lambda: ff.two_layer(2, 3, d_out=2, activation="linear"),
    "fc [4, 3] relu": lambda: ff.fully_connected(3, [4, 3]),
    "fc [3, 2, 2] relu, 2 outputs": lambda: ff.fully_connected(2, [3, 2, 2], d_out=2),
    "diagonal depth 4": lambda: ff.diagonal(3, 4),
    "conv, shared filter": lambda: ff.conv_disjoint(2, 3),
    "fc [3, 2] with biases": lambda: ff.fully_connected(2, [3, 2], bias=True),
    "skip connection": lambda: ff.Network([np.arange(1, 7).reshape(3, 2), np.arange(1, 4)[None, :]], skip=True),
}


@pytest.mark.parametrize("name", NETS)
def test_weighted_hessian_matches_differences_of_the_jacobian(name):
    net = NETS[name]()
    core = net._core
    rng = np.random.default_rng(len(name))
    n, p = 5, net.n_params
    theta, X = rng.normal(size=p), rng.normal(size=(n, net.d_in))
    G = rng.normal(size=(n, net.d_out))
    slopes = rng.uniform(size=(n, core.n_hidden))  # any Clarke combination, as while sliding
    slopes[0] = rng.integers(0, 2, size=core.n_hidden)

    def weighted_gradient(th):
        return np.einsum("ic,icp->p", G, core.jacobian(th, X, slopes))

    step = 1e-4
    fd = np.stack([(weighted_gradient(theta + step * e) - weighted_gradient(theta - step * e)) / (2 * step)
                   for e in np.eye(p)])
    Hess = core.hessian(theta, X, G, slopes)
    assert Hess.shape == (p, p)
    np.testing.assert_allclose(Hess, Hess.T, rtol=0, atol=1e-13)
    np.testing.assert_allclose(Hess, fd, rtol=0, atol=1e-7 * np.abs(fd).max())
    assert np.abs(Hess).max() > 0.1  # the comparison is not between zeros
    rows = rng.permutation(p)[:3]   # some rows alone, in any order: the same passes as in the full Hessian
    np.testing.assert_array_equal(core.hessian(theta, X, G, slopes, rows=rows), Hess[rows])


def test_hessian_without_slopes_uses_the_networks_own():
    net = ff.fully_connected(2, [3, 3])
    rng = np.random.default_rng(1)
    theta, X, G = rng.normal(size=net.n_params), rng.normal(size=(4, 2)), rng.normal(size=(4, 1))
    own = (net._core.preactivations(theta, X) > 0).astype(float)
    np.testing.assert_array_equal(net._core.hessian(theta, X, G), net._core.hessian(theta, X, G, own))


def test_two_layer_model_and_layered_model_agree():
    # the same net through the two C++ models: TwoLayer's hand-written Hessian and the layered one's dual numbers
    rng = np.random.default_rng(2)
    two = ff.two_layer(3, 4)._core
    layered = _core.Layered([3, 4, 1], [list(range(1, 13)), list(range(1, 5))])
    assert type(two) is not type(layered)
    theta, X, G = rng.normal(size=16), rng.normal(size=(6, 3)), rng.normal(size=(6, 1))
    slopes = rng.uniform(size=(6, 4))
    np.testing.assert_allclose(two.hessian(theta, X, G, slopes), layered.hessian(theta, X, G, slopes),
                               rtol=0, atol=1e-14)


def test_hessian_rejects_a_misshapen_G():
    net = ff.fully_connected(2, [3, 3])
    with pytest.raises(ValueError, match="G must be"):
        net._core.hessian(np.zeros(net.n_params), np.zeros((4, 2)), np.zeros((3, 1)))


def test_hessian_rejects_rows_outside_the_parameters():
    net = ff.fully_connected(2, [3, 3])
    theta, X, G = np.zeros(net.n_params), np.zeros((4, 2)), np.zeros((4, 1))
    assert net._core.hessian(theta, X, G, rows=[]).shape == (0, net.n_params)
    for bad in ([net.n_params], [-1]):
        with pytest.raises(ValueError, match="rows must be"):
            net._core.hessian(theta, X, G, rows=bad)


def test_switch_normals_of_some_units_are_those_of_all():
    net = ff.fully_connected(2, [3, 2, 2])
    rng = np.random.default_rng(3)
    theta, X = rng.normal(size=net.n_params), rng.normal(size=(4, 2))
    slopes = rng.integers(0, 2, size=(4, net._core.n_hidden)).astype(float)
    units = [5, 0, 3]
    N = net._core.switch_normals(theta, X, slopes)
    np.testing.assert_array_equal(net._core.switch_normals(theta, X, slopes, units=units), N[:, units])
    with pytest.raises(ValueError, match="units must be"):
        net._core.switch_normals(theta, X, slopes, units=[net._core.n_hidden])
