"""The raw C++ bindings `fastflow._core`, tested apart from the public Python layer.

_core.TwoLayer(d_in, width, d_out, activation): a Model with n_params, d_in, d_out, n_hidden, forward(theta, X),
preactivations(theta, X); theta = [W1 (width x d_in) row-major, W2 (d_out x width) row-major].
_core.Options(): loss, tau_max, rtol, atol, max_steps, max_events, gtol, tau_eval (the kernel's run options).
_core.integrate(model, X, Y, theta0, options) -> dict;
_core.integrate_many(model, X, Y, thetas, options, threads) -> list of such dicts, one per row of thetas.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastflow import _core

RESULT_KEYS = {"status", "message", "tau", "theta", "log_loss", "log_grad_norm", "n_steps", "n_rejected", "n_rhs",
               "event_tau", "event_kind", "event_sample", "event_layer", "event_neuron", "theta_eval",
               "log_loss_eval", "modes", "balance_drift"}
N_STATUSES = 7  # converged, t_max, max_steps, max_events, stalled, interrupted, error
N_EVENT_KINDS = 5  # activate, deactivate, slide_start, slide_end, branch


def theta_of(W1, W2):
    return np.concatenate([W1.ravel(), W2.ravel()])


def relu(h):
    return np.maximum(h, 0.0)


def random_weights(rng, d_in, width, d_out):
    return rng.standard_normal((width, d_in)), rng.standard_normal((d_out, width))


def run_isolated(code):
    """Run `code` in a fresh interpreter: a crash there fails one test instead of killing the session."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, (f"the child interpreter failed with return code {proc.returncode} "
                                  f"(negative = killed by that signal)\nstderr:\n{proc.stderr[-3000:]}")
    return proc.stdout


# ----------------------------------------------------------------------------------------------------------
# TwoLayer: construction and properties

SHAPES = [(1, 1, 1), (2, 3, 1), (5, 7, 1), (3, 4, 2), (4, 2, 5)]


@pytest.mark.parametrize("activation", ["relu", "linear"])
@pytest.mark.parametrize("d_in, width, d_out", SHAPES, ids=[f"{a}-{b}-{c}" for a, b, c in SHAPES])
def test_two_layer_properties(d_in, width, d_out, activation):
    model = _core.TwoLayer(d_in, width, d_out, activation)
    assert isinstance(model, _core.Model)
    assert model.n_params == width * d_in + d_out * width
    assert model.d_in == d_in
    assert model.d_out == d_out
    assert model.n_hidden == (width if activation == "relu" else 0)
    for name in ("n_params", "d_in", "d_out", "n_hidden"):
        assert type(getattr(model, name)) is int


def test_two_layer_keyword_arguments_and_defaults():
    model = _core.TwoLayer(d_in=3, width=4)
    assert (model.d_in, model.d_out, model.n_hidden, model.n_params) == (3, 1, 4, 16)


def test_two_layer_properties_read_only():
    model = _core.TwoLayer(2, 3, 1, "relu")
    with pytest.raises(AttributeError):
        model.n_params = 5


@pytest.mark.parametrize("position, name", [(0, "d_in"), (1, "width"), (2, "d_out")])
def test_two_layer_zero_size(position, name):
    sizes = [2, 3, 1]
    sizes[position] = 0
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        _core.TwoLayer(*sizes, "relu")


@pytest.mark.parametrize("position", [0, 1, 2], ids=["d_in", "width", "d_out"])
def test_two_layer_negative_size_is_a_conversion_error(position):
    sizes = [2, 3, 1]
    sizes[position] = -1
    with pytest.raises(TypeError):
        _core.TwoLayer(*sizes, "relu")


@pytest.mark.parametrize("activation", ["tanh", "RELU", ""])
def test_two_layer_unknown_activation(activation):
    with pytest.raises(ValueError, match="activation"):
        _core.TwoLayer(2, 3, 1, activation)


# ----------------------------------------------------------------------------------------------------------
# forward and preactivations against NumPy

