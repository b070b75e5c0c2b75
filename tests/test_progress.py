"""Progress bars: flow(progress=True) over log(1 + t) (t for the square loss), flow_many(progress=True) over runs.
The kernel reports at most every 200 ms, under the GIL, and the result is the same with or without a bar."""
import importlib
import time

import numpy as np
import pytest

import fastflow as ff
from conftest import random_problem, unit_rows

flow_module = importlib.import_module("fastflow.flow")  # `ff.flow` is the function


def slow_problem(n=150, width=24, seed=0):
    """Random teacher data on the sphere of R^10, Xavier init: about 1 s to log t = 5 (n = 150, width 24) on one
    core, several of the kernel's 200 ms report intervals (n = 60, width 16 now takes 0.15 s)."""
    rng = np.random.default_rng(seed)
    X = unit_rows(rng, n, 10)
    y = np.sign(X @ rng.normal(size=10) + 0.3 * rng.normal(size=n))
    net = ff.two_layer(10, width)
    return net, (X, y), ff.init.xavier(net, 1)


def assert_same(a, b):
    for name in a.__dataclass_fields__:
        assert np.asarray(getattr(a, name)).tobytes() == np.asarray(getattr(b, name)).tobytes(), name


def test_flow_bar_changes_nothing_and_shows_the_run(capsys):
    net, data, theta0 = slow_problem()
    off = ff.flow(net, data, theta0, loss="logistic", log_t_max=5)
    assert capsys.readouterr().err == ""
    on = ff.flow(net, data, theta0, loss="logistic", log_t_max=5, progress=True)
    assert_same(off, on)
    frames = capsys.readouterr().err.split("\r")
    tau_max = f"{np.logaddexp(0.0, 5.0):.4g}"
    final = f"100%|██████████| {tau_max}/{tau_max} [", f"steps={off.n_steps}, events={off.n_events}, loss=", ", t_max]"
    assert all(part in frames[-1] for part in final), frames[-1]
    # reported from inside the run (it takes well over the 200 ms between reports)
    assert any("log(1+t):" in f and "steps=" in f and "100%" not in f for f in frames), frames


def test_square_loss_bar_is_over_t(capsys):
    net, X, y, theta0 = random_problem("square", 3)
    off = ff.flow(net, (X, y), theta0, loss="square", t_max=100.0)
    on = ff.flow(net, (X, y), theta0, loss="square", t_max=100.0, progress=True)
    assert_same(off, on)
    last = capsys.readouterr().err.split("\r")[-1]
    assert last.startswith("t: ") and f"steps={off.n_steps}" in last and off.status in last, last


def test_flow_many_bar_changes_nothing_and_counts_runs(capsys):
    net, data, _ = slow_problem(n=40, width=8)
    thetas = np.stack([ff.init.xavier(net, s) for s in range(4)])
    off = ff.flow_many(net, data, thetas, threads=2, loss="logistic", log_t_max=10)
    on = ff.flow_many(net, data, thetas, threads=2, loss="logistic", log_t_max=10, progress=True)
    for a, b in zip(off, on):
        assert_same(a, b)
    last = capsys.readouterr().err.split("\r")[-1]
    assert "4/4" in last and "run" in last and "t_max 4" in last, last


def kernel_problem():
    """(_core arguments of slow_problem to log t = 5, the full run's result)."""
    net, data, theta0 = slow_problem()
    data, y, _, _, core = flow_module._problem(net, data, "logistic", flow_module.FlowOptions(log_t_max=5))
    args = (net._core, data.X, y, theta0, core)
    return args, ff._core.integrate(*args)


def test_kernel_reports_progress_rate_limited():
    args, full = kernel_problem()
    calls = []
    again = ff._core.integrate(*args, progress=lambda *at: calls.append((time.monotonic(), *at)))
    assert again["n_steps"] == full["n_steps"] and np.array_equal(again["theta"], full["theta"])
    assert calls, "no report from a run of well over 200 ms"
    stamps, taus, steps, events, log_losses = map(np.array, zip(*calls))
    assert np.all(np.diff(stamps) > 0.15)  # 200 ms apart in the kernel's clock, up to taking the GIL
    assert np.all(np.diff(taus) > 0) and np.all(taus < full["tau"])
    assert np.all(np.diff(steps) > 0) and np.all(np.diff(events) >= 0) and np.all(np.diff(log_losses) < 0)


def test_kernel_report_errors():
    args, full = kernel_problem()

    def interrupt(*_):
        raise KeyboardInterrupt

    def fail(*_):
        raise ValueError("report failed")

    stopped = ff._core.integrate(*args, progress=interrupt)
    assert ff.STATUSES[stopped["status"]] == "interrupted" and stopped["n_steps"] < full["n_steps"]
    with pytest.raises(ValueError, match="report failed"):
        ff._core.integrate(*args, progress=fail)
    model, X, y, theta0, core = args
    thetas = np.stack([theta0] * 4)
    many = ff._core.integrate_many(model, X, y, thetas, core, threads=2, progress=interrupt)
    assert {ff.STATUSES[r["status"]] for r in many} == {"interrupted"}
    with pytest.raises(ValueError, match="report failed"):  # raised once the workers have stopped
        ff._core.integrate_many(model, X, y, thetas, core, threads=2, progress=fail)


def test_progress_must_be_a_bool(thm32):
    net, X, y = thm32
    theta0 = ff.init.xavier(net, 0)
    with pytest.raises(TypeError, match="progress must be True or False, got int"):
        ff.flow(net, (X, y), theta0, progress=1)
    with pytest.raises(TypeError, match="progress must be True or False, got str"):
        ff.flow_many(net, (X, y), theta0[None], progress="yes")
    with pytest.raises(TypeError, match="progress must be True or False, got NoneType"):
        ff.estimate("vss-thm3.2", n=1, progress=None)
