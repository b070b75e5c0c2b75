"""Unstable branches (docs/mathematics.md §2) are logged where they happen, the flow staying on its minimal-norm
solution: a neuron pinned at w_j = 0, and a sliding surface turning repulsive (D_ij = G_i . v_j changing sign; in
deeper nets n . (F_active - F_inactive)). Each is checked against a NumPy re-evaluation of w_j or D along the flow's
own dense output."""
import dataclasses

import numpy as np
import pytest

import fastflow as ff
from fastflow import fuzz as fuzz_target
from fastflow.fuzz_checks import (Problem, check_branches, check_branches_deep, check_problem, deep_slope_rate,
                                  jacobian_descent, random_deep_problem, slide_multipliers)


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


# --- branch="leave": the flow leaves where gradient descent does ------------------------------------------------

def open_slides(events, t):
    """The (sample, neuron) pairs sliding at t, from the events before it."""
    out = set()
    for e in events[events["t"] < t]:
        pair = (int(e["sample"]), int(e["neuron"]))
        if e["kind"] == "slide_start":
            out.add(pair)
        elif e["kind"] in ("slide_end", "activate", "deactivate"):
            out.discard(pair)
    return out


@pytest.mark.parametrize("seed", [9, 36])
def test_leave_mode_leaves_a_surface_turning_repulsive(seed):
    net, X, y, theta0 = square_problem(seed)
    run = ff.flow(net, (X, y), theta0, loss="square", t_max=300.0, branch="leave")
    branches = run.events[run.events["kind"] == "branch"]
    assert len(branches) == 1
    i, j, t = int(branches[0]["sample"]), int(branches[0]["neuron"]), float(branches[0]["t"])
    # the pair's slide ends there
    pair = run.events[(run.events["sample"] == i) & (run.events["neuron"] == j)]
    assert [str(k) for k in pair["kind"][pair["t"] == t]] == ["slide_end", "branch"]
    later = pair["t"][pair["t"] > t]
    t_next = float(later[0]) if len(later) else run.t
    # at the turn: D (re-evaluated in NumPy) from attracting to barely repelling
    around = ff.flow(net, (X, y), theta0, loss="square", t_max=1.01 * t, branch="leave",
                     t_eval=[t * (1 - 1e-4), t])
    before, at = (D(net, X, y, th, i, j) for th in around.theta_at)
    assert before < -1e-7 and 0 < at < 1e-5
    # the side: the bound its NumPy multiplier is nearer just before (where gradient descent leaves)
    earlier = ff.flow(net, (X, y), theta0, loss="square", t_max=t, t_eval=[t * (1 - 1e-3)], branch="leave")
    s = slide_multipliers(net, X, y, "square", earlier.theta_at[0], open_slides(run.events, t * (1 - 1e-3)))[(i, j)]
    assert 0.05 < s < 0.95 and abs(s - 0.5) > 0.05
    # and off the surface from then on, on that side, on a dense grid up to the pair's next event
    grid = t + (t_next - t) * np.linspace(0.0, 1.0, 402)[1:-1] ** 2
    dense = ff.flow(net, (X, y), theta0, loss="square", t_max=300.0, t_eval=grid, branch="leave")
    h = np.array([X[i] @ net.split(th)[0][j] for th in dense.theta_at])
    assert np.all(np.sign(h) == (1.0 if s >= 0.5 else -1.0))
    assert np.all(np.abs(h[grid > t * (1 + 1e-2)]) > 1e-8)


def sign_change_problem():
    # one neuron, two samples (x0 . x1 < 0): it slides on sample 0's surface from t = 0.08 while its output weight
    # v (-0.45 at the start) is carried through 0 at t = 1.96: D_0 = (y_0 - Phi_0) v turns positive
    net = ff.two_layer(2, 1)
    return net, np.array([[1.0, 0.0], [-0.5, 1.0]]), np.array([1.8, 0.5]), np.array([0.05, 0.55, -0.45])


def test_leave_mode_leaves_where_the_output_weight_crosses_zero():
    from scipy.integrate import solve_ivp
    net, X, y, theta0 = sign_change_problem()
    run = ff.flow(net, (X, y), theta0, loss="square", t_max=4.0, branch="leave")
    assert [(str(e["kind"]), int(e["sample"])) for e in run.events] == [("slide_start", 0), ("slide_end", 0),
                                                                         ("branch", 0)]
    t = float(run.events["t"][-1])
    # v re-evaluated on a dense grid of the default flow (which slides on) crosses 0 there
    grid = np.linspace(0.1, 3.9, 381)
    stay = ff.flow(net, (X, y), theta0, loss="square", t_max=4.0, t_eval=grid)
    assert np.all(stay.theta_at[grid < t - 0.01, 2] < 0) and np.all(stay.theta_at[grid > t + 0.01, 2] > 0)
    # the multiplier just before is below 1/2: the switch goes inactive; from there sample 1 alone is active, and
    # the flow is the ODE of that pattern: w' = r v x1, v' = r (w . x1), r = y1 - v (w . x1)
    before = ff.flow(net, (X, y), theta0, loss="square", t_max=t, t_eval=[t - 0.01])
    assert slide_multipliers(net, X, y, "square", before.theta_at[0], {(0, 0)})[(0, 0)] < 0.4
    after = t + np.linspace(0.0, 4.0 - t, 41)
    dense = ff.flow(net, (X, y), theta0, loss="square", t_max=4.0, t_eval=after, branch="leave")

    def pattern(_, z):
        h = z[:2] @ X[1]
        r = y[1] - z[2] * h
        return [*(r * z[2] * X[1]), r * h]

    ref = solve_ivp(pattern, (t, 4.0), dense.theta_at[0], t_eval=after, rtol=1e-11, atol=1e-13).y.T
    assert np.allclose(dense.theta_at, ref, atol=1e-7)
    assert np.all(ref[1:, :2] @ X[0] < 0) and np.all(ref[:, :2] @ X[1] > 0)   # sample 0 off its surface


