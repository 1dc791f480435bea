"""Know the bill before paying it: models, datasets, trials and GPU-hours of a grid, without running anything."""

import json
import subprocess
import sys

from vwlib.study.bill import bill
from vwlib.study.config import StudyConfig


def test_bill_scales_trials_by_the_benchmarked_rates(tmp_path, empty_hub):
    bench = tmp_path / "engine.json"
    bench.write_text(json.dumps({"device": "an H100", "rows": [
        {"task": "generation", "words_per_hour_at_profile_steps": 12.0},
        {"task": "classification", "words_per_hour_at_profile_steps": 3000.0}]}))
    cfg = StudyConfig(profile="paper", datasets=("coco",), tasks=("generation", "classification"), concepts=2,
                      deltas=("inf",))
    out = bill(cfg, cfg.trials(), bench=bench)
    assert out["per_task"] == {"generation": 4, "classification": 4}
    assert out["estimate"]["gpu_hours"] == {"generation": round(4 / 12, 2), "classification": round(4 / 3000, 2)}
    assert out["estimate"]["device"] == "an H100"
    assert "openai/clip-vit-large-patch14" in out["missing"]  # the hub cache is empty (empty_hub)
    assert "no benchmark at" in bill(cfg, cfg.trials(), bench=tmp_path / "none.json")["estimate"]


def test_dry_runs_print_the_bill_and_run_nothing(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vwlib", "sweep", "sweeps/paper-sec4.yaml", "--dry-run",
                           "--out", str(tmp_path / "runs")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["trials"] == out["unfinished"] == 1200 and out["per_task"]["generation"] == 400
    assert out["estimate"]["total_gpu_hours"] > 0 and "H100" in out["estimate"]["device"]
    proc = subprocess.run([sys.executable, "-m", "vwlib", "notebooks", "--dry-run"], capture_output=True, text=True)
    out = json.loads(proc.stdout)
    assert out["trials"] == 1125 and out["missing"] == [] and out["estimate"].startswith("no GPU estimate")
    assert not (tmp_path / "runs").exists()
