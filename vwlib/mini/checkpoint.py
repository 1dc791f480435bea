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


def _convert_folder(src_dir: Path, dst_dir: Path, convert) -> None:
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


def save_compact(loaded, out_dir: str | os.PathLike, seed: int) -> Path:
    """Write `loaded` as a compact checkpoint (fp16, token tables as changed rows only), atomically."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        full, compact = Path(tmp) / "full", Path(tmp) / "compact"
        save_model(loaded, full)
        tables = {}

        def compact_state(name: str, state: dict) -> dict:
            out = {}
            for key, t in state.items():
                if t.ndim == 2 and t.shape[0] == VOCAB_SIZE:  # a token table: keep the rows that left their init
                    rows = torch.nonzero((t != unknown_rows(t.shape[1], seed)).any(1)).flatten()
                    out[f"{key}::rows"] = rows.to(torch.int32)
                    out[f"{key}::values"] = t[rows].half()
                    tables[f"{name}:{key}"] = {"width": t.shape[1], "stored_rows": len(rows)}
                else:
                    out[key] = t.half() if t.is_floating_point() else t
            return out

        _convert_folder(full, compact, compact_state)
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

        _convert_folder(path, out, full_state)
        try:
            os.replace(out, target)
        except OSError:  # another process materialised it first
            pass
    return target
