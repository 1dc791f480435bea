"""`vw mini eval` on the shipped mini checkpoints: one JSON object, per-dataset values, and the bars that are met."""

import json
import subprocess
import sys


def test_mini_eval_json_for_the_classifier_meets_its_bar():
    proc = subprocess.run([sys.executable, "-m", "vwlib", "mini", "eval", "--model", "clip", "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report["per_dataset"]["clip_zero_shot_acc"]) == {"mini-objects", "mini-instances", "mini-scenes"}
    assert report["clip_zero_shot_acc"] >= 0.90 and report["passed"] == {"clip_zero_shot_acc": True}


def test_mini_eval_detector_reports_map():
    proc = subprocess.run([sys.executable, "-m", "vwlib", "mini", "eval", "--model", "owl", "--per-concept", "3",
                           "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    per = report["per_dataset"]
    assert 0.0 <= report["owl_map50"] <= 1.0
    assert all(per["owl_map"][d] <= per["owl_map50"][d] for d in per["owl_map50"])  # mAP@[.5:.95] <= mAP@.5
