"""transformers CLIP (the paper's generation scorer, OpenAI CLIP L/14): `CLIPModel` + `CLIPProcessor`.

Pads with the end-of-text token (id 49407); `get_text_features` pools and projects [B, E].
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..tokenizer import EOS_ID, clip_tokenizer
from .base import Loaded, TransformersFamily, batches, folder_tokenizer, register, tiny_dual_config
from .paper_configs import CLIP_VIT_L14


@register
class HFClipFamily(TransformersFamily):
    name = "hf_clip"
    key_file = "config.json"
    pad_id = EOS_ID

    @property
    def text_module(self):
        return self.model.text_model

    @property
    def max_tokens(self) -> int:
        return self.model.config.text_config.max_position_embeddings

    def encode_text(self, ids):
        out = self.model.get_text_features(input_ids=ids)  # causal, end-of-text read: no padding mask (see OwlFamily)
        return getattr(out, "pooler_output", out)

    @torch.no_grad()
    def image_features(self, images, batch: int = 128) -> torch.Tensor:
        out = []
        for chunk in batches(images, batch):
            x = self.loaded.processor(images=chunk, return_tensors="pt")["pixel_values"].to(self.device)
            f = self.model.get_image_features(pixel_values=x)
            out.append(F.normalize(getattr(f, "pooler_output", f).float(), dim=-1))
        return torch.cat(out)

    @classmethod
    def load(cls, path: Path, device="cpu") -> Loaded:
        from transformers import CLIPImageProcessor, CLIPModel, CLIPProcessor

        model = CLIPModel.from_pretrained(path, local_files_only=True).eval().to(device)
        tokenizer = folder_tokenizer(path, pad_token="<|endoftext|>")
        processor = CLIPProcessor(CLIPImageProcessor.from_pretrained(path, local_files_only=True), tokenizer)
        return Loaded("hf_clip", model, tokenizer, processor, str(path))

    @classmethod
    def build_tiny(cls, width: int = 32) -> Loaded:
        from transformers import CLIPConfig

        return _clip(CLIPConfig(**tiny_dual_config(width, 77, image_size=32, patch_size=8)), 32, "tiny")

    @classmethod
    def build_paper_random(cls) -> Loaded:
        """OpenAI CLIP ViT-L/14 (224 px) with its published configuration and random weights."""
        from transformers import CLIPConfig

        return _clip(CLIPConfig(**CLIP_VIT_L14), CLIP_VIT_L14["vision_config"]["image_size"], "paper-random")


def _clip(config, image_size: int, source: str) -> Loaded:
    from transformers import CLIPImageProcessor, CLIPModel, CLIPProcessor

    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    tokenizer = clip_tokenizer()
    return Loaded("hf_clip", CLIPModel(config).eval(), tokenizer, CLIPProcessor(image_processor, tokenizer), source)
