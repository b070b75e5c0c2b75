"""`python -m fastflow.fuzz` in CI: ~200 random trajectories with every independent check, zero violations."""
import re
import subprocess
import sys
from decimal import Decimal, getcontext

import numpy as np
import pytest

import fastflow as ff
from fastflow import fuzz, fuzz_checks


def run_fuzz(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "fastflow.fuzz", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_fuzz_200_trajectories_without_violations():
    proc = run_fuzz("--n", "200", "--seed", "0", "--workers", "2", "--budget", "60")
    out = proc.stdout
    assert re.search(r"^200 trajectories in [\d.]+ s \([\d.]+ trajectories/s", out, re.M), out + proc.stderr
    assert re.search(r"^status: ", out, re.M), out
    assert "violations: 0" in out, out
    assert proc.returncode == 0, out + proc.stderr[-3000:]


def test_fuzz_reports_counts_and_exit_status():
    """The report: a count per status that adds up to --n, and violations by kind; the exit status follows."""
    proc = run_fuzz("--n", "6", "--seed", "3", "--budget", "60")
    counts = dict((name, int(k)) for name, k in re.findall(r"(\w+) (\d+)", proc.stdout.splitlines()[1]))
    assert sum(counts.values()) == 6 and set(counts) <= set(fuzz.SENSIBLE_STATUSES) | {
        "max_events", "max_steps", "error", "interrupted", "timeout", "exception"}
    n_violations = int(re.search(r"^violations: (\d+)", proc.stdout, re.M).group(1))
    assert proc.returncode == (1 if n_violations else 0)


def test_fuzz_runs_are_reproducible():
    """The same seed gives the same problems (index by index), whatever the number of workers."""
    a = fuzz.random_problem(fuzz._rng_for(5, 17))
    b = fuzz.random_problem(fuzz._rng_for(5, 17))
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.theta0, b.theta0)
    assert (a.loss, a.t_max) == (b.loss, b.t_max)
    one = fuzz.run(8, seed=2, workers=1, budget=60)
    two = fuzz.run(8, seed=2, workers=2, budget=60)
    assert one[0] == two[0] and one[1] == two[1]