def pinned_leave_problems():
    # (a) pinned_problem with a third sample x2 (x2 . x0 < 0, x2 . x1 < 0) that wants the unit on: it stays inactive
    # while the unit is carried to w = 0 (at t_pin, v^2 = 1 - |w(0)|^2 by conservation); from there the one-sided
    # field that activates sample 2 alone moves every sample to its side, and w = c x2 with
    # c' = (1 - 2 c v) v, v' = (1 - 2 c v) 2 c from (0, sqrt(0.82)).
    # (b) a unit starting at w = 0, its two samples spanning R^2, x0 . x1 < 0, sample 0 wanting it on: w = c x0
    # with c' = (1 - c v) v, v' = (1 - c v) c from (0, 1).
    net = ff.two_layer(2, 1)
    X = np.array([[1.0, 0.0], [-0.5, 1.0], [-1.0, -1.0]])
    carried = (net, X, np.array([-1.0, -1.0, 1.0]), np.array([0.3, 0.3, 1.0]), 2, np.sqrt(0.82))
    start = (net, X[:2], np.array([1.0, -1.0]), np.array([0.0, 0.0, 1.0]), 0, 1.0)
    return {"carried": carried, "start": start}


@pytest.mark.parametrize("case", ["carried", "start"])
def test_leave_mode_moves_a_pinned_unit_off_zero(case):
    from scipy.integrate import solve_ivp
    net, X, y, theta0, k, v_pin = pinned_leave_problems()[case]
    stay = ff.flow(net, (X, y), theta0, loss="square", t_max=10.0, t_eval=[10.0])
    assert np.allclose(stay.theta_at[0][:2], 0.0, atol=1e-12)
    run = ff.flow(net, (X, y), theta0, loss="square", t_max=10.0, branch="leave")
    branches = run.events[run.events["kind"] == "branch"]
    assert len(branches) == 1
    t_pin = float(branches[0]["t"])
    grid = t_pin + np.linspace(0.0, 10.0 - t_pin, 41)
    dense = ff.flow(net, (X, y), theta0, loss="square", t_max=10.0, t_eval=grid, branch="leave")
    xk = X[k]
    norm2 = xk @ xk
    ref = solve_ivp(lambda t, z: [(1 - norm2 * z[0] * z[1]) * z[1], (1 - norm2 * z[0] * z[1]) * norm2 * z[0]],
                    (0.0, 10.0 - t_pin), [0.0, v_pin], t_eval=grid - t_pin, rtol=1e-11, atol=1e-13).y
    assert np.allclose(dense.theta_at[:, :2], ref[0][:, None] * xk, atol=1e-7)
    assert np.allclose(dense.theta_at[:, 2], ref[1], atol=1e-7)
    assert np.linalg.norm(dense.theta_at[-1, :2]) > 0.3 and run.loss < stay.loss - 0.4


def gradient_descent(net, X, y, theta0, t, eta):
    """Plain gradient descent on the square loss 1/2 sum |y_i - Phi(x_i)|^2 of a two-layer net (relu'(0) = 0)."""
    W1, W2 = (a.copy() for a in net.split(theta0))
    Y = y.reshape(len(X), -1)
    for _ in range(int(round(t / eta))):
        H = X @ W1.T
        A = np.maximum(H, 0.0)
        R = A @ W2.T - Y
        gW1, gW2 = ((R @ W2) * (H > 0)).T @ X, R.T @ A
        W1 -= eta * gW1
        W2 -= eta * gW2
    return net.join([W1, W2])


@pytest.mark.parametrize("problem", ["turn", "sign_change", "pinned"])
def test_gradient_descent_follows_the_leave_flow(problem):
    # one unstable branch each, at t = 2.24, 1.96 and 0.42
    if problem == "turn":
        (net, X, y, theta0), t = square_problem(9), 3.0
    elif problem == "sign_change":
        (net, X, y, theta0), t = sign_change_problem(), 3.0
    else:
        (net, X, y, theta0, *_), t = pinned_leave_problems()["carried"], 1.0
    flows = {b: ff.flow(net, (X, y), theta0, loss="square", t_max=t, branch=b).theta for b in ("stay", "leave")}
    gap = {eta: {b: np.linalg.norm(gradient_descent(net, X, y, theta0, t, eta) - th) for b, th in flows.items()}
           for eta in (1e-3, 1e-4)}
    for eta in gap:
        assert gap[eta]["leave"] < 0.1 * gap[eta]["stay"]
    assert gap[1e-4]["leave"] < 0.2 * gap[1e-3]["leave"]     # first order in the step
    assert gap[1e-4]["stay"] > 0.01                            # the default flow stays O(1) away


