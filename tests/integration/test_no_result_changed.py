"""A refactor changes no result: the words and metrics of a fixed small grid (tests/golden/capture.py), trained,
scored and transferred on the tiny and mini profiles on the CPU, equal the values captured before it began.
Deliberate changes of results (a retrained mini model) regenerate the baseline in a commit of their own."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parents[1] / "golden"


def _capture():
    spec = importlib.util.spec_from_file_location("capture", GOLDEN / "capture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _close(a, b, path):
    if isinstance(a, float) or isinstance(b, float):
        assert math.isclose(float(a), float(b), rel_tol=1e-5, abs_tol=1e-5), f"{path}: {a} != {b}"
    elif isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(set(a) ^ set(b))} differ"
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.mark.parametrize("profile", ["tiny", "mini"])
def test_the_fixed_grid_reproduces_the_captured_words_and_metrics(profile, tmp_path):
    capture = _capture()
    expected = json.loads((GOLDEN / "baseline.json").read_text())[profile]
    got = capture.run(profile, capture.grid(profile), tmp_path)
    assert set(got) == set(expected)  # the same trial keys: model fingerprints and trial fields unchanged
    for key in expected:
        _close(got[key]["word"], expected[key]["word"], f"{key}.word")
        _close(got[key]["evaluations"], expected[key]["evaluations"], f"{key}.evaluations")
