"""Input validation at the public boundary.

Every bad input must become a ValueError or TypeError that names the offending argument, before any C++ runs.
Every *good* input in an unusual memory layout or dtype (read-only, non-contiguous, Fortran order, negative
strides, float32, int, big-endian, lists) must be accepted and give exactly the trajectory of the same values
passed as a plain C-contiguous float64 array.
"""

import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fastflow as ff

D_IN, WIDTH, N = 3, 4, 8


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D_IN))
    y = np.where(X @ np.array([1.0, -0.5, 0.3]) >= 0, 1.0, -1.0)
    net = ff.two_layer(D_IN, WIDTH)
    theta0 = ff.init.gaussian(net, 0.5, rng=1)
    return net, X, y, theta0


_UNSET = object()


def run(problem, *, X=None, y=None, theta0=None, net=None, data=_UNSET, **kwargs):
    """ff.flow on the fixture problem with some arguments replaced; short horizon by default."""
    p_net, p_X, p_y, p_theta0 = problem
    net = p_net if net is None else net
    if data is _UNSET:
        data = (p_X if X is None else X, p_y if y is None else y)
    theta0 = p_theta0 if theta0 is None else theta0
    kwargs.setdefault("t_max", 1.0)
    return ff.flow(net, data, theta0, **kwargs)


def run_many(problem, thetas0=None, **kwargs):
    net, X, y, theta0 = problem
    thetas0 = np.stack([theta0, 2 * theta0]) if thetas0 is None else thetas0
    kwargs.setdefault("t_max", 1.0)
    return ff.flow_many(net, (X, y), thetas0, **kwargs)


