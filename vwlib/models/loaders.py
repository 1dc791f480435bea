"""Load, build and save models of the four families, one code path for every profile (each family's details live in
its adapter, `vwlib.models.families`).

A model is always loaded from a local directory in its library's own format, whichever profile it belongs to:
the `paper` profile resolves a hub id to a folder of the Hugging Face cache (or of $VWLIB_MODELS_DIR), the `mini`
profile to a checkpoint folder shipped in this package (compact: materialised once into the cache). The `tiny`
profile builds randomly initialised models of the same classes in memory (and `save_model` can write them out in the
paper's layout, which is how the paper loading code is tested offline).

Usage:
    from vwlib.models.loaders import build_tiny, load_from_dir, save_model
    m = build_tiny("owl")                 # Loaded(family="owl", model=Owlv2ForObjectDetection, processor=...)
    save_model(m, "/tmp/owl"); m2 = load_from_dir("owl", "/tmp/owl")
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from . import compact
from .families import FAMILIES, Loaded, family

TINY_WIDTH = 32  # every tiny text/vision width; the paper models use 1024 (SD), 512 (OWL), 768 (DFN)
KEY_FILE = {name: cls.key_file for name, cls in FAMILIES.items()}

__all__ = ["FAMILIES", "KEY_FILE", "Loaded", "TINY_WIDTH", "build_paper_random", "build_tiny", "load_from_dir",
           "save_model"]


def load_from_dir(family_name: str, path: str | os.PathLike, device: str | torch.device = "cpu") -> Loaded:
    """Load a model folder written in its library's format (a hub snapshot, `save_model`'s output, or a compact
    mini checkpoint, which is first materialised into the cache and knows only its shared-vocabulary rows)."""
    path = Path(path)
    cls = family(family_name)
    if compact.is_compact(path):
        loaded = cls.load(compact.materialise(path), device)
        loaded.meta["known_ids"] = compact.known_ids(path)
        return loaded
    return cls.load(path, device)


def save_model(m: Loaded, path: str | os.PathLike, with_tokenizer: bool = False) -> Path:
    """Write `m` in the layout `load_from_dir` reads (the same layout as the hub repositories of the paper models)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    m.adapter.save(path, with_tokenizer)
    return path


def build_tiny(family_name: str, seed: int = 0, width: int = TINY_WIDTH) -> Loaded:
    """A randomly initialised model of the same class and config shape as the paper's model of that family."""
    cls = family(family_name)
    torch.manual_seed(seed)
    return cls.build_tiny(width)


def build_paper_random(family_name: str, seed: int = 0) -> Loaded:
    """The paper's model of that family at full size (its published configuration) with random weights: the
    `paper-random` profile, for shape, memory and speed checks of the paper path without its weights."""
    cls = family(family_name)
    torch.manual_seed(seed)
    return cls.build_paper_random()
