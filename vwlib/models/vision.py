"""The frozen image side of each model, computed once per image set (the main speed lever: a training step then runs
only the text tower). No random augmentation: caching requires it, and the paper's 8 images per concept are fixed.
Each family's image code lives in its adapter (`vwlib.models.families`); these are the study's names for it.

Usage:
    feats = clip_image_features(clf, images)       # [N, E] unit features (open_clip or HF CLIP)
    side = owl_image_side(det, images)             # class embeddings [N, P, E], shift/scale [N, P], boxes [N, P, 4]
    preds = owl_detections(side["boxes"][0], scores[0])   # one image's boxes after per-query NMS, for mAP
    mean, std = sd_latents(gen, images)            # [N, 4, h, w] each, already scaled by the VAE's factor
"""

from __future__ import annotations

import torch


def clip_image_features(loaded, images) -> torch.Tensor:
    """[N, E] unit image features of PIL `images` through the model's own preprocessing (CLIP families)."""
    return loaded.adapter.image_features(list(images))


def proposal_overlap(side: dict, i: int, boxes: list[list[float]]) -> torch.Tensor:
    """[P]: each OWL-v2 proposal of image `i` of `side` (from `owl_image_side`), its best IoU with `boxes`
    (pixel xyxy). On the CPU, whatever device the image side lives on: labelling proposals is bookkeeping."""
    from torchvision.ops import box_iou

    return box_iou(side["boxes"][i].float().cpu(), torch.tensor(boxes, dtype=torch.float).reshape(-1, 4)).max(1).values


def owl_image_side(loaded, images) -> dict[str, torch.Tensor]:
    """OWL-v2's query-independent image side (see `vwlib.models.families.owl.OwlFamily.image_side`)."""
    return loaded.adapter.image_side(list(images))


def sd_latents(loaded, images) -> tuple[torch.Tensor, torch.Tensor]:
    """VAE posterior mean and std of `images`, scaled by the VAE's scaling factor: [N, C, h, w] each."""
    return loaded.adapter.latents(list(images))


def owl_logits(side: dict[str, torch.Tensor], queries: torch.Tensor) -> torch.Tensor:
    """[N, P, Q] OWL-v2 class logits of unit-normalised `queries` [Q, E] from a cached image side."""
    q = queries / (queries.norm(dim=-1, keepdim=True) + 1e-6)
    cos = torch.einsum("npe,qe->npq", side["class_embeds"], q)
    return (cos + side["logit_shift"][..., None]) * side["logit_scale"][..., None]


def best_boxes(side: dict[str, torch.Tensor], logits: torch.Tensor) -> tuple[list[list[float]], list[float]]:
    """Each image's highest-scoring proposal for its query: logits [N, P] (image n's P proposals) -> N xyxy boxes
    and their sigmoid scores. For drawing one box per image (the anchor grid, the results browser)."""
    best = logits.argmax(1)
    rows = torch.arange(len(best), device=best.device)
    return side["boxes"][rows, best].tolist(), logits[rows, best].sigmoid().tolist()


# [decided] Per-query NMS before mAP. The mini detector's loss (vwlib/mini/train_owl.py) makes every patch inside an
# object a positive, FCOS-style, so one object yields several near-identical high-scoring boxes; without NMS all but
# one count as false positives (measured on mini-owl: mAP@0.5 0.39 without, 0.73 with). OWL-v2 is trained with
# one-to-one (Hungarian) matching, which already discourages duplicate boxes, so NMS should remove little there (not
# measured: no paper weights here). Part of the detection evaluator's fingerprint: changing it re-scores stored
# detection words.
OWL_NMS_IOU = 0.5


def owl_detections(boxes: torch.Tensor, scores: torch.Tensor, iou: float | None = None) -> dict[str, torch.Tensor]:
    """One image's detections for mAP: every patch box [P, 4] (xyxy) × query scores [P, Q], de-duplicated per query
    by NMS at `iou` (default `OWL_NMS_IOU`). Returns {"boxes": [K, 4], "scores": [K], "labels": [K] (query index)}."""
    from torchvision.ops import batched_nms

    iou = OWL_NMS_IOU if iou is None else iou  # read at call time, like the fingerprint, so the two never disagree
    p, q = scores.shape
    boxes, scores = boxes.float().repeat_interleave(q, 0), scores.float().flatten()
    labels = torch.arange(q, device=scores.device).repeat(p)
    keep = batched_nms(boxes, scores, labels, iou)
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}
