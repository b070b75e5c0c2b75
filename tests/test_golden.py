"""Results of the golden runs (tests/golden/runs.py) are bit-identical to the recorded hashes: a refactor of the
kernel or of the Python layer must not change one bit of any result field."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).with_name("golden")))
import runs  # noqa: E402

RECORDED = json.loads(runs.HASHES.read_text())
RUNS = dict(runs.runs())


def test_every_run_is_recorded():
    assert sorted(RUNS) == sorted(RECORDED)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_golden(name):
    result = RUNS[name]()
    trajs = result if isinstance(result, list) else [result]
    assert runs.combined(trajs) == RECORDED[name]