def test_a_unit_pinned_without_descent_stays_when_one_appears_later():
    # width 2, pinned_problem's samples: neuron 0 is carried to w = 0 at t = 0.70 with no descending pattern, and
    # sample 0's D (re-evaluated in NumPy) turns positive at t = 1.56 as neuron 1 fits. Gradient descent's copy of
    # neuron 0 is dead by then (its tiny w in the cone where both samples are inactive, its gradient 0) and stays:
    # so does the leave flow, O(step) from it
    net = ff.two_layer(2, 2)
    X, y = np.array([[1.0, 0.0], [-0.5, 1.0]]), np.array([-0.255, -0.285])
    theta0 = np.array([0.3, 0.3, 1.535, 1.124, 1.0, 0.817])
    grid = np.linspace(0.0, 2.0, 201)
    run = ff.flow(net, (X, y), theta0, loss="square", t_max=2.0, t_eval=grid, branch="leave")
    D0 = np.array([(y[0] - net.forward(th, X)[0, 0]) * th[4] for th in run.theta_at])
    assert np.all(D0[grid > 1.6] > 0) and np.all(D0[(grid > 0.71) & (grid < 1.5)] < 0)
    assert np.all(np.abs(run.theta_at[grid > 0.71, :2]) <= 1e-12)
    assert [str(k) for k in run.events["kind"]].count("branch") == 1
    gap = [np.linalg.norm(gradient_descent(net, X, y, theta0, 2.0, eta) - run.theta_at[-1]) for eta in (1e-3, 1e-4)]
    assert gap[1] < 1e-4 and gap[1] < 0.2 * gap[0]


def test_leave_mode_runs_pass_the_fuzz_checks_and_threads_agree():
    problems = [Problem(*square_problem(seed), "square", 300.0, options={"branch": "leave"}) for seed in (9, 36)]
    net, X, y, theta0, *_ = pinned_leave_problems()["carried"]
    problems.append(Problem(net, X, y, theta0, "square", 20.0, options={"branch": "leave"}))
    for problem in problems:
        traj, violations = check_problem(problem)
        assert violations == [] and np.sum(traj.events["kind"] == "branch") == 1
    net, X, y, _ = square_problem(9)
    thetas = np.array([square_problem(9)[3], square_problem(9)[3] * 0.9, square_problem(9)[3] * 1.1])
    one, two = (ff.flow_many(net, (X, y), thetas, threads=k, loss="square", t_max=50.0, branch="leave")
                for k in (1, 2))
    for a, b in zip(one, two):
        assert np.array_equal(a.theta, b.theta) and np.array_equal(a.events, b.events)


def test_the_fuzz_checker_flags_a_leave_that_is_none():
    net, X, y, theta0 = square_problem(9)
    problem = Problem(net, X, y, theta0, "square", 300.0, options={"branch": "leave"})
    traj, _ = check_problem(problem)
    events = traj.events.copy()
    # the leave's slide_end and branch, moved to long before the surface turns
    t = events[events["kind"] == "branch"]["t"][0]
    fake = events[np.isin(events["kind"], ["slide_end", "branch"]) & (events["t"] == t)].copy()
    fake["t"] = 0.5 * fake["t"]
    traj = dataclasses.replace(traj, events=np.sort(np.concatenate([events, fake]), order="t"))
    again = problem.run(t_eval=np.unique(traj.events["t"]))
    found = check_branches(net, X, y, "square", traj, again, problem.rtol, problem.atol, branch="leave")
    assert [v.kind for v in found] == ["unexplained_branch"]


@pytest.mark.parametrize("call", ["flow", "flow_many"])
def test_an_unknown_branch_option_is_rejected(call):
    net, X, y, theta0 = square_problem(9)
    # leave needs a net watched for branches: not a biased or diagonal depth-2 one
    biased, diagonal = ff.fully_connected(3, [3], bias=True), ff.diagonal(3, 2)
    for net, theta0, branch in ((net, theta0, "foo"), (biased, ff.init.xavier(biased, 0), "leave"),
                                (diagonal, ff.init.xavier(diagonal, 0), "leave")):
        with pytest.raises(ValueError, match="branch"):
            if call == "flow":
                ff.flow(net, (X, y), theta0, loss="square", branch=branch)
            else:
                ff.flow_many(net, (X, y), theta0[None], loss="square", branch=branch)


# --- several outputs: no turn, a multiplier's pole -----------------------------------------------------------------

def pole_problem():
    # two outputs (one-vs-all, logistic), width 2, small init: sample 3 slides on both units from t = 0.05 and 0.16,
    # and D_30 turns positive at t = 1.2801
    X = np.array([[0.41809885, -0.56776961], [-0.45264929, -0.21559716], [-2.01998613, -0.23193238],
                  [-0.86521308, 3.32299952], [0.22578661, -0.35263079], [-0.28128742, -0.66804635],
                  [-1.05515055, -0.39080098]])
    labels = np.array([1, 0, 0, 1, 1, 1, 1])
    theta0 = np.array([0.04921974, 0.01735644, -0.01608675, -0.00582169, 0.0172106, 0.06161421, -0.00858485,
                       -0.00775504])
    return ff.two_layer(2, 2, d_out=2), X, labels, theta0