def test_fuzz_budget_stops_a_crawl():
    """A run past its budget of CPU seconds is stopped (as by Ctrl-C) and counted as a "timeout" violation."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 6))
    y = np.where(rng.random(150) < 0.5, -1.0, 1.0)
    net = ff.two_layer(6, 32)
    problem = fuzz.Problem(net, X, y, rng.normal(0.0, 0.3, net.n_params), "exponential", 1e6, rtol=1e-13,
                           atol=1e-15)
    traj, violations = fuzz.check_with_budget(problem, 1.0)
    assert traj.status == "interrupted"
    assert [v.kind for v in violations] == ["timeout"]


# Trajectories of the fuzz target that once failed, by seed: (seed, index, what was wrong)
_REGRESSIONS = [
    # the 10^5 runs at seed 7 (false Zeno guard, conservation, t_eval invariance), then later seeds
    (7, 45111, "a sample whose loss weight underflows left its slope's multiplier arbitrary: kept on the wrong side"),
    (7, 52332, "two samples of one neuron, each deciding the other's side: an early side contradicted the final field"),
    (7, 53379, "a re-fire count left from an earlier t forced a slide whose multiplier was out of [0, 1]"),
    (7, 81948, "a stiff step off its sliding surfaces was accepted and projected back, breaking ||w||^2 - ||v||^2"),
    (7, 35868, "sampling at the event times changed the run (a trial refinement of the stiff dense output)"),
    (0, 40278, "stiff steps (early stiff switch, t ~ 360) accepted by the extrapolation error estimate with errors of "
               "1e4 rtol: ||w||^2 - ||v||^2 drifted by 1.9e-6"),
    (0, 5345, "a crawl (390k steps at t ~ 350) under a trial quartic dense output of the stiff phase"),
    (8, 89911, "a slide's exit was located by the least margin of every slide: just after another surface's turn, "
               "whose multiplier is a ratio of two vanishing terms there, it was put at the step's start, decided to "
               "slide on and found again 1000 times (false Zeno)"),
    (10, 18105, "sampling at the event times changed the run by 5.6e-16: a sample's loss overwrote the kept field's "
                "weights, so an event's decisions evaluated the net again instead of re-sloping the kept field"),
    (11, 231272, "the checker's logistic weights, 0.5 (1 - tanh(q / 2)), were 1.3e-4 off at q = 29.8: a slide_end "
                 "where the flow's multiplier was 1 + 7e-13 read as 0.99987"),
    (14, 944694, "a square-loss switch reached its surface with vanishing speed and turned back up: the step's "
                 "start, inside the band on the wrong side by rounding, was read as the crossing; the decision there "
                 "(first order: down) kept its side, and it was found again 1000 times (false Zeno)"),
    (15, 133676, "a slide whose multiplier (4.8e-11) lay within the exit band of 0 was put on the inactive side, "
                 "whose field sends it straight back up (130x the tangency tolerance); the other samples of its "
                 "neuron, decided against the banded field, were sent back too, and the slide's exit was found "
                 "again at one t until the Zeno guard"),
    (15, 70000, "the same with a multiplier of 7e-12: its sample's residual nearly vanishes on the slide"),
    (15, 425176, "the checker read a slide_end whose multiplier (NumPy: 1 - 8.5e-6) an error of the state at the "
                 "tolerance moves by O(1) (its sample's residual is 2.5e-9) as unconfirmed"),
    (2613, 14430, "a settling square-loss flow took DOP853 steps held at its stability bound: their degree-7 dense "
                  "output raised the loss between samples from 4.2e-11 to 6.9e-11"),
]


@pytest.mark.parametrize("seed, index, defect", _REGRESSIONS)
def test_fuzz_regressions(seed, index, defect):
    check_fuzz_case(seed, index, defect)


# Draw 16:5287 (logistic): with exits proven after two of the four noise patterns at 4 times their threshold, a
# noise exit of switch (3, 3) passed: its slide ended at t = 58.0 and started again at 58.7. The flow at rtol 1e-13
# keeps it sliding from t = 13.2 to the end, and so must the flow at the default tolerance.
def test_no_noise_exit_where_a_tight_run_keeps_sliding():
    problem = fuzz.random_problem(fuzz._rng_for(16, 5287))
    events = [(e["kind"], e["sample"], e["neuron"]) for e in problem.run().events]
    tight = [(e["kind"], e["sample"], e["neuron"]) for e in problem.run(rtol=1e-13, atol=1e-15).events]
    assert ("slide_start", 3, 3) in tight and ("slide_end", 3, 3) not in tight
    assert events == tight


# The same, for the flows' branch="leave" option
_LEAVE_REGRESSIONS = [
    (16, 56597, "the checker bounded a leave's D by the output weights' scale (max|W2| = 0.06), the flow's noise by "
                "the whole state's (max|theta| = 7.5): a slide left at D = 64 noise levels = 7.7e-7 was flagged"),
]


@pytest.mark.parametrize("seed, index, defect", _LEAVE_REGRESSIONS)
def test_fuzz_leave_regressions(seed, index, defect):
    traj = check_fuzz_case(seed, index, defect, branch="leave")
    assert "branch" in traj.events["kind"], "the case no longer meets a branch"


@pytest.mark.parametrize("seed, index, defect", [
    (0, 51, "a slide whose exit the locator proved (its hull rate 7e-9 of the field) was kept sliding as a companion "
            "of its sample's other slides (its normal in their span to 1e-9): the same exit was found again at one t "
            "until the Zeno guard"),
    (0, 25, "two units on their surfaces below a dead layer: the hull took one piece of the dead path for all its "
            "corners, its point left a surface that every region's field returns to, until the Zeno guard"),
    (1, 133, "a unit of layer 0 and two of layer 1 of one sample at their surfaces: the decision let a layer-1 unit "
             "leave first, its rate read with the layer-0 unit's slope at 0; the one consistent choice has the layer-0 "
             "unit active and the two sliding. Repeated at one t until the Zeno guard"),
    (4, 359, "a second unit below a dead layer left its surface upwards on the hull's rate, read as if the path took "
             "the sides of the first unit alone; with both growing the path's field sent both back, at one t, until "
             "the Zeno guard"),
    (4, 152, "a path revived by a unit below took new sides unlogged: a unit of it that crossed back later was "
             "logged as never having left the side it had when the path died (missed crossing, wrong side)"),
    (4, 303, "initial margins of -530 (exponential loss): the field's entries of ~1e233 are finite, but its norm "
             "squared them to inf, and the run stopped at once as 'error' (with that mended, the settling test's noise "
             "did the same and stopped it as 'converged')"),
])
def test_deep_fuzz_regressions(seed, index, defect):
    check_fuzz_case(seed, index, defect, nets="deep")


def test_checker_weights_match_high_precision_arithmetic():
    """The checker's loss weights -l'(q), in 50-digit decimal arithmetic, down to weights of 1e-300."""
    getcontext().prec = 50
    q = np.array([-40.0, -3.0, 0.0, 2.5, 29.76, 200.0, 690.0])
    for loss, weight in (("logistic", lambda m: 1 / (1 + m.exp())), ("exponential", lambda m: (-m).exp())):
        got = fuzz_checks.sample_weights(loss, q[:, None], np.ones(len(q)))[:, 0]
        want = np.array([float(weight(Decimal(repr(float(m))))) for m in q])
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=0.0)


def check_fuzz_case(seed, index, defect, nets="two-layer", branch="stay"):
    traj, violations = fuzz.check_with_budget(fuzz._problem(seed, index, branch, nets), 60.0)
    assert not violations, f"{defect}: {violations}"
    return traj


def test_fuzz_draws_deep_nets():
    """--nets deep: random deep nets (2-3 hidden layers of width 2-8) under every check, with nothing found."""
    problem = fuzz.random_deep_problem(fuzz._rng_for(1, 0))
    assert problem.net.depth in (3, 4) and set(problem.net.hidden_widths) <= set(range(2, 9))
    statuses, kinds, examples, *_ = fuzz.run(30, seed=1, workers=2, budget=60, nets="deep")
    assert sum(statuses.values()) == 30
    assert not set(kinds) - {"any"}, examples


def test_fuzz_deep_nets_on_the_command_line(tmp_path):
    """--nets deep is logged with each chunk: a log of deep draws does not resume two-layer ones; --replay takes it;
    deep nets take branch="leave" too."""
    log = str(tmp_path / "deep.jsonl")
    first = run_fuzz("--nets", "deep", "--n", "2", "--seed", "3", "--log", log)
    assert first.stdout.startswith(f"2 trajectories in {log}"), first.stdout + first.stderr[-2000:]
    assert "--replay 3:" in first.stdout and "--nets deep" in first.stdout
    mixed = run_fuzz("--n", "4", "--seed", "3", "--log", log, "--resume")
    assert mixed.returncode == 2 and "holds deep nets, not two-layer" in mixed.stderr
    replay = run_fuzz("--replay", "3:1", "--nets", "deep")
    assert re.search(r"^net Network\(\d+ -> (\d+) -> \1( -> \1)? -> 1, relu", replay.stdout, re.M), replay.stdout
    leave = run_fuzz("--nets", "deep", "--branch", "leave", "--n", "2", "--seed", "3")
    assert leave.stdout.startswith("2 trajectories"), leave.stdout + leave.stderr[-2000:]


def test_fuzz_log_resumed_gives_the_totals_of_one_run(tmp_path):
    """--log then --resume with a larger --n (after a kill cut the log's last line short) reports the totals of
    one uninterrupted run; every index is logged exactly once."""
    log = str(tmp_path / "fuzz.jsonl")
    first = run_fuzz("--n", "10", "--seed", "4", "--budget", "60", "--log", log)
    assert first.returncode in (0, 1), first.stderr[-3000:]
    with open(log, "a") as f:
        f.write('{"seed": 4, "start": 10, "st')   # a record cut short: its chunk runs again
    resumed = run_fuzz("--n", "24", "--seed", "4", "--budget", "60", "--workers", "2", "--log", log, "--resume")
    single = run_fuzz("--n", "24", "--seed", "4", "--budget", "60")
    assert resumed.stdout.splitlines()[0].startswith(f"24 trajectories in {log} (14 run now)"), resumed.stdout
    assert resumed.stdout.splitlines()[1:] == single.stdout.splitlines()[1:]
    assert resumed.returncode == single.returncode
    records = fuzz.read_log(log, seed=4)
    assert sorted(i for r in records for i in range(r["start"], r["stop"])) == list(range(24))
    again = run_fuzz("--n", "24", "--seed", "5", "--log", log, "--resume")
    assert again.returncode == 2 and "seed 4, not 5" in again.stderr
    fresh = run_fuzz("--n", "24", "--seed", "4", "--log", log)
    assert fresh.returncode == 2 and "--resume" in fresh.stderr
    other = run_fuzz("--n", "24", "--seed", "4", "--log", log, "--resume", "--branch", "leave")
    assert other.returncode == 2 and "branch" in other.stderr


def test_fuzz_with_the_leave_option():
    """--branch leave runs the flows with branch="leave" (seed 1, trajectories 0-40 hold 3 leaves)."""
    problem = fuzz._problem(1, 3, "leave")
    assert problem.options == {"branch": "leave"}
    statuses, kinds, *_ = fuzz.run(40, seed=1, budget=60, branch="leave")
    assert sum(statuses.values()) == 40 and kinds.get("any", 0) == 0


def test_slide_exit_check_confirms_real_exits_and_flags_a_moved_one():
    """A slide_end moved to the middle of its slide, where the pair's multiplier is inside (0, 1), is flagged;
    the run's own exits are confirmed (fuzz seed 7, trajectory 368: square loss, slides that end alone)."""
    from types import SimpleNamespace

    from fastflow import fuzz_checks as fc
    problem = fuzz.random_problem(fuzz._rng_for(7, 368))
    traj = problem.run()
    again = problem.run(t_eval=fc.event_sample_times(traj))
    args = (problem.net, problem.X, problem.y, problem.loss)
    tols = (problem.rtol, problem.atol)
    assert fc.check_slide_exits(*args, traj, again, *tols) == []
    events = traj.events.copy()
    kinds, pairs = events["kind"], list(zip(events["sample"].tolist(), events["neuron"].tolist()))
    end = next(k for k in range(len(events)) if kinds[k] == "slide_end"
               and np.count_nonzero(events["t"] == events["t"][k]) == 1)
    start = max(k for k in range(end) if kinds[k] == "slide_start" and pairs[k] == pairs[end])
    events["t"][end] = 0.5 * (events["t"][start] + events["t"][end])
    events = events[np.argsort(events["t"], kind="stable")]
    moved = problem.run(t_eval=np.unique(events["t"]))
    found = fc.check_slide_exits(*args, SimpleNamespace(events=events), moved, *tols)
    assert [v.kind for v in found] == ["unconfirmed_exit"], found


def test_leave_check_flags_a_late_leave():
    """A leave after a slide moved later, where D has grown past the flow's leave lead, is flagged; the run's own
    leave (fuzz seed 16, trajectory 56597 with branch="leave": D = y_i v_j at 64 noise levels) is not."""
    from types import SimpleNamespace

    from fastflow import fuzz_checks as fc
    problem = fuzz._problem(16, 56597, "leave")
    traj = problem.run()
    again = problem.run(t_eval=fc.event_sample_times(traj))
    args = (problem.net, problem.X, problem.y, problem.loss)
    tols = (problem.rtol, problem.atol)
    assert fc.check_branches(*args, traj, again, *tols, branch="leave") == []
    events = traj.events.copy()
    kinds = events["kind"]
    last = max(k for k in range(len(events)) if kinds[k] == "branch")
    moved_pair = (events["t"] == events["t"][last]) & (events["neuron"] == events["neuron"][last])
    assert sorted(kinds[moved_pair]) == ["branch", "slide_end"]
    later = next(t for t in events["t"] if t > events["t"][last])
    events["t"][moved_pair] = 0.5 * (events["t"][last] + later)
    events = events[np.argsort(events["t"], kind="stable")]
    moved = problem.run(t_eval=np.unique(events["t"]))
    found = fc.check_branches(*args, SimpleNamespace(events=events), moved, *tols, branch="leave")
    assert [v.kind for v in found] == ["unexplained_branch"], found
