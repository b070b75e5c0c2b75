"""Monte Carlo estimates: interval coverage, reproducibility across executors, checkpoints, and the papers'
experiments."""
import json
import math
import pickle
import re
import subprocess
import sys
from functools import partial
from statistics import NormalDist

import numpy as np
import pytest
from scipy.stats import beta

import fastflow as ff
from fastflow import experiments
from fastflow.experiment import Experiment, draw, sample_rng
from fastflow.montecarlo import estimate
from fastflow.networks import Network, conv_disjoint, diagonal, fully_connected, two_layer
from fastflow.results import Checkpoint, Estimate, load_checkpoint
from fastflow.stats import interval


# --------------------------------------------------------------------------------------------------------------
# an experiment whose probability is known exactly: the rank paper's Thm-3 init region S1 x S2 u S2 x S1 has
# probability 2 (angle / 2 pi)^2 = 0.12660 under rows of W1 uniform on a sphere; the flow runs for t = 1e-9 only


def init_region(traj, net, data):
    X, _ = data
    W10 = net.split(traj.theta_at[0])[0]  # t_eval = [0]: the initial point
    h = X @ W10.T
    s1 = (h[0] > 0) & (h[1] < 0)
    s2 = (h[1] > 0) & (h[0] < 0)
    return "in_S" if (s1[0] and s2[1]) or (s2[0] and s1[1]) else "out"


def region_experiment(name="thm3-region", t_max=1e-9):
    return Experiment(name=name, description="Thm 3's init region", prediction="2 (angle/2pi)^2",
                      data=partial(experiments.fixed_data, experiments.TVS_X, experiments.TVS_Y),
                      net=two_layer(2, 2, d_out=2), init=partial(experiments.thm3_init, radius=0.008), loss="square",
                      flow={"t_max": t_max, "t_eval": [0.0]}, outcome=init_region, labels=["in_S", "out"])


def test_sample_streams_are_the_children_of_the_seed():
    ref = np.random.SeedSequence(12).spawn(10)
    for k in (0, 3, 9):
        np.testing.assert_array_equal(sample_rng(12, k).random(4), np.random.default_rng(ref[k]).random(4))


def wilson_formula(k, n, conf):
    """The Wilson score interval written out (the formula fastflow used before it called scipy)."""
    z = NormalDist().inv_cdf(0.5 + conf / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (0.0 if k == 0 else centre - half, 1.0 if k == n else centre + half)


def clopper_pearson_formula(k, n, conf):
    """Clopper-Pearson from the beta quantiles (the formula fastflow used before it called scipy's binomtest)."""
    alpha = 1 - conf
    lo = 0.0 if k == 0 else beta.ppf(alpha / 2, k, n - k + 1)
    hi = 1.0 if k == n else beta.ppf(1 - alpha / 2, k + 1, n - k)
    return (lo, hi)


# scipy's exact endpoints are roots found by brentq to its default absolute tolerance 2e-12
@pytest.mark.parametrize("method, formula, tol",
                         [("wilson", wilson_formula, dict(rtol=1e-12, atol=1e-15)),
                          ("clopper-pearson", clopper_pearson_formula, dict(rtol=0, atol=4e-12))])
def test_intervals_match_the_formulas(method, formula, tol):
    for n in (1, 2, 7, 50, 1000, 10**6):
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            for conf in (0.5, 0.9, 0.95, 0.99):
                lo, hi = interval(k, n, conf, method)
                np.testing.assert_allclose((lo, hi), formula(k, n, conf), **tol)
                assert 0.0 <= lo <= k / n <= hi <= 1.0
                assert (lo == 0.0) == (k == 0) and (hi == 1.0) == (k == n)   # exact at the ends, inside otherwise


def test_intervals_at_the_boundaries_and_textbook_values():
    z = NormalDist().inv_cdf(0.975)
    for n in (1, 10, 400):
        alpha = 0.05
        assert interval(0, n, 0.95, "wilson") == (0.0, pytest.approx(z * z / (n + z * z), rel=1e-12))
        assert interval(n, n, 0.95, "wilson") == (pytest.approx(n / (n + z * z), rel=1e-12), 1.0)
        assert interval(0, n, 0.95, "clopper-pearson") == (0.0, pytest.approx(1 - (alpha / 2) ** (1 / n), abs=4e-12))
        assert interval(n, n, 0.95, "clopper-pearson") == (pytest.approx((alpha / 2) ** (1 / n), abs=4e-12), 1.0)
    assert interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)                     # Wilson, 95%
    assert interval(5, 10, method="clopper-pearson") == pytest.approx((0.1871, 0.8129), abs=1e-4)
    assert interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="method"):
        interval(1, 2, method="wald")
    with pytest.raises(ValueError):
        interval(3, 2)