def one_vs_all_descent(net, X, labels, theta0, t, eta):
    """Plain gradient descent on the one-vs-all logistic loss sum_ik log(1 + e^-y_ik Phi_ik) (relu'(0) = 0)."""
    Y = np.where(labels[:, None] == np.arange(net.d_out)[None, :], 1.0, -1.0)
    W1, W2 = (a.copy() for a in net.split(theta0))
    for _ in range(int(round(t / eta))):
        H = X @ W1.T
        A = np.maximum(H, 0.0)
        G = Y * np.exp(-np.logaddexp(0.0, Y * (A @ W2.T)))   # -dL/dPhi
        W1 += eta * ((G @ W2) * (H > 0)).T @ X
        W2 += eta * G.T @ A
    return net.join([W1, W2])


def test_a_slide_ends_at_its_multipliers_pole_with_several_outputs():
    """With one output D_kj = G_k v_j, so unit j's slide field and D_ij vanish together with v_j and a surface can
    turn repulsive. With several outputs D_ij = sum_c G_ic W2_cj does not factor: where D_ij = 0 the inactive
    side's normal speed b = x_i . F0 (the field with the slide's slope at 0) is not 0, the multiplier
    s = -b / (D_ij |x_i|^2) has a pole there, and the slide ends where s passes 1 (b > 0: both one-sided fields then
    point up): an ordinary exit, not a branch. The window where s > 1 is far shorter than a step (here b and D
    cross 0 within 1e-5 of t of each other), so the stages never see it: the flow looks for it wherever D crosses
    0. Gradient descent leaves there, and so does the flow."""
    net, X, labels, theta0 = pole_problem()
    Y = np.where(labels[:, None] == np.arange(2)[None, :], 1.0, -1.0)
    grid = np.linspace(1.2795, 1.2805, 1001)
    run = ff.flow(net, (X, labels), theta0, loss="logistic", t_max=2.0, t_eval=grid)
    b, D = [], []
    for theta in run.theta_at:
        W1, W2 = net.split(theta)
        H = X @ W1.T
        S = (H > 0).astype(float)
        S[3] = 0.0                                           # sample 3 slides on both units
        back = (Y * np.exp(-np.logaddexp(0.0, Y * ((H * S) @ W2.T)))) @ W2
        b.append(X[3] @ ((back * S).T @ X)[0])
        D.append(back[3, 0])
    b, D = np.array(b), np.array(D)
    k = int(np.argmax(D > 0))
    assert D[0] < 0 < D[-1] and np.all(D[k:] > 0) and b[k] > 1e-7
    s = -b / (D * (X[3] @ X[3]))
    assert 0.3 < s[0] < 0.35 and s[:k].max() > 1.0          # s leaves [0, 1] before D reaches 0
    descent = one_vs_all_descent(net, X, labels, theta0, 2.0, 3e-5)
    assert X[3] @ net.split(descent)[0][0] > 1e-2           # gradient descent left to the active side
    flow = ff.flow(net, (X, labels), theta0, loss="logistic", t_max=2.0)
    assert np.linalg.norm(descent - flow.theta) < 1e-4


def deep_rate(problem, theta, i, u):
    return deep_slope_rate(problem.net, problem.X, problem.y, problem.loss, theta, i, u)[0]


def descent_distances(problem, theta, t, steps=(1e-3, 1e-4)):
    """|theta_GD - theta| / |theta| for gradient descent from the problem's start to t, at each step size."""
    return [np.linalg.norm(jacobian_descent(problem.net, problem.X, problem.y, problem.loss, problem.theta0, eta,
                                            int(round(t / eta))) - theta) / np.linalg.norm(theta) for eta in steps]


def stay_and_leave(problem, t):
    """The default and leave flows to t, and each one's descent_distances: (flows, distances), keyed by branch."""
    flows = {branch: problem.run(t_max=t, branch=branch) for branch in ("stay", "leave")}
    return flows, {branch: descent_distances(problem, run.theta, t) for branch, run in flows.items()}


def deep_branch(seed, draw):
    problem = random_deep_problem(np.random.default_rng([seed, draw]))
    run = problem.run()
    events = run.events
    first = events[events["kind"] == "branch"][0]
    i, t = int(first["sample"]), float(first["t"])
    u = int(first["layer"]) * problem.net.hidden_widths[0] + int(first["neuron"])
    pair = events[(events["sample"] == i) & (events["layer"] == first["layer"]) &
                  (events["neuron"] == first["neuron"])]
    return problem, run, pair, i, u, t


