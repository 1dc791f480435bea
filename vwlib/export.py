"""Export a trained word to the diffusers textual-inversion format.

The file is `learned_embeds.safetensors` holding `{token: tensor[num_vectors, D]}` with metadata
{"format": "pt"}, which a stock `StableDiffusionPipeline.load_textual_inversion(path, token=token)` loads.

Usage:
    export_textual_inversion("runs/mini/<trial>", "out/", "<star>")     # -> out/learned_embeds.safetensors
"""

from __future__ import annotations

import os
from pathlib import Path

from safetensors.torch import save_file

from .errors import VWError
from .store import load_embedding, read_config


def export_textual_inversion(trial_dir: str | os.PathLike, out_dir: str | os.PathLike, token: str) -> Path:
    trial_dir = Path(trial_dir)
    config = read_config(trial_dir)
    if config.get("space", "input") == "output":
        raise VWError("this trial learned an output-space embedding (ConES): it stands in for the text encoder's "
                      "output, not for a token, so a textual-inversion file cannot hold it; export an input-space "
                      "trial of the same concept instead")
    if config.get("task") != "generation":
        raise VWError(f"this word was trained for {config.get('task')}, not generation: its width is that model's; "
                      f"map it into the generator first (vw transfer)")
    vector = load_embedding(trial_dir / "embedding.safetensors")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "learned_embeds.safetensors"
    tmp = out / ".learned_embeds.tmp.safetensors"
    save_file({token: vector.contiguous()}, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path)
    return path
