"""Training of the mini models (`vw mini train`). CPU-friendly: pre-rendered pools, no augmentation, fixed seeds.

Usage:
    from vwlib.mini.train import train
    train("clip", out_dir, steps=2000)      # writes the checkpoint and loss_curve.json into out_dir
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import save_compact
from .common import param_groups, to_clip_pixels, tokenize, warmup_cosine
from .data import caption_pool
from .models import CONTEXT, IMAGE_SIZE, SEEDS, build_mini
from .train_owl import train_owl
from .train_sd import train_sd

DEFAULT_STEPS = {"clip": 3000, "scorer": 6000, "owl": 6000, "sd": 6000}
# Per-model training-pool settings (caption_pool keyword arguments) beyond the defaults. The scorer labels an image
# by its largest object, as the scene datasets do: half its images are scenes, captioned by the largest object only
# (mini-scenes accuracy 0.705 -> 0.89 with width 32 and 6,000 steps).
POOL: dict[str, dict] = {"scorer": {"scene_share": 0.5, "largest_only": 1.0}}


def multi_positive_clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, same: torch.Tensor):
    """Symmetric InfoNCE where every pair with an identical caption counts as a positive. img/txt [B, E] unit."""
    logits = scale * img @ txt.t()
    target = same / same.sum(1, keepdim=True)
    return 0.5 * (-(target * logits.log_softmax(1)).sum(1).mean() - (target * logits.log_softmax(0)).sum(0).mean())


def train_contrastive(name: str, steps: int, batch: int = 128, lr: float = 2e-3, pool_size: int = 30000,
                      log_every: int = 50, **pool_kwargs) -> tuple:
    """Train mini-clip or mini-scorer (both open_clip CLIPs) contrastively on captioned world images."""
    loaded = build_mini(name)
    model = loaded.model.train()
    pool = caption_pool(pool_size, IMAGE_SIZE[name], seed=SEEDS[name] * 1000, **{**POOL.get(name, {}), **pool_kwargs})
    ids = tokenize(loaded.tokenizer, pool.captions, CONTEXT, pad_id=0)
    caption_index = {c: i for i, c in enumerate(sorted(set(pool.captions)))}
    cap = torch.tensor([caption_index[c] for c in pool.captions])
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=lr, betas=(0.9, 0.98), eps=1e-6)
    g = torch.Generator().manual_seed(SEEDS[name])
    curve = []
    for step in (bar := tqdm(range(steps), desc=f"mini-{name}", mininterval=5)):
        for group in opt.param_groups:
            group["lr"] = warmup_cosine(step, steps, lr)
        idx = torch.randint(len(cap), (batch,), generator=g)
        pixels, text = to_clip_pixels(pool.images[idx]), ids[idx]
        img, txt, scale = model(pixels, text)[:3]  # open_clip: unit features and exp(logit_scale)
        loss = multi_positive_clip_loss(img, txt, scale, (cap[idx, None] == cap[None, idx]).float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():  # CLIP's clamp of the temperature
            model.logit_scale.clamp_(0, math.log(100))
        if step % log_every == 0 or step == steps - 1:
            curve.append((step, float(loss)))
            bar.set_postfix(loss=f"{float(loss):.3f}")
    loaded.model.eval()
    return loaded, curve


def train(name: str, out_dir: str | Path, steps: int | None = None, **kwargs) -> dict:
    """Train one mini model from its seed and write its compact checkpoint and loss curve into `out_dir`."""
    steps = steps or DEFAULT_STEPS[name]
    t0 = time.time()
    if name in ("clip", "scorer"):
        loaded, curve = train_contrastive(name, steps, **kwargs)
    elif name == "owl":
        loaded, curve = train_owl(steps, **kwargs)
    elif name == "sd":
        loaded, curve = train_sd(steps, **kwargs)
    else:
        raise ValueError(name)
    seconds = time.time() - t0
    out_dir = Path(out_dir)
    save_compact(loaded, out_dir, seed=SEEDS[name])
    info = {"model": name, "steps": steps, "wall_seconds": round(seconds, 1), "threads": torch.get_num_threads(),
            "loss_curve": curve}
    (out_dir / "training.json").write_text(json.dumps(info, indent=1))
    return info
