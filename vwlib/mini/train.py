"""Training of the mini models (`vw mini train`). CPU-friendly: pre-rendered pools, no augmentation, fixed seeds.

Usage:
    from vwlib.mini.train import train
    train("clip", out_dir, steps=2000)      # writes the checkpoint and loss_curve.json into out_dir
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import torch

from ..paths import cache_root
from .checkpoint import save_compact
from .common import Resume
from .contrastive import open_clip_tower, train_contrastive
from .models import IMAGE_SIZE, SEEDS, build_mini
from .train_owl import train_owl
from .train_sd import train_sd

# sd: with 6-block text encoders over frozen known rows, 6,000 UNet steps generated at 0.62 (bar 0.70)
DEFAULT_STEPS = {"clip": 3000, "scorer": 6000, "owl": 6000, "sd": 10000}
# Per-model training-pool settings (caption_pool keyword arguments) beyond the defaults. The scorer labels an image
# by its largest object, as the scene datasets do: half its images are scenes, captioned by the largest object only
# (mini-scenes accuracy 0.705 -> 0.89 with width 32 and 6,000 steps).
POOL: dict[str, dict] = {"scorer": {"scene_share": 0.5, "largest_only": 1.0}}


def train(name: str, out_dir: str | Path, steps: int | None = None, device: str = "cpu", **kwargs) -> dict:
    """Train one mini model from its seed and write its compact checkpoint and loss curve into `out_dir`. mini-clip,
    mini-scorer and mini-owl save their state as they go (in the cache, under a name of `out_dir`, never in it): the
    same command started again after a kill goes on from there (mini-sd starts over); the state is removed once the
    checkpoint is written.

    Usage: train("clip", "vwlib/checkpoints/mini/clip", device="cuda")   # the shipped models were trained on CUDA
    """
    steps = steps or DEFAULT_STEPS[name]
    out_dir = Path(out_dir)
    resume_dir = cache_root() / "resume" / f"{name}-{hashlib.sha256(str(out_dir.resolve()).encode()).hexdigest()[:12]}"
    t0 = time.time()
    if name in ("clip", "scorer"):
        loaded = build_mini(name)
        curve = train_contrastive(open_clip_tower(loaded.model), loaded.tokenizer, steps, SEEDS[name],
                                  IMAGE_SIZE[name], device=device, desc=f"mini-{name}",
                                  resume=Resume(resume_dir / "contrastive.pt"), **{**POOL.get(name, {}), **kwargs})
    elif name == "owl":
        loaded, curve = train_owl(steps, device=device, resume_dir=resume_dir, **kwargs)
    elif name == "sd":
        loaded, curve = train_sd(steps, device=device, **kwargs)
    else:
        raise ValueError(name)
    seconds = time.time() - t0
    loaded.model.to("cpu")
    save_compact(loaded, out_dir, seed=SEEDS[name])
    info = {"model": name, "steps": steps, "wall_seconds": round(seconds, 1), "device": device,
            "threads": torch.get_num_threads(), "loss_curve": curve}
    (out_dir / "training.json").write_text(json.dumps(info, indent=1))
    shutil.rmtree(resume_dir, ignore_errors=True)
    return info
