"""The vectorised COCO mAP (`vwlib.metrics`) equals pycocotools via torchmetrics to the last bit: the reference the
detection evaluator used before, and what the paper's numbers mean."""

import pytest
import torch
from torchmetrics.detection import MeanAveragePrecision  # the test extra: pycocotools behind torchmetrics

from vwlib.metrics import detection_map, detection_maps
from vwlib.models.vision import owl_detections

pytestmark = pytest.mark.filterwarnings("ignore:Encountered more than 100 detections")


def reference(boxes, scores, targets) -> dict:
    """pycocotools through torchmetrics, per-query NMS first: the evaluator before the vectorised one."""
    metric = MeanAveragePrecision(iou_type="bbox", box_format="xyxy", backend="pycocotools")
    metric.update([owl_detections(boxes[m], scores[m]) for m in range(len(boxes))], targets)
    out = metric.compute()
    return {"map": float(out["map"]), "map_50": float(out["map_50"])}


def world(seed: int, images: int = 12, patches: int = 130, queries: int = 3, levels: int = 0, informed: bool = False):
    """Patch boxes scattered around each image's objects (IoUs across every threshold), scores with many ties when
    `levels` quantises them (saturated sigmoids tie at 1.0); some images hold no object of a query. `informed`:
    scores follow each patch's overlap with the query's objects, as a good detector's do (mAP well above 0)."""
    g = torch.Generator().manual_seed(seed)
    gts, boxes = [], []
    for _ in range(images):
        k = int(torch.randint(0, 4, (1,), generator=g))
        xy = torch.rand(k, 2, generator=g) * 48
        wh = 4 + torch.rand(k, 2, generator=g) * 16
        obj = torch.cat([xy, xy + wh], 1)
        labels = torch.randint(0, queries, (k,), generator=g)
        gts.append({"boxes": obj, "labels": labels})
        base = obj[torch.randint(0, k, (patches,), generator=g)] if k else torch.rand(patches, 4, generator=g) * 40
        jitter = torch.randn(patches, 4, generator=g) * torch.rand(patches, 1, generator=g) * 4
        b = base + jitter
        boxes.append(torch.cat([b[:, :2].minimum(b[:, 2:]), b[:, :2].maximum(b[:, 2:]) + 0.5], 1))
    scores = torch.rand(images, patches, queries, generator=g)
    if informed:
        from torchvision.ops import box_iou

        for m, t in enumerate(gts):
            for q in range(queries):
                own = t["boxes"][t["labels"] == q]
                if len(own):
                    scores[m, :, q] = 0.3 * scores[m, :, q] + box_iou(boxes[m], own).max(1).values
    if levels:
        scores = (scores * levels).round() / levels
    return torch.stack(boxes), scores, gts


@pytest.mark.parametrize("seed,levels,informed", [(0, 0, False), (1, 4, False), (2, 1, False), (3, 0, True),
                                                   (4, 8, True), (7, 0, True)])
def test_macro_map_equals_pycocotools_bit_for_bit(seed, levels, informed):
    boxes, scores, gts = world(seed, levels=levels, informed=informed)
    got = detection_map(boxes, scores, gts)
    assert got == reference(boxes, scores, gts)
    assert not informed or got["map_50"] > 0.3  # the regime of a working detector is covered too


@pytest.mark.parametrize("seed,levels", [(5, 0), (6, 3)])
def test_each_query_alone_equals_its_own_pycocotools_run(seed, levels):
    boxes, scores, gts = world(seed, queries=4, levels=levels, informed=True)
    own = [[t["boxes"][t["labels"] == q] for t in gts] for q in range(4)]
    got = detection_maps(boxes, scores, own)
    for q in range(4):
        targets = [{"boxes": b, "labels": torch.zeros(len(b), dtype=torch.long)} for b in own[q]]
        assert got[q] == reference(boxes, scores[:, :, q:q + 1], targets)


def test_a_query_without_ground_truth_scores_minus_one_and_perfect_boxes_score_one():
    boxes = torch.tensor([[[0.0, 0, 10, 10], [20, 20, 30, 30]]])  # one image, two patches
    scores = torch.tensor([[[0.9, 0.2], [0.1, 0.8]]])  # query 0 prefers patch 0, query 1 patch 1
    got = detection_maps(boxes, scores, [[boxes[0, :1]], [torch.zeros(0, 4)]])
    assert got[0] == {"map": 1.0, "map_50": 1.0}
    assert got[1] == {"map": -1.0, "map_50": -1.0}


def test_only_each_images_100_best_detections_count_as_in_pycocotools():
    """150 disjoint patches survive NMS; COCO keeps the 100 best per image (and its recall then stops short)."""
    g = torch.Generator().manual_seed(9)
    xy = torch.stack(torch.meshgrid(torch.arange(15.0), torch.arange(10.0), indexing="ij"), -1).reshape(-1, 2) * 6
    boxes = torch.cat([xy, xy + 5], 1)[None].repeat(3, 1, 1)  # [3 images, 150 patches, 4]
    gts = [{"boxes": boxes[m, torch.randperm(150, generator=g)[:40]] + 0.5, "labels": torch.zeros(40, dtype=torch.long)}
           for m in range(3)]
    scores = torch.rand(3, 150, 1, generator=g)
    got = detection_map(boxes, scores, gts)
    assert got == reference(boxes, scores, gts) and 0 < got["map_50"] < 1