def test_wilson_interval_covers_the_exact_probability():
    exp = region_experiment()
    p = experiments.thm3_bound()
    assert p == pytest.approx(0.12660, abs=5e-6)
    cover = {"wilson": 0, "clopper-pearson": 0}
    halfwidths = []
    for seed in range(200):
        est = estimate(exp, n=100, seed=seed, workers=1, progress=False, chunk_size=100)
        k = est.counts["in_S"]
        for method in cover:
            lo, hi = interval(k, est.n, 0.95, method)
            cover[method] += lo <= p <= hi
        lo, hi = est.ci["in_S"]
        assert (lo, hi) == interval(k, est.n, 0.95, "wilson")
        halfwidths.append((hi - lo) / 2)
    assert cover["wilson"] >= 180            # >= 90% of 200 independent seeds (nominal 95%)
    assert cover["clopper-pearson"] >= 185   # conservative
    assert np.mean(halfwidths) < 0.075       # and the intervals are not vacuous


def test_estimate_reproducible_whatever_the_workers_and_chunks():
    exp = experiments.get("tvs-rank-2x2")
    ref = estimate(exp, n=150, seed=5, workers=1, progress=False, chunk_size=16)
    for kwargs in (dict(workers=2, chunk_size=16), dict(workers=2, chunk_size=7), dict(workers=1, chunk_size=150)):
        est = estimate(exp, n=150, seed=5, progress=False, **kwargs)
        assert est.counts == ref.counts
        np.testing.assert_array_equal(est.sample_labels, ref.sample_labels)
        np.testing.assert_array_equal(est.records["stable_rank_W1"], ref.records["stable_rank_W1"])
    assert estimate(exp, n=150, seed=6, workers=1, progress=False).counts != ref.counts


def test_estimate_on_a_dask_cluster_matches_local_workers():
    distributed = pytest.importorskip("distributed")
    exp = experiments.get("tvs-rank-2x2")
    local = estimate(exp, n=200, seed=11, workers=2, progress=False, chunk_size=16)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=50) as cluster, distributed.Client(cluster) as client:
        est = estimate(exp, n=200, seed=11, executor=client.get_executor(), progress=False, chunk_size=16)
        # a custom (non-built-in) experiment travels pickled, its network with it
        custom = estimate(region_experiment(), n=64, seed=2, executor=client.get_executor(), progress=False,
                          chunk_size=16)
    assert est.counts == local.counts
    np.testing.assert_array_equal(est.sample_labels, local.sample_labels)
    assert "ClientExecutor" in est.settings["executor"]
    assert custom.counts == estimate(region_experiment(), n=64, seed=2, workers=1, progress=False).counts


def test_sequential_stopping_is_deterministic():
    exp = region_experiment()
    a = estimate(exp, n=20_000, seed=3, workers=1, progress=False, target_halfwidth=0.03, chunk_size=50,
                 check_every=2)
    b = estimate(exp, n=20_000, seed=3, workers=2, progress=False, target_halfwidth=0.03, chunk_size=50,
                 check_every=2)
    assert a.settings["stopped_early"] and a.n < 20_000
    assert a.n % 100 == 0                       # stops at a batch boundary
    assert a.n == b.n and a.counts == b.counts
    assert max(a.halfwidths().values()) < 0.03
    # one batch earlier the target was not met
    shorter = estimate(exp, n=a.n - 100, seed=3, workers=1, progress=False, chunk_size=50)
    assert max(shorter.halfwidths().values()) >= 0.03


