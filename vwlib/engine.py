"""The optimiser: train many new words at once, each kept within δ of its anchor (docs/spec.md §2–§3).

v = anchor row + u; after every Adam step u is projected back onto the ball ||u|| <= δ · d_nn(anchor), where d_nn is
the distance from the anchor to its nearest other *known* vocabulary row of this model (δ = inf: unconstrained).
Each trial is one row of a [T, D] fp32 parameter; the total loss is the sum of per-trial losses, so Adam (which is
element-wise) updates every row exactly as if it were trained alone. One failure-masked Adam loop (`masked_adam`)
serves input-space words (here) and output-space embeddings (`vwlib.cones`) alike. Running, scoring and storing
trials is `vwlib.runner`'s job.

Usage:
    words, info = train_words(task, batch, deltas=[0.5, inf], steps=300, lr=5e-3)    # words [T, D]
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from tqdm.auto import tqdm

from .errors import VWError
from .models.accel import autocast
from .tasks import TrialBatch

ADAM = dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)  # [paper] Adam; [decided] no weight decay


def nearest_word_distance(table: torch.Tensor, known_ids: torch.Tensor, anchor_id: int) -> float:
    """d_nn: distance from the anchor's row to the nearest other known row of `table` [V, D]."""
    rows = table[known_ids[known_ids != anchor_id]].float()
    return float((rows - table[anchor_id].float()).norm(dim=1).min())


def project(vectors: torch.Tensor, anchors: torch.Tensor, radii: torch.Tensor) -> None:
    """In place: pull each row of `vectors` [T, D] back to within `radii` [T] of `anchors` [T, D]."""
    u = vectors - anchors
    norm = u.norm(dim=1, keepdim=True)
    scale = torch.clamp(radii[:, None] / norm.clamp(min=1e-12), max=1.0)
    vectors.copy_(anchors + u * scale)


def masked_adam(init: torch.Tensor, losses_of: Callable[[torch.Tensor], torch.Tensor], steps: int, lr: float,
                after_step: Callable[[torch.Tensor], None] | None = None, log_every: int = 0, progress: bool = False,
                desc: str = "") -> tuple[torch.Tensor, dict]:
    """Minimise the per-row losses `losses_of(params)` [T] of a [T, D] fp32 parameter started at `init`, with Adam.

    A row whose loss turns NaN/inf stops there: its gradient is zeroed and its value restored after each step, and it
    is reported in info["failed"] ({row: reason}); the others go on. `after_step(params.data)` runs after every step
    (the δ-ball projection). Returns (params [T, D], {"failed", "final_loss" [T], "log"}); with `log_every`, "log"
    holds {"step", "loss" [T], "distance" [T] (from init)} every `log_every` steps and at the last one.
    """
    if steps < 1:
        raise VWError(f"steps must be >= 1, got {steps}")
    params = torch.nn.Parameter(init.clone())
    opt = torch.optim.Adam([params], lr=lr, **ADAM)
    # Failures are tracked on the device (the step and the loss at which a row failed) and read once at the end:
    # the loop reads nothing back from the device between logged steps.
    alive = torch.ones(len(init), dtype=torch.bool, device=params.device)
    failed_at = torch.full((len(init),), -1, dtype=torch.long, device=params.device)
    failed_loss = torch.zeros(len(init), device=params.device)
    log = []
    for step in tqdm(range(steps), disable=not progress, desc=desc, mininterval=2):
        with autocast(params.device):  # bf16 frozen towers on CUDA; the fp32 parameter gets fp32 gradients
            losses = losses_of(params).float()  # [T]
        new = alive & ~torch.isfinite(losses.detach())
        failed_at = torch.where(new, step, failed_at)
        failed_loss = torch.where(new, losses.detach(), failed_loss)
        alive = alive & ~new
        opt.zero_grad(set_to_none=True)
        torch.where(alive, losses, torch.zeros_like(losses)).sum().backward()
        keep = alive[:, None]
        if params.grad is not None:  # a failed row's gradient may hold NaN (0 · inf): zero it, not scale it
            params.grad.copy_(torch.where(keep, params.grad, torch.zeros_like(params.grad)))
        before = params.detach().clone()
        opt.step()
        with torch.no_grad():
            params.copy_(torch.where(keep, params, before))  # a failed row stays where it was
            if after_step is not None:
                after_step(params.data)
        if log_every and (step % log_every == 0 or step == steps - 1):
            log.append({"step": step, "loss": losses.detach().tolist(),
                        "distance": (params.detach() - init).norm(dim=1).tolist()})
    failed = {row: f"loss became {loss} at step {at}"
              for row, (at, loss) in enumerate(zip(failed_at.tolist(), failed_loss.tolist())) if at >= 0}
    return params.detach(), {"failed": failed, "final_loss": losses.detach().tolist(), "log": log}


def train_words(task, batch: TrialBatch, deltas: list[float], steps: int, lr: float,
                log_every: int = 0, progress: bool = False) -> tuple[torch.Tensor, dict]:
    """Train one input-space word per row of `batch`, each within its δ-ball; returns words [T, D] (fp32) and
    {"failed": {row: reason}, "final_loss": [T], "radii": [T], "d_nn": [T], "log": [...]} (see `masked_adam`)."""
    table = task.text.embedding.weight.detach()
    device = table.device
    anchors = table[batch.anchor_ids.to(device)].float().clone()  # [T, D], fp32 whatever the towers run in
    known = task.text.known_ids()
    d_nn = [nearest_word_distance(table, known, int(a)) for a in batch.anchor_ids]
    radii = torch.tensor([math.inf if math.isinf(d) else d * r for d, r in zip(deltas, d_nn)], device=device)
    for module in task.loaded.adapter.frozen_modules():
        module.requires_grad_(False)
    words, info = masked_adam(anchors, lambda w: task.losses(w, batch), steps, lr,
                              after_step=lambda w: project(w, anchors, radii), log_every=log_every,
                              progress=progress, desc=task.name)
    return words, info | {"radii": radii.tolist(), "d_nn": d_nn}
