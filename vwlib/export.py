"""Take a trained word out of the result store, into stock models, and bring a textual-inversion word in.

Two formats:
- generation words: diffusers' textual-inversion file, `learned_embeds.safetensors` holding
  `{token: tensor[1, D]}` with metadata {"format": "pt"}, which a stock
  `StableDiffusionPipeline.load_textual_inversion(path, token=token)` loads as a new token;
- any task's word: a vwlib word file (`export_word`), the vector with the token id it replaces, its prompt and the
  model it belongs to; `load_word(model, path)` puts it into a stock `Owlv2ForObjectDetection`, open_clip `CLIP`,
  transformers `CLIPModel`/`CLIPTextModel` or `StableDiffusionPipeline`.

Usage:
    export_textual_inversion("runs/mini/<trial>", "out/", "<star>")     # -> out/learned_embeds.safetensors
    export_word("runs/mini/<trial>", "star.safetensors")
    prompt = load_word(owl_model, "star.safetensors")                    # "heart": now means the learned word
    token, vector = read_textual_inversion("learned_embeds.safetensors")  # ("<star>", [1, D])
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .errors import VWError
from .store import load_embedding, read_config
from .tasks import PROMPTS

WORD_FORMAT = "vwlib-word"


def _input_space_config(trial_dir: Path) -> dict:
    config = read_config(trial_dir)
    if config.get("space", "input") == "output":
        raise VWError("this trial learned an output-space embedding (ConES): it stands in for the text encoder's "
                      "output, not for a token, so a token file cannot hold it; export an input-space trial of the "
                      "same concept instead")
    if config.get("status", "ok") != "ok":
        raise VWError(f"this trial failed ({config.get('reason', 'no word')}): there is no word to export")
    return config


def export_textual_inversion(trial_dir: str | os.PathLike, out_dir: str | os.PathLike, token: str) -> Path:
    trial_dir = Path(trial_dir)
    config = _input_space_config(trial_dir)
    if config.get("task") != "generation":
        raise VWError(f"this word was trained for {config.get('task')}, not generation: a textual-inversion file is "
                      f"for Stable Diffusion; export it for its own model with vw export-word")
    vector = load_embedding(trial_dir / "embedding.safetensors")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "learned_embeds.safetensors"
    tmp = out / ".learned_embeds.tmp.safetensors"
    save_file({token: vector.contiguous()}, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path)
    return path


def export_word(trial_dir: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write a trial's word as a vwlib word file: {"embedding": [1, D]} with metadata naming the token id
    it replaces (its anchor's), the prompt that uses it, the task and the model (hub id or checkpoint) it belongs
    to. Written atomically."""
    trial_dir, path = Path(trial_dir), Path(path)
    config = _input_space_config(trial_dir)
    vector = load_embedding(trial_dir / "embedding.safetensors")
    meta = {"format": WORD_FORMAT, "task": config["task"], "anchor": config["anchor"],
            "token_id": str(config["anchor_id"]), "prompt": PROMPTS[config["task"]].format(config["anchor"]),
            "model_id": str(config.get("model_id", "")), "model_fingerprint": str(config.get("model_fingerprint", "")),
            "concept": config["concept"], "dataset": config["dataset"], "delta": str(config["delta"])}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({"embedding": vector.contiguous()}, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def _token_table(model) -> torch.nn.Embedding:
    """The token-embedding module of a stock model of one of the study's families."""
    if hasattr(model, "text_encoder"):  # diffusers StableDiffusionPipeline
        return model.text_encoder.get_input_embeddings()
    if isinstance(getattr(model, "token_embedding", None), torch.nn.Embedding):  # open_clip CLIP
        return model.token_embedding
    if hasattr(model, "owlv2"):  # transformers Owlv2ForObjectDetection
        return model.owlv2.text_model.embeddings.token_embedding
    if hasattr(model, "text_model"):  # transformers CLIPModel
        return model.text_model.embeddings.token_embedding
    if hasattr(model, "get_input_embeddings"):  # transformers CLIPTextModel and kin
        return model.get_input_embeddings()
    raise VWError(f"load_word: {type(model).__name__} is none of the study's model classes (StableDiffusionPipeline, "
                  f"Owlv2ForObjectDetection, open_clip CLIP, CLIPModel, CLIPTextModel)")


def load_word(model, path: str | os.PathLike) -> str:
    """Put a word exported by `export_word` into a stock model, in place, and return the prompt that now means it.

    The word takes over its anchor token in that model: the anchor's row of the token table becomes the word, so
    every prompt with the anchor now means the learned word, and the anchor's own meaning is gone from this model
    (load it into a copy to keep both). That is exactly how vwlib trained and scored the word.

    Usage:
        owl = Owlv2ForObjectDetection.from_pretrained("google/owlv2-base-patch16-ensemble")
        prompt = load_word(owl, "star.safetensors")        # e.g. "heart"; query the detector with it
    """
    path = Path(path)
    if not path.is_file():
        raise VWError(f"no word file at {path}; write one with vw export-word")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != WORD_FORMAT:
            raise VWError(f"{path} is not a vwlib word file (written by vw export-word); a textual-inversion file "
                          f"loads with pipe.load_textual_inversion instead")
        vector = f.get_tensor("embedding")
    table = _token_table(model)
    if vector.shape[-1] != table.weight.shape[1]:
        raise VWError(f"{path} holds a {vector.shape[-1]}-wide word for {meta.get('model_id')} ({meta['task']}); "
                      f"this model's token table is {table.weight.shape[1]} wide: load it into that model")
    with torch.no_grad():
        table.weight[int(meta["token_id"])] = vector[0].to(table.weight.device, table.weight.dtype)
    return meta["prompt"]


def read_textual_inversion(path: str | os.PathLike) -> tuple[str, torch.Tensor]:
    """The placeholder token and its vector [1, D] (float32) of a diffusers textual-inversion file: safetensors
    holding one tensor [D] or [1, D] under the token's name (or under `emb_params`, as some trainers write it). A
    vwlib word file (`export_word`) reads too, its token being its anchor. Pickle files (.bin, .pt) are refused:
    loading one runs arbitrary code."""
    path = Path(path)
    if path.suffix in (".bin", ".pt", ".pth", ".ckpt"):
        raise VWError(f"{path} is a pickle file, which can run code when loaded; convert it once, where you trust it: "
                      f"python -c \"import torch; from safetensors.torch import save_file; "
                      f"save_file({{k: v.contiguous() for k, v in torch.load('{path}', weights_only=True).items()}}, "
                      f"'{path.with_suffix('.safetensors')}')\"")
    if not path.is_file():
        raise VWError(f"no textual-inversion file at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            names = list(f.keys())
            tensors = {k: f.get_tensor(k) for k in names}
            meta = f.metadata() or {}
    except Exception as e:  # safetensors' own errors name no file
        raise VWError(f"{path} is not a safetensors file ({e}); a textual-inversion file is written by diffusers' "
                      f"textual_inversion.py or vw export-diffusers") from None
    if len(tensors) != 1:
        raise VWError(f"{path} holds {len(tensors)} tensors ({', '.join(names[:4])}); a textual-inversion file "
                      f"holds one word")
    (token, vector), = tensors.items()
    if meta.get("format") == WORD_FORMAT:
        token = meta["anchor"]
    vector = vector.float().reshape(-1, vector.shape[-1])
    if vector.shape[0] != 1:
        raise VWError(f"{path}: '{token}' is {vector.shape[0]} vectors; vwlib words are one vector each, as the "
                      f"paper's: train or export a one-vector word")
    return token, vector