def run_isolated(code):
    """Run `code` in a fresh interpreter: for calls that crash the process (a segfault must fail one test, not
    kill the session)."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, (f"the child interpreter failed with return code {proc.returncode} "
                                  f"(negative = killed by that signal)\nstderr:\n{proc.stderr[-3000:]}")
    return proc.stdout


# ----------------------------------------------------------------------------------------------------------
# data: X


@pytest.mark.parametrize("shape", [(N * D_IN,), (N, D_IN, 1), ()], ids=["1d", "3d", "0d"])
def test_X_not_2d(problem, shape):
    _, X, _, _ = problem
    with pytest.raises(ValueError, match=r"\bX\b"):
        run(problem, X=np.resize(X, shape))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_X_not_finite(problem, bad):
    X = problem[1].copy()
    X[2, 1] = bad
    with pytest.raises(ValueError, match=r"\bX\b"):
        run(problem, X=X)


def test_X_without_samples():
    with pytest.raises(ValueError, match=r"\bX\b"):
        ff.Dataset(np.zeros((0, D_IN)), np.zeros(0))


def test_X_without_columns():
    with pytest.raises(ValueError, match=r"\bX\b"):
        ff.Dataset(np.zeros((N, 0)), np.ones(N))


def test_X_wrong_number_of_columns(problem):
    X = np.hstack([problem[1], problem[1][:, :1]])
    with pytest.raises(ValueError, match=r"\bX\b"):
        run(problem, X=X)


def test_X_wrong_number_of_columns_flow_many(problem):
    net, X, y, theta0 = problem
    with pytest.raises(ValueError, match=r"\bX\b"):
        ff.flow_many(net, (X[:, :2], y), theta0[None], t_max=1.0)


# ----------------------------------------------------------------------------------------------------------
# data: y


def test_y_length_mismatch(problem):
    with pytest.raises(ValueError, match=r"\by\b"):
        run(problem, y=problem[2][:-1])


def test_y_3d(problem):
    with pytest.raises(ValueError, match=r"\by\b"):
        run(problem, y=problem[2].reshape(N, 1, 1))


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_y_not_finite(problem, bad):
    y = problem[2].copy()
    y[0] = bad
    with pytest.raises(ValueError, match=r"\by\b"):
        run(problem, y=y)


@pytest.mark.parametrize("loss", ["exponential", "logistic"])
@pytest.mark.parametrize("label", [0.0, 0.5, 2.0, -1.5], ids=["zero", "half", "two", "minus-1.5"])
def test_labels_not_plus_minus_one(problem, loss, label):
    y = problem[2].copy()
    y[3] = label
    with pytest.raises(ValueError, match=r"\by\b"):
        run(problem, y=y, loss=loss)


@pytest.mark.parametrize("loss", ["exponential", "logistic"])
def test_binary_labels_with_two_columns(problem, loss):
    y = np.stack([problem[2], problem[2]], axis=1)
    with pytest.raises(ValueError, match=r"\by\b"):
        run(problem, y=y, loss=loss)


@pytest.mark.parametrize("width_y", [1, 3], ids=["1-col", "3-col"])
def test_square_loss_y_wrong_width(problem, width_y):
    _, X, _, _ = problem
    net = ff.two_layer(D_IN, WIDTH, d_out=2)
    theta0 = ff.init.gaussian(net, 0.5, rng=2)
    y = np.ones((N, width_y))
    with pytest.raises(ValueError, match=r"\by\b"):
        ff.flow(net, (X, y), theta0, loss="square", t_max=1.0)


def test_square_loss_1d_y_for_d_out_2(problem):
    _, X, _, _ = problem
    net = ff.two_layer(D_IN, WIDTH, d_out=2)
    with pytest.raises(ValueError, match=r"\by\b"):
        ff.flow(net, (X, np.ones(N)), ff.init.gaussian(net, 0.5, rng=2), loss="square", t_max=1.0)


# ----------------------------------------------------------------------------------------------------------
# dtypes that are not real numbers


def _strings(a):
    return np.asarray(a).astype(str)


def _bytes(a):
    return np.asarray(a).astype("S")


def _complex(a):
    return np.asarray(a).astype(complex)


def _objects(a):
    return np.asarray(a).astype(object)


def _dates(a):
    return np.zeros(np.shape(a), dtype="datetime64[s]")


@pytest.mark.parametrize("arg", ["X", "y", "theta0"])
@pytest.mark.parametrize("convert", [_strings, _bytes], ids=["str", "bytes"])
def test_string_arrays(problem, arg, convert):
    _, X, y, theta0 = problem
    values = dict(X=X, y=y, theta0=theta0)
    values[arg] = convert(values[arg])
    with pytest.raises(TypeError, match=rf"\b{arg}\b"):
        run(problem, **values)


@pytest.mark.parametrize("arg", ["X", "y", "theta0"])
def test_complex_arrays(problem, arg):
    _, X, y, theta0 = problem
    values = dict(X=X, y=y, theta0=theta0)
    values[arg] = _complex(values[arg])
    with pytest.raises(TypeError, match=rf"\b{arg}\b"):
        run(problem, **values)


@pytest.mark.parametrize("arg", ["X", "y", "theta0"])
@pytest.mark.parametrize("convert", [_objects, _dates], ids=["object", "datetime64"])
def test_non_numeric_arrays(problem, arg, convert):
    _, X, y, theta0 = problem
    values = dict(X=X, y=y, theta0=theta0)
    values[arg] = convert(values[arg])
    with pytest.raises(TypeError, match=rf"\b{arg}\b"):
        run(problem, **values)


def test_complex_thetas0_flow_many(problem):
    with pytest.raises(TypeError, match="thetas0"):
        run_many(problem, thetas0=np.stack([problem[3], problem[3]]).astype(complex))


def test_string_t_eval(problem):
    with pytest.raises(TypeError, match="t_eval"):
        run(problem, t_eval=["0", "1"])


# ----------------------------------------------------------------------------------------------------------
# data container


@pytest.mark.parametrize(
    "make", [lambda X, y: [X, y], lambda X, y: {"X": X, "y": y}, lambda X, y: X, lambda X, y: (X, y, y),
             lambda X, y: (X,), lambda X, y: None],
    ids=["list", "dict", "bare-array", "3-tuple", "1-tuple", "None"])
def test_data_not_a_dataset_or_pair(problem, make):
    _, X, y, _ = problem
    with pytest.raises(TypeError, match="data"):
        run(problem, data=make(X, y))


# ----------------------------------------------------------------------------------------------------------
# theta0


@pytest.mark.parametrize("delta", [-1, 1, None], ids=["one-short", "one-long", "empty"])
def test_theta0_wrong_length(problem, delta):
    net, _, _, theta0 = problem
    theta0 = np.resize(theta0, 0 if delta is None else net.n_params + delta)
    with pytest.raises(ValueError, match="theta0"):
        run(problem, theta0=theta0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_theta0_not_finite(problem, bad):
    theta0 = problem[3].copy()
    theta0[1] = bad
    with pytest.raises(ValueError, match="theta0"):
        run(problem, theta0=theta0)


@pytest.mark.parametrize("shape", ["row", "column"])
def test_theta0_2d(problem, shape):
    theta0 = problem[3]
    theta0 = theta0[None, :] if shape == "row" else theta0[:, None]
    with pytest.raises(ValueError, match="theta0"):
        run(problem, theta0=theta0)


def test_theta0_scalar(problem):
    with pytest.raises(ValueError, match="theta0"):
        run(problem, theta0=1.0)


# ----------------------------------------------------------------------------------------------------------
# two_layer


@pytest.mark.parametrize("name", ["d_in", "width", "d_out"])
@pytest.mark.parametrize("value", [0, -1], ids=["zero", "negative"])
def test_two_layer_size_not_positive(name, value):
    sizes = dict(d_in=2, width=3, d_out=1)
    sizes[name] = value
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        ff.two_layer(**sizes)


@pytest.mark.parametrize("name", ["d_in", "width", "d_out"])
@pytest.mark.parametrize("value", [2.5, 3.0, np.float64(3.0), "3", None],
                         ids=["2.5", "3.0", "np.float64", "str", "None"])
def test_two_layer_size_not_integer(name, value):
    sizes = dict(d_in=2, width=3, d_out=1)
    sizes[name] = value
    with pytest.raises(TypeError, match=rf"\b{name}\b"):
        ff.two_layer(**sizes)


@pytest.mark.parametrize("name", ["d_in", "width", "d_out"])
def test_two_layer_size_bool(name):
    # _validate.positive_int explicitly singles out bool (as real_scalar does), so True must not pass for 1
    sizes = dict(d_in=2, width=3, d_out=1)
    sizes[name] = True
    with pytest.raises(TypeError, match=rf"\b{name}\b"):
        ff.two_layer(**sizes)


@pytest.mark.parametrize("value", [np.int64(3), np.uint8(3), np.int32(3)], ids=["int64", "uint8", "int32"])
def test_two_layer_numpy_integers_accepted(value):
    net = ff.two_layer(2, value)
    assert net.n_params == 3 * 2 + 3
    assert isinstance(net.layer_shapes[0][0], int)


@pytest.mark.parametrize("activation", ["tanh", "ReLU", "", None, ["relu"]],
                         ids=["tanh", "ReLU", "empty", "None", "list"])
def test_two_layer_unknown_activation(activation):
    with pytest.raises(ValueError, match="activation"):
        ff.two_layer(2, 3, activation=activation)


# ----------------------------------------------------------------------------------------------------------
# loss and network compatibility


@pytest.mark.parametrize("loss", ["hinge", "Exponential", "", None], ids=["hinge", "Exponential", "empty", "None"])
def test_unknown_loss(problem, loss):
    with pytest.raises(ValueError, match="loss"):
        run(problem, loss=loss)


@pytest.mark.parametrize("loss", ["exponential", "logistic"])
def test_d_out_2_with_binary_loss(problem, loss):
    _, X, y, _ = problem
    net = ff.two_layer(D_IN, WIDTH, d_out=2)
    with pytest.raises(ValueError, match="d_out"):
        ff.flow(net, (X, y), ff.init.gaussian(net, 0.5, rng=2), loss=loss, t_max=1.0)


# ----------------------------------------------------------------------------------------------------------
# tolerances


@pytest.mark.parametrize("value", [-1e-10, np.nan, 0.0, np.inf, 0.5],
                         ids=["negative", "nan", "zero", "inf", "above-0.1"])
def test_bad_rtol(problem, value):
    with pytest.raises(ValueError, match="rtol"):
        run(problem, rtol=value)


@pytest.mark.parametrize("value", [-1e-12, np.nan, np.inf], ids=["negative", "nan", "inf"])
def test_bad_atol(problem, value):
    with pytest.raises(ValueError, match="atol"):
        run(problem, atol=value)


_WRONG_TYPES = {"str": "1e-3", "None": None, "bool": True, "complex": 1j, "array": np.array([1e-3, 1e-3])}


@pytest.mark.parametrize(
    "name, value",
    [pytest.param(name, value, id=f"{name}-{kind}") for name in ("rtol", "atol", "t_max", "log_t_max", "gtol")
     for kind, value in _WRONG_TYPES.items() if not (value is None and name in ("log_t_max", "gtol"))])
def test_scalar_option_wrong_type(problem, name, value):  # (None is the default of log_t_max and gtol)
    with pytest.raises(TypeError, match=rf"\b{name}\b"):
        run(problem, **{name: value})


def test_zero_atol_accepted(problem):
    assert run(problem, atol=0.0).status in ff.STATUSES


@pytest.mark.parametrize("value", [-1.0, np.nan], ids=["negative", "nan"])
def test_bad_gtol(problem, value):
    with pytest.raises(ValueError, match="gtol"):
        run(problem, gtol=value)


# ----------------------------------------------------------------------------------------------------------
# horizon


@pytest.mark.parametrize("loss", ["exponential", "square"])
@pytest.mark.parametrize("value", [-1.0, np.nan, 0.0, -0.0, np.inf, -np.inf],
                         ids=["negative", "nan", "zero", "minus-zero", "inf", "-inf"])
def test_bad_t_max(problem, loss, value):
    y = np.linspace(-1, 1, N) if loss == "square" else None
    with pytest.raises(ValueError, match=r"\bt_max\b"):
        run(problem, y=y, loss=loss, t_max=value)


@pytest.mark.parametrize("loss", ["exponential", "logistic", "square"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_bad_log_t_max(problem, loss, value):
    y = np.linspace(-1, 1, N) if loss == "square" else None
    with pytest.raises(ValueError, match="log_t_max"):
        run(problem, y=y, loss=loss, log_t_max=value)


def test_log_t_max_past_float64_for_square_loss(problem):
    # the square loss runs in t itself: exp(1000) overflows, which must be a clean ValueError (and no
    # RuntimeWarning on the way: with warnings as errors a warning replaces the ValueError)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="log_t_max"):
            run(problem, y=np.linspace(-1, 1, N), loss="square", log_t_max=1000.0)


def test_huge_log_t_max_accepted_for_classification(problem):
    traj = run(problem, log_t_max=1e6, max_steps=50)
    assert traj.status == "max_steps"


# ----------------------------------------------------------------------------------------------------------
# t_eval


@pytest.mark.parametrize(
    "t_eval", [[0.0, 0.5, 0.2], [1.0, 0.0]], ids=["unsorted", "decreasing"])
def test_t_eval_unsorted(problem, t_eval):
    with pytest.raises(ValueError, match="t_eval"):
        run(problem, t_eval=t_eval)


@pytest.mark.parametrize("t_eval", [[-1.0, 0.5], [-1e-300]], ids=["negative", "tiny-negative"])
def test_t_eval_negative(problem, t_eval):
    with pytest.raises(ValueError, match="t_eval"):
        run(problem, t_eval=t_eval)


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_t_eval_not_finite(problem, bad):
    with pytest.raises(ValueError, match="t_eval"):
        run(problem, t_eval=[0.0, bad])


def test_t_eval_2d(problem):
    with pytest.raises(ValueError, match="t_eval"):
        run(problem, t_eval=[[0.0, 0.5]])


def test_t_eval_with_repeats_accepted(problem):
    traj = run(problem, t_eval=[0.0, 0.5, 0.5])
    assert traj.theta_at.shape == (3, problem[0].n_params)
    np.testing.assert_array_equal(traj.theta_at[1], traj.theta_at[2])


# ----------------------------------------------------------------------------------------------------------
# step and event limits


@pytest.mark.parametrize("name", ["max_events", "max_steps"])
@pytest.mark.parametrize("value", [0, -1], ids=["zero", "minus-one"])
def test_limit_not_positive(problem, name, value):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        run(problem, **{name: value})


@pytest.mark.parametrize("name", ["max_events", "max_steps"])
@pytest.mark.parametrize("value", [2.5, 1e6, "10", None], ids=["2.5", "1e6", "str", "None"])
def test_limit_not_integer(problem, name, value):
    with pytest.raises(TypeError, match=rf"\b{name}\b"):
        run(problem, **{name: value})


@pytest.mark.parametrize("name", ["max_events", "max_steps"])
def test_limit_bool(problem, name):
    with pytest.raises(TypeError, match=rf"\b{name}\b"):
        run(problem, **{name: True})


@pytest.mark.parametrize("name", ["max_events", "max_steps"])
def test_limit_beyond_uint64(problem, name):
    # a limit too large for the C++ size_t is either taken as "no limit" or refused with a ValueError naming it,
    # never pybind11's "incompatible function arguments" TypeError
    try:
        traj = run(problem, **{name: 2**64})
    except ValueError as e:
        assert name in str(e)
    else:
        assert traj.status in ff.STATUSES


# ----------------------------------------------------------------------------------------------------------
# flow_many


def test_flow_many_thetas0_1d(problem):
    with pytest.raises(ValueError, match="thetas0"):
        run_many(problem, thetas0=problem[3])


def test_flow_many_thetas0_3d(problem):
    with pytest.raises(ValueError, match="thetas0"):
        run_many(problem, thetas0=problem[3][None, None, :])


def test_flow_many_thetas0_wrong_columns(problem):
    with pytest.raises(ValueError, match="thetas0"):
        run_many(problem, thetas0=np.zeros((2, problem[0].n_params + 1)))


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_flow_many_thetas0_not_finite(problem, bad):
    thetas0 = np.stack([problem[3], problem[3]])
    thetas0[1, 0] = bad
    with pytest.raises(ValueError, match="thetas0"):
        run_many(problem, thetas0=thetas0)


@pytest.mark.parametrize("name", ["theta0", "rtoll", "thread", "verbose"])
def test_flow_many_unknown_keyword(problem, name):
    with pytest.raises(TypeError, match=rf"\b{name}\b"):
        run_many(problem, **{name: 1})


@pytest.mark.parametrize("value", [0, -1], ids=["zero", "negative"])
def test_flow_many_threads_not_positive(problem, value):
    with pytest.raises(ValueError, match="threads"):
        run_many(problem, threads=value)


@pytest.mark.parametrize("value", [1.5, "2"], ids=["float", "str"])
def test_flow_many_threads_not_integer(problem, value):
    with pytest.raises(TypeError, match="threads"):
        run_many(problem, threads=value)


def test_flow_many_threads_beyond_uint64(problem):
    try:
        trajs = run_many(problem, threads=2**64)
    except ValueError as e:
        assert "threads" in str(e)
    else:
        assert len(trajs) == 2


@pytest.mark.parametrize("name, value", [("rtol", -1.0), ("t_max", 0.0), ("t_eval", [1.0, 0.0]),
                                         ("max_events", 0), ("loss", "hinge")])
def test_flow_many_validates_flow_options(problem, name, value):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        run_many(problem, **{name: value})


def test_flow_many_no_rows(problem):
    assert run_many(problem, thetas0=np.zeros((0, problem[0].n_params))) == []


# ----------------------------------------------------------------------------------------------------------
# initialisations


@pytest.mark.parametrize("init, arg", [(ff.init.gaussian, "std"), (ff.init.sphere, "radius"),
                                       (ff.init.balanced, "scale")], ids=["gaussian", "sphere", "balanced"])
@pytest.mark.parametrize("value", [-1.0, np.nan, np.inf], ids=["negative", "nan", "inf"])
def test_init_bad_scale(problem, init, arg, value):
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        init(problem[0], value, rng=0)


@pytest.mark.parametrize("init, arg", [(ff.init.gaussian, "std"), (ff.init.sphere, "radius"),
                                       (ff.init.balanced, "scale")], ids=["gaussian", "sphere", "balanced"])
def test_init_scale_not_a_number(problem, init, arg):
    with pytest.raises(TypeError, match=rf"\b{arg}\b"):
        init(problem[0], "1.0", rng=0)


def test_init_gaussian_zero_std(problem):
    np.testing.assert_array_equal(ff.init.gaussian(problem[0], 0.0, rng=0), np.zeros(problem[0].n_params))


# ----------------------------------------------------------------------------------------------------------
# split / join / forward / preactivations


@pytest.mark.parametrize("delta", [-1, 1], ids=["short", "long"])
def test_split_wrong_length(problem, delta):
    net = problem[0]
    with pytest.raises(ValueError, match=r"\btheta\b"):
        net.split(np.zeros(net.n_params + delta))


def test_split_2d(problem):
    net = problem[0]
    with pytest.raises(ValueError, match=r"\btheta\b"):
        net.split(np.zeros((1, net.n_params)))


def test_split_nan(problem):
    theta = problem[3].copy()
    theta[0] = np.nan
    with pytest.raises(ValueError, match=r"\btheta\b"):
        problem[0].split(theta)


@pytest.mark.parametrize("count", [1, 3])
def test_join_wrong_number_of_matrices(problem, count):
    net = problem[0]
    mats = (net.split(problem[3]) * 2)[:count]
    with pytest.raises(ValueError, match="mats"):
        net.join(mats)


def test_join_transposed_matrix(problem):
    net = problem[0]
    W1, W2 = net.split(problem[3])
    with pytest.raises(ValueError, match=r"mats\[0\]"):
        net.join([W1.T, W2])


def test_join_wrong_output_shape(problem):
    net = problem[0]
    W1, W2 = net.split(problem[3])
    with pytest.raises(ValueError, match=r"mats\[1\]"):
        net.join([W1, W2.ravel()])


def test_join_nan(problem):
    net = problem[0]
    W1, W2 = net.split(problem[3])
    W2[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"mats\[1\]"):
        net.join([W1, W2])


def test_join_complex(problem):
    net = problem[0]
    W1, W2 = net.split(problem[3])
    with pytest.raises(TypeError, match=r"mats\[0\]"):
        net.join([W1.astype(complex), W2])


def test_split_join_round_trip(problem):
    net, _, _, theta = problem
    W1, W2 = net.split(theta)
    assert W1.shape == (WIDTH, D_IN) and W2.shape == (1, WIDTH)
    np.testing.assert_array_equal(net.join([W1, W2]), theta)


@pytest.mark.parametrize("method", ["forward", "preactivations"])
def test_network_method_bad_theta(problem, method):
    net, X, _, theta = problem
    with pytest.raises(ValueError, match=r"\btheta\b"):
        getattr(net, method)(theta[:-1], X)


@pytest.mark.parametrize("method", ["forward", "preactivations"])
@pytest.mark.parametrize("X_shape", [(N, D_IN + 1), (D_IN,)], ids=["wrong-columns", "1d"])
def test_network_method_bad_X(problem, method, X_shape):
    net, _, _, theta = problem
    with pytest.raises(ValueError, match=r"\bX\b"):
        getattr(net, method)(theta, np.ones(X_shape))


@pytest.mark.parametrize("method", ["forward", "preactivations"])
def test_network_method_nan_X(problem, method):
    net, X, _, theta = problem
    X = X.copy()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"\bX\b"):
        getattr(net, method)(theta, X)


# ----------------------------------------------------------------------------------------------------------
# rank measures


@pytest.mark.parametrize("fn", [ff.rank, ff.stable_rank], ids=["rank", "stable_rank"])
def test_rank_W_not_2d(fn):
    with pytest.raises(ValueError, match=r"\bW\b"):
        fn(np.ones(3))


@pytest.mark.parametrize("fn", [ff.rank, ff.stable_rank], ids=["rank", "stable_rank"])
def test_rank_W_nan(fn):
    with pytest.raises(ValueError, match=r"\bW\b"):
        fn(np.array([[1.0, np.nan]]))


@pytest.mark.parametrize("fn", [ff.rank, ff.stable_rank], ids=["rank", "stable_rank"])
def test_rank_W_complex(fn):
    with pytest.raises(TypeError, match=r"\bW\b"):
        fn(np.eye(2, dtype=complex))


# ==========================================================================================================
# accepted inputs: unusual layouts and dtypes give exactly the plain float64 result


def assert_same_trajectory(a, b):
    assert a.status == b.status and a.message == b.message
    assert a.theta.dtype == b.theta.dtype == np.float64
    assert a.theta.tobytes() == b.theta.tobytes(), "theta differs"
    assert a.events.dtype == b.events.dtype
    assert len(a.events) == len(b.events)
    for name in a.events.dtype.names:
        np.testing.assert_array_equal(a.events[name], b.events[name], err_msg=f"events[{name!r}] differs")
    for name in ("t", "log_t", "loss", "log_loss", "grad_norm", "margin", "n_steps", "n_rejected", "n_rhs"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(a.t_eval, b.t_eval)
    np.testing.assert_array_equal(a.theta_at, b.theta_at)
    np.testing.assert_array_equal(a.loss_at, b.loss_at)


def plain(a):
    """The same values as a fresh, writeable, native-endian, C-contiguous float64 array."""
    out = np.array(a, dtype=np.float64, order="C", copy=True)
    assert out.flags.c_contiguous and out.flags.writeable and out.dtype.isnative
    return out


def readonly(a):
    """A read-only view (keeps the layout and dtype of `a`)."""
    view = np.asarray(a).view()
    view.setflags(write=False)
    return view


def _filler(dtype):
    return np.nan if np.issubdtype(dtype, np.floating) else 0


def strided(a):
    """A non-contiguous view (same dtype) of a twice-as-wide array whose other entries are NaN (never to be
    read)."""
    a = np.asarray(a)
    wide = np.full(a.shape[:-1] + (2 * a.shape[-1],), _filler(a.dtype), dtype=a.dtype)
    wide[..., ::2] = a
    view = wide[..., ::2]
    assert not view.flags.c_contiguous
    return view


def strided_rows(a):
    """For 2-D: every other row of a taller array (non-contiguous along axis 0), same dtype."""
    a = np.asarray(a)
    tall = np.full((2 * a.shape[0],) + a.shape[1:], _filler(a.dtype), dtype=a.dtype)
    tall[::2] = a
    return tall[::2]


def reversed_strides(a):
    a = np.asarray(a)
    view = a[::-1].copy()[::-1]
    assert view.strides[0] < 0
    return view


def fortran(a):
    return np.asfortranarray(a)


def big_endian(a):
    return np.asarray(a).astype(">f8")


def big_endian_f4(a):
    return np.asarray(a).astype(">f4")


def float32(a):
    return np.asarray(a).astype(np.float32)


def float16(a):
    return np.asarray(a).astype(np.float16)


def longdouble(a):
    return np.asarray(a).astype(np.longdouble)


def to_int(a):
    return np.round(4 * np.asarray(a)).astype(np.int64)


def to_int32(a):
    return np.round(4 * np.asarray(a)).astype(np.int32)


def to_list(a):
    return np.asarray(a).tolist()


LAYOUTS = [readonly, strided, reversed_strides, big_endian, big_endian_f4, float32, float16, longdouble, to_int,
           to_int32, to_list]
LAYOUT_IDS = ["readonly", "strided", "negative-strides", "big-endian-f8", "big-endian-f4", "float32", "float16",
              "longdouble", "int64", "int32", "list"]


@pytest.fixture(scope="module")
def long_problem(problem):
    """The fixture problem over a horizon with several events, so that equal trajectories mean something."""
    net, X, y, theta0 = problem
    kwargs = dict(t_max=1e3, t_eval=[0.0, 0.5, 10.0])
    base = ff.flow(net, (X, y), theta0, **kwargs)
    assert base.n_events >= 3
    return net, X, y, theta0, kwargs, base


@pytest.mark.parametrize("convert", LAYOUTS, ids=LAYOUT_IDS)
@pytest.mark.parametrize("arg", ["X", "theta0"])
def test_layout_gives_same_trajectory(long_problem, arg, convert):
    net, X, y, theta0, kwargs, _ = long_problem
    values = dict(X=X, theta0=theta0)
    odd = dict(values, **{arg: convert(values[arg])})
    ref = dict(values, **{arg: plain(odd[arg])})
    traj = ff.flow(net, (odd["X"], y), odd["theta0"], **kwargs)
    expected = ff.flow(net, (ref["X"], y), ref["theta0"], **kwargs)
    assert_same_trajectory(traj, expected)


@pytest.mark.parametrize("convert", [fortran, strided_rows], ids=["fortran", "strided-rows"])
def test_X_2d_layout_gives_same_trajectory(long_problem, convert):
    net, X, y, theta0, kwargs, base = long_problem
    assert_same_trajectory(ff.flow(net, (convert(X), y), theta0, **kwargs), base)


@pytest.mark.parametrize("convert", [readonly, strided, reversed_strides, big_endian, big_endian_f4, float32,
                                     to_list, lambda y: np.asarray(y).astype(np.int8)],
                         ids=["readonly", "strided", "negative-strides", "big-endian-f8", "big-endian-f4",
                              "float32", "list", "int8"])
def test_labels_layout_gives_same_trajectory(long_problem, convert):
    net, X, y, theta0, kwargs, base = long_problem
    assert_same_trajectory(ff.flow(net, (X, convert(y)), theta0, **kwargs), base)


def test_boolean_labels_are_not_plus_minus_one(long_problem):
    net, X, y, theta0, kwargs, _ = long_problem
    with pytest.raises(ValueError, match=r"\by\b"):  # True/False read as 1/0
        ff.flow(net, (X, y > 0), theta0, **kwargs)


def test_all_odd_layouts_at_once(long_problem):
    net, X, y, theta0, kwargs, base = long_problem
    odd_X = readonly(strided(big_endian(X)))
    odd_theta0 = readonly(strided(big_endian(theta0)))
    assert not odd_X.dtype.isnative and not odd_X.flags.c_contiguous and not odd_X.flags.writeable
    assert not odd_theta0.dtype.isnative and not odd_theta0.flags.c_contiguous
    traj = ff.flow(net, (odd_X, reversed_strides(y)), odd_theta0, t_max=1e3,
                   t_eval=readonly(strided(big_endian(np.array(kwargs["t_eval"])))))
    assert_same_trajectory(traj, base)


def test_dataset_and_tuple_give_same_trajectory(long_problem):
    net, X, y, theta0, kwargs, base = long_problem
    assert_same_trajectory(ff.flow(net, ff.Dataset(big_endian(X), to_list(y)), theta0, **kwargs), base)


@pytest.mark.parametrize("convert", [to_list, lambda t: np.asarray(t, dtype=np.int64), big_endian, strided],
                         ids=["list", "int", "big-endian", "strided"])
def test_t_eval_layout_gives_same_trajectory(long_problem, convert):
    net, X, y, theta0, _, _ = long_problem
    t_eval = [0.0, 1.0, 10.0]
    expected = ff.flow(net, (X, y), theta0, t_max=1e3, t_eval=np.array(t_eval))
    assert_same_trajectory(ff.flow(net, (X, y), theta0, t_max=1e3, t_eval=convert(t_eval)), expected)


def test_input_arrays_not_modified(long_problem):
    net, X, y, theta0, kwargs, _ = long_problem
    X_copy, y_copy, theta_copy = X.copy(), y.copy(), theta0.copy()
    ff.flow(net, (X, y), theta0, **kwargs)
    ff.flow_many(net, (X, y), np.stack([theta0, theta0]), **kwargs)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(y, y_copy)
    np.testing.assert_array_equal(theta0, theta_copy)


@pytest.mark.parametrize("convert", [readonly, big_endian, float32, to_int, fortran, strided, strided_rows,
                                     reversed_strides, to_list],
                         ids=["readonly", "big-endian", "float32", "int", "fortran", "strided-columns",
                              "strided-rows", "negative-strides", "list"])
def test_square_targets_layout_gives_same_trajectory(problem, convert):
    _, X, _, _ = problem
    net = ff.two_layer(D_IN, WIDTH, d_out=2)
    theta0 = ff.init.gaussian(net, 0.5, rng=3)
    Y = np.random.default_rng(4).standard_normal((N, 2))
    odd = convert(Y)
    kwargs = dict(loss="square", t_max=10.0, t_eval=[0.0, 1.0])
    assert_same_trajectory(ff.flow(net, (X, odd), theta0, **kwargs), ff.flow(net, (X, plain(odd)), theta0, **kwargs))


@pytest.mark.parametrize("convert", [readonly, big_endian, float32, fortran, strided, strided_rows,
                                     reversed_strides, to_list],
                         ids=["readonly", "big-endian", "float32", "fortran", "strided-columns", "strided-rows",
                              "negative-strides", "list"])
def test_flow_many_thetas0_layout_gives_same_trajectories(long_problem, convert):
    net, X, y, theta0, kwargs, _ = long_problem
    thetas0 = np.stack([theta0, ff.init.gaussian(net, 0.5, rng=5), -theta0])
    odd = convert(thetas0)
    # threads=1: rows run in order, so this compares layouts only (threads are test_core's business)
    got = ff.flow_many(net, (X, y), odd, threads=1, **kwargs)
    expected = ff.flow_many(net, (X, y), plain(odd), threads=1, **kwargs)
    assert len(got) == len(expected) == 3
    for a, b in zip(got, expected):
        assert_same_trajectory(a, b)


@pytest.mark.parametrize("threads", [1, 2])
def test_flow_many_rows_equal_flow(long_problem, threads):
    # the documented contract of flow_many: "identical to a loop of `flow` whatever `threads` is"; row 1 of this
    # batch ends sliding on two surfaces, which must not leak into the rows after it
    net, X, y, theta0, kwargs, _ = long_problem
    thetas0 = np.stack([theta0, ff.init.gaussian(net, 0.5, rng=5), -theta0] * 2)
    trajs = ff.flow_many(net, (X, y), thetas0, threads=threads, **kwargs)
    assert len(trajs) == len(thetas0)
    for i, (traj, row) in enumerate(zip(trajs, thetas0)):
        try:
            assert_same_trajectory(traj, ff.flow(net, (X, y), row, **kwargs))
        except AssertionError as e:
            raise AssertionError(f"row {i} of flow_many(threads={threads}) differs from flow: {e}") from None


@pytest.mark.parametrize("convert", [readonly, big_endian, strided, fortran, float32],
                         ids=["readonly", "big-endian", "strided", "fortran", "float32"])
def test_forward_layout_gives_same_outputs(problem, convert):
    net, X, _, theta = problem
    out = net.forward(convert(theta), convert(X))
    np.testing.assert_array_equal(out, net.forward(plain(convert(theta)), plain(convert(X))))
    pre = net.preactivations(convert(theta), convert(X))
    ref = net.preactivations(plain(convert(theta)), plain(convert(X)))
    assert len(pre) == len(ref) == 1
    np.testing.assert_array_equal(pre[0], ref[0])


# ----------------------------------------------------------------------------------------------------------
# the "linear" activation is a valid choice: the network it builds must work (run in a child process, since a
# memory error here kills the interpreter)

_LINEAR_SETUP = """
    import numpy as np
    import fastflow as ff
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 3))
    y = np.where(X[:, 0] >= 0, 1.0, -1.0)
    net = ff.two_layer(3, 4, activation="linear")
    theta = ff.init.gaussian(net, 0.5, rng=1)
    W1, W2 = net.split(theta)