FWD_CASES = [(2, 3, 1, 5), (5, 8, 1, 20), (3, 4, 2, 7), (6, 10, 3, 1), (1, 1, 1, 3)]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("d_in, width, d_out, n", FWD_CASES, ids=[f"{a}-{b}-{c}-n{d}" for a, b, c, d in FWD_CASES])
def test_forward_matches_numpy(d_in, width, d_out, n, seed):
    rng = np.random.default_rng(seed)
    W1, W2 = random_weights(rng, d_in, width, d_out)
    X = rng.standard_normal((n, d_in))
    model = _core.TwoLayer(d_in, width, d_out, "relu")
    out = model.forward(theta_of(W1, W2), X)
    assert out.shape == (n, d_out) and out.dtype == np.float64
    expected = (W2 @ relu(W1 @ X.T)).T
    np.testing.assert_allclose(out, expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("d_in, width, d_out, n", FWD_CASES, ids=[f"{a}-{b}-{c}-n{d}" for a, b, c, d in FWD_CASES])
def test_preactivations_match_numpy(d_in, width, d_out, n, seed):
    rng = np.random.default_rng(seed)
    W1, W2 = random_weights(rng, d_in, width, d_out)
    X = rng.standard_normal((n, d_in))
    model = _core.TwoLayer(d_in, width, d_out, "relu")
    h = model.preactivations(theta_of(W1, W2), X)
    assert h.shape == (n, width) and h.dtype == np.float64
    np.testing.assert_allclose(h, X @ W1.T, rtol=1e-14, atol=1e-14)


# The square loss's field -grad L = sum_i (y_i - Phi_i) dPhi_i/dtheta with given slopes (the modes), against NumPy:
# every compile-time shape of the small nets' passes (d_in 1-4, d_out 1-2), and nets that take the tiled products
# (a small one without such a shape, larger ones, and the factored gradient of long rows)
FIELD_CASES = [(d, 3, c, 5) for d in (1, 2, 3, 4) for c in (1, 2)] + [(6, 4, 3, 4), (2, 2, 2, 40), (5, 16, 1, 10),
                                                                    (20, 3, 1, 6)]


@pytest.mark.parametrize("d_in, width, d_out, n", FIELD_CASES, ids=[f"{a}-{b}-{c}-n{d}" for a, b, c, d in FIELD_CASES])
def test_square_loss_field_matches_numpy(d_in, width, d_out, n):
    rng = np.random.default_rng(100 * d_in + 10 * d_out + width)
    W1, W2 = random_weights(rng, d_in, width, d_out)
    X, Y = rng.standard_normal((n, d_in)), rng.standard_normal((n, d_out))
    slopes = rng.integers(0, 2, size=(n, width)).astype(float)  # any modes, not only the signs of X W1^T
    modes = np.where(slopes > 0, _core.MODES.index("active"), _core.MODES.index("inactive")).astype(np.int32)
    options = _core.Options()
    options.loss = "square"
    field = _core.velocity(_core.TwoLayer(d_in, width, d_out, "relu"), X, Y, options, theta_of(W1, W2), 0.0,
                           modes.ravel())
    A = (X @ W1.T) * slopes
    R = Y - A @ W2.T
    expected = theta_of(((R @ W2) * slopes).T @ X, R.T @ A)
    np.testing.assert_allclose(field, expected, rtol=1e-13, atol=1e-13 * np.abs(expected).max())


def test_forward_relu_at_zero_is_zero():
    # sigma(0) = 0: a pre-activation exactly on the kink contributes nothing, whatever the slope convention
    X = np.array([[1.0, -1.0], [2.0, 0.5]])
    W1 = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])  # unit 0 is exactly 0 on sample 0; unit 1 always 0
    W2 = np.array([[3.0, 5.0, 7.0]])
    out = _core.TwoLayer(2, 3, 1, "relu").forward(theta_of(W1, W2), X)
    np.testing.assert_array_equal(out, [[7.0], [3.0 * 2.5 + 7.0 * 2.0]])


def test_forward_is_positively_homogeneous_of_degree_two():
    rng = np.random.default_rng(7)
    model = _core.TwoLayer(3, 5, 2, "relu")
    theta, X = rng.standard_normal(model.n_params), rng.standard_normal((6, 3))
    np.testing.assert_allclose(model.forward(3.0 * theta, X), 9.0 * model.forward(theta, X), rtol=1e-13)


def test_forward_zero_theta():
    model = _core.TwoLayer(3, 4, 2, "relu")
    np.testing.assert_array_equal(model.forward(np.zeros(model.n_params), np.ones((5, 3))), np.zeros((5, 2)))


def test_forward_no_samples():
    model = _core.TwoLayer(3, 4, 2, "relu")
    assert model.forward(np.ones(model.n_params), np.zeros((0, 3))).shape == (0, 2)
    assert model.preactivations(np.ones(model.n_params), np.zeros((0, 3))).shape == (0, 4)


