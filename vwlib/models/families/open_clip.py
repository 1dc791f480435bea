"""open_clip CLIP (classification; the mini scorer too): DFN2B-CLIP-ViT-L-14 is an open_clip `CLIP` with quick_gelu.

The text tower lives on the CLIP module itself (`token_embedding`, `transformer.resblocks`, `ln_final`,
`text_projection`); `encode_text` pools the end-of-text token and projects it [B, E]. Pads with "!" (id 0).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ..tokenizer import VOCAB_SIZE, clip_tokenizer
from .base import Family, Loaded, batches, compile_mode, register
from .paper_configs import DFN_OPEN_CLIP_NAME

TEXT_PARTS = ("token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection")


@register
class OpenClipFamily(Family):
    name = "open_clip"
    key_file = "open_clip_config.json"
    block_attr = "resblocks"

    @property
    def text_module(self):
        return self.model  # open_clip keeps the text tower on the CLIP module itself

    @property
    def token_embedding(self):
        return self.model.token_embedding

    @property
    def block_owner(self):
        return self.model.transformer

    @property
    def final_norm(self):
        return self.model.ln_final

    @property
    def max_tokens(self) -> int:
        return self.model.context_length

    @property
    def pooled(self) -> bool:
        # cutting prompts is exact only under a causal mask (every CLIP text tower has one; a tower without it
        # attends to the padding too, and keeps its full context)
        return getattr(self.model, "attn_mask", None) is not None

    def encode_text(self, ids):
        if ids.shape[1] == self.model.context_length:
            return self.model.encode_text(ids)
        # Prompts cut after their end-of-text token (TextSide.ids(trim=True)): open_clip's encode_text adds all
        # context_length positions, so run its steps on the first L positions (the causal mask makes it exact).
        from open_clip.transformer import text_global_pool

        m, n = self.model, ids.shape[1]
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(ids).to(cast) + m.positional_embedding[:n].to(cast)
        x = m.ln_final(m.transformer(x, attn_mask=m.attn_mask[:n, :n]))
        x = text_global_pool(x, ids, m.text_pool_type, eos_token_id=getattr(m, "text_eos_id", None))
        if m.text_projection is not None:
            x = m.text_projection(x) if isinstance(m.text_projection, torch.nn.Linear) else x @ m.text_projection
        return x

    def text_parameters(self):
        return [p for n, p in self.model.named_parameters() if n.split(".")[0] in TEXT_PARTS]

    @torch.no_grad()
    def image_features(self, images, batch: int = 128) -> torch.Tensor:
        out = []
        for chunk in batches(images, batch):
            x = torch.stack([self.loaded.processor(im.convert("RGB")) for im in chunk]).to(self.device)
            out.append(F.normalize(self.model.encode_image(x).float(), dim=-1))
        return torch.cat(out)

    def accelerate(self, compile: bool | str = False) -> None:
        # open_clip's blocks use nn.MultiheadAttention with need_weights=False: PyTorch runs SDPA inside.
        if compile:
            self.model.transformer.forward = torch.compile(self.model.transformer.forward, mode=compile_mode(compile))

    def save(self, path: Path, with_tokenizer: bool = False) -> None:
        from safetensors.torch import save_file

        (path / "open_clip_config.json").write_text(json.dumps(self.loaded.meta["open_clip_config"], indent=2))
        state = {k: v.contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(path / "open_clip_model.safetensors"))

    @classmethod
    def load(cls, path: Path, device="cpu") -> Loaded:
        import open_clip

        model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{path}", device=device)
        config = json.loads((path / "open_clip_config.json").read_text())
        return Loaded("open_clip", model.eval(), clip_tokenizer(pad_token="!"), preprocess, str(path),
                      meta={"open_clip_config": config})

    @classmethod
    def build_tiny(cls, width: int = 32) -> Loaded:
        # DFN2B-CLIP-ViT-L-14 is an open_clip CLIP with quick_gelu; same class, smaller towers.
        cfg = {
            "embed_dim": width,
            "quick_gelu": True,
            "vision_cfg": {"image_size": 32, "layers": 2, "width": width, "head_width": 16, "patch_size": 8},
            "text_cfg": {"context_length": 77, "vocab_size": VOCAB_SIZE, "width": width, "heads": 2, "layers": 2},
        }
        return _open_clip(cfg, "tiny")

    @classmethod
    def build_paper_random(cls) -> Loaded:
        """DFN2B-CLIP-ViT-L-14's architecture (open_clip's ViT-L-14-quickgelu, 224 px) with random weights."""
        import open_clip

        return _open_clip(open_clip.get_model_config(DFN_OPEN_CLIP_NAME), "paper-random")


def _open_clip(cfg: dict, source: str) -> Loaded:
    import open_clip
    from open_clip.transform import image_transform

    model = open_clip.CLIP(**cfg).eval()
    preprocess = image_transform(cfg["vision_cfg"]["image_size"], is_train=False)
    config = {"model_cfg": cfg, "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN),
                                                    "std": list(open_clip.OPENAI_DATASET_STD)}}
    return Loaded("open_clip", model, clip_tokenizer(pad_token="!"), preprocess, source,
                  meta={"open_clip_config": config})
