"""Capture the words and metrics of a fixed small grid on the tiny and mini profiles (CPU), for
tests/integration/test_no_result_changed.py: a refactor must reproduce them exactly.

Regenerate only when results change on purpose (a retrained mini model, a new loss), in a commit of its own:
    .venv/bin/python tests/golden/capture.py          # -> tests/golden/baseline.json
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).parent
OUT = HERE / "baseline.json"


def grid(profile: str) -> list:
    """3 tasks x 2 concepts x 2 anchors x δ {0.5, ∞} on mini-objects, a few steps each (seconds on 2 cores)."""
    from vwlib.trials import Trial

    steps = {"tiny": 2, "mini": 4}[profile]
    return [Trial(profile, task, "mini-objects", c, a, d, steps=steps)
            for task in ("generation", "detection", "classification")
            for c in ("star", "ring") for a in ("star", "heart") for d in (0.5, math.inf)]


TASK_KWARGS = {"generation": {"num_inference_steps": 2, "batch_per_trial": 2}}


def run(profile: str, trials: list, root: Path) -> dict:
    """The study's own path: train and score in-domain, fit the lstsq maps, score every word transferred."""
    from vwlib.study.config import StudyConfig, run_study

    cfg = StudyConfig(profile=profile, datasets=("mini-objects",), out=str(root), task_kwargs=TASK_KWARGS)
    object.__setattr__(cfg, "trials", lambda: trials)  # the fixed grid, not a StudyConfig one
    run_study(cfg, progress=False)
    return read(root, trials)


def read(root: Path, trials: list) -> dict:
    from safetensors.torch import load_file

    out = {}
    for t in trials:
        d = Path(root) / t.key()
        evals = {p.stem[len("eval-"):]: json.loads(p.read_text()) for p in sorted(d.glob("eval-*.json"))}
        word = load_file(str(d / "embedding.safetensors"))["embedding"][0]
        out[t.key()] = {"word": [round(float(x), 7) for x in word], "evaluations": evals}
    return out


def main() -> int:
    torch.set_num_threads(2)
    result = {}
    for profile in ("tiny", "mini"):
        with tempfile.TemporaryDirectory() as tmp:
            result[profile] = run(profile, grid(profile), Path(tmp))
    OUT.write_text(json.dumps(result, indent=0, sort_keys=True))
    print(f"wrote {OUT}: {sum(len(v) for v in result.values())} trials")
    return 0


if __name__ == "__main__":
    sys.exit(main())
