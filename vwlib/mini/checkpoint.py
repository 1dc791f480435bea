"""Compact mini checkpoints: store what a model learned, rebuild the library's own folder format on first use.

A 49,408 x 64 token table is most of a mini model, but only the rows the model knows (MiniLM-seeded words) or
trained (caption words, specials) differ from a seeded random init. The compact checkpoint keeps those rows and
every other weight in fp16; `materialise` regenerates the rest from the seed and writes a standard folder (diffusers /
transformers / open_clip format) into the cache, which `load_from_dir` then reads like any hub snapshot.

Usage:
    save_compact(loaded, "vwlib/checkpoints/mini/clip", seed=11)
    folder = materialise("vwlib/checkpoints/mini/clip")   # ~/.cache/vwlib/mini/clip-<hash>/ (standard format)
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

from ..loaders import save_model
from ..tokenizer import VOCAB_SIZE
from .vocab import known_token_ids, unknown_rows

MARKER = "vwlib_compact.json"
CACHE_ENV = "VWLIB_CACHE"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "vwlib")


def save_compact(loaded, out_dir: str | os.PathLike, seed: int) -> Path:
    """Write `loaded` as a compact checkpoint (fp16, token tables as changed rows only), atomically."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        full, compact = Path(tmp) / "full", Path(tmp) / "compact"
        save_model(loaded, full)
        tables = {}
        for src in full.rglob("*"):
            dst = compact / src.relative_to(full)
            if src.is_dir():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.suffix != ".safetensors":
                shutil.copy2(src, dst)
                continue
            state, out = load_file(src), {}
            for key, t in state.items():
                if t.ndim == 2 and t.shape[0] == VOCAB_SIZE:  # a token table: keep the rows that left their init
                    init = unknown_rows(t.shape[1], seed)
                    rows = torch.nonzero((t != init).any(1)).flatten()
                    out[f"{key}::rows"] = rows.to(torch.int32)
                    out[f"{key}::values"] = t[rows].half()
                    tables[f"{src.relative_to(full)}:{key}"] = {"width": t.shape[1], "stored_rows": len(rows)}
                else:
                    out[key] = t.half() if t.is_floating_point() else t
            save_file(out, str(dst))
        meta = {"seed": seed, "token_tables": tables, "known_token_ids": known_token_ids().tolist()}
        (compact / MARKER).write_text(json.dumps(meta))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(compact, out_dir)
    return out_dir


def is_compact(path: str | os.PathLike) -> bool:
    return (Path(path) / MARKER).is_file()


def known_ids(path: str | os.PathLike) -> torch.Tensor:
    """The token ids this mini model knows (its shared-vocabulary rows)."""
    return torch.tensor(json.loads((Path(path) / MARKER).read_text())["known_token_ids"])


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def materialise(path: str | os.PathLike) -> Path:
    """The standard-format folder of a compact checkpoint, built once into the cache (atomically) and reused."""
    path = Path(path)
    target = cache_root() / "mini" / f"{path.name}-{_digest(path)}"
    if target.is_dir():
        return target
    seed = json.loads((path / MARKER).read_text())["seed"]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / "model"
        for src in path.rglob("*"):
            if src.is_dir() or src.name == MARKER:
                continue
            dst = out / src.relative_to(path)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.suffix != ".safetensors":
                shutil.copy2(src, dst)
                continue
            state, full = load_file(src), {}
            for key, t in state.items():
                if key.endswith("::rows"):
                    name = key[: -len("::rows")]
                    values = state[f"{name}::values"].float()
                    table = unknown_rows(values.shape[1], seed)
                    table[t.long()] = values
                    full[name] = table
                elif not key.endswith("::values"):
                    full[key] = t.float() if t.is_floating_point() else t
            save_file(full, str(dst))
        try:
            os.replace(out, target)
        except OSError:  # another process materialised it first
            pass
    return target
