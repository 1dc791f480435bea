"""Helpers every mini trainer shares: tokenizing captions, CLIP pixel normalisation, the learning-rate schedule and
AdamW parameter groups.

Usage:
    ids = tokenize(tokenizer, captions, length=32)      # [N, 32] ids, padded with 0
    pixels = to_clip_pixels(images)                     # uint8 [B, 3, S, S] -> normalised float
    lr = warmup_cosine(step, steps, base=1e-3)
    start, curve = Resume(folder / "towers.pt").restore(model, opt, g)   # a killed training goes on where it saved
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


def to_clip_pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, 3, S, S] -> CLIP-normalised float [B, 3, S, S]."""
    return (images.float() / 255.0 - CLIP_MEAN) / CLIP_STD


def tokenize(tokenizer, texts: list[str], length: int, pad_id: int = 0) -> torch.Tensor:
    """[N, length] CLIP ids, truncated (keeping the end-of-text token) and padded with `pad_id`."""
    out = torch.full((len(texts), length), pad_id, dtype=torch.long)
    for i, ids in enumerate(tokenizer(texts, add_special_tokens=True)["input_ids"]):
        ids = ids[: length - 1] + [ids[-1]] if len(ids) > length else ids
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def warmup_cosine(step: int, steps: int, base: float, warmup: int = 100) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to 0 at `steps`."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on weight matrices; none on biases, norms and token/positional embeddings (decay would
    pull every known row toward zero)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "embedding" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def freeze_rows(embedding: torch.nn.Embedding, ids: torch.Tensor) -> torch.utils.hooks.RemovableHandle:
    """Keep rows `ids` of a token table at their values while the rest of the model trains: their gradient is zeroed
    (a no-decay parameter group keeps AdamW from moving them otherwise). Returns the hook's handle."""
    mask = torch.ones(embedding.weight.shape[0], 1)
    mask[ids] = 0.0

    def zero_frozen(grad):
        return grad * mask.to(grad.device, grad.dtype)

    return embedding.weight.register_hook(zero_frozen)


SAVE_EVERY = 250  # steps between saves of a resumable training loop (a few seconds of a minute's work at most)


class Resume:
    """A training loop's state saved every `every` steps to `path` (atomically), so that a killed run, started
    again with the same arguments, goes on from its last save and ends with the same weights. `path` None: off.

    Usage:
        resume = Resume(folder / "towers.pt")
        start, curve = resume.restore(model, opt, g)          # 0, [] when nothing was saved
        for step in range(start, steps): ...; resume.step(step, model, opt, g, curve)
    """

    def __init__(self, path: str | os.PathLike | None, every: int | None = None):
        self.path, self.every = (Path(path) if path else None), every or SAVE_EVERY

    def restore(self, model: torch.nn.Module, opt: torch.optim.Optimizer, rng) -> tuple[int, list]:
        """Load the saved state into `model`, `opt` and `rng` (a torch.Generator or a numpy Generator); returns
        the step to start from and the loss curve so far."""
        if self.path is None or not self.path.is_file():
            return 0, []
        state = torch.load(self.path, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        if isinstance(rng, torch.Generator):
            rng.set_state(state["rng"])
        else:
            rng.bit_generator.state = state["rng"]
        return state["step"] + 1, state["curve"]

    def step(self, step: int, model, opt, rng, curve: list, last: bool = False) -> None:
        """Save after `step` when it is a multiple of `every` (or `last`)."""
        if self.path is None or not (last or (step + 1) % self.every == 0):
            return
        rng_state = rng.get_state() if isinstance(rng, torch.Generator) else rng.bit_generator.state
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "rng": rng_state, "step": step,
                    "curve": list(curve)}, tmp)
        os.replace(tmp, self.path)
