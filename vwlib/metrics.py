"""The evaluator primitives, each written once: the zero-shot vote, the scorer's vote on images, and detection mAP.
The study's tasks (`vwlib.tasks`) and the mini models' quality bars (`vw mini eval`) both score through these.

Usage:
    names = text_features(clf, [NAME_PROMPT.format(n) for n in concept_names])     # [C, E] unit
    votes = zero_shot_votes(clip_image_features(clf, images), names)               # [M] concept index per image
    votes = image_votes(scorer, generated_images, names)                           # the same, from PIL images
    detection_map(boxes, scores, targets)          # boxes [M, P, 4], scores [M, P, Q] -> {"map", "map_50"}
    detection_maps(boxes, scores, gt_boxes)        # the same for Q queries, each its own evaluation -> Q dicts
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .models import vision
from .models.text import TextSide
from .models.vision import clip_image_features, owl_detections

NAME_PROMPT = "a photo of a {}"  # class texts of the zero-shot classifiers (the scorer and DFN/mini-clip)

# COCO's evaluation grid as torchmetrics hands it to pycocotools (float32 linspace values, as float64): the reference
# this file's mAP is tested equal to, to the last bit (tests/unit/test_coco_map.py).
IOU_THRESHOLDS = torch.linspace(0.5, 0.95, 10).double()
RECALL_THRESHOLDS = torch.linspace(0.0, 1.0, 101).double()
MAX_DETECTIONS = 100  # per image and query, highest scores first (COCO's maxDets)


@torch.no_grad()
def text_features(loaded, prompts: list[str]) -> torch.Tensor:
    """[C, E] unit text features of `prompts` through the model's own text side."""
    text = TextSide(loaded)
    return F.normalize(text.encode(text.ids(prompts)).float(), dim=-1)


def zero_shot_votes(image_features: torch.Tensor, class_features: torch.Tensor,
                    left_out: torch.Tensor | None = None) -> torch.Tensor:
    """[M] the class whose (unit) text feature [C, E] is most similar to each (unit) image feature [M, E];
    `left_out` [C] bool: classes that take no part in the vote."""
    sims = image_features.float() @ class_features.float().t()
    if left_out is not None:
        sims[:, left_out.to(sims.device)] = -math.inf
    return sims.argmax(1).cpu()


@torch.no_grad()
def image_votes(loaded, images, class_features: torch.Tensor) -> torch.Tensor:
    """[M] the zero-shot vote of CLIP model `loaded` on PIL `images` among `class_features` [C, E]."""
    return zero_shot_votes(clip_image_features(loaded, images), class_features.to(loaded.adapter.device))


def detection_map(boxes: torch.Tensor, scores: torch.Tensor, targets: list[dict]) -> dict[str, float]:
    """COCO mAP@[.5:.95] ("map") and mAP@0.5 ("map_50"), averaged over the queries (categories), of per-patch
    detections on M images after per-query NMS (`owl_detections`).

    boxes [M, P, 4] xyxy pixels; scores [M, P, Q] (query q's detections get label q); targets: M dicts of
    {"boxes": [K, 4], "labels": [K]} in the same label space."""
    boxes, scores = boxes.float().cpu(), scores.float().cpu()  # scoring is bookkeeping: on the CPU
    dets = [owl_detections(boxes[m], scores[m]) for m in range(len(boxes))]
    q = scores.shape[-1]
    precision = coco_precision([[d["boxes"][d["labels"] == k] for d in dets] for k in range(q)],
                               [[d["scores"][d["labels"] == k] for d in dets] for k in range(q)],
                               [[t["boxes"][t["labels"] == k] for t in targets] for k in range(q)])
    return summarise(precision)


def detection_maps(boxes: torch.Tensor, scores: torch.Tensor, gt_boxes: list[list[torch.Tensor]],
                   on_device: bool = False) -> list[dict]:
    """`detection_map` of each query alone (one category per evaluation), all Q at once: the detection evaluator
    of Q trained words. boxes [M, P, 4]; scores [M, P, Q]; gt_boxes[q][m]: [K, 4] query q's objects in image m.
    on_device: the NMS of all M × Q (image, query) pairs as one batched call where the scores are (a GPU lever,
    `Levers.gpu_nms`; the same detections as the per-image CPU path), then the bookkeeping on the CPU."""
    if on_device:
        dets = _nms_all(boxes, scores)
    else:
        boxes, scores = boxes.float().cpu(), scores.float().cpu()
        dets = [[owl_detections(boxes[m], scores[m, :, k:k + 1]) for m in range(len(boxes))]
                for k in range(len(gt_boxes))]
    precision = coco_precision([[d["boxes"] for d in row] for row in dets], [[d["scores"] for d in row] for row in dets],
                               gt_boxes)
    return [summarise(precision[k:k + 1]) for k in range(len(gt_boxes))]


