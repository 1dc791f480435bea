"""The family adapter interface and the `Loaded` model record.

A `Family` subclass wraps one loaded model and answers, for that family, every question the rest of vwlib asks:

| method / attribute              | what                                                                       |
|---------------------------------|----------------------------------------------------------------------------|
| `token_embedding`               | the input token-embedding module, [49408, D]                               |
| `text_module`                   | the text encoder module (its parameters: `text_parameters()`)              |
| `block_owner`, `block_attr`     | `getattr(block_owner, block_attr)` is the ModuleList of transformer blocks |
| `final_norm`                    | the final layer norm applied after the last (or a truncating) block        |
| `pad_id`, `max_tokens`          | how prompts are padded, and the longest prompt the encoder takes           |
| `pooled`                        | the task reads only the end-of-text output (prompts may be cut after it)  |
| `encode_text(ids)`              | the text output a task uses: [B, E] pooled features, or [B, L, D]          |
| `image_features(images)`        | [N, E] unit image features (CLIP families)                                 |
| `frozen_modules()`              | the modules a word's training freezes                                      |
| `parameter_modules()`           | {name: module}, for parameter counts                                       |
| `accelerate(compile)`           | the GPU fast path: SDPA, channels-last, optional torch.compile             |
| `save(path, with_tokenizer)`    | write the model in its library's own folder format                         |
| `load(path, device)` (class)    | read that folder back into a `Loaded`                                      |
| `build_tiny(width)` (class)     | a randomly initialised model of the same class and config shape             |

Family-specific image sides (OWL-v2's per-patch embeddings and boxes, SD's VAE latents) are methods of those
families only (`OwlFamily.image_side`, `SDFamily.latents`). `TransformersFamily` holds what OWL-v2 and HF CLIP share (one
transformers model and a processor: SDPA, compile, save).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..tokenizer import VOCAB_SIZE, clip_tokenizer

FAMILIES: dict[str, type["Family"]] = {}


def register(cls: type["Family"]) -> type["Family"]:
    FAMILIES[cls.name] = cls
    return cls


def family(name: str) -> type["Family"]:
    """The adapter class of family `name` ("sd", "owl", "open_clip", "hf_clip")."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; expected one of {tuple(FAMILIES)}")
    return FAMILIES[name]


@dataclass
class Loaded:
    """A model with what it needs to read text and images.

    model: the library object (a StableDiffusionPipeline for `sd`).
    tokenizer: a CLIP BPE tokenizer (ids shared by every model of the study).
    processor: image preprocessing (an Owlv2Processor / CLIPProcessor, open_clip's transform; None for `sd`).
    meta: known_ids (mini models: the vocabulary rows they know), open_clip_config, accelerated, ...
    """

    family: str
    model: Any
    tokenizer: Any
    processor: Any = None
    source: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def adapter(self) -> "Family":
        """This model's family adapter (see `vwlib.models.families`)."""
        return family(self.family)(self)

    def num_parameters(self) -> int:
        return sum(p.numel() for m in self.adapter.parameter_modules().values() for p in m.parameters())

    def text_encoder(self) -> torch.nn.Module:
        """The module holding the token-embedding table that new words are written into."""
        return self.adapter.text_module

    def token_embedding(self) -> torch.nn.Embedding:
        """The input token-embedding table, [49408, D]."""
        return self.adapter.token_embedding