def test_checkpoint_resume_ignores_a_partial_last_line(tmp_path):
    exp = experiments.get("tvs-rank-2x2")
    full = estimate(exp, n=256, seed=1, workers=1, progress=False, chunk_size=32)
    path = tmp_path / "ck.jsonl"
    estimate(exp, n=256, seed=1, workers=1, progress=False, chunk_size=32, checkpoint=path)
    lines = path.read_text().splitlines(keepends=True)
    assert len(lines) == 1 + 8
    # as if killed while writing chunk 5: chunks 0, 1, 2, 4 finished (out of order), half of chunk 5's line
    by_chunk = {json.loads(s)["chunk"]: s for s in lines[1:]}
    path.write_text(lines[0] + by_chunk[0] + by_chunk[1] + by_chunk[2] + by_chunk[4] + by_chunk[5][:40])
    partial_est = load_checkpoint(path)
    assert partial_est.n == 96 and not partial_est.complete   # the unbroken prefix 0, 1, 2
    resumed = estimate(exp, n=256, seed=1, workers=2, progress=False, chunk_size=32, checkpoint=path)
    assert resumed.settings["resumed_chunks"] == 4
    assert resumed.n == 256 and resumed.counts == full.counts
    np.testing.assert_array_equal(resumed.sample_labels, full.sample_labels)
    header, chunks, end = Checkpoint.read(path)
    assert sorted(chunks) == list(range(8)) and end == path.stat().st_size  # every line whole again
    # resuming a finished checkpoint computes nothing
    again = estimate(exp, n=256, seed=1, workers=1, progress=False, chunk_size=32, checkpoint=path)
    assert again.settings["resumed_chunks"] == 8 and again.counts == full.counts
    with pytest.raises(ValueError, match="seed"):
        estimate(exp, n=256, seed=2, workers=1, progress=False, chunk_size=32, checkpoint=path)


_CALLS = {"n": 0}


def interrupting_outcome(traj, net, data):
    _CALLS["n"] += 1
    if _CALLS["n"] == 100:
        raise KeyboardInterrupt
    return init_region(traj, net, data)


def test_keyboard_interrupt_keeps_finished_chunks(tmp_path):
    path = tmp_path / "ck.jsonl"
    exp = region_experiment()
    broken = Experiment(**{**exp.__dict__, "outcome": interrupting_outcome})
    _CALLS["n"] = 0
    with pytest.raises(KeyboardInterrupt):
        estimate(broken, n=320, seed=4, workers=1, progress=False, chunk_size=32, checkpoint=path)
    _, chunks, _ = Checkpoint.read(path)
    assert sorted(chunks) == [0, 1, 2]   # sample 99 is in chunk 3
    resumed = estimate(exp, n=320, seed=4, workers=1, progress=False, chunk_size=32, checkpoint=path)
    assert resumed.settings["resumed_chunks"] == 3
    assert resumed.counts == estimate(exp, n=320, seed=4, workers=1, progress=False).counts


def test_outcome_must_return_a_declared_label():
    exp = region_experiment()
    bad = Experiment(**{**exp.__dict__, "labels": ["in_S"]})
    with pytest.raises(ValueError, match="not one of its labels"):
        estimate(bad, n=40, workers=1, progress=False)


def test_experiment_validation():
    exp = region_experiment()
    with pytest.raises(ValueError, match="loss"):
        Experiment(**{**exp.__dict__, "loss": "hinge"})
    with pytest.raises(ValueError, match="distinct"):
        Experiment(**{**exp.__dict__, "labels": ["a", "a"]})
    with pytest.raises(ValueError, match="unknown options"):
        Experiment(**{**exp.__dict__, "flow": {"tmax": 1.0}})
    with pytest.raises(ValueError, match="branch"):
        Experiment(**{**exp.__dict__, "flow": {"branch": "foo"}})
    Experiment(**{**exp.__dict__, "flow": {"branch": "leave"}})
    with pytest.raises(ValueError):
        estimate(exp, n=0, progress=False)
    with pytest.raises(ValueError):
        estimate(exp, n=10, target_halfwidth=0.0, progress=False)
    with pytest.raises(ValueError, match="unknown experiment"):
        experiments.get("no-such-experiment")


def test_experiment_hooks_must_be_callable():
    exp = region_experiment()
    for hook in ("report", "figures"):
        with pytest.raises(TypeError, match=hook):
            Experiment(**{**exp.__dict__, hook: "not a function"})


@pytest.mark.parametrize("net", [two_layer(3, 4, d_out=2), fully_connected(2, [3, 2], bias=True), diagonal(3, 3),
                                 conv_disjoint(2, 3, "linear"),
                                 Network([np.arange(1, 7).reshape(3, 2), [[1, 2, 3]]], skip=True)],
                         ids=repr)
