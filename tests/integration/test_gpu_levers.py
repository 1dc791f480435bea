"""The GPU levers (vwlib.models.accel.Levers, issue #35), checked on the CPU: each does what it says, is off by
default, refuses what this machine cannot run, and leaves the numbers as they are."""

import pytest
import torch

from vwlib.errors import VWError
from vwlib.metrics import detection_maps
from vwlib import build_tiny
from vwlib.data.datasets import load_dataset
from vwlib.engine import train_words
from vwlib.models.accel import (LEVERS, Levers, apply_levers, attention_backend, backend_available, device_name,
                                lever_context)
from vwlib.tasks import make_batch, make_task
from vwlib.trials import Trial


def test_levers_are_off_by_default_and_named():
    assert Levers() == LEVERS["eager"] and Levers().named() == {"attention": "default", "gpu_nms": False,
                                                                "weights_bf16": False, "compile": ""}
    assert {name for name, lever in LEVERS.items() if lever != Levers()} == set(LEVERS) - {"eager"}
    assert device_name("cpu").startswith("cpu (")


def test_attention_backend_runs_what_it_names_and_refuses_what_cannot_run_here():
    q = torch.randn(1, 2, 8, 16)
    with attention_backend("math", "cpu"):
        out = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    with attention_backend("default", "cpu"):
        assert torch.allclose(out, torch.nn.functional.scaled_dot_product_attention(q, q, q), atol=1e-5)
    assert backend_available("math", "cpu") and not backend_available("cudnn", "cpu")
    with pytest.raises(VWError, match="'cudnn' attention backend cannot run on cpu.*available: .*math"):
        attention_backend("cudnn", "cpu")
    with pytest.raises(VWError, match="unknown attention backend 'fast'"):
        attention_backend("fast", "cpu")


def test_nms_on_the_device_in_one_call_gives_the_per_image_detections():
    g = torch.Generator().manual_seed(0)
    m, p, q = 4, 30, 3
    xy = torch.rand(m, p, 2, generator=g) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(m, p, 2, generator=g) * 20], -1)  # overlapping boxes: NMS acts
    scores = torch.rand(m, p, q, generator=g)
    gt = [[boxes[i, :2] + 1 for i in range(m)] for _ in range(q)]
    assert detection_maps(boxes, scores, gt, on_device=True) == detection_maps(boxes, scores, gt)


def test_bf16_weights_keep_the_word_and_its_optimizer_in_fp32_within_the_stated_tolerance():
    ds = load_dataset("mini-objects")
    trials = [Trial("tiny", "classification", "mini-objects", c, a, 0.5) for c, a in (("star", "heart"), ("moon", "star"))]
    losses = {}
    for name in ("eager", "bf16-weights"):
        torch.manual_seed(0)
        loaded = apply_levers(build_tiny("open_clip"), LEVERS[name])
        with lever_context(LEVERS[name], "cpu"):
            task = make_task("classification", loaded, ds)  # the image side under the same autocast
            words, info = train_words(task, make_batch(task, trials), [t.delta for t in trials], 3, 5e-3)
        assert words.dtype == torch.float32  # the word (and with it Adam's state) stays fp32
        assert task.text.embedding.weight.dtype == (torch.bfloat16 if name == "bf16-weights" else torch.float32)
        assert loaded.meta["levers"]["weights_bf16"] == (name == "bf16-weights")
        losses[name] = torch.tensor(info["final_loss"])
    # stated tolerance: the signed-cosine loss (in [-2, 2]) of every word within 0.005 of the fp32 run's
    assert float((losses["eager"] - losses["bf16-weights"]).abs().max()) < 0.005


@pytest.mark.slow  # torch.compile of a tiny text tower takes ~30 s on a CPU
@pytest.mark.parametrize("lever", ["compile", "cuda-graphs"])
def test_compiled_text_tower_equals_eager_within_1e_4(lever):
    from vwlib.models.text import TextSide

    loaded = build_tiny("open_clip")
    text = TextSide(loaded)
    ids = text.ids(["a photo of a star", "a photo of a moon"])
    anchor = torch.tensor([int(ids[0, 4]), int(ids[1, 4])])
    vectors = torch.randn(2, text.embedding.weight.shape[1])
    with torch.no_grad():
        eager = text.encode(ids, anchor, vectors)
        apply_levers(loaded, LEVERS[lever])
        compiled = text.encode(ids, anchor, vectors)
    assert float((eager - compiled).abs().max()) < 1e-4


@pytest.mark.gpu
def test_on_cuda_the_levers_run_and_nms_on_the_device_equals_the_cpu_path():
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(3, 40, 2, generator=g) * 50
    boxes = torch.cat([xy, xy + 5 + torch.rand(3, 40, 2, generator=g) * 20], -1)
    scores = torch.rand(3, 40, 2, generator=g)
    gt = [[boxes[i, :2] + 1 for i in range(3)] for _ in range(2)]
    assert detection_maps(boxes.cuda(), scores.cuda(), gt, on_device=True) == detection_maps(boxes, scores, gt)
    assert backend_available("math", "cuda")
    for name in ("flash", "efficient"):  # each either runs or is refused with the list of what does
        try:
            with attention_backend(name, "cuda"):
                q = torch.randn(1, 2, 8, 64, device="cuda", dtype=torch.bfloat16)
                torch.nn.functional.scaled_dot_product_attention(q, q, q)
        except VWError as e:
            assert "available:" in str(e)