class Family:
    """Base class of the family adapters; `self.loaded` is the wrapped model."""

    name = ""
    key_file = ""  # the file whose presence marks a complete model folder of this family
    block_attr = "layers"

    def __init__(self, loaded: Loaded):
        self.loaded = loaded
        self.model = loaded.model

    # -- text side ---------------------------------------------------------------------------------------------
    @property
    def text_module(self) -> torch.nn.Module:
        raise NotImplementedError

    @property
    def token_embedding(self) -> torch.nn.Embedding:
        return self.text_module.embeddings.token_embedding

    @property
    def block_owner(self) -> torch.nn.Module:
        return self.text_module.encoder

    @property
    def final_norm(self) -> torch.nn.Module:
        return self.text_module.final_layer_norm

    pad_id = 0
    # The task reads one pooled (end-of-text) output and the encoder is causal: positions after the longest prompt
    # cannot change it, so prompts may be cut there (`TextSide.ids(trim=True)`). False where every position is used.
    pooled = True

    @property
    def max_tokens(self) -> int:
        raise NotImplementedError

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def text_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.text_module.parameters())

    # -- image side --------------------------------------------------------------------------------------------
    def image_features(self, images) -> torch.Tensor:
        raise ValueError(f"{self.name} has no CLIP image tower")

    # -- the model as a whole ----------------------------------------------------------------------------------
    def parameter_modules(self) -> dict[str, torch.nn.Module]:
        return {"model": self.model}

    def frozen_modules(self) -> list[torch.nn.Module]:
        return list(self.parameter_modules().values())

    @property
    def device(self) -> torch.device:
        return next(self.frozen_modules()[0].parameters()).device

    def accelerate(self, compile: bool | str = False) -> None:
        pass

    def save(self, path: Path, with_tokenizer: bool = False) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, path: Path, device: str | torch.device = "cpu") -> Loaded:
        raise NotImplementedError

    @classmethod
    def build_tiny(cls, width: int = 32) -> Loaded:
        raise NotImplementedError

    @classmethod
    def build_paper_random(cls) -> Loaded:
        """The paper's model of this family, its published configuration, random weights (see paper_configs)."""
        raise NotImplementedError


def compile_mode(compile: bool | str) -> str:
    """torch.compile's mode for `accelerate(compile=...)`: True -> "default"; a string is the mode itself
    ("reduce-overhead" captures CUDA graphs on a GPU, where the shapes of a step are static)."""
    return compile if isinstance(compile, str) else "default"


class TransformersFamily(Family):
    """Families whose model is one transformers `PreTrainedModel` with a processor (OWL-v2, HF CLIP)."""

    def accelerate(self, compile: bool | str = False) -> None:
        set_sdpa(self.model)
        if compile:
            self.text_module.forward = torch.compile(self.text_module.forward, mode=compile_mode(compile))

    def save(self, path: Path, with_tokenizer: bool = False) -> None:
        self.model.save_pretrained(path, safe_serialization=True)
        self.loaded.processor.image_processor.save_pretrained(path)
        if with_tokenizer:
            self.loaded.tokenizer.save_pretrained(path)


def set_sdpa(model) -> None:
    """transformers models: use torch's scaled-dot-product attention (the libraries' default; checked here)."""
    if getattr(model.config, "_attn_implementation", "sdpa") != "sdpa":
        model.set_attn_implementation("sdpa")


def clip_text_config(width: int, layers: int, max_positions: int, vocab_size: int, **kw) -> dict:
    """A small CLIP-style text config (tiny models of every family that uses a transformers CLIP text tower)."""
    return dict(vocab_size=vocab_size, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                num_attention_heads=2, max_position_embeddings=max_positions, **kw)


def tiny_dual_config(width: int, max_positions: int, image_size: int, patch_size: int) -> dict:
    """The keyword arguments of a tiny two-tower config (transformers `CLIPConfig`, `Owlv2Config`): 2-block text and
    vision transformers of `width`, projected to `width`."""
    return dict(text_config=clip_text_config(width, 2, max_positions, VOCAB_SIZE),
                vision_config=dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                                   num_attention_heads=2, image_size=image_size, patch_size=patch_size),
                projection_dim=width)


def folder_tokenizer(path: Path, pad_token: str, model_max_length: int = 77):
    """The folder's own tokenizer when it ships one (hub snapshots do), else the offline CLIP BPE tokenizer."""
    if (path / "tokenizer_config.json").is_file() and ((path / "vocab.json").is_file()
                                                      or (path / "tokenizer.json").is_file()):
        from transformers import CLIPTokenizer

        return CLIPTokenizer.from_pretrained(path, local_files_only=True)
    # Checkpoints of this repo ship no tokenizer files (3 MB each): the vocabulary is open_clip's, rebuilt here.
    return clip_tokenizer(pad_token=pad_token, model_max_length=model_max_length)


def batches(items, size: int):
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i:i + size]

