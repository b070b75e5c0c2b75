"""random-sweep-large (issue #24) on a tiny grid: its labels and records, the strata with their time per sample, and
the command line as a subprocess, interrupted (its checkpoint cut after two chunks and a half-written line) and
resumed to the uninterrupted result."""
import json
import subprocess
import sys

import numpy as np

import fastflow as ff
from fastflow import experiments, sweep_large
from fastflow.experiment import draw
from fastflow.montecarlo import estimate

TINY = dict(ns=(6, 8), ds=(2,), widths=(2, 3), log_t_max=3.0)
# the real command line with the registry's factory swapped for the tiny grid (the real grid takes minutes a sample)
CLI = ("import sys\nfrom functools import partial\nfrom fastflow import cli, experiments, sweep_large\n"
       f"experiments._REGISTRY['random-sweep-large'] = partial(sweep_large.random_sweep_large, **{TINY!r})\n"
       "sys.exit(cli.main(sys.argv[1:]))\n")
DETERMINISTIC = ("n", "d", "width", "below_l0_over_n", "dead_units", "slid")


def cli(*args):
    proc = subprocess.run([sys.executable, "-c", CLI, *map(str, args)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_registered_with_the_issue_grid_and_one_sample_per_chunk():
    exp = experiments.get("random-sweep-large")
    assert exp.default_n == 16 and exp.chunk_size == 1 and exp.strata == ("n", "width")
    assert "1000" in exp.description and "128" in exp.description


def test_labels_and_records_match_the_flow():
    exp = sweep_large.random_sweep_large(**TINY)
    est = estimate(exp, n=6, seed=1, workers=1, progress=False)
    assert est.n == 6
    for k in range(est.n):
        net, (X, y), theta0 = draw(exp, 1, k)
        tr = ff.flow(net, (X, y), theta0, loss=exp.loss, **exp.flow)
        W1, _ = net.split(tr.theta)
        assert est.labels[est.sample_labels[k]] == tr.status
        assert est.records["n"][k] == len(X) and est.records["width"][k] == W1.shape[0]
        assert est.records["below_l0_over_n"][k] == float(tr.loss < np.log(2.0) / len(X))
        assert est.records["dead_units"][k] == np.sum(np.all(X @ W1.T <= 0, axis=0))
        assert est.records["slid"][k] == float("slide_start" in tr.events["kind"])
        assert est.records["flow_seconds"][k] > 0
    table = est.table()
    assert "by n, width:" in table and "s/sample" in table and "loss below l(0)/n" in table


def test_command_line_resumes_after_an_interruption(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    cli("run", "random-sweep-large", "--n", 6, "--seed", 2, "--out", whole, "--workers", 2, "--quiet", "--no-plots")
    ref = json.loads((whole / "results.json").read_text())
    assert ref["n"] == 6 and ref["settings"]["chunk_size"] == 1
    # an interrupted run: the header, two finished chunks and a line cut short by the kill
    lines = (whole / "checkpoint.jsonl").read_text().splitlines(keepends=True)
    cut.mkdir()
    (cut / "checkpoint.jsonl").write_text("".join(lines[:3]) + lines[3][:20])
    resumed = cli("run", "random-sweep-large", "--out", cut, "--resume", "--workers", 2, "--quiet", "--no-plots")
    assert "2 finished chunks" in resumed.stderr
    res = json.loads((cut / "results.json").read_text())
    assert res["settings"]["resumed_chunks"] == 2 and res["n"] == 6 and res["counts"] == ref["counts"]
    assert res["samples"]["labels"] == ref["samples"]["labels"]
    for name in DETERMINISTIC:
        assert res["samples"]["records"][name] == ref["samples"]["records"][name], name
    assert "s/sample" in resumed.stdout
