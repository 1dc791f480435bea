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
from dataclasses import replace
from pathlib import Path

import torch

from ..errors import VWError
from ..models.profiles import load_model
from ..paths import cache_root
from .checkpoint import save_compact
from .common import Resume
from .contrastive import open_clip_tower, train_contrastive
from .lab import RECIPES, WORLD_RECIPE, Recipe, fit_text_tower
from .models import IMAGE_SIZE, SEEDS, build_mini
from .train_owl import LEXICON, train_owl
from .train_sd import (CLIP_IMAGES, DEEP_TEXT, EOS_PADDING, NOISY_STATES, NULL_WORDS, OPEN_CLIP_LINEAGE,
                       SCENES_BY_LARGEST, TAIL_DROPOUT, UNET_LEXICON, train_sd)

# sd: with 6-block text encoders over frozen known rows, 6,000 UNet steps generated at 0.62 (bar 0.70) from scratch;
# v4 went on from the shipped UNet (train_sd) for 5,000, and v5 (--variant clip-images-eos-padding) from v4's for 4,000
DEFAULT_STEPS = {"clip": 3000, "scorer": 6000, "owl": 6000, "sd": 5000}
# Per-model training-pool settings (caption_pool keyword arguments) beyond the defaults. The scorer labels an image
# by its largest object, as the scene datasets do: half its images are scenes, captioned by the largest object only
# (mini-scenes accuracy 0.705 -> 0.89 with width 32 and 6,000 steps).
POOL: dict[str, dict] = {"scorer": {"scene_share": 0.5, "largest_only": 1.0}}
# Candidates measured against the shipped recipe (`vw mini train --variant NAME`): trainer keyword arguments, named.
VARIANTS: dict[str, dict[str, dict]] = {
    "sd": {"lexicon-unet": {"keep_text": True, **UNET_LEXICON},  # the shipped encoder; the UNet reads its lexicon
           "lexicon-unet-half": {"keep_text": True, **UNET_LEXICON, "synonym_share": 0.5},  # half the mentions
           # ... and half the captions without their end-of-text and padding states: the UNet reads the words
           "word-positions": {"keep_text": True, **UNET_LEXICON, "tail_dropout": TAIL_DROPOUT},
           # half its images scenes, captioned by their largest object: the scenes' inversion optimum is their concept
           "scenes-by-largest": {"keep_text": True, **SCENES_BY_LARGEST},
           # its lexicon, and every other known word a caption of nothing in particular: only the names' route is left
           "null-words": {"keep_text": True, **UNET_LEXICON, "null_share": NULL_WORDS},
           # a 12-block text encoder by the world's recipe (it composes meaning over depth), the UNet continued on it
           "deep-text": {"text_layers": DEEP_TEXT},
           # ... trained as an open_clip text tower (the class whose deep towers compose), then converted, as SD 2.1's
           "deep-open-clip-text": dict(OPEN_CLIP_LINEAGE),
           # the shipped encoder; the UNet trained on noisy states: it ignores moves off the captions' manifold
           "noisy-states": {"keep_text": True, "cond_noise": NOISY_STATES},
           # the open_clip lineage's encoder (it composes meaning over depth), its UNet trained on noisy states
           "deep-open-clip-noisy-states": {**OPEN_CLIP_LINEAGE, "cond_noise": NOISY_STATES},
           # the shipped encoder; captions padded with the end-of-text token: the padding the UNet reads follows it
           "eos-padding": {"keep_text": True, "pad_token": EOS_PADDING},
           # ... on the open_clip lineage's encoder, whose early layers still group a moved word by its anchor
           "deep-open-clip-eos-padding": {**OPEN_CLIP_LINEAGE, "pad_token": EOS_PADDING},
           # ... its encoder fitted to mini-clip's image tower, in which a moved word keeps its anchor at layer 1
           "clip-images-eos-padding": dict(CLIP_IMAGES)},
    "owl": {"lexicon": dict(LEXICON),  # towers and queries (measured, not shipped: docs/results.md)
            "lexicon-towers": {**LEXICON, "lexicon_in_queries": False},  # the queries keep the bare names
            "more-detection": {"warm_from": "shipped", "lr": 3e-4},  # the shipped one's detection stage, continued
            # ... with image-conditioned queries beside the text ones: the paper's loss optimum trained to detect
            "image-queries": {"warm_from": "shipped", "lr": 3e-4, "image_queries": 1.0},
            # ... and its own lexicon in the detection queries (the towers are not trained again)
            "image-queries-lexicon": {"warm_from": "shipped", "lr": 3e-4, "image_queries": 1.0, **LEXICON}},
}


