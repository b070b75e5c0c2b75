"""Results of the golden runs (tests/golden/runs.py) are bit-identical to the recorded hashes: a refactor of the
kernel or of the Python layer must not change one bit of any result field. The runs go in one subprocess, which
pins NumPy's and OpenBLAS's SIMD kernels (runs.PINNED_ENV) before NumPy loads: the hashes do not depend on the CPU."""
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).with_name("golden")))
import runs  # noqa: E402

RECORDED = json.loads(runs.HASHES.read_text())


@functools.lru_cache(maxsize=None)
def computed():
    out = subprocess.run([sys.executable, runs.__file__, "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_every_run_is_recorded():
    assert sorted(name for name, _ in runs.runs()) == sorted(RECORDED)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_golden(name):
    assert computed()[name] == RECORDED[name]
