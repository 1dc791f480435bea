"""OWL-v2 (detection): transformers `Owlv2ForObjectDetection`; the query's text tower holds the words.

Queries are at most 16 tokens, padded with "!" (id 0); the pooled, projected query [B, E] is matched against
per-patch class embeddings. Boxes are relative to the image padded to a square (padding at the bottom and right).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..tokenizer import clip_tokenizer
from .base import Loaded, TransformersFamily, batches, folder_tokenizer, register, tiny_dual_config
from .paper_configs import OWLV2_BASE_PATCH16, OWLV2_IMAGE_SIZE


@register
class OwlFamily(TransformersFamily):
    name = "owl"
    key_file = "config.json"
    max_tokens = 16  # OWL-v2: at most 16 query tokens

    @property
    def text_module(self):
        return self.model.owlv2.text_model

    def encode_text(self, ids):
        # No padding mask: the text tower is causal and only the end-of-text output is read, which attends to the
        # real tokens before it with or without one; and the mask's check in transformers (`padding_mask.all()`)
        # is a host sync at every step (tests/integration/test_fast_path.py counts them).
        out = self.model.owlv2.get_text_features(input_ids=ids)
        return getattr(out, "pooler_output", out)

    @torch.no_grad()
    def image_side(self, images, batch: int = 32) -> dict[str, torch.Tensor]:
        """Everything OWL-v2 computes from an image alone, for PIL `images` of any size.

        class_embeds [N, P, E] (class_head.dense0, normalised), logit_shift / logit_scale [N, P] (the query-independent
        terms: logits = (cos + shift) * scale), boxes [N, P, 4] xyxy in pixels of each original image, objectness [N, P].
        """
        model, device = self.model, self.device
        parts: dict[str, list] = {k: [] for k in ("class_embeds", "logit_shift", "logit_scale", "boxes", "objectness")}
        for chunk in batches(images, batch):
            x = self.loaded.processor.image_processor(images=[im.convert("RGB") for im in chunk], return_tensors="pt")
            feature_map, _ = model.image_embedder(pixel_values=x["pixel_values"].to(device))
            n, gh, gw, d = feature_map.shape
            feats = feature_map.reshape(n, gh * gw, d)
            head = model.class_head
            emb = head.dense0(feats)
            parts["class_embeds"].append(emb / (emb.norm(dim=-1, keepdim=True) + 1e-6))
            parts["logit_shift"].append(head.logit_shift(feats)[..., 0])
            parts["logit_scale"].append((head.elu(head.logit_scale(feats)) + 1)[..., 0])
            parts["objectness"].append(model.objectness_predictor(feats))
            cx, cy, w, h = model.box_predictor(feats, feature_map).unbind(-1)
            # OWL-v2 boxes are relative to the image padded to a square (padding at the bottom and right).
            side = torch.tensor([max(im.size) for im in chunk], dtype=torch.float, device=device).view(n, 1)
            parts["boxes"].append(torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * side[..., None])
        return {k: torch.cat(v).float() for k, v in parts.items()}

    @classmethod
    def load(cls, path: Path, device="cpu") -> Loaded:
        from transformers import Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

        model = Owlv2ForObjectDetection.from_pretrained(path, local_files_only=True).eval().to(device)
        tokenizer = folder_tokenizer(path, pad_token="!", model_max_length=16)
        processor = Owlv2Processor(Owlv2ImageProcessor.from_pretrained(path, local_files_only=True), tokenizer)
        return Loaded("owl", model, tokenizer, processor, str(path))

    @classmethod
    def build_tiny(cls, width: int = 32) -> Loaded:
        from transformers import Owlv2Config

        config = Owlv2Config(**tiny_dual_config(width, 16, image_size=64, patch_size=16))  # OWL-v2 queries: <= 16 tokens
        return _owl(config, 64, "tiny")

    @classmethod
    def build_paper_random(cls) -> Loaded:
        """OWL-v2 base patch16 (ensemble) with its published configuration (960 px) and random weights."""
        from transformers import Owlv2Config

        return _owl(Owlv2Config(**OWLV2_BASE_PATCH16), OWLV2_IMAGE_SIZE, "paper-random")


def _owl(config, image_size: int, source: str) -> Loaded:
    from transformers import Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    image_processor = Owlv2ImageProcessor(size={"height": image_size, "width": image_size})
    tokenizer = clip_tokenizer(pad_token="!", model_max_length=16)
    return Loaded("owl", Owlv2ForObjectDetection(config).eval(), tokenizer, Owlv2Processor(image_processor, tokenizer),
                  source)