"""


def test_linear_network_forward():
    run_isolated(_LINEAR_SETUP + """
    out = net.forward(theta, X)
    assert out.shape == (6, 1), out.shape
    np.testing.assert_allclose(out, X @ W1.T @ W2.T, rtol=1e-13, atol=1e-14)
    """)


def test_linear_network_preactivations():
    # several sizes: an out-of-bounds write may only crash once it is large enough
    run_isolated(_LINEAR_SETUP + """
    assert net.preactivations(theta, X) == []
    for n, m in [(6, 4), (200, 50), (2000, 64)]:
        big = ff.two_layer(3, m, activation="linear")
        for _ in range(3):
            assert big.preactivations(ff.init.gaussian(big, 0.5, rng=1), rng.standard_normal((n, 3))) == []
    """)


@pytest.mark.parametrize("loss", ["exponential", "logistic"])
def test_linear_network_flow_classification(loss):
    run_isolated(_LINEAR_SETUP + f"""
    traj = ff.flow(net, (X, y), theta, loss={loss!r}, t_max=10.0)
    assert traj.status in ff.STATUSES and traj.n_events == 0
    assert np.isfinite(traj.margin)
    """)


def test_linear_network_flow_square():
    run_isolated(_LINEAR_SETUP + """
    traj = ff.flow(net, (X, np.linspace(-1, 1, 6)), theta, loss="square", t_max=10.0)
    assert traj.status == "t_max" and traj.n_events == 0
    """)


# ----------------------------------------------------------------------------------------------------------
# huge sizes: a clear MemoryError before allocating, never a crash or the OOM killer half-way


def test_huge_n_times_width_flow_raises_memory_error_before_allocating():
    """10^6 samples x width 10^4: X is 16 MB, the integrator's per-(sample, neuron) state would be ~1 TB."""
    X = np.ones((10**6, 2))
    y = np.ones(10**6)
    net = ff.two_layer(2, 10**4)
    with pytest.raises(MemoryError, match=r"needs about .* GiB .* fewer samples, a narrower network"):
        ff.flow(net, (X, y), np.full(net.n_params, 0.1), t_max=1.0)
    with pytest.raises(MemoryError, match=r"flow_many of 2 runs .* fewer threads"):
        ff.flow_many(net, (X, y), np.full((2, net.n_params), 0.1), t_max=1.0, threads=2)