def test_a_deep_sliding_surface_turning_repulsive_is_a_branch():
    # fuzz draw 1:27 (depth 4, width 8): a first-layer switch slides from t = 0.031 and its surface turns repulsive
    # at t = 0.182, the slide's only switch in its sample there
    problem, run, pair, i, u, t = deep_branch(1, 27)
    assert [str(k) for k in pair["kind"][pair["t"] <= t]] == ["slide_start", "branch"]
    start = float(pair["t"][0])
    grid = np.linspace(start, 2 * t, 202)[1:]
    dense = problem.run(t_max=2 * t, t_eval=grid)
    h = np.array([problem.net._core.preactivations(th, problem.X)[i, u] for th in dense.theta_at])
    assert np.all(np.abs(h) <= 1e-12)                      # it slides on throughout (the flow stays)
    signs = np.sign([deep_rate(problem, th, i, u) for th in dense.theta_at])
    assert np.all(signs[grid < t * (1 - 1e-3)] < 0) and np.all(signs[grid > t * (1 + 1e-3)] > 0)


def test_a_deep_sliding_surface_entered_repelling_is_a_branch():
    # draw 2:76 (depth 3, width 6): a second-layer switch, its sample's only one on its surface, is put there with
    # both one-sided fields pointing away (with another sample's switch of its unit)
    problem, run, pair, i, u, t = deep_branch(2, 76)
    assert [str(k) for k in pair["kind"][pair["t"] == t]] == ["slide_start", "branch"]
    after = problem.run(t_max=1.01 * t, t_eval=[t * (1 + 1e-6), 1.01 * t]).theta_at
    assert all(deep_rate(problem, th, i, u) > 1e-3 for th in after)


def test_a_deep_surface_shared_by_an_attracting_and_a_repelling_sample_turns_once():
    # draw 18:84 (depth 4, width 7): samples 2 and 5 slide on one surface of a third-layer unit from t = 0.60 (their
    # normals for it point the same way), sample 2 attracted and sample 5 repelled; their rates, summed in sample 2's
    # normal, cross 0 at the branch. (Draw 18:61 was this test's case while the hull gave each sample its own slope:
    # with one slope for both, its two samples cross their surface together instead of sliding.)
    problem, run, pair, i, u, t = deep_branch(18, 84)
    assert i == 2 and int((pair["kind"] == "branch").sum()) == 1
    assert check_problem(problem)[1] == []

    def shared_rate(theta):
        normals = problem.net._core.switch_normals(theta, problem.X, (problem.net._core.preactivations(
            theta, problem.X) > 0).astype(float))[:, u]
        lengths = np.linalg.norm(normals, axis=1)
        rates = [deep_rate(problem, theta, k, u) * lengths[i] / lengths[k] for k in (2, 5)]
        assert rates[0] < 0 < rates[1]
        return sum(rates)

    around = problem.run(t_max=1.01 * t, t_eval=[0.99 * t, 1.01 * t]).theta_at
    assert shared_rate(around[0]) < 0 < shared_rate(around[1])


def test_deep_samples_on_one_surface_cross_it_together_as_gradient_descent_does():
    # draw 18:40 (depth 3, width 2, logistic): five samples whose normals for a second-layer unit point the same way
    # reach its surface at one t (0.474). The hull gives them one slope (the loss has two pieces there, not 2^5), and
    # they cross together. With a slope each they slid, and gradient descent at both steps ended 1.9e-2 from the flow at
    # t = 3; now it converges to it at first order.
    problem = random_deep_problem(np.random.default_rng([18, 40]))
    events = problem.run(t_max=1.0).events
    crossing = events[np.isclose(events["t"], events["t"][0], rtol=0, atol=1e-12)]
    assert len(crossing) == 5 and set(crossing["kind"]) == {"deactivate"}
    assert len({(int(e["layer"]), int(e["neuron"])) for e in crossing}) == 1
    distance = descent_distances(problem, problem.run(t_max=3.0).theta, 3.0)
    assert distance[0] < 1e-3 and distance[1] < distance[0] / 5


def test_the_deep_fuzz_checker_accepts_a_turn_by_its_sign_change_and_flags_a_branch_that_is_none():
    # draw 18:84: on a surface two samples share, their summed rate changes sign from t - 1% to t + 1% (test above),
    # the checker reading D's sign change around t. The same pair at 0.9 t, sliding with D < 0, is no branch.
    problem = random_deep_problem(np.random.default_rng([18, 84]))
    traj, violations = check_problem(problem)
    assert violations == [] and np.sum(traj.events["kind"] == "branch") == 1
    events = traj.events.copy()
    fake = events[events["kind"] == "branch"].copy()
    fake["t"] = 0.9 * fake["t"]
    traj = dataclasses.replace(traj, events=np.sort(np.concatenate([events, fake]), order="t"))
    again = problem.run(t_eval=np.unique(traj.events["t"]))
    found = check_branches_deep(problem.net, problem.X, problem.y, problem.loss, traj, again, problem.rtol,
                                problem.atol, theta_near=lambda times: problem.run(t_eval=times).theta_at)
    assert [v.kind for v in found] == ["unexplained_branch"]


def test_deep_samples_on_one_surface_below_a_dead_path_cross_it_together():
    # fuzz draw 13:33 (depth 4, width 2, exponential): five samples whose only active first-layer unit is the same
    # reach a second-layer surface at t = 0.0908 (its weight from that unit reaches 0), with a dead path above it.
    # They take one slope and one piece of the path, and cross together as gradient descent does; with a corner
    # each they slid, and gradient descent ended 6.5e-2 from the flow at t = 2.89 at both steps.
    problem = fuzz_target._problem(13, 33, "stay", "deep")
    events = problem.run(t_max=0.1).events
    assert len(events) == 5 and set(events["kind"]) == {"deactivate"} and np.ptp(events["t"]) == 0.0
    distance = descent_distances(problem, problem.run(t_max=2.89).theta, 2.89)
    assert distance[0] < 1e-3 and distance[1] < distance[0] / 5


