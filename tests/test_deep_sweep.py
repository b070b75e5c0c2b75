"""deep-sweep (issue #23) on a tiny grid and a short horizon: the command line as a subprocess (labels, Wilson
intervals and the per-width report recomputed from the saved samples; one worker against two; interrupted and
resumed), every label and dead-unit count recomputed in NumPy from an independent flow, its bad options, and the
report when no run recorded turns or dead units."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import fastflow as ff
from fastflow import experiments, sweep_deep
from fastflow.experiment import draw
from fastflow.flow import STATUSES
from fastflow.montecarlo import estimate
from fastflow.results import make_estimate
from test_sweep_classn import wilson  # the Wilson interval written out, independent of fastflow

LABELS = ["converged_direction", "still_turning", "not_separated", "abnormal"]
TINY = dict(ns=(6, 8), ds=(2,), widths=(4, 6), log_t_max=8.0)
# the real command line with the registry's factory swapped for the tiny grid (the real one takes ~1.5 s a sample)
CLI = ("import sys\nfrom functools import partial\nfrom fastflow import cli, experiments, sweep_deep\n"
       f"experiments._REGISTRY['deep-sweep'] = partial(sweep_deep.deep_sweep, **{TINY!r})\n"
       "sys.exit(cli.main(sys.argv[1:]))\n")
RUN = ("--seed", 1, "--quiet", "--no-plots")


def cli(*args):
    proc = subprocess.run([sys.executable, "-c", CLI, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


def angle(a, b):
    return np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1.0, 1.0))


def recompute(exp, seed, k):
    """(label, dead units or None) of sample k from its own flow, in NumPy: the margin from a hand-written forward
    pass, the dead units strictly (pre-activation <= 0) and loosely (<= 1e-6 of the layer's largest), the turns."""
    net, (X, y), theta0 = draw(exp, seed, k)
    tr = ff.flow(net, (X, y), theta0, loss=exp.loss, **exp.flow)
    if tr.status not in ("converged", "t_max", "stalled"):
        return "abnormal", None
    W1, W2, W3 = net.split(tr.theta)
    H1 = X @ W1.T
    H2 = np.maximum(H1, 0) @ W2.T
    out = np.maximum(H2, 0) @ W3.T
    dead = [(np.all(H <= 0, axis=0).sum(), np.all(H <= 1e-6 * np.abs(H).max(), axis=0).sum()) for H in (H1, H2)]
    dead = tuple(map(sum, zip(*dead)))
    if not np.min(y * out[:, 0]) > 0:
        return "not_separated", dead
    u_quarter, u_half = tr.theta_at
    turn, before = angle(u_half, tr.theta), angle(u_quarter, u_half)
    return ("converged_direction" if turn <= min(before, 0.1) else "still_turning"), dead


def check_samples(exp, seed, labels, records):
    for k, label in enumerate(labels):
        again, dead = recompute(exp, seed, k)
        assert label == again, k
        if dead is None:
            assert records["dead_units"][k] is None or np.isnan(records["dead_units"][k])
        else:
            assert dead[0] <= records["dead_units"][k] <= dead[1], k
            net, _, _ = draw(exp, seed, k)
            assert records["dead_fraction"][k] == pytest.approx(records["dead_units"][k] / sum(net.hidden_widths))


def check_report(res):
    """The notes against the saved samples: abnormal ends by status, then P(converged direction) over every run
    and P(some dead unit) over the normal ends, overall and per width, with Wilson intervals."""
    labels, rec = np.array(res["samples"]["labels"]), res["samples"]["records"]
    n = len(labels)
    status = np.array(rec["status"], dtype=int)
    abnormal = labels == "abnormal"
    notes = res["notes"]
    assert notes[0].startswith("abnormal ends") and f": {abnormal.sum()}/{n}" in notes[0]
    for s in np.unique(status[abnormal]):
        assert f"{STATUSES[s]} {np.sum(status[abnormal] == s)}" in notes[0]
    widths = np.array(rec["width"], dtype=float)
    dead = np.array([np.nan if v is None else v for v in rec["dead_units"]])
    fraction = np.array([np.nan if v is None else v for v in rec["dead_fraction"]])
    groups = [("all widths", np.ones(n, bool))] + [(f"width {w:g}", widths == w) for w in np.unique(widths)]
    assert len(notes) == 1 + len(groups)
    for line, (name, sel) in zip(notes[1:], groups):
        assert line.startswith(f"{name} (n={sel.sum()}): ")
        found = dict((what, (int(k), int(m), float(p), float(lo), float(hi))) for what, k, m, p, lo, hi in re.findall(
            r"(converged direction|some dead unit) (\d+)/(\d+) = ([\d.]+) \[([\d.]+), ([\d.]+)\]", line))
        normal = sel & ~abnormal
        expect = {"converged direction": (np.sum(sel & (labels == "converged_direction")), sel.sum())}
        if normal.any():
            expect["some dead unit"] = (np.sum(dead[normal] > 0), normal.sum())
            assert f"mean dead fraction {np.mean(fraction[normal]):.3f}" in line
        assert set(found) == set(expect)
        for what, (k, m) in expect.items():
            k2, m2, p, lo, hi = found[what]
            assert (k2, m2) == (k, m) and p == pytest.approx(k / m, abs=5e-4)
            np.testing.assert_allclose([lo, hi], wilson(k, m), atol=5e-4)


def test_command_line_one_and_two_workers_and_resume(tmp_path):
    one, two, cut = tmp_path / "one", tmp_path / "two", tmp_path / "cut"
    proc = cli("run", "deep-sweep", "--n", 8, "--workers", 1, "--out", one, *RUN)
    res = json.loads((one / "results.json").read_text())
    assert res["labels"] == LABELS and res["n"] == 8 and sum(res["counts"].values()) == 8
    assert res["settings"]["chunk_size"] == 4 and res["strata"] == ["width"]
    labels, rec = res["samples"]["labels"], res["samples"]["records"]
    assert len(set(labels)) >= 3, labels   # the tiny grid mixes outcomes: the checks below see several labels
    for label in LABELS:
        k = labels.count(label)
        assert res["counts"][label] == k and res["p"][label] == pytest.approx(k / 8)
        np.testing.assert_allclose(res["ci"][label], wilson(k, 8), atol=1e-9)
        assert label in proc.stdout
    check_report(res)
    for line in res["notes"]:
        assert line in proc.stdout
    check_samples(sweep_deep.deep_sweep(**TINY), 1, labels, rec)

    # the same seed on two workers: the same samples
    cli("run", "deep-sweep", "--n", 8, "--workers", 2, "--out", two, *RUN)
    par = json.loads((two / "results.json").read_text())
    assert par["samples"]["labels"] == labels and par["notes"] == res["notes"]
    for name, values in rec.items():
        if name != "flow_seconds":
            assert par["samples"]["records"][name] == values, name

    # interrupted after the first chunk, with a line cut short by the kill, then resumed on two workers
    lines = (one / "checkpoint.jsonl").read_text().splitlines(keepends=True)
    cut.mkdir()
    (cut / "checkpoint.jsonl").write_text("".join(lines[:2]) + lines[2][:20])
    resumed = cli("run", "deep-sweep", "--out", cut, "--resume", "--workers", 2, "--quiet", "--no-plots")
    assert "1 finished chunks" in resumed.stderr
    back = json.loads((cut / "results.json").read_text())
    assert back["settings"]["resumed_chunks"] == 1 and back["n"] == 8
    assert back["samples"]["labels"] == labels and back["notes"] == res["notes"]
    for name, values in rec.items():
        if name != "flow_seconds":
            assert back["samples"]["records"][name] == values, name


def test_logistic_loss_recomputed():
    exp = sweep_deep.deep_sweep(**TINY, loss="logistic")
    est = estimate(exp, n=6, seed=3, workers=1, progress=False)
    records = {k: [None if np.isnan(v) else float(v) for v in vals] for k, vals in est.records.items()}
    check_samples(exp, 3, [est.labels[i] for i in est.sample_labels], records)
    assert "logistic loss" in est.description


def test_registered_defaults():
    exp = experiments.get("deep-sweep")
    assert exp.name == "deep-sweep" and exp.labels == LABELS and exp.loss == "exponential"
    assert exp.default_n == 200 and exp.chunk_size == 4 and exp.strata == ("width",)
    assert exp.flow["log_t_max"] == 32.0
    np.testing.assert_allclose(exp.flow["t_eval"], np.exp([8.0, 16.0]))
    for k in range(20):
        net, (X, _), _ = draw(exp, 0, k)
        assert net.depth == 3 and net.hidden_widths[0] == net.hidden_widths[1] in range(4, 9)
        assert X.shape[0] in (8, 16) and X.shape[1] in (2, 3)


@pytest.mark.parametrize("options, needle", [
    (dict(loss="square"), "loss"),
    (dict(widths=()), "widths"),
    (dict(widths=(0,)), "widths"),
    (dict(log_t_max=0.0), "log_t_max"),
    (dict(log_t_max=2000.0), "log_t_max"),
    (dict(angle_tol=0.0), "angle_tol"),
    (dict(max_steps=0), "max_steps"),
])
def test_bad_options(options, needle):
    with pytest.raises(ValueError, match=needle):
        experiments.get("deep-sweep", **options)


def test_report_without_normal_ends():
    """Every run abnormal: no dead-unit or turn records at all, and the report still counts them."""
    exp = experiments.get("deep-sweep")
    chunk = {"chunk": 0, "start": 0, "stop": 3, "labels": ["abnormal"] * 3, "time": 0.0,
             "records": {"width": [4, 4, 8], "status": [3, 3, 6]}}
    est = make_estimate(exp.metadata(), [chunk], 0, 0.95, "wilson", {}, 0.0, True, exp.report)
    assert est.notes[0] == "abnormal ends (status outside converged, t_max, stalled): 3/3 (max_events 2, error 1)"
    assert est.notes[1].startswith("all widths (n=3): converged direction 0/3 = 0.000 [0.000, ")
    assert "dead" not in " ".join(est.notes)
