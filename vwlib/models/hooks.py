"""Every forward hook of vwlib lives here, as a context manager that always removes its handle.

The one soft-token mechanism: the anchor word stays in the prompt, and the token-embedding module's output at the
anchor's positions is replaced by a trainable vector, one per batch row (so many trials share one forward pass).
No vocabulary growth: an added id >= 49408 would break the argmax end-of-text pooling of CLIP and OWL-v2, and HF
text models ignore `inputs_embeds`.

Usage:
    with substitute_token(loaded.token_embedding(), anchor_ids, vectors):   # anchor_ids [B], vectors [B, D]
        features = encoder(input_ids)                                         # input_ids [B, L]
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def substitute_token(embedding: torch.nn.Module, anchor_ids: torch.Tensor, vectors: torch.Tensor):
    """Replace the embedding of `anchor_ids[b]` in batch row b by `vectors[b]` (gradients flow into `vectors`).

    embedding: the token-embedding module (nn.Embedding, [V, D]); anchor_ids: [B] long; vectors: [B, D].
    Rows of the batch must come in the same order as `anchor_ids` / `vectors`.
    """

    def hook(module, inputs, output):  # output [B, L, D]
        ids = inputs[0]
        if ids.shape[0] != anchor_ids.shape[0]:
            raise ValueError(f"batch of {ids.shape[0]} prompts but {anchor_ids.shape[0]} substitutions")
        mask = (ids == anchor_ids.to(ids.device)[:, None]).unsqueeze(-1)  # [B, L, 1]
        # words stored on disk load on the CPU: move them to the model (a no-op, and differentiable, when there)
        return torch.where(mask, vectors.to(output.device, output.dtype)[:, None, :], output)

    handle = embedding.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def truncate_blocks(owner: torch.nn.Module, attr: str, n: int):
    """Run only the first `n` transformer blocks of `owner.<attr>` (a ModuleList); the model's own code then applies
    its final layer norm, pooling and projection. Layer k = output of block k, then the final layer norm (1-based).
    """
    blocks = getattr(owner, attr)
    if not 1 <= n <= len(blocks):
        raise ValueError(f"layers must be in 1..{len(blocks)}, got {n}")
    setattr(owner, attr, torch.nn.ModuleList(list(blocks)[:n]))
    try:
        yield
    finally:
        setattr(owner, attr, blocks)


@contextmanager
def capture_block_outputs(owner: torch.nn.Module, attr: str):
    """Collect the output of every block of `owner.<attr>` during one forward pass: yields a list, block order."""
    outputs: list[torch.Tensor] = []

    def hook(module, inputs, output):
        outputs.append(output[0] if isinstance(output, tuple) else output)

    handles = [block.register_forward_hook(hook) for block in getattr(owner, attr)]
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()