def test_a_deep_turn_where_the_sample_dies_with_the_switch_off_is_left():
    # fuzz draw 6:13 (depth 3, width 2, exponential): sample 3 slides on a second-layer surface and it turns repulsive
    # at t = 1.868. With the switch off that sample's output is 0, so the watch's noise floor is 0 and the turn is
    # found with nd barely past 0, both one-sided fields within rounding; the leave flow must still leave there
    # (gradient descent does), not slide on unwatched.
    problem = fuzz_target._problem(6, 13, "leave", "deep")
    flows, distance = stay_and_leave(problem, 3.7)
    left = flows["leave"].events[flows["leave"].events["kind"] == "slide_end"]
    assert np.any((left["sample"] == 3) & np.isclose(left["t"], 1.868, atol=1e-3))
    assert distance["leave"][1] < distance["leave"][0] / 5 and distance["leave"][1] < 1e-4
    assert distance["stay"][1] > 1e-3


def test_a_deep_unit_pinned_with_nine_samples_leaves_on_the_pattern_gradient_descent_takes():
    # fuzz draw 16:7 (depth 3, width 8, logistic): a first-layer unit is pinned at t = 0.424 with all nine samples on
    # its surfaces. Iterated from single samples, the pattern search found no descending pattern; of all 2^9, samples
    # 3, 4, 7 and 8 active is one. Leave mode leaves on it, and gradient descent converges to that flow at first order.
    problem = fuzz_target._problem(16, 7, "leave", "deep")
    _, distance = stay_and_leave(problem, 0.8476)
    assert distance["leave"][0] < 1e-3 and distance["leave"][1] < distance["leave"][0] / 5
    assert distance["stay"][1] > 1e-2


def test_a_deep_unit_pinned_leaves_sliding_on_one_sample_surface():
    # `benchmarks/branches.py --deep` seed 0, problem 174 (depth 4, width 2, square loss): a first-layer unit is
    # pinned at t = 2.301 with all five samples on its surfaces, and no open cone of its row descends. Gradient
    # descent's unit leaves along sample 2's surface (it slides there; samples 0 and 1 active). Leave mode leaves on
    # that ray, and gradient descent converges to it at first order; the default flow stays 0.05 away by t = 3.
    net = ff.fully_connected(2, [2, 2, 2])
    X = np.array([[-0.8856904576877029, -1.2071576118880398], [-0.9983089185959114, -0.00516348923238134],
                  [0.807583363154089, -2.9214001510911736], [-1.4121003174791138, 1.9814497554357677],
                  [1.591153510368503, 0.41781178799674257]])
    y = np.array([0.35080061124415024, 1.503579515132133, -1.604103429990807, 0.6919276319893717,
                  0.5991520286606881])
    theta0 = np.array([0.14308357416110587, 0.59505666181752, 0.07318315983310204, -0.00911149357262144,
                       0.8369356493612576, -0.7080621027037286, 0.07327151189027381, 0.6763153713526355,
                       -0.13819289960353062, -0.5155809978801627, 0.08788244009653184, 0.09385451392349849,
                       0.49750455777492475, 0.08805763507920521])
    problem = Problem(net, X, y, theta0, "square", 3.0)
    flows, distance = stay_and_leave(problem, 3.0)
    at_pin = flows["leave"].events[np.abs(flows["leave"].events["t"] - 2.3007) < 1e-3]
    unit = at_pin[(at_pin["layer"] == 0) & (at_pin["neuron"] == 1)]
    assert {(int(e["sample"]), str(e["kind"])) for e in unit} >= {(2, "slide_start"), (0, "activate"),
                                                                  (1, "activate"), (0, "branch")}
    assert distance["leave"][0] < 1e-3 and distance["leave"][1] < distance["leave"][0] / 5
    assert distance["stay"][1] > 1e-2


