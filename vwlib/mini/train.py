"""Training of the mini models (`vw mini train`). CPU-friendly: pre-rendered pools, no augmentation, fixed seeds.

Usage:
    from vwlib.mini.train import train
    train("clip", out_dir, steps=2000)      # writes the checkpoint and loss_curve.json into out_dir
"""

from __future__ import annotations

import functools
import json
import math
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import save_compact
from .common import freeze_rows, param_groups, to_clip_pixels, tokenize, warmup_cosine
from .data import caption_pool
from .models import CONTEXT, IMAGE_SIZE, SEEDS, build_mini
from .train_owl import train_owl
from .train_sd import train_sd
from .vocab import known_token_ids, known_words, world_words

# sd: with 6-block text encoders over frozen known rows, 6,000 UNet steps generated at 0.62 (bar 0.70)
DEFAULT_STEPS = {"clip": 3000, "scorer": 6000, "owl": 6000, "sd": 10000}
# Per-model training-pool settings (caption_pool keyword arguments) beyond the defaults. The scorer labels an image
# by its largest object, as the scene datasets do: half its images are scenes, captioned by the largest object only
# (mini-scenes accuracy 0.705 -> 0.89 with width 32 and 6,000 steps).
POOL: dict[str, dict] = {"scorer": {"scene_share": 0.5, "largest_only": 1.0}}
# Distractor captions per step: "a photo of a <known word that names nothing in the world>", negatives for every
# image. Without them a word that names nothing beat nine wrong concept names in the 10-way vote (the classifier's
# floor was 0.39-0.50; the paper's DFN: 0.09-0.18), because in so small a world every wrong name is *very* wrong.
DISTRACTORS = {"clip": 64, "scorer": 64}


def multi_positive_clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, same: torch.Tensor,
                             negatives: torch.Tensor | None = None):
    """Symmetric InfoNCE where every pair with an identical caption counts as a positive. img/txt [B, E] unit;
    negatives [N, E]: extra unit text features that match no image (image -> text direction only)."""
    logits = scale * img @ txt.t()
    target = same / same.sum(1, keepdim=True)
    i2t, i2t_target = logits, target
    if negatives is not None:
        i2t = torch.cat([logits, scale * img @ negatives.t()], 1)
        i2t_target = torch.cat([target, target.new_zeros(len(img), len(negatives))], 1)
    return 0.5 * (-(i2t_target * i2t.log_softmax(1)).sum(1).mean() - (target * logits.log_softmax(0)).sum(0).mean())


def distractor_ids(tokenizer, n: int, g: torch.Generator) -> torch.Tensor:
    """[n, CONTEXT] ids of "a photo of a <w>" for n known words w that are not world words."""
    words = _distractor_words()
    pick = torch.randint(len(words), (n,), generator=g).tolist()
    return tokenize(tokenizer, [f"a photo of a {words[i]}" for i in pick], CONTEXT, pad_id=0)


@functools.lru_cache(maxsize=1)
def _distractor_words() -> list[str]:
    world = set(world_words())
    return sorted(w for w in known_words() if w not in world)


def train_contrastive(name: str, steps: int, batch: int = 128, lr: float = 2e-3, pool_size: int = 30000,
                      log_every: int = 50, device: str = "cpu", **pool_kwargs) -> tuple:
    """Train mini-clip or mini-scorer (both open_clip CLIPs) contrastively on captioned world images. Batches are
    drawn on the CPU from the seeded generator, so `device` changes the arithmetic's order, not the data."""
    loaded = build_mini(name)
    model = loaded.model.train().to(device)
    freeze_rows(model.token_embedding, known_token_ids())
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
        pixels, text = to_clip_pixels(pool.images[idx]).to(device), ids[idx].to(device)
        img, txt, scale = model(pixels, text)[:3]  # open_clip: unit features and exp(logit_scale)
        negatives = None
        if DISTRACTORS.get(name):
            negatives = model.encode_text(distractor_ids(loaded.tokenizer, DISTRACTORS[name], g).to(device),
                                          normalize=True)
        same = (cap[idx, None] == cap[None, idx]).float().to(device)
        loss = multi_positive_clip_loss(img, txt, scale, same, negatives)
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


def train(name: str, out_dir: str | Path, steps: int | None = None, device: str = "cpu", **kwargs) -> dict:
    """Train one mini model from its seed and write its compact checkpoint and loss curve into `out_dir`.

    Usage: train("clip", "vwlib/checkpoints/mini/clip", device="cuda")   # the shipped models were trained on CUDA
    """
    steps = steps or DEFAULT_STEPS[name]
    t0 = time.time()
    if name in ("clip", "scorer"):
        loaded, curve = train_contrastive(name, steps, device=device, **kwargs)
    elif name == "owl":
        loaded, curve = train_owl(steps, device=device, **kwargs)
    elif name == "sd":
        loaded, curve = train_sd(steps, device=device, **kwargs)
    else:
        raise ValueError(name)
    seconds = time.time() - t0
    loaded.model.to("cpu")
    out_dir = Path(out_dir)
    save_compact(loaded, out_dir, seed=SEEDS[name])
    info = {"model": name, "steps": steps, "wall_seconds": round(seconds, 1), "device": device,
            "threads": torch.get_num_threads(), "loss_curve": curve}
    (out_dir / "training.json").write_text(json.dumps(info, indent=1))
    return info
