"""The paper's four architectures at full size (random weights): one training step and one evaluation per task.

Shape, dtype and configuration bugs of the paper path show up here, on a machine without the paper's weights or a
GPU. Slow (minutes, ~12 GB of memory on the CPU): `make test-all`. Each task runs on a 2-concept, 1-image-per-split
subset of mini-objects, and generation evaluates with one DDIM step.
"""

import math
import resource
import time
from dataclasses import replace

import pytest
import torch

from vwlib.data.datasets import load_dataset
from vwlib.engine import train_words
from vwlib.models.profiles import load_model
from vwlib.tasks import make_batch, make_task
from vwlib.trials import Trial

pytestmark = pytest.mark.slow

# (role, parameters of the whole model in millions, text-encoder blocks, token-table width)
ARCHITECTURES = [("classification", 428, 12, 768), ("detection", 155, 12, 512), ("scorer", 428, 12, 768),
                 ("generation", 1290, 23, 1024)]


def _subset():
    ds = load_dataset("mini-objects")
    keep = ds.concepts[:2]
    pick = lambda split: [next(e for e in split if e.label == i) for i in range(2)]  # noqa: E731
    return replace(ds, concepts=keep, anchors=ds.anchors[:2], train=pick(ds.train), val=pick(ds.val))


@pytest.mark.parametrize("role,millions,blocks,width", ARCHITECTURES)
def test_paper_architecture_is_the_published_one(role, millions, blocks, width):
    m = load_model("paper-random", role)
    parameters = sum(p.numel() for module in m.adapter.parameter_modules().values() for p in module.parameters())
    assert parameters / 1e6 == pytest.approx(millions, rel=0.02)
    assert len(getattr(m.adapter.block_owner, m.adapter.block_attr)) == blocks
    assert m.token_embedding().weight.shape == (49408, width)


@pytest.mark.parametrize("task_name", ["classification", "detection", "generation"])
def test_one_step_and_one_evaluation_per_task(task_name, record_property):
    ds = _subset()
    model = load_model("paper-random", task_name)
    kwargs = {}
    if task_name == "generation":
        kwargs = dict(scorer=load_model("paper-random", "scorer"), num_inference_steps=1, batch_per_trial=1)
    t0 = time.perf_counter()
    task = make_task(task_name, model, ds, **kwargs)
    trials = [Trial("paper-random", task_name, ds.name, ds.concepts[0], "cat", 0.5)]
    batch = make_batch(task, trials)
    words, _ = train_words(task, batch, [0.5], steps=1, lr=1e-4)
    step_s = time.perf_counter() - t0
    metrics = task.evaluate(words, batch)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    record_property("step_and_setup_s", round(step_s, 1))
    record_property("peak_rss_gib", round(peak_gib, 1))
    print(f"{task_name}: set-up + 1 step {step_s:.1f} s, evaluation {time.perf_counter() - t0 - step_s:.1f} s, "
          f"peak RSS {peak_gib:.1f} GiB")
    assert words.dtype == torch.float32 and words.shape == (1, model.token_embedding().weight.shape[1])
    assert torch.isfinite(words).all()
    value = metrics[0][{"classification": "accuracy", "detection": "map", "generation": "accuracy"}[task_name]]
    assert math.isfinite(value) and 0.0 <= value <= 1.0