@pytest.mark.parametrize("convert", [
    lambda a: a.astype(">f8"), lambda a: np.asfortranarray(a), lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
    lambda a: a.astype(np.float32).astype(np.float64), lambda a: a.tolist()],
    ids=["big-endian", "fortran", "strided", "float32-values", "list"])
def test_forward_forcecast_layouts(convert):
    rng = np.random.default_rng(3)
    model = _core.TwoLayer(3, 4, 2, "relu")
    theta, X = rng.standard_normal(model.n_params), rng.standard_normal((6, 3))
    odd_theta, odd_X = convert(theta), convert(X)
    plain_theta, plain_X = np.array(odd_theta, dtype=float), np.array(odd_X, dtype=float)
    np.testing.assert_array_equal(model.forward(odd_theta, odd_X), model.forward(plain_theta, plain_X))
    np.testing.assert_array_equal(model.preactivations(odd_theta, odd_X), model.preactivations(plain_theta, plain_X))


@pytest.mark.parametrize("method", ["forward", "preactivations"])
@pytest.mark.parametrize("theta_len", [-1, 1, None], ids=["short", "long", "2d"])
def test_network_methods_bad_theta(method, theta_len):
    model = _core.TwoLayer(3, 4, 1, "relu")
    theta = np.ones((1, model.n_params)) if theta_len is None else np.ones(model.n_params + theta_len)
    with pytest.raises(ValueError, match=r"\btheta\b"):
        getattr(model, method)(theta, np.ones((2, 3)))


@pytest.mark.parametrize("method", ["forward", "preactivations"])
@pytest.mark.parametrize("shape", [(2, 4), (2, 2), (3,), (1, 2, 3)], ids=["wide", "narrow", "1d", "3d"])
def test_network_methods_bad_X(method, shape):
    model = _core.TwoLayer(3, 4, 1, "relu")
    with pytest.raises(ValueError, match=r"\bX\b"):
        getattr(model, method)(np.ones(model.n_params), np.ones(shape))


# The linear network has n_hidden = 0 (no switches) but the same weights: forward is W2 W1 x and preactivations
# has no columns. Run in a child interpreter because an out-of-bounds write kills the process.

_LINEAR = """
    import numpy as np
    from fastflow import _core
    rng = np.random.default_rng(0)
"""


def test_linear_forward_matches_numpy():
    run_isolated(_LINEAR + """
    for d_in, width, d_out, n in [(2, 3, 1, 5), (3, 4, 2, 7), (5, 50, 1, 200)]:
        model = _core.TwoLayer(d_in, width, d_out, "linear")
        W1, W2 = rng.standard_normal((width, d_in)), rng.standard_normal((d_out, width))
        X = rng.standard_normal((n, d_in))
        out = model.forward(np.concatenate([W1.ravel(), W2.ravel()]), X)
        assert out.shape == (n, d_out), out.shape
        np.testing.assert_allclose(out, X @ W1.T @ W2.T, rtol=1e-13, atol=1e-13)
    """)


def test_linear_preactivations_have_no_columns():
    run_isolated(_LINEAR + """
    for d_in, width, d_out, n in [(2, 3, 1, 5), (3, 4, 2, 7), (5, 50, 1, 200), (3, 64, 1, 2000)]:
        model = _core.TwoLayer(d_in, width, d_out, "linear")
        for _ in range(3):
            h = model.preactivations(rng.standard_normal(model.n_params), rng.standard_normal((n, d_in)))
            assert h.shape == (n, 0), h.shape
    """)


# ----------------------------------------------------------------------------------------------------------
# integrate


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 3))
    y = np.where(X @ np.array([1.0, -0.5, 0.3]) >= 0, 1.0, -1.0)
    model = _core.TwoLayer(3, 4, 1, "relu")
    thetas = np.stack([0.5 * np.random.default_rng(s).standard_normal(model.n_params) for s in (1, 5)])
    thetas = np.vstack([thetas, -thetas[0]])  # row 1 ends while sliding on two surfaces
    return model, X, y, thetas


def options(loss="exponential", t_max=1e3, t_eval=(0.0, 0.5, 10.0)):
    tau = np.log1p if loss != "square" else np.asarray
    return dict(loss=loss, tau_max=float(tau(t_max)), rtol=1e-10, atol=1e-12, max_steps=200_000,
                max_events=10_000, gtol=0.0, tau_eval=np.ascontiguousarray(tau(np.array(t_eval, dtype=float))))


