"""bench/gpu_run.sh, the prepared device run of issue #35, in its CPU dry mode: every task timed eager and under
each lever that applies to it, one JSON per run with the device named."""

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # 25 s of seven tiny benchmark runs: make test-all, so that make test stays under 5 min
def test_gpu_run_dry_mode_writes_one_named_json_per_task_and_lever(tmp_path):
    out = tmp_path / "results"
    subprocess.run(["bash", str(ROOT / "bench" / "gpu_run.sh"), "--dry", str(out)], check=True, cwd=ROOT,
                   capture_output=True, text=True, timeout=300)
    runs = {p.stem: json.loads(p.read_text()) for p in out.glob("engine_*.json")}
    assert set(runs) == {f"engine_{task}_{lever}" for task in ("classification", "detection", "generation")
                         for lever in ("eager", "bf16-weights")} | {"engine_detection_gpu-nms"}
    for row in runs.values():
        assert row["device"].startswith("cpu (") and row["profile"] == "tiny"
        assert row["words_per_hour_end_to_end"] > 0 and row["setup"] > 0 and row["scoring_per_word"] > 0
    assert runs["engine_detection_gpu-nms"]["levers"]["gpu_nms"] is True


def test_gpu_run_refuses_a_machine_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        return
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_run.sh"), str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and "no CUDA device: use --dry" in done.stderr