def test_networks_pickle_to_the_same_model(net):
    clone = pickle.loads(pickle.dumps(net))
    assert type(clone._core) is type(net._core) and clone.structure == net.structure
    assert clone.is_two_layer == net.is_two_layer == (type(net._core).__name__ == "TwoLayer")
    theta = np.random.default_rng(0).normal(size=net.n_params)
    X = np.random.default_rng(1).normal(size=(5, net.d_in))
    np.testing.assert_array_equal(clone.forward(theta, X), net.forward(theta, X))


def test_import_fastflow_leaves_the_runner_unloaded():
    code = ("import sys, fastflow; loaded = 'fastflow.montecarlo' in sys.modules; "
            "fastflow.estimate; print(loaded, 'fastflow.montecarlo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_estimate_json_round_trip_table_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    est = estimate("tvs-rank-2x2", n=64, seed=0, workers=1, progress=False, method="clopper-pearson")
    est.to_json(tmp_path / "r.json")
    back = Estimate.from_json(tmp_path / "r.json")
    assert back.counts == est.counts and back.ci == est.ci and back.n == 64 and back.seed == 0
    np.testing.assert_array_equal(back.records["stable_rank_W2"], est.records["stable_rank_W2"])
    table = est.table()
    for label in est.labels:
        assert label in table
    assert "Clopper-Pearson" in table and "prediction" in table
    saved = json.loads((tmp_path / "r.json").read_text())
    assert {"counts", "p", "ci", "settings", "versions", "seed", "wall_time"} <= set(saved)
    est.plot(tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------------------------
# the built-in experiments


def test_builtins_listed_picklable_and_runnable():
    assert experiments.names()[:4] == ["vss-thm3.2", "tvs-rank-2x2", "tvs-thm3", "wp-orthogonal"]
    assert "random-sweep" in experiments.names()
    # random-sweep-large on a tiny grid: its own grid takes minutes a sample (tests/test_sweep_large.py)
    small = {"random-sweep-large": dict(ns=(6,), ds=(2,), widths=(2,), log_t_max=3.0),
             "deep-sweep": dict(ns=(6,), ds=(2,), widths=(4,), log_t_max=8.0)}
    for name in experiments.names():
        exp = experiments.get(name, **small.get(name, {}))
        assert exp.name == name and exp.prediction and exp.labels
        clone = pickle.loads(pickle.dumps(exp))
        assert clone.fingerprint() == exp.fingerprint()
        n = 3 if name.startswith("random-sweep") or name in ("class-n-sweep", "deep-sweep") else 16
        est = estimate(clone, n=n, seed=0, workers=1, progress=False)
        assert est.n == n and sum(est.counts.values()) == n
        assert "  runs with a branch event: " in est.table()


# --------------------------------------------------------------------------------------------------------------
# every sample records whether its flow met an unstable branch, and the table gives the fraction


def branch_line_numbers(table):
    """(k, m, lo, hi) of the table's "runs with a branch event: k/m = p [lo, hi]" line."""
    (line,) = [s for s in table.splitlines() if s.startswith("  runs with a branch event: ")]
    k, m, _, lo, hi = re.search(r": (\d+)/(\d+) = ([\d.]+) \[([\d.]+), ([\d.]+)\]", line).groups()
    return int(k), int(m), float(lo), float(hi)


@pytest.mark.parametrize("branch", ["stay", "leave"])
def test_a_builtin_reports_the_fraction_of_runs_with_a_branch_event(branch):
    exp = experiments.get("vss-thm3.2")
    exp.flow["branch"] = branch
    n = 48
    est = estimate(exp, n=n, seed=0, workers=1, progress=False, chunk_size=16)
    # each sample's flow rerun on its own, its events counted here
    again = [ff.flow(net, data, theta0, loss=exp.loss, **exp.flow) for net, data, theta0 in
             (draw(exp, 0, k) for k in range(n))]
    branched = np.array([np.any(tr.events["kind"] == "branch") for tr in again])
    np.testing.assert_array_equal(est.records["branched"], branched.astype(float))
    k = int(branched.sum())
    assert k >= 1                                       # seed 0 meets one: the count is not vacuously 0
    k2, m, lo, hi = branch_line_numbers(est.table())
    assert (k2, m) == (k, n)
    np.testing.assert_allclose([lo, hi], wilson_formula(k, n, 0.95), atol=5e-6)


def test_the_branch_record_of_nets_not_watched_and_of_old_checkpoints(tmp_path):
    deep = region_experiment()
    # two-layer nets with a bias are not watched
    deep.net, deep.init = fully_connected(2, [2], d_out=2, bias=True), ff.init.xavier
    est = estimate(deep, n=8, seed=0, workers=1, progress=False)
    assert np.all(np.isnan(est.records["branched"])) and "branch event: not recorded" in est.table()
    # a checkpoint written before samples recorded "branched": read, and resumed with the record in new chunks
    exp = experiments.get("vss-thm3.2")
    path = tmp_path / "ck.jsonl"
    full = estimate(exp, n=48, seed=0, workers=1, progress=False, chunk_size=16, checkpoint=path)
    lines = [json.loads(s) for s in path.read_text().splitlines()]
    for rec in lines[1:]:
        del rec["records"]["branched"]
    path.write_text("".join(json.dumps(rec) + "\n" for rec in lines[:3]))    # the header and chunks 0, 1
    old = load_checkpoint(path, exp)
    assert old.n == 32 and "branch event: not recorded" in old.table()
    resumed = estimate(exp, n=48, seed=0, workers=1, progress=False, chunk_size=16, checkpoint=path)
    assert resumed.settings["resumed_chunks"] == 2 and resumed.counts == full.counts
    k = int(np.sum(full.records["branched"][32:] == 1))
    assert branch_line_numbers(resumed.table())[:2] == (k, 16)
    assert "(the 16 of 48 runs that record it" in resumed.table()


def test_an_outcome_may_not_record_a_reserved_name():
    exp = region_experiment()
    for name in ("branched", "flow_seconds"):
        bad = Experiment(**{**exp.__dict__, "outcome": partial(recording_outcome, name=name)})
        with pytest.raises(ValueError, match=name):
            estimate(bad, n=4, workers=1, progress=False)


def recording_outcome(traj, net, data, name):
    return init_region(traj, net, data), {name: 1.0}


def test_thm32_probability_closed_form():
    q = (math.pi - math.acos(-15 / 17)) / (2 * math.pi)
    assert experiments.thm32_probability() == pytest.approx(q * q)
    assert experiments.thm32_probability() == pytest.approx(0.00608, abs=5e-6)


def test_vss_thm32_every_run_meeting_the_hypothesis_ends_not_local():
    est = estimate("vss-thm3.2", n=2000, seed=1, workers=2, progress=False)
    hyp = est.records["hypothesis"] == 1
    assert hyp.sum() >= 8
    lo, hi = interval(int(hyp.sum()), est.n)
    assert lo <= experiments.thm32_probability() <= hi
    assert np.all(est.sample_labels[hyp] == est.labels.index("not_local"))   # the theorem
    assert est.ci["not_local"][1] >= experiments.thm32_probability()
    m = est.records["margin"][est.mask("not_local")]
    assert np.all(np.abs(m - 0.125) < 0.003)                                # the KKT point's margin 1/8


def test_tvs_rank_2x2_matches_the_exact_flow_reference():
    est = estimate("tvs-rank-2x2", n=200, seed=0, workers=2, progress=False)
    zero = est.counts["zero_loss_rank2"] + est.counts["zero_loss_rank1"]
    assert 0.10 <= zero / est.n <= 0.35          # the exact flow's reference: 22% (44 of 200 runs)
    assert est.counts["zero_loss_rank1"] == 0    # Thm 2: zero loss => rank 2
    assert est.counts["other"] == 0              # every other run stalls at 0.5 or 1.0
    sr = est.records["stable_rank_W1"][est.mask("zero_loss_rank2")]
    assert sr.min() > 1.05                       # bounded away from 1


def test_tvs_thm3_every_init_in_the_region_ends_in_E():
    est = estimate("tvs-thm3", n=400, seed=2, workers=2, progress=False)
    s = est.records["init_in_S"] == 1
    assert s.sum() > 20
    assert np.all(est.sample_labels[s] == est.labels.index("E"))
    assert est.ci["E"][1] >= experiments.thm3_bound()


def test_wp_orthogonal_grown_neurons_align_with_the_convex_optimum():
    est = estimate("wp-orthogonal", n=200, seed=0, workers=2, progress=False)
    assert est.counts["spurious"] == 0
    assert est.counts["global_directions"] >= 150
    ok = est.mask("global_directions")
    np.testing.assert_allclose(est.records["margin"][ok], experiments.WP_MARGIN, rtol=5e-3)