def test_a_revived_deep_unit_crosses_and_the_slide_below_it_goes_on():
    # `benchmarks/branches.py --deep` seed 1, problem 394 (depth 4, square loss): at t = 0.0720 sample 4's
    # second-layer unit 0 slides, and its unit 1 activates and revives the dead path into third-layer unit 0.
    # Gradient descent keeps the slide, and the revived unit crosses to active. The default flow ends the slide
    # first, and the revived unit's surface then repels on both sides (a branch). Leave mode decides them again with
    # the revived unit first, and gradient descent converges to it at first order.
    net = ff.fully_connected(3, [4, 4, 4])
    X = np.array([[-0.1976692646471838, 2.601095819841277, -0.3959689192253594],
                  [-1.0532633891922611, -0.8712520914293141, 0.4997279756040699],
                  [-0.26058355048813775, 1.2209581363649575, -1.3149194706809237],
                  [-0.9787055332553263, 0.06429126552076224, 0.07242520801077378],
                  [1.0391102636671212, -0.2774068935593604, -0.740671456668895]])
    y = np.array([0.8093754968616483, 0.8803215804437488, 0.5007680692703919, 0.7612450189000644,
                  1.3957085420466784])
    theta0 = np.array([
        0.10201458181614778, -0.4305962001450685, 0.18591196138204547, -0.6907757217030198, 0.039178814679867856,
        0.17877801519245154, 0.18539747949822438, 0.470969388410825, -0.3634568913964189, -0.14949806103949737,
        -0.32849353769974365, -0.2960608656545237, 0.19113015289530405, 0.5454347304221416, 0.24961500351394614,
        -0.6600219867065644, -0.3252606021138774, -0.28037222363284736, 0.059195196931534556, 0.03823651090218503,
        -0.03914020936271883, -0.49523967333905483, -0.3372333394011733, 0.07041362296019721, 0.6012324797185707,
        -0.3669372878236535, -0.23916957289036364, 0.03453782027636399, -0.8749307471648307, 0.24214005754711776,
        -0.49701415074816246, -0.0716922090852943, 0.6392300811083194, -0.27996540643232787, 0.04522638102268041,
        0.08196008763842896, -0.8805953503726756, -0.48156390387866277, 0.1683883892868445, 0.030801427707699103,
        -0.026975568699526574, -0.11521297510560204, 0.02633552028970861, 0.18668576949111843, 0.4878860678642576,
        -0.4541017642596673, -0.1524910098104419, 0.31448759274801596])
    problem = Problem(net, X, y, theta0, "square", 0.5)
    flows, distance = stay_and_leave(problem, 0.5)

    def at_revival(run):
        events = run.events[np.abs(run.events["t"] - 0.07196) < 1e-4]
        return {(int(e["sample"]), int(e["layer"]), int(e["neuron"]), str(e["kind"])) for e in events}

    assert at_revival(flows["stay"]) >= {(4, 1, 0, "slide_end"), (4, 2, 0, "branch")}
    assert at_revival(flows["leave"]) == {(4, 1, 1, "activate"), (4, 2, 0, "activate")}
    assert distance["leave"][0] < 1e-3 and distance["leave"][1] < distance["leave"][0] / 5
    assert distance["stay"][1] > 1e-2


def test_a_surface_entered_repelling_as_its_unit_is_pinned_is_one_branch():
    # fuzz draw 16:247 (depth 3, leave mode): at t = 2.0164 samples 0 and 1 enter a first-layer surface with both
    # one-sided fields pointing away, and that unit is pinned at the same t; one branch event per switch
    traj, violations = check_problem(fuzz_target._problem(16, 247, "leave", "deep"))[:2]
    assert violations == []
    branches = traj.events[traj.events["kind"] == "branch"]
    keys = {(float(e["t"]), int(e["sample"]), int(e["layer"]), int(e["neuron"])) for e in branches}
    assert len(branches) == len(keys)
    assert np.any(np.isclose(branches["t"], 2.0164, atol=1e-4) & (branches["sample"] == 0))


def test_a_deep_unit_pinned_at_zero_is_a_branch():
    # pinned_problem's samples under a depth-3 net of one unit per layer: the first-layer unit slides on sample 1's
    # surface and is carried to w = 0 as sample 0's reaches 0 too, where the two inputs span R^2
    net = ff.fully_connected(2, [1, 1])
    X, y = np.array([[1.0, 0.0], [-0.5, 1.0]]), np.array([-1.0, -1.0])
    theta0 = np.array([0.3, 0.3, 1.0, 1.0])
    run = ff.flow(net, (X, y), theta0, loss="square", t_max=2.0)
    branches = run.events[run.events["kind"] == "branch"]
    assert len(branches) == 1 and (branches[0]["layer"], branches[0]["neuron"]) == (0, 0)
    t = float(branches[0]["t"])
    grid = np.linspace(0.0, 2.0, 201)
    w = np.abs(ff.flow(net, (X, y), theta0, loss="square", t_max=2.0, t_eval=grid).theta_at[:, :2]).max(axis=1)
    assert np.all(w[grid < t * (1 - 1e-3)] > 1e-3) and np.all(w[grid > t * (1 + 1e-3)] <= 1e-12)
    traj, violations = check_problem(Problem(net, X, y, theta0, "square", 2.0))
    assert violations == []


# --- leave mode on deeper nets --------------------------------------------------------------------------------------

def deep_turn_problem():
    # sign_change_problem's samples under a depth-3 net: first-layer unit 0 slides on sample 0's surface from
    # t = 0.08, unit 1 keeps the second layer's unit active, and the output weight (-0.45) is carried through 0
    net = ff.fully_connected(2, [2, 1])
    X, y = np.array([[1.0, 0.0], [-0.5, 1.0]]), np.array([1.8, 0.5])
    return net, X, y, np.array([0.05, 0.55, 0.3, 0.6, 1.0, 0.3, -0.45])


def deep_pinned_problem():
    # pinned_leave_problems' "carried" samples under a depth-3 net of one unit per layer: the first-layer unit is
    # carried to w = 0 (samples 0 and 1 spanning R^2) while sample 2 wants it on
    net = ff.fully_connected(2, [1, 1])
    X, y = np.array([[1.0, 0.0], [-0.5, 1.0], [-1.0, -1.0]]), np.array([-1.0, -1.0, 1.0])
    return net, X, y, np.array([0.3, 0.3, 1.0, 1.0])