def core(fields):
    """A _core.Options with these fields."""
    opts = _core.Options()
    for name, value in fields.items():
        setattr(opts, name, value.tolist() if isinstance(value, np.ndarray) else value)
    return opts


def problem_for(problem, loss):
    """(model, X, Y, thetas, options) for `loss`: the square loss gets real 2-D targets and d_out = 2."""
    model, X, y, thetas = problem
    if loss != "square":
        return model, X, y, thetas, options(loss)
    model = _core.TwoLayer(3, 4, 2, "relu")
    rng = np.random.default_rng(11)
    Y = rng.standard_normal((X.shape[0], 2))
    thetas = 0.5 * rng.standard_normal((3, model.n_params))
    return model, X, Y, thetas, options("square", t_max=10.0, t_eval=(0.0, 1.0, 5.0))


def same_value(a, b):
    """Bit-identical arrays / scalars (NaN equal to NaN), identical strings and ints."""
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, float):
        return isinstance(b, float) and np.float64(a).tobytes() == np.float64(b).tobytes()
    return type(a) is type(b) and a == b


def assert_same_result(a, b, label=""):
    assert a.keys() == b.keys()
    different = [k for k in a if not same_value(a[k], b[k])]
    assert not different, (f"{label}: fields {different} differ; status {a['status']} vs {b['status']}, "
                           f"{len(a['event_tau'])} vs {len(b['event_tau'])} events")


def test_integrate_result_keys_and_types(problem):
    model, X, y, thetas = problem
    opts = options()
    raw = _core.integrate(model, X, y, thetas[0], options=core(opts))
    assert set(raw) == RESULT_KEYS
    assert isinstance(raw["status"], int) and 0 <= raw["status"] < N_STATUSES
    assert isinstance(raw["message"], str) and raw["message"]
    for key in ("tau", "log_loss", "log_grad_norm"):
        assert isinstance(raw[key], float)
    for key in ("n_steps", "n_rejected", "n_rhs"):
        assert isinstance(raw[key], int) and raw[key] >= 0
    assert raw["theta"].shape == (model.n_params,) and raw["theta"].dtype == np.float64
    n_events = len(raw["event_tau"])
    assert n_events > 0
    for key in ("event_tau", "event_kind", "event_sample", "event_layer", "event_neuron"):
        assert raw[key].shape == (n_events,)
    assert np.all(np.diff(raw["event_tau"]) >= 0)
    assert np.all((raw["event_kind"] >= 0) & (raw["event_kind"] < N_EVENT_KINDS))
    assert np.all((raw["event_sample"] >= 0) & (raw["event_sample"] < X.shape[0]))
    assert np.all((raw["event_neuron"] >= 0) & (raw["event_neuron"] < 4))
    m = len(opts["tau_eval"])
    assert raw["theta_eval"].shape == (m, model.n_params)
    assert raw["log_loss_eval"].shape == (m,)
    assert 0.0 < raw["tau"] <= opts["tau_max"]


def test_integrate_first_sample_is_theta0(problem):
    model, X, y, thetas = problem
    raw = _core.integrate(model, X, y, thetas[0], options=core(options()))
    np.testing.assert_array_equal(raw["theta_eval"][0], thetas[0])


def test_integrate_is_deterministic(problem):
    model, X, y, thetas = problem
    assert_same_result(_core.integrate(model, X, y, thetas[1], options=core(options())),
                       _core.integrate(model, X, y, thetas[1], options=core(options())), "two calls")


def test_integrate_does_not_modify_inputs(problem):
    model, X, y, thetas = problem
    copies = X.copy(), y.copy(), thetas.copy()
    _core.integrate(model, X, y, thetas[0], options=core(options()))
    _core.integrate_many(model, X, y, thetas, threads=2, options=core(options()))
    for before, after in zip(copies, (X, y, thetas)):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("length", [-1, 1, None], ids=["short", "long", "empty"])
def test_integrate_wrong_length_theta0(problem, length):
    model, X, y, _ = problem
    theta0 = np.zeros(0 if length is None else model.n_params + length)
    with pytest.raises(ValueError, match="theta0"):
        _core.integrate(model, X, y, theta0, options=core(options()))


def test_integrate_theta0_2d(problem):
    model, X, y, thetas = problem
    with pytest.raises(ValueError, match="theta0"):
        _core.integrate(model, X, y, thetas[:1], options=core(options()))