def test_huge_t_eval_raises_memory_error():
    """Dense samples cost n_params doubles each: 10^7 of them on a 10^4-parameter network is 800 GB."""
    X = np.ones((4, 2))
    net = ff.two_layer(2, 2500)
    t_eval = np.linspace(0.0, 1.0, 10**7)
    with pytest.raises(MemoryError, match="t_eval"):
        ff.flow(net, (X, np.ones(4)), np.full(net.n_params, 0.1), t_max=1.0, t_eval=t_eval)


@pytest.mark.parametrize("enumerate_", [ff.arrangements, ff.sign_patterns])
def test_astronomical_arrangement_raises_memory_error_at_once(enumerate_):
    """200 points in general position in R^40 have ~10^48 cells: refused from Cover's count, before any search."""
    X = np.random.default_rng(0).standard_normal((200, 40))
    with pytest.raises(MemoryError, match=r"200 points in rank 40 \(more than .* patterns\)"):
        enumerate_(X)


def test_arrangement_memory_error_states_the_estimate(monkeypatch):
    """The refusal prints the estimated count and bytes, not the memory limit twice: 60 points in general position
    in R^6 have 1.7e8 faces (sign vectors), about 20 GiB, here refused against 1 GiB."""
    from math import comb
    monkeypatch.setattr(ff._validate, "available_memory", lambda: 2**30)
    X = np.random.default_rng(0).standard_normal((60, 6))
    with pytest.raises(MemoryError) as err:
        ff.sign_patterns(X)
    found = re.search(r"rank 6 \(up to (\S+) patterns\) needs about (\S+) GiB but (\S+) GiB", str(err.value))
    assert found, str(err.value)
    count, needed, available = map(float, found.groups())
    faces = 1 + sum(comb(60, k) * 2 * sum(comb(59 - k, j) for j in range(6 - k)) for k in range(6))
    assert faces <= count <= 10 * faces
    assert available == 1.0 and needed > 10 * available
    with pytest.raises(MemoryError, match=r"more than .* patterns\) needs at least .* GiB"):
        ff.sign_patterns(np.random.default_rng(0).standard_normal((200, 40)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
@pytest.mark.parametrize("n, d, width", [(4000, 3, 500), (1000, 50, 128)])
def test_memory_estimate_matches_what_a_flow_allocates(n, d, width):
    """integrator_bytes is what the guard trusts: within a factor 2 of the peak resident memory a run adds (n=4000,
    width 500: about 2*10^6 switches; d=50, width 128: 6,528 parameters, too many for the implicit phase, whose
    p x p matrices took 680 MB there), measured in a fresh interpreter (Linux /proc)."""
    out = run_isolated(f"""
        import numpy as np
        import fastflow as ff
        from fastflow import _core
        rng = np.random.default_rng(0)
        X = rng.standard_normal(({n}, {d}))
        y = np.where(rng.random({n}) < 0.5, -1.0, 1.0)
        net = ff.two_layer({d}, {width})
        theta0 = ff.init.gaussian(net, 0.5, rng=1)
        ff.flow(ff.two_layer({d}, 2), (X[:4], y[:4]), np.zeros(2 * {d} + 2) + 0.1, t_max=1e-3)  # warm up imports
        def kib(field):
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith(field))
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak (VmHWM) to the current resident size: earlier peaks do not count
        before = kib("VmRSS:")
        ff.flow(net, (X, y), theta0, t_max=1e-3, max_steps=3)
        print(_core.integrator_bytes(net._core, {n}, 0), (kib("VmHWM:") - before) * 1024)
    """)
    estimate, measured = map(float, out.split())
    assert 0.5 * estimate <= measured <= 2.0 * estimate, (estimate, measured)


# ----------------------------------------------------------------------------------------------------------
# concurrent calls from several Python threads (the C++ runs without the GIL)


def test_concurrent_calls_from_python_threads_give_the_serial_results():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(3)
    jobs = []
    for k in range(8):
        n, d, width = 6 + k, 3, 3 + k % 3
        X = rng.standard_normal((n, d))
        y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
        net = ff.two_layer(d, width)
        jobs.append((net, X, y, ff.init.gaussian(net, 0.5, rng=k), ("exponential", "logistic")[k % 2]))

    def work(job):
        net, X, y, theta0, loss = job
        traj = ff.flow(net, (X, y), theta0, loss=loss, t_max=50.0)
        many = ff.flow_many(net, (X, y), np.stack([theta0, -theta0]), loss=loss, t_max=50.0, threads=2)
        return (traj.theta, traj.events, [m.theta for m in many], net.forward(theta0, X),
                ff.sign_patterns(X[:, :2]))

    serial = [work(job) for job in jobs]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(2):
            for got, want in zip(pool.map(work, jobs), serial):
                np.testing.assert_array_equal(got[0], want[0])
                assert np.array_equal(got[1], want[1])
                for a, b in zip(got[2], want[2]):
                    np.testing.assert_array_equal(a, b)
                np.testing.assert_array_equal(got[3], want[3])
                np.testing.assert_array_equal(got[4], want[4])
