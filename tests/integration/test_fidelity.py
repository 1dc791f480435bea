"""`vw fidelity` end to end on tiny models: it trains, transfers and measures what the store lacks, keeps its
measurements in the store (a second call only reads), and reports every check with a CI and a verdict."""

import json
from dataclasses import replace

import pytest

from vwlib.roles import TASKS
from vwlib.study.fidelity import FIDELITY_GRID, measure, report


@pytest.mark.slow  # 21 s; the report's arithmetic is unit-tested, and notebook 09's smoke run measures a tiny grid
def test_fidelity_measures_once_then_reads(tmp_path):
    cfg = replace(FIDELITY_GRID, profile="tiny", datasets=("mini-objects",), concepts=2, out=str(tmp_path),
                  task_kwargs={"generation": {"num_inference_steps": 1, "batch_per_trial": 2}})
    first = report(measure(cfg, progress=False))
    records = sorted((tmp_path / "records").glob("*.json"))
    assert {p.stem for p in records} == {"vocabulary"} | {f"{kind}-mini-objects-{task}" for task in TASKS
                                                          for kind in ("floor", "name", "delta0", "layers")}
    stamps = {p: p.stat().st_mtime_ns for p in records}
    second = report(measure(cfg, progress=False))
    assert {p: p.stat().st_mtime_ns for p in records} == stamps  # read, not recomputed
    assert json.dumps(first["checks"], default=float) == json.dumps(second["checks"], default=float)
    one_task = report(measure(replace(cfg, tasks=("classification",)), progress=False))  # a notebook's view
    assert {p: p.stat().st_mtime_ns for p in records} == stamps  # the same records, shared
    mine = {c["check"]: c for c in one_task["checks"]}
    assert mine["delta/mini-objects/classification/saturation_at_0.5"] == \
        {c["check"]: c for c in first["checks"]}["delta/mini-objects/classification/saturation_at_0.5"]
    assert not any(k.startswith("control/mini-objects/generation") for k in mine)
    wider = report(measure(replace(cfg, concepts=3), progress=False))  # another grid: measured anew, not reused
    assert {p: p.stat().st_mtime_ns for p in records} != stamps
    assert {c["check"]: c["n"] for c in wider["checks"]}["floor/mini-objects/classification"] == 30
    checks = {c["check"]: c for c in first["checks"]}
    assert checks["floor/mini-objects/classification"]["n"] == 20  # 10 null words per concept
    assert checks["name/mini-objects/generation"]["n"] == 20  # 10 seeds per concept name
    assert checks["control/mini-objects/generation/vs_name"]["n"] == 4  # the 2 x 2 grid at δ = ∞
    assert checks["layers/mini-objects/in_domain/last_by_concept"]["n"] == 4
    assert checks["layers/generation/blocks"]["value"] == 3  # the tiny generator's text encoder
    assert checks["vocabulary/classification->generation/self_nearest"]["n"] >= 40  # the world's words
    for c in first["checks"]:
        assert set(c) == {"check", "value", "ci_low", "ci_high", "n", "threshold", "op", "passed", "note"}
        assert c["passed"] in (True, False, None)
