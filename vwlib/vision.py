"""The frozen image side of each model, computed once per image set (the main speed lever: a training step then runs
only the text tower). No random augmentation: caching requires it, and the paper's 8 images per concept are fixed.

Usage:
    feats = clip_image_features(clf, images)       # [N, E] unit features (open_clip or HF CLIP)
    side = owl_image_side(det, images)             # class embeddings [N, P, E], shift/scale [N, P], boxes [N, P, 4]
    preds = owl_detections(side["boxes"][0], scores[0])   # one image's boxes after per-query NMS, for mAP
    mean, std = sd_latents(gen, images)            # [N, 4, h, w] each, already scaled by the VAE's factor
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .accel import model_device


def _batches(items, size):
    for i in range(0, len(items), size):
        yield items[i:i + size]


@torch.no_grad()
def clip_image_features(loaded, images, batch: int = 128) -> torch.Tensor:
    """[N, E] unit image features of PIL `images` through the model's own preprocessing."""
    device, out = model_device(loaded), []
    for chunk in _batches(list(images), batch):
        if loaded.family == "open_clip":
            x = torch.stack([loaded.processor(im.convert("RGB")) for im in chunk]).to(device)
            f = loaded.model.encode_image(x)
        elif loaded.family == "hf_clip":
            x = loaded.processor(images=chunk, return_tensors="pt")["pixel_values"].to(device)
            f = loaded.model.get_image_features(pixel_values=x)
            f = getattr(f, "pooler_output", f)
        else:
            raise ValueError(f"{loaded.family} has no CLIP image tower")
        out.append(F.normalize(f.float(), dim=-1))
    return torch.cat(out)


@torch.no_grad()
def owl_image_side(loaded, images, batch: int = 32) -> dict[str, torch.Tensor]:
    """Everything OWL-v2 computes from an image alone, for `images` (PIL) of any size.

    class_embeds [N, P, E] (class_head.dense0, normalised), logit_shift / logit_scale [N, P] (the query-independent
    terms: logits = (cos + shift) * scale), boxes [N, P, 4] xyxy in pixels of each original image, objectness [N, P].
    """
    model, device = loaded.model, model_device(loaded)
    parts: dict[str, list] = {k: [] for k in ("class_embeds", "logit_shift", "logit_scale", "boxes", "objectness")}
    for chunk in _batches(list(images), batch):
        x = loaded.processor.image_processor(images=[im.convert("RGB") for im in chunk], return_tensors="pt")
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


def owl_logits(side: dict[str, torch.Tensor], queries: torch.Tensor) -> torch.Tensor:
    """[N, P, Q] OWL-v2 class logits of unit-normalised `queries` [Q, E] from a cached image side."""
    q = queries / (queries.norm(dim=-1, keepdim=True) + 1e-6)
    cos = torch.einsum("npe,qe->npq", side["class_embeds"], q)
    return (cos + side["logit_shift"][..., None]) * side["logit_scale"][..., None]


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


@torch.no_grad()
def sd_latents(loaded, images, batch: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """VAE posterior mean and std of `images`, scaled by the VAE's scaling factor: [N, C, h, w] each."""
    pipe, device = loaded.model, model_device(loaded)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    means, stds = [], []
    for chunk in _batches(list(images), batch):
        arr = np.stack([np.asarray(im.convert("RGB").resize((size, size), resample=3)) for im in chunk])
        x = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(device, pipe.vae.dtype)
        dist = pipe.vae.encode(x).latent_dist
        means.append(dist.mean.float() * pipe.vae.config.scaling_factor)
        stds.append(dist.std.float() * pipe.vae.config.scaling_factor)
    return torch.cat(means), torch.cat(stds)
