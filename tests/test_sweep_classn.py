"""The class-n-sweep experiment: through the command line (structure, Wilson intervals recomputed from the counts,
the per-architecture report, resuming), its bad options, and a hand-checked case (deep linear fully connected nets
end global at L ||u*||^(2/L), margin paper Thm 3.1, with u* an SVM solved here independently)."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import norm

from fastflow import experiments
from fastflow.analysis import VERDICTS
from fastflow.experiment import draw
from fastflow.montecarlo import estimate

LABELS = list(VERDICTS) + ["not_separated"]


def cli(*args):
    proc = subprocess.run([sys.executable, "-m", "fastflow", *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc


def wilson(k, n, confidence=0.95):
    z = norm.ppf(0.5 + confidence / 2)
    p = k / n
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def test_cli_run_and_resume(tmp_path):
    out = tmp_path / "sweep"
    common = ("--seed", 1, "--workers", 1, "--chunk-size", 2, "--out", out, "--quiet", "--no-plots")
    cli("run", "class-n-sweep", "--n", 4, *common)
    first = json.loads((out / "results.json").read_text())
    proc = cli("run", "class-n-sweep", "--n", 6, "--resume", *common)
    assert "resuming from" in proc.stderr and "2 finished chunks" in proc.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["samples"]["labels"][:4] == first["samples"]["labels"]

    assert res["labels"] == LABELS and res["n"] == 6 and sum(res["counts"].values()) == 6
    labels, rec = res["samples"]["labels"], res["samples"]["records"]
    for label in LABELS:
        k = labels.count(label)
        assert res["counts"][label] == k and res["p"][label] == pytest.approx(k / 6)
        lo, hi = res["ci"][label]
        assert lo <= res["p"][label] <= hi
        np.testing.assert_allclose([lo, hi], wilson(k, 6), atol=1e-9)
        assert label in proc.stdout

    # the report: undecided count, then one line per architecture drawn with its verdicts' counts
    notes = res["notes"]
    assert notes[0].endswith(f"{res['counts']['undecided']}/6")
    families = ("fc", "diagonal", "conv")
    drawn = {}
    for f, d, r, label in zip(rec["family"], rec["depth"], rec["relu"], labels):
        drawn.setdefault(f"{families[int(f)]}-{int(d)} {'relu' if r else 'linear'}", []).append(label)
    assert len(notes) == 1 + len(drawn)
    for line in notes[1:]:
        name, k = re.match(r"(\S+ \S+) \(n=(\d+)\): ", line).groups()
        assert int(k) == len(drawn[name]) and line in proc.stdout
        for label, p, lo, hi in re.findall(r"(\w+) ([\d.]+) \[([\d.]+), ([\d.]+)\]", line):
            c = drawn[name].count(label)
            assert float(p) == pytest.approx(c / int(k), abs=5e-4) and float(lo) <= float(p) <= float(hi)
            np.testing.assert_allclose([float(lo), float(hi)], wilson(c, int(k)), atol=5e-4)


def svm_norm(X, y):
    """||u*|| of the hard-margin SVM min ||u|| s.t. y_i u.x_i >= 1, by SLSQP."""
    res = minimize(lambda u: u @ u, np.ones(X.shape[1]), jac=lambda u: 2 * u, method="SLSQP",
                   constraints=[dict(type="ineq", fun=lambda u: y * (X @ u) - 1, jac=lambda u: y[:, None] * X)],
                   options=dict(ftol=1e-15, maxiter=500))
    return np.linalg.norm(res.x)


def test_deep_linear_fc_is_global():
    exp = experiments.get("class-n-sweep", architectures=[("fc", 3), ("fc", 4)], activations=["linear"])
    est = estimate(exp, n=4, seed=0, workers=1, progress=False)
    assert est.counts["global"] == 4, est.table()
    for k in range(4):
        net, (X, y), _ = draw(exp, 0, k)
        depth = net.depth
        assert est.records["depth"][k] == depth and est.records["family"][k] == 0
        assert est.records["norm_sq"][k] == pytest.approx(depth * svm_norm(X, y) ** (2 / depth), rel=1e-6)


@pytest.mark.parametrize("options, needle", [
    (dict(architectures=[("cnn", 2)]), "architectures: family"),
    (dict(architectures=[("fc",)]), "architectures must be"),
    (dict(architectures=[("diagonal", 1)]), "architectures: depth"),
    (dict(ds=(3, 4)), "ds"),
    (dict(activations=["tanh"]), "activations"),
    (dict(log_t=0.0), "log_t"),
    (dict(log_t_budget=8.0), "log_t_budget"),
    (dict(widths=()), "widths"),
])
def test_bad_options(options, needle):
    with pytest.raises(ValueError, match=needle):
        experiments.get("class-n-sweep", **options)


def test_random_sweep_uses_the_horizon_rule():
    """random-sweep labels by the same rule, from its flows' end at log t = 300: a settled verdict needs two
    horizons, so it is read at log t >= 600."""
    est = estimate("random-sweep", n=3, seed=0, workers=1, progress=False)
    settled = np.isin(est.sample_labels, [est.labels.index(v) for v in VERDICTS if v != "undecided"])
    assert settled.any(), est.table()
    assert np.all(est.records["log_t"][settled] >= 600.0)
    assert "horizon rule" in est.description