def variant_kwargs(name: str, variant: str | None) -> dict:
    """The trainer keyword arguments of `variant` of mini-`name` ({} for None); a clear error for an unknown one."""
    if variant is None:
        return {}
    if variant not in VARIANTS.get(name, {}):
        known = ", ".join(f"{m}: {', '.join(v)}" for m, v in VARIANTS.items())
        raise VWError(f"mini-{name} has no training variant {variant!r}; the variants are {known}")
    return dict(VARIANTS[name][variant])


def train(name: str, out_dir: str | Path, steps: int | None = None, device: str = "cpu", **kwargs) -> dict:
    """Train one mini model from its seed and write its compact checkpoint and loss curve into `out_dir`. Every
    training saves its state as it goes (in the cache, under a name of `out_dir`, never in it): the same command
    started again after a kill goes on from there; the state is removed once the checkpoint is written.

    Mini world v4 (#32): mini-clip's text tower is trained afresh by the tower lab's WORLD_RECIPE against the shipped
    mini-clip image tower (centred, frozen); mini-sd's text encoder by the same recipe against mini-scorer's image
    tower, then its UNet goes on from the shipped one against the new encoder (train_sd). Mini-sd v5 is the variant
    "clip-images-eos-padding" trained 4,000 steps over v4 (docs/mini-world.md). Both read the shipped
    checkpoints, so train into another folder (`out_dir`) or over the shipped one (read before it is replaced).

    Usage: train("clip", "vwlib/checkpoints/mini/clip", device="cuda")   # the shipped models were trained on CUDA
    """
    steps = steps or DEFAULT_STEPS[name]
    out_dir = Path(out_dir)
    resume_dir = cache_root() / "resume" / f"{name}-{hashlib.sha256(str(out_dir.resolve()).encode()).hexdigest()[:12]}"
    t0 = time.time()
    if name == "clip":  # mini world v4: the shipped image tower, centred and frozen; the text tower by WORLD_RECIPE
        loaded = build_mini(name)
        fields = {k: kwargs.pop(k) for k in list(kwargs) if k in Recipe.__dataclass_fields__}
        recipe = replace(RECIPES[WORLD_RECIPE], steps=steps, **fields)
        curve = fit_text_tower(open_clip_tower(loaded.model), loaded.tokenizer, recipe, SEEDS[name], "clip",
                               device=device, resume=Resume(resume_dir / "contrastive.pt"), desc="mini-clip", **kwargs)
    elif name == "scorer":
        loaded = build_mini(name)
        curve = train_contrastive(open_clip_tower(loaded.model), loaded.tokenizer, steps, SEEDS[name],
                                  IMAGE_SIZE[name], device=device, desc=f"mini-{name}",
                                  resume=Resume(resume_dir / "contrastive.pt"), **{**POOL.get(name, {}), **kwargs})
    elif name == "owl":
        if kwargs.get("warm_from") == "shipped":  # a variant that goes on from the shipped detector
            kwargs["warm_from"] = load_model("mini", "detection")
        loaded, curve = train_owl(steps, device=device, resume_dir=resume_dir, **kwargs)
    elif name == "sd":
        shipped = load_model("mini", "generation")  # keeps the shipped autoencoder and goes on from its UNet
        loaded, curve = train_sd(steps, device=device, resume_dir=resume_dir, warm_from=shipped, **kwargs)
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
