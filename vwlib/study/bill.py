"""What a study needs and costs before it runs: its models and datasets (and which are missing), trials per task, and
GPU-hours from the engine benchmark measured at the paper's size.

Usage:
    cfg = StudyConfig(profile="paper", datasets=("imagenet",))
    print(json.dumps(bill(cfg, [t for t in cfg.trials() if not store.done(t)]), indent=1))
"""

from __future__ import annotations

import json
from pathlib import Path

from ..data.datasets import check_data, is_folder_dataset
from ..models.profiles import model_table
from ..paths import BENCH_RESULTS
from ..trials import Trial
from .config import StudyConfig

ENGINE_BENCH = BENCH_RESULTS / "engine_cuda_h100.json"


def bill(cfg: StudyConfig, unfinished: list[Trial], bench: Path = ENGINE_BENCH) -> dict:
    """What running `unfinished` trials of `cfg` needs and costs, before paying it: the profile's models (and which
    are missing), its datasets (and which are missing), the trial count per task, and an estimate of GPU-hours from
    the engine benchmark measured at the paper's size (`bench/results/engine_cuda_h100.json`, with its device)."""
    models = [{"role": r["role"], "source": r["source"], "available": r["available"]}
              for r in model_table(cfg.profile)]
    known = {r["dataset"]: r for r in check_data(cfg.profile)} if cfg.profile == "paper" else {}
    datasets = [{"dataset": d, "status": "folder" if is_folder_dataset(d) else known.get(d, {}).get("status", "generated")}
                for d in cfg.datasets]
    per_task = {task: sum(t.task == task for t in unfinished) for task in cfg.tasks}
    out = {"profile": cfg.profile, "per_task": per_task, "models": models, "datasets": datasets,
           "missing": [m["source"] for m in models if not m["available"]]
           + [d["dataset"] for d in datasets if d["status"] in ("missing", "incomplete")]}
    if cfg.profile not in ("paper", "paper-random"):
        out["estimate"] = "no GPU estimate: the mini and tiny profiles run on the CPU in minutes (make figures)"
    elif not bench.is_file():
        out["estimate"] = f"no GPU estimate: no benchmark at {bench} (python bench/engine_speed.py --profile " \
                          f"paper-random --device cuda ... writes one)"
    else:
        measured = json.loads(bench.read_text())
        rate = {r["task"]: r["words_per_hour_at_profile_steps"] for r in measured["rows"]}
        hours = {task: round(n / rate[task], 2) for task, n in per_task.items() if task in rate and n}
        out["estimate"] = {"gpu_hours": hours, "total_gpu_hours": round(sum(hours.values()), 1),
                           "device": measured["device"], "how": "trials / words per hour of the paper's 1,000-step "
                           "budget measured by bench/engine_speed.py at the paper's size (transfers not counted)"}
    return out
