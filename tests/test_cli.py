"""The `fastflow` command line, run as a subprocess: list, run, show, resume after kill -9, a Dask scheduler."""
import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastflow import experiments
from fastflow.montecarlo import estimate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def cli(*args, timeout=120, check=True):
    proc = subprocess.run([sys.executable, "-m", "fastflow", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"fastflow {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def assert_real_png(path, min_height=200, min_width=300):
    import matplotlib.image as mpimg
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] >= min_height and img.shape[1] >= min_width, (path, img.shape)
    rgb = img[..., :3]
    assert rgb.std() > 0.02, f"{path} looks blank"                      # not a flat image
    assert np.mean(np.any(rgb < 0.5, axis=-1)) > 0.005, f"{path} has almost no ink"


def test_list_prints_one_line_per_experiment():
    out = cli("list").stdout.splitlines()
    assert len(out) == len(experiments.names())
    for line, name in zip(out, experiments.names()):
        assert line.split()[0] == name


def test_console_script_is_installed():
    exe = shutil.which("fastflow")
    if exe is None:
        pytest.skip("the fastflow console script is not on PATH (reinstall the package)")
    proc = subprocess.run([exe, "list"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "tvs-rank-2x2" in proc.stdout


def test_run_then_show(tmp_path):
    out = tmp_path / "rank"
    proc = cli("run", "tvs-rank-2x2", "--n", 96, "--seed", 3, "--workers", 1, "--out", out, "--quiet")
    res = json.loads((out / "results.json").read_text())
    assert res["n"] == 96 and sum(res["counts"].values()) == 96 and res["seed"] == 3
    assert set(res["ci"]) == set(res["counts"]) and res["wall_time"] > 0 and res["versions"]["fastflow"]
    direct = estimate("tvs-rank-2x2", n=96, seed=3, workers=1, progress=False)
    assert res["counts"] == direct.counts
    for label in res["counts"]:
        assert label in proc.stdout
    pngs = ["probabilities.png", "stable_ranks.png", "directions.png"]
    for name in pngs:
        assert_real_png(out / name)
        (out / name).unlink()
    shown = cli("show", out)
    assert shown.stdout.splitlines()[0] == proc.stdout.splitlines()[0]
    for name in pngs:
        assert_real_png(out / name)


def test_run_passes_the_branch_option_to_the_flows(tmp_path):
    out = tmp_path / "rank"
    proc = cli("run", "tvs-rank-2x2", "--n", 16, "--workers", 1, "--out", out, "--quiet", "--no-plots",
               "--branch", "leave")
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["flow"]["branch"] == "leave"
    exp = experiments.get("tvs-rank-2x2")
    default = exp.fingerprint()
    exp.flow["branch"] = "leave"
    assert res["settings"]["fingerprint"] == exp.fingerprint() != default     # its checkpoints are its own
    direct = estimate(exp, n=16, seed=0, workers=1, progress=False)
    assert res["counts"] == direct.counts
    # every run records whether it met a branch, and the table gives the fraction
    branched = res["samples"]["records"]["branched"]
    assert len(branched) == 16 and set(branched) <= {0.0, 1.0}
    assert branched == direct.records["branched"].tolist()
    assert f"  runs with a branch event: {int(sum(branched))}/16 = " in proc.stdout


def test_errors_exit_with_code_2(tmp_path):
    for args, needle in ((("run", "no-such-experiment"), "unknown experiment"),
                         (("run", "tvs-rank-2x2", "--branch", "foo"), "branch"),
                         (("show", tmp_path / "missing"), "neither"),
                         (("run", "tvs-rank-2x2", "--n", 0, "--out", tmp_path / "x"), "n must be"),
                         ((), "")):
        proc = cli(*args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_resume_after_kill_9_gives_the_uninterrupted_counts(tmp_path):
    out = tmp_path / "vss"
    ckpt = out / "checkpoint.jsonl"
    n, chunk = 2000, 8
    cmd = [sys.executable, "-m", "fastflow", "run", "vss-thm3.2", "--n", str(n), "--chunk-size", str(chunk),
           "--workers", "1", "--out", str(out), "--quiet", "--no-plots"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if ckpt.exists() and ckpt.read_bytes().count(b"\n") >= 4:   # the header and 3 chunks
                break
            if proc.poll() is not None:
                break
            time.sleep(0.002)
        if proc.poll() is None:
            proc.kill()   # SIGKILL
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done_before = ckpt.read_bytes().count(b"\n") - 1
    assert 3 <= done_before < n // chunk
    assert not (out / "results.json").exists()
    head = cli("show", out, "--no-plots").stdout.splitlines()[0]   # the unbroken prefix of finished chunks
    assert "partial" in head and int(head.split("n = ")[1].split(",")[0]) % chunk == 0
    resumed = cli("run", "vss-thm3.2", "--out", out, "--resume", "--workers", 2, "--quiet", "--no-plots")
    assert "resuming" in resumed.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["resumed_chunks"] >= 3
    ref = estimate("vss-thm3.2", n=n, seed=0, workers=2, progress=False)
    assert res["n"] == n and res["counts"] == ref.counts
    assert res["samples"]["labels"] == [ref.labels[i] for i in ref.sample_labels]


def test_run_on_a_dask_scheduler(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=50) as cluster:
        cli("run", "tvs-thm3", "--n", 128, "--seed", 7, "--dask", cluster.scheduler_address, "--out", tmp_path,
            "--quiet", "--no-plots")
    res = json.loads((tmp_path / "results.json").read_text())
    assert "ClientExecutor" in res["settings"]["executor"]
    assert res["counts"] == estimate("tvs-thm3", n=128, seed=7, workers=1, progress=False).counts
