"""Detection post-processing: per-query NMS before mAP, and its place in the detection evaluator's fingerprint."""

import pytest
import torch

from vwlib.models import profiles
from vwlib.models.vision import OWL_NMS_IOU, owl_detections


def _boxes():
    # Patches 0-2 see one object (near-identical boxes), patch 3 another one far away.
    return torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [0, 1, 10, 11], [30, 30, 40, 40]], dtype=torch.float)


def test_nms_keeps_one_box_per_object_and_query():
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])  # [P=4, Q=2]
    out = owl_detections(_boxes(), scores)
    assert len(out["boxes"]) == 4  # 2 objects x 2 queries; the 4 duplicates are gone
    for q in (0, 1):
        assert sorted(out["boxes"][out["labels"] == q][:, 0].tolist()) == [0.0, 30.0]
    # the best-scoring duplicate survives, per query
    assert sorted(out["scores"][out["labels"] == 0].tolist()) == pytest.approx([0.6, 0.9])  # patch 0 beats 1 and 2
    assert sorted(out["scores"][out["labels"] == 1].tolist()) == pytest.approx([0.3, 0.4])  # patch 2 beats 0 and 1


def test_nms_threshold_one_keeps_everything():
    out = owl_detections(_boxes(), torch.rand(4, 3), iou=1.0)
    assert out["boxes"].shape == (12, 4) and out["scores"].shape == (12,) and out["labels"].tolist().count(2) == 4


def test_detection_evaluator_fingerprint_names_the_nms_threshold():
    fp = profiles.evaluator_fingerprint("tiny", "detection")
    assert fp == f"{profiles.fingerprint('tiny', 'detection')}+nms{OWL_NMS_IOU:g}" and fp.endswith("+nms0.5")
    assert profiles.evaluator_fingerprint("tiny", "classification") == profiles.fingerprint("tiny", "classification")


def test_the_module_threshold_is_read_at_call_time(monkeypatch):
    import vwlib.models.vision as vision

    scores = torch.tensor([[0.9], [0.8], [0.7], [0.6]])
    assert len(owl_detections(_boxes(), scores)["boxes"]) == 2
    monkeypatch.setattr(vision, "OWL_NMS_IOU", 0.95)  # near-identical boxes (IoU 0.82) now survive
    assert len(owl_detections(_boxes(), scores)["boxes"]) == 4
    assert profiles.evaluator_fingerprint("tiny", "detection").endswith("+nms0.95")