@pytest.mark.parametrize("fn", ["integrate", "integrate_many"])
def test_integrate_wrong_X_columns(problem, fn):
    model, X, y, thetas = problem
    first = thetas[0] if fn == "integrate" else thetas
    extra = {} if fn == "integrate" else {"threads": 1}
    with pytest.raises(ValueError, match=r"\bX\b"):
        getattr(_core, fn)(model, X[:, :2], y, first, options=core(options()), **extra)


@pytest.mark.parametrize("fn", ["integrate", "integrate_many"])
def test_integrate_wrong_y_size(problem, fn):
    model, X, y, thetas = problem
    first = thetas[0] if fn == "integrate" else thetas
    extra = {} if fn == "integrate" else {"threads": 1}
    with pytest.raises(ValueError, match=r"\by\b"):
        getattr(_core, fn)(model, X, y[:-1], first, options=core(options()), **extra)


def test_integrate_d_out_2_needs_labels_per_output(problem):
    # one-vs-all: a classification loss with d_out = 2 takes one +-1 label per sample and output
    _, X, y, _ = problem
    model = _core.TwoLayer(3, 4, 2, "relu")
    with pytest.raises(ValueError, match="d_out"):
        _core.integrate(model, X, y, np.zeros(model.n_params), options=core(options()))


def test_integrate_unknown_loss(problem):
    model, X, y, thetas = problem
    with pytest.raises(ValueError, match="loss"):
        _core.integrate(model, X, y, thetas[0], options=core(dict(options(), loss="hinge")))


def test_integrate_negative_count_is_a_conversion_error(problem):
    model, X, y, thetas = problem
    with pytest.raises(TypeError):
        _core.integrate(model, X, y, thetas[0], options=core(dict(options(), max_steps=-1)))


# ----------------------------------------------------------------------------------------------------------
# integrate_many


@pytest.mark.parametrize("threads", [1, 2])
def test_integrate_many_one_dict_per_row(problem, threads):
    model, X, y, thetas = problem
    raws = _core.integrate_many(model, X, y, thetas, threads=threads, options=core(options()))
    assert isinstance(raws, list) and len(raws) == len(thetas)
    single_keys = set(_core.integrate(model, X, y, thetas[0], options=core(options())))
    for raw in raws:
        assert isinstance(raw, dict) and set(raw) == single_keys == RESULT_KEYS


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("loss", ["exponential", "logistic", "square"])
def test_integrate_many_rows_equal_integrate(problem, loss, threads):
    model, X, Y, thetas, opts = problem_for(problem, loss)
    thetas = np.vstack([thetas, thetas])  # 6 rows: with 2 threads some worker runs at least 3 in a row
    singles = [_core.integrate(model, X, Y, row, options=core(opts)) for row in thetas]
    assert sum(len(r["event_tau"]) for r in singles) > 0
    raws = _core.integrate_many(model, X, Y, thetas, threads=threads, options=core(opts))
    assert len(raws) == len(thetas)
    for i, (raw, single) in enumerate(zip(raws, singles)):
        assert_same_result(raw, single, f"row {i} (threads={threads})")


def test_integrate_many_same_row_twice(problem):
    # the smallest batch that must be a loop of integrate: the second run may not see the first one's state
    model, X, y, thetas = problem
    single = _core.integrate(model, X, y, thetas[1], options=core(options()))
    first, second = _core.integrate_many(model, X, y, thetas[[1, 1]], threads=1, options=core(options()))
    assert_same_result(first, single, "first row")
    assert_same_result(second, single, "second row")


def test_integrate_many_more_threads_than_rows(problem):
    model, X, y, thetas = problem
    singles = [_core.integrate(model, X, y, row, options=core(options())) for row in thetas[:1]]
    raws = _core.integrate_many(model, X, y, thetas[:1], threads=8, options=core(options()))
    assert len(raws) == 1
    assert_same_result(raws[0], singles[0], "row 0 (threads=8)")


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_integrate_many_no_rows(problem, threads):
    model, X, y, _ = problem
    empty = np.zeros((0, model.n_params))
    assert _core.integrate_many(model, X, y, empty, threads=threads, options=core(options())) == []


@pytest.mark.parametrize("shape", ["1d", "wrong-columns", "3d"])
def test_integrate_many_bad_thetas(problem, shape):
    model, X, y, thetas = problem
    bad = {"1d": thetas[0], "wrong-columns": thetas[:, :-1], "3d": thetas[None]}[shape]
    with pytest.raises(ValueError, match="thetas0"):
        _core.integrate_many(model, X, y, bad, threads=1, options=core(options()))