def _nms_all(boxes: torch.Tensor, scores: torch.Tensor) -> list[list[dict]]:
    """dets[q][m] = {"boxes", "scores"} (CPU, by decreasing score) of query q in image m after NMS at OWL_NMS_IOU:
    one batched_nms over every (image, query) group on the scores' device, one copy back."""
    from torchvision.ops import batched_nms

    m, p, q = scores.shape
    flat_boxes = boxes.float()[:, :, None, :].expand(m, p, q, 4).reshape(-1, 4)
    group = (torch.arange(m, device=scores.device)[:, None, None] * q
             + torch.arange(q, device=scores.device)[None, None, :]).expand(m, p, q).reshape(-1)
    flat_scores = scores.float().reshape(-1)
    # read at call time, as owl_detections does, so it never disagrees with the evaluator's fingerprint
    keep = batched_nms(flat_boxes, flat_scores, group, vision.OWL_NMS_IOU)  # by decreasing score
    kept_boxes, kept_scores, kept_group = (t[keep].cpu() for t in (flat_boxes, flat_scores, group))
    order = torch.argsort(kept_group, stable=True)  # grouped, each group still by decreasing score
    counts = torch.bincount(kept_group, minlength=m * q).tolist()
    parts = zip(kept_boxes[order].split(counts), kept_scores[order].split(counts))
    by_group = [{"boxes": b, "scores": s} for b, s in parts]
    return [[by_group[i * q + k] for i in range(m)] for k in range(q)]


def _iou_coco(dt: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """[..., D, G] IoU as pycocotools computes it (maskApi.c bbIou), from xyxy float32 boxes [..., D, 4] and
    [..., G, 4]: converted to xywh in float32 (as torchmetrics does), then every operation in float64 in bbIou's
    order, so that a threshold comparison never falls the other way."""
    def xywh(b):
        b = b.float()
        return torch.cat([b[..., :2], b[..., 2:] - b[..., :2]], -1).double()

    d, g = xywh(dt)[..., :, None, :], xywh(gt)[..., None, :, :]
    w = torch.minimum(d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]) - torch.maximum(d[..., 0], g[..., 0])
    h = torch.minimum(d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]) - torch.maximum(d[..., 1], g[..., 1])
    inter = w * h
    union = d[..., 2] * d[..., 3] + g[..., 2] * g[..., 3] - inter
    return torch.where((w > 0) & (h > 0), inter / union, torch.zeros((), dtype=torch.float64))


