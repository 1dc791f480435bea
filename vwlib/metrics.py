"""The evaluator primitives, each written once: the zero-shot vote, the scorer's vote on images, and detection mAP.
The study's tasks (`vwlib.tasks`) and the mini models' quality bars (`vw mini eval`) both score through these.

Usage:
    names = text_features(clf, [NAME_PROMPT.format(n) for n in concept_names])     # [C, E] unit
    votes = zero_shot_votes(clip_image_features(clf, images), names)               # [M] concept index per image
    votes = image_votes(scorer, generated_images, names)                           # the same, from PIL images
    detection_map(boxes, scores, targets)          # boxes [M, P, 4], scores [M, P, Q] -> {"map", "map_50"}
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .models.text import TextSide
from .models.vision import clip_image_features, owl_detections

NAME_PROMPT = "a photo of a {}"  # class texts of the zero-shot classifiers (the scorer and DFN/mini-clip)


@torch.no_grad()
def text_features(loaded, prompts: list[str]) -> torch.Tensor:
    """[C, E] unit text features of `prompts` through the model's own text side."""
    text = TextSide(loaded)
    return F.normalize(text.encode(text.ids(prompts)).float(), dim=-1)


def zero_shot_votes(image_features: torch.Tensor, class_features: torch.Tensor) -> torch.Tensor:
    """[M] the class whose (unit) text feature [C, E] is most similar to each (unit) image feature [M, E]."""
    return (image_features.float() @ class_features.float().t()).argmax(1).cpu()


@torch.no_grad()
def image_votes(loaded, images, class_features: torch.Tensor) -> torch.Tensor:
    """[M] the zero-shot vote of CLIP model `loaded` on PIL `images` among `class_features` [C, E]."""
    return zero_shot_votes(clip_image_features(loaded, images), class_features.to(loaded.adapter.device))


def detection_map(boxes: torch.Tensor, scores: torch.Tensor, targets: list[dict]) -> dict[str, float]:
    """COCO mAP@[.5:.95] ("map") and mAP@0.5 ("map_50") of per-patch detections on M images (torchmetrics,
    pycocotools backend), after per-query NMS (`owl_detections`).

    boxes [M, P, 4] xyxy pixels; scores [M, P, Q] (query q's detections get label q); targets: M dicts of
    {"boxes": [K, 4], "labels": [K]} in the same label space."""
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(iou_type="bbox", box_format="xyxy", backend="pycocotools")
    boxes, scores = boxes.float().cpu(), scores.float().cpu()  # targets are CPU tensors; scoring is bookkeeping
    metric.update([owl_detections(boxes[k], scores[k]) for k in range(len(boxes))], targets)
    out = metric.compute()
    return {"map": float(out["map"]), "map_50": float(out["map_50"])}
