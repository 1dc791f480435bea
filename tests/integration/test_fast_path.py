"""The fast path's rewrites are exact and sync-free: the prototype form of the signed-cosine losses equals the
paper's formula, and a training step's host-device synchronisations do not grow with the number of trials
(counted on the CPU by HostSyncCounter, which sees what would make a CUDA host wait)."""

import pytest
import torch

from vwlib.data.datasets import load_dataset
from vwlib.engine import train_words
from vwlib.models.accel import HostSyncCounter
from vwlib.models.tokenizer import EOS_ID
from vwlib.runner import build_task
from vwlib.tasks import make_batch, signed_cosine
from vwlib.trials import Trial

CONCEPTS = ("star", "circle", "square", "cross", "moon", "heart")
KW = {"generation": {"num_inference_steps": 1}}


def _trials(task, n):
    return [Trial("tiny", task, "mini-objects", c, a, 0.5) for c, a in zip(CONCEPTS[:n], CONCEPTS[1:] + ("ring",))]


def test_the_prototype_losses_equal_the_papers_signed_cosine(tiny_models):
    models = dict(tiny_models)
    torch.manual_seed(0)
    for name in ("classification", "detection"):
        task = build_task("tiny", name, "mini-objects", models)
        batch = make_batch(task, _trials(name, 5))
        out = torch.randn(5, task.prototypes.shape[1])
        q = torch.nn.functional.normalize(out, dim=-1)
        if name == "classification":  # cos with every training image; positives = the concept's images
            reference = signed_cosine(q @ task.train_feats.t(), task.train_labels[None] == batch.concept[:, None])
        else:  # cos with every proposal of the concept's own images; positives = proposals over its objects
            reference = torch.stack([
                signed_cosine((task.train_embeds[task.train_labels == c] @ q[t]).reshape(1, -1),
                              task.train_positive[task.train_labels == c].reshape(1, -1))[0]
                for t, c in enumerate(batch.concepts)])
        got = task.losses_from(out, batch)
        assert got.shape == (5,) and torch.allclose(got, reference, atol=1e-6), name
        assert reference.std() > 1e-3  # the trials differ: the check is not between constants


@pytest.mark.parametrize("name", ["classification", "detection", "generation"])
def test_host_syncs_per_training_step_do_not_grow_with_the_number_of_trials(name, tiny_models):
    task = build_task("tiny", name, "mini-objects", dict(tiny_models), KW)

    def syncs(n, steps):
        trials = _trials(name, n)
        batch = make_batch(task, trials)
        with HostSyncCounter() as counter:
            train_words(task, batch, [t.delta for t in trials], steps, 1e-2)
        return counter.total

    per_step = {n: (syncs(n, 5) - syncs(n, 2)) / 3 for n in (1, 6)}
    # Adam's step count (a host tensor, no real sync); OWL's text model gets no padding mask, so no mask check
    assert per_step[1] == per_step[6] <= 1, per_step


def test_the_counter_sees_what_would_make_a_cuda_host_wait():
    x = torch.arange(6.0)
    with HostSyncCounter() as counter:
        float(x[0])
        x.tolist()
        x[x > 2]
        torch.nonzero(x)
        y = torch.where(x > 2, x, 0.0) * 2  # stays on the device: no sync
    assert counter.counts == {"aten._local_scalar_dense.default": 1, "tolist": 1,
                              "aten.index.Tensor (boolean mask)": 1, "aten.nonzero.default": 1}
    assert y.shape == (6,) and x.tolist() == [0, 1, 2, 3, 4, 5]  # the patch is gone after the block


@pytest.mark.parametrize("role", ["classification", "detection", "scorer", "generation"])
def test_prompts_cut_after_the_end_of_text_token_give_the_same_pooled_output(role, tiny_models):
    from vwlib.models.text import TextSide

    text = TextSide(tiny_models[role])
    prompts = ["a photo of a star", "a photo of a red striped heart on grass"]
    full, cut = text.ids(prompts), text.ids(prompts, trim=True)
    vectors = torch.randn(2, text.width)
    anchors = full[:, 4]  # "star", "red": the words replaced
    with torch.no_grad():
        a, b = text.encode(full, anchors, vectors), text.encode(cut, anchors, vectors)
    if role == "generation":  # the UNet reads every position: nothing is cut
        assert torch.equal(full, cut)
    else:
        assert cut.shape == (2, 11) and full.shape[1] > 11 and torch.equal(cut, full[:, :11])
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


@pytest.mark.parametrize("role", ["detection", "scorer"])
def test_the_hf_text_towers_need_no_padding_mask_for_the_end_of_text_output(role, tiny_models):
    """OWL-v2's and HF CLIP's text towers are causal: the end-of-text output of a padded prompt is the same with the
    padding mask the stock pipelines pass and without it (vwlib passes none: its check is a host sync per step)."""
    from vwlib.models.text import TextSide

    loaded = tiny_models[role]
    text = TextSide(loaded)
    ids = text.ids(["a photo of a star", "a photo of a red striped heart on grass"])  # the first one padded
    mask = (ids != loaded.adapter.pad_id).long()
    mask[torch.arange(2), (ids == EOS_ID).int().argmax(1)] = 1
    towers = loaded.model.owlv2 if role == "detection" else loaded.model
    with torch.no_grad():
        masked = towers.get_text_features(input_ids=ids, attention_mask=mask)
        masked = getattr(masked, "pooler_output", masked)
        assert (mask == 0).any() and torch.allclose(text.encode(ids), masked, atol=1e-6)


def test_a_task_is_built_once_per_model_dataset_and_options_and_a_folder_is_read_again(tiny_models, tmp_path):
    """Building a task computes its frozen image side: every caller of the same model, dataset and options gets the
    one task; a folder of your own is read at every call, so that images added to it count."""
    models = dict(tiny_models)
    clf = build_task("tiny", "classification", "mini-objects", models)
    assert build_task("tiny", "classification", "mini-objects", models) is clf
    assert build_task("tiny", "classification", "mini-scenes", models) is not clf
    gen = build_task("tiny", "generation", "mini-objects", models, KW)
    assert build_task("tiny", "generation", "mini-objects", models, KW) is gen
    assert build_task("tiny", "generation", "mini-objects", models, {"generation": {"num_inference_steps": 2}}) is not gen
    folder = tmp_path / "shapes"
    ds = load_dataset("mini-objects")
    for name in ("star", "heart", "moon"):
        (folder / name).mkdir(parents=True)
        for k, e in enumerate([e for e in ds.train if e.label == ds.concept_index(name)][:3]):
            e.image.save(folder / name / f"{k}.png")
        if name == "heart":
            assert build_task("tiny", "classification", str(folder), models).ds.concepts == ["heart", "star"]
    assert build_task("tiny", "classification", str(folder), models).ds.concepts == ["heart", "moon", "star"]