def _pad(rows: list[list[torch.Tensor]], width: int, fill: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Q lists of M tensors [n_qm, *tail] -> [Q, M, width, *tail] filled with `fill`, and the mask [Q, M, width]."""
    first = rows[0][0]
    out = torch.full((len(rows), len(rows[0]), width, *first.shape[1:]), fill, dtype=first.dtype)
    valid = torch.zeros(out.shape[:3], dtype=torch.bool)
    for q, row in enumerate(rows):
        for m, t in enumerate(row):
            out[q, m, :len(t)] = t[:width]
            valid[q, m, :len(t)] = True
    return out, valid


def coco_precision(det_boxes: list[list[torch.Tensor]], det_scores: list[list[torch.Tensor]],
                   gt_boxes: list[list[torch.Tensor]]) -> torch.Tensor:
    """COCOeval's interpolated precision [Q, 10, 101] (IoU threshold, recall threshold; -1 for a query with no
    ground truth) of Q queries over M images, vectorised over queries, images and thresholds.

    det_boxes[q][m] [n, 4] xyxy and det_scores[q][m] [n]: query q's detections in image m, in the order pycocotools
    would receive them; gt_boxes[q][m] [k, 4]. Follows COCOeval.evaluateImg / accumulate (area "all", maxDets 100,
    no crowds) step by step; equal to pycocotools via torchmetrics to the last bit (tests/unit/test_coco_map.py)."""
    det_scores = [[s.float() for s in row] for row in det_scores]
    det_boxes = [[b.float().reshape(-1, 4) for b in row] for row in det_boxes]
    # Each image's detections by score, stable (pycocotools: mergesort), cut at MAX_DETECTIONS
    order = [[torch.sort(s, descending=True, stable=True).indices[:MAX_DETECTIONS] for s in row] for row in det_scores]
    width = max([1] + [len(o) for row in order for o in row])
    scores, dv = _pad([[s[o] for s, o in zip(*r)] for r in zip(det_scores, order)], width, -1.0)  # [Q, M, D]
    dboxes, _ = _pad([[b[o] for b, o in zip(*r)] for r in zip(det_boxes, order)], width, 0.0)
    gboxes, gv = _pad([[b.float().reshape(-1, 4) for b in row] for row in gt_boxes],
                      max([1] + [len(b) for row in gt_boxes for b in row]), 0.0)  # [Q, M, G, 4], [Q, M, G]
    ious = _iou_coco(dboxes, gboxes)  # [Q, M, D, G]
    n_q, n_m, n_d, n_g = ious.shape
    thresholds = IOU_THRESHOLDS.clamp(max=1 - 1e-10)[:, None]  # [T, 1]; evaluateImg starts each search at min(t, 1-1e-10)
    # Greedy matching, detections in score order: each takes the unmatched ground truth of largest IoU >= t (ties:
    # the later one, as evaluateImg's `<` comparison), for every query, image and threshold at once.
    taken = (~gv)[:, :, None, :].expand(n_q, n_m, len(IOU_THRESHOLDS), n_g).clone()  # [Q, M, T, G]
    matched = torch.zeros(n_q, n_m, len(IOU_THRESHOLDS), n_d, dtype=torch.bool)  # [Q, M, T, D]
    for r in range(n_d):
        iou = ious[:, :, None, r, :]  # [Q, M, 1, G]
        candidate = ~taken & (iou >= thresholds)
        best = n_g - 1 - torch.where(candidate, iou, -1.0).flip(-1).argmax(-1)  # the last of the largest
        hit = candidate.any(-1) & dv[:, :, None, r]
        taken |= F.one_hot(best, n_g).bool() & hit[..., None]
        matched[..., r] = hit
    # accumulate: every image's detections of a query in one list by score (stable, images in order)
    flat = torch.sort(scores.reshape(n_q, -1), dim=1, descending=True, stable=True).indices  # [Q, M·D]
    valid = dv.reshape(n_q, -1).gather(1, flat)[:, None]  # [Q, 1, N]
    hits = matched.permute(0, 2, 1, 3).reshape(n_q, len(IOU_THRESHOLDS), -1)
    hits = hits.gather(2, flat[:, None].expand_as(hits))  # [Q, T, N]
    tp = (hits & valid).cumsum(-1).double()
    fp = (~hits & valid).cumsum(-1).double()
    n_gt = gv.sum((1, 2)).double()[:, None, None]  # [Q, 1, 1]
    recall = tp / n_gt
    precision = tp / (fp + tp + np.spacing(1))
    precision = precision.flip(-1).cummax(-1).values.flip(-1)  # made non-increasing, as accumulate does
    at = torch.searchsorted(recall.contiguous(), RECALL_THRESHOLDS.expand(n_q, len(IOU_THRESHOLDS), -1).contiguous())
    out = torch.where(at < recall.shape[-1], precision.gather(-1, at.clamp(max=recall.shape[-1] - 1)), 0.0)
    # Padding sorts last and adds neither tp nor fp: recall and precision stay at the query's last real value there.
    return torch.where(n_gt > 0, out, -1.0)


def summarise(precision: torch.Tensor) -> dict[str, float]:
    """COCOeval.summarize's mAP@[.5:.95] and mAP@0.5 of precision [K, 10, 101] (K categories averaged), as float32
    values (torchmetrics' tensors): the mean of every entry > -1, in pycocotools' element order."""
    s = precision.permute(1, 2, 0).numpy()  # [T, R, K], pycocotools' order

    def mean(a):
        return float(np.float32(np.mean(a[a > -1]) if (a > -1).any() else -1.0))

    return {"map": mean(s), "map_50": mean(s[:1])}
