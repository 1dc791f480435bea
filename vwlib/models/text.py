"""One view of the text encoder of every model family: tokenize a prompt, encode it (optionally with a new word
substituted for the anchor and/or only the first N blocks), and read the token table. Each family's specifics
(modules, pad id, longest prompt, pooling) come from its adapter in `vwlib.models.families`.

| family      | encoder                              | blocks                         | output used by the task            |
|-------------|--------------------------------------|--------------------------------|------------------------------------|
| `sd`        | `CLIPTextModel` (pipe.text_encoder)  | `encoder.layers`               | last hidden state [B, 77, D] (UNet conditioning) |
| `owl`       | `Owlv2TextModel` (+ text_projection) | `encoder.layers`               | pooled, projected query [B, E]     |
| `open_clip` | `CLIP.encode_text`                   | `transformer.resblocks`        | pooled, projected feature [B, E]   |
| `hf_clip`   | `CLIPModel.get_text_features`        | `text_model.encoder.layers`    | pooled, projected feature [B, E]   |

Usage:
    text = TextSide(loaded)
    ids = text.ids(["a photo of a star"] * 4)                         # [4, L]
    out = text.encode(ids, anchor_ids=torch.full((4,), 1565), vectors=V, layers=2)   # V [4, D]
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager

import torch

from ..errors import VWError
from .hooks import substitute_token, truncate_blocks
from .tokenizer import VOCAB_SIZE


class TextSide:
    """The text encoder of one loaded model, read through its family adapter."""

    def __init__(self, loaded):
        self.loaded = loaded
        self.family = loaded.family
        self.adapter = loaded.adapter
        self.module = self.adapter.text_module
        self.max_tokens, self.pad_id = self.adapter.max_tokens, self.adapter.pad_id
        self.block_owner, self.block_attr = self.adapter.block_owner, self.adapter.block_attr

    # -- tokens ---------------------------------------------------------------------------------------------------
    @property
    def embedding(self) -> torch.nn.Embedding:
        return self.adapter.token_embedding

    @property
    def num_layers(self) -> int:
        return len(getattr(self.block_owner, self.block_attr))

    @property
    def width(self) -> int:
        return self.embedding.weight.shape[1]

    def ids(self, prompts: list[str], trim: bool = False) -> torch.Tensor:
        """[B, max_tokens] ids: <start> prompt <end>, padded with the family's pad id. Too long: VWError.
        trim: [B, L], cut after the longest prompt, for encoders whose task reads only the pooled end-of-text output
        (the family's `pooled`; else ignored): a causal encoder gives that output exactly, at a fraction of the cost
        (a classification prompt is 7 of DFN's 77 positions)."""
        rows = self.loaded.tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
        out = torch.full((len(rows), self.max_tokens), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            if len(r) > self.max_tokens:
                raise VWError(f"prompt {prompts[i]!r} is {len(r)} tokens; the {self.family} text encoder takes at "
                              f"most {self.max_tokens} (OWL-v2 queries: 16): shorten it")
            out[i, : len(r)] = torch.tensor(r)
        if trim and self.adapter.pooled:
            out = out[:, : max(len(r) for r in rows)]
        return out.to(self.embedding.weight.device)

    # -- encoding ------------------------------------------------------------------------------------------------
    @contextmanager
    def patched(self, anchor_ids: torch.Tensor | None = None, vectors: torch.Tensor | None = None,
                layers: int | None = None):
        """Within: the encoder sees `vectors[b]` in place of `anchor_ids[b]`, and runs only its first `layers` blocks."""
        with ExitStack() as stack:
            if vectors is not None:
                stack.enter_context(substitute_token(self.embedding, anchor_ids, vectors))
            if layers is not None:
                stack.enter_context(truncate_blocks(self.block_owner, self.block_attr, layers))
            yield

    def encode(self, ids: torch.Tensor, anchor_ids=None, vectors=None, layers: int | None = None) -> torch.Tensor:
        """The text output the task uses (see the table above); gradients flow into `vectors`."""
        with self.patched(anchor_ids, vectors, layers):
            return self.adapter.encode_text(ids)

    @property
    def final_norm(self) -> torch.nn.Module:
        return self.adapter.final_norm

    def known_ids(self) -> torch.Tensor:
        """Token ids of the vocabulary rows this model knows (shared-vocabulary rows: δ's d_nn, transfer fits)."""
        ids = self.loaded.meta.get("known_ids")
        if ids is not None:
            return ids
        return torch.arange(VOCAB_SIZE - 2)  # real models: every row but <start>/<end> (no added tokens here)
