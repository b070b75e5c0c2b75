"""Every script in examples/ runs with its small sizes (FASTFLOW_EXAMPLE_SMALL=1), exits 0, and prints and writes
what it says it does."""
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# script: (lines its output must contain, files it must write)
EXPECTED = {
    "01_flow.py": (["status t_max", "normalized margin 0.12", "random problem: status t_max", "slide_start"],
                   ["flow.png"]),
    "02_analyze.py": (["Thm 3.2: not_local", "checked with net.forward: every margin >= 1", "Lemma C.6: local",
                       "App. F.2: global", "verdict: global", "Thm 5.1 (depth 3): not_local; ||theta~||^2 = 3.779763",
                       "deep linear (Thm 3.1): global; ||theta~||^2 = 7.559526", "verdict of the limit: global"], []),
    "03_estimate.py": (["half-circle: n = 32", "workers=2: the same 32 labels", "resuming 2 chunks",
                        "P(global) = "], ["half-circle.json", "half-circle.png", "half-circle.jsonl"]),
    "04_estimate_dask.py": (["half-circle: n = 16", "same 16 labels as in this process"], []),
    "05_arrangements_convex.py": (["40 points in R^3: 1562 activation patterns (Cover: 1562)",
                                   "||theta*||^2 = 2 P* = 3.880570", "margins [1. 1.]"], []),
    "06_timing.py": (["flow_many, 2 thread(s)", "identical results"], []),
}


def test_every_example_is_checked():
    assert sorted(p.name for p in EXAMPLES.glob("[0-9]*.py")) == sorted(EXPECTED)


def check_png(path):
    """A real PNG: the signature, an IHDR chunk with a non-empty image first, an IEND chunk last."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    width, height = struct.unpack(">II", data[16:24])
    assert kind == b"IHDR" and length == 13 and width > 0 and height > 0
    assert data[-8:-4] == b"IEND"


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs(script, tmp_path):
    if script == "04_estimate_dask.py":
        pytest.importorskip("dask.distributed")
    env = {**os.environ, "FASTFLOW_EXAMPLE_SMALL": "1", "FASTFLOW_EXAMPLE_OUT": str(tmp_path)}
    env.pop("FASTFLOW_DASK_ADDRESS", None)
    proc = subprocess.run([sys.executable, str(EXAMPLES / script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines, files = EXPECTED[script]
    for line in lines:
        assert line in proc.stdout, f"{script} did not print {line!r}:\n{proc.stdout}"
    for name in files:
        assert (tmp_path / name).is_file(), f"{script} did not write {name}"
        if name.endswith(".png"):
            check_png(tmp_path / name)
    if script == "03_estimate.py":
        result = json.loads((tmp_path / "half-circle.json").read_text())
        assert result["n"] == 32 and sum(result["counts"].values()) == 32