@pytest.mark.parametrize("problem", [deep_turn_problem, deep_pinned_problem])
def test_deep_leave_mode_follows_gradient_descent(problem):
    net, X, y, theta0 = problem()
    t = 2.0 if problem is deep_turn_problem else 6.0
    runs = {b: ff.flow(net, (X, y), theta0, loss="square", t_max=t, branch=b) for b in ("stay", "leave")}
    for b, run in runs.items():
        assert np.sum(run.events["kind"] == "branch") == 1
        assert check_problem(Problem(net, X, y, theta0, "square", t, options={"branch": b}))[1] == []
    descent = {eta: jacobian_descent(net, X, y, "square", theta0, eta, int(round(t / eta))) for eta in (1e-3, 1e-4)}
    gap = {eta: {b: np.linalg.norm(theta - run.theta) for b, run in runs.items()} for eta, theta in descent.items()}
    for eta in gap:
        assert gap[eta]["leave"] < 0.05 * gap[eta]["stay"]
    assert gap[1e-4]["leave"] < 0.2 * gap[1e-3]["leave"]     # first order in the step
    assert gap[1e-4]["stay"] > 0.01                            # the default flow stays O(1) away


def test_deep_leave_mode_leaves_a_turned_surface_where_its_rate_crosses_zero():
    net, X, y, theta0 = deep_turn_problem()
    run = ff.flow(net, (X, y), theta0, loss="square", t_max=2.0, branch="leave")
    assert [(str(e["kind"]), int(e["sample"]), int(e["layer"]), int(e["neuron"])) for e in run.events] == [
        ("slide_start", 0, 0, 0), ("slide_end", 0, 0, 0), ("branch", 0, 0, 0)]
    t = float(run.events["t"][-1])
    problem = Problem(net, X, y, theta0, "square", 2.0)
    grid = np.linspace(0.2, 1.9, 171)
    stay = ff.flow(net, (X, y), theta0, loss="square", t_max=2.0, t_eval=grid).theta_at
    rates = np.array([deep_rate(problem, th, 0, 0) for th in stay])
    assert np.all(rates[grid < t - 0.01] < 0) and np.all(rates[grid > t + 0.01] > 0)
    # from there sample 0 is off its surface, below it (the slower side)
    after = ff.flow(net, (X, y), theta0, loss="square", t_max=2.0, t_eval=np.linspace(t + 0.05, 2.0, 20),
                    branch="leave").theta_at
    assert all(net._core.preactivations(th, X)[0, 0] < -1e-6 for th in after)


def test_deep_leave_mode_moves_a_pinned_unit_along_the_pattern_of_largest_decrease():
    from scipy.integrate import solve_ivp
    net, X, y, theta0 = deep_pinned_problem()
    stay = ff.flow(net, (X, y), theta0, loss="square", t_max=6.0)
    assert np.allclose(stay.theta[:2], 0.0, atol=1e-12)
    run = ff.flow(net, (X, y), theta0, loss="square", t_max=6.0, branch="leave")
    t_pin = float(run.events["t"][run.events["kind"] == "branch"][0])
    grid = t_pin + np.linspace(0.0, 6.0 - t_pin, 31)
    dense = ff.flow(net, (X, y), theta0, loss="square", t_max=6.0, t_eval=grid, branch="leave").theta_at
    # from the pin on, sample 2 alone is active: the smooth flow of that pattern, integrated by SciPy
    slopes = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])

    def pattern(_, theta):
        G = y[:, None] - net._core.forward(theta, X)
        return np.einsum("io,iop->p", G, net._core.jacobian(theta, X, slopes))

    ref = solve_ivp(pattern, (t_pin, 6.0), dense[0], t_eval=grid, rtol=1e-11, atol=1e-13).y.T
    assert np.allclose(dense, ref, atol=1e-7)
    assert np.all(ref[1:, :2] @ X[2] > 0) and np.all(ref[1:, :2] @ X[0] < 0) and np.all(ref[1:, :2] @ X[1] < 0)
    assert run.loss < stay.loss - 0.4


def test_deep_leave_mode_runs_pass_the_fuzz_checks_and_threads_agree():
    # draws with a turn (1:27), a shared surface whose turn crosses it (18:61), a slide on a dead path, unwatched,
    # left where an event finds it repelling (19:290), and two samples entering a repelling surface that the others'
    # slides hold them on (their normals in the span of the sliding set's) until they end (2:76)
    for seed, draw in ((1, 27), (18, 61), (19, 290), (2, 76)):
        problem = dataclasses.replace(random_deep_problem(np.random.default_rng([seed, draw])),
                                      options={"branch": "leave"})
        assert check_problem(problem)[1] == []
    problem = random_deep_problem(np.random.default_rng([2, 76]))
    thetas = problem.theta0 * np.array([[1.0], [0.95], [1.05]])
    one, two = (ff.flow_many(problem.net, (problem.X, problem.y), thetas, threads=k, loss=problem.loss,
                             t_max=problem.t_max, branch="leave") for k in (1, 2))
    for a, b in zip(one, two):
        assert np.array_equal(a.theta, b.theta) and np.array_equal(a.events, b.events)
