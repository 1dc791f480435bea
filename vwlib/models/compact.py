"""Compact mini checkpoints, read side: rebuild the library's own folder format from what a mini model learned.

A 49,408 x 64 token table is most of a mini model, but only the rows the model knows (MiniLM-seeded words) or
trained (caption words, specials) differ from a seeded random init. A compact checkpoint keeps those rows and every
other weight in fp16; `materialise` regenerates the rest from the seed and writes a standard folder (diffusers /
transformers / open_clip format) into the cache, which the family adapters then read like any hub snapshot.
(`vwlib.mini.checkpoint.save_compact` writes them.)

Usage:
    folder = materialise("vwlib/checkpoints/mini/clip")   # ~/.cache/vwlib/mini/clip-<hash>/ (standard format)
    known_ids("vwlib/checkpoints/mini/clip")              # LongTensor [K]: the vocabulary rows the model knows
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..paths import cache_root
from .tokenizer import VOCAB_SIZE, clip_tokenizer

MARKER = "vwlib_compact.json"


def unknown_rows(width: int, seed: int) -> torch.Tensor:
    """[49408, width]: the seeded init of every token row (known rows are overwritten when a mini model is built)."""
    return torch.randn(VOCAB_SIZE, width, generator=torch.Generator().manual_seed(seed)) * 0.02


def is_compact(path: str | os.PathLike) -> bool:
    return (Path(path) / MARKER).is_file()


def known_ids(path: str | os.PathLike) -> torch.Tensor:
    """The token ids this mini model knows (its shared-vocabulary rows)."""
    return torch.tensor(json.loads((Path(path) / MARKER).read_text())["known_token_ids"])


def digest(path: str | os.PathLike) -> str:
    """A content hash of every file of a folder (16 hex digits)."""
    path, h = Path(path), hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def convert_folder(src_dir: Path, dst_dir: Path, convert) -> None:
    """Copy a model folder, passing every safetensors file's state dict through `convert(relative name, state)`."""
    for src in src_dir.rglob("*"):
        if src.is_dir() or src.name == MARKER:
            continue
        dst = dst_dir / src.relative_to(src_dir)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".safetensors":
            save_file(convert(str(src.relative_to(src_dir)), load_file(src)), str(dst))
        else:
            shutil.copy2(src, dst)


LAYOUT = "v2"  # of the materialised folder: v2 adds the tokenizer of a pipeline folder


def _write_rebuildable_files(out: Path, pad_token: str) -> None:
    """Files a library can rebuild are not shipped but written here, so the folder is complete for stock loaders:
    a diffusers pipeline folder gets the CLIP BPE tokenizer, padding with the pad token the model was trained with
    (SD 2.1's "!" unless the checkpoint's marker names another)."""
    index_path = out / "model_index.json"
    if not index_path.is_file():
        return
    index = json.loads(index_path.read_text())
    if index.get("tokenizer", [None])[0] is None:
        clip_tokenizer(pad_token=pad_token).save_pretrained(out / "tokenizer")
        index["tokenizer"] = ["transformers", "CLIPTokenizer"]
        index_path.write_text(json.dumps(index, indent=2))


def materialise(path: str | os.PathLike) -> Path:
    """The standard-format folder of a compact checkpoint, built once into the cache (atomically) and reused."""
    path = Path(path)
    target = cache_root() / "mini" / f"{path.name}-{digest(path)}-{LAYOUT}"
    if target.is_dir():
        return target
    meta = json.loads((path / MARKER).read_text())
    seed = meta["seed"]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / "model"

        def full_state(name: str, state: dict) -> dict:
            full = {}
            for key, t in state.items():
                if key.endswith("::rows"):  # a token table: the seeded init, with the stored rows written back
                    base = key[: -len("::rows")]
                    values = state[f"{base}::values"].float()
                    table = unknown_rows(values.shape[1], seed)
                    table[t.long()] = values
                    full[base] = table
                elif not key.endswith("::values"):
                    full[key] = t.float() if t.is_floating_point() else t
            return full

        convert_folder(path, out, full_state)
        _write_rebuildable_files(out, meta.get("pad_token", "!"))
        try:
            os.replace(out, target)
        except OSError:  # another process materialised it first
            pass
    return target
