"""Compact mini checkpoints, write side: store what a mini model learned (read side: `vwlib.models.compact`).

Usage:
    save_compact(loaded, "vwlib/checkpoints/mini/clip", seed=11)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from ..models.compact import MARKER, convert_folder, unknown_rows
from ..models.loaders import save_model
from ..models.tokenizer import VOCAB_SIZE
from .vocab import known_token_ids


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

        convert_folder(full, compact, compact_state)
        meta = {"seed": seed, "token_tables": tables, "known_token_ids": known_token_ids().tolist()}
        if loaded.family == "sd" and loaded.tokenizer.pad_token != "!":  # the pipeline's tokenizer is not shipped
            meta["pad_token"] = loaded.tokenizer.pad_token
        (compact / MARKER).write_text(json.dumps(meta))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(compact, out_dir)
    return out_dir
