"""A trial's seed draws its dataset's images (#32: "seeds measure what they claim"): two seeds of one word are trained
on different images, so they are different words; seed 0 keeps the study's default split, and trials of different
seeds never share a batched pass."""

import pytest
import torch

from vwlib.data.datasets import load_dataset
from vwlib.runner import build_task, group_trials, run_trials
from vwlib.store import ResultStore
from vwlib.trials import Trial


def _pixels(ds) -> torch.Tensor:
    return torch.stack([torch.as_tensor(list(e.image.getdata()), dtype=torch.float32) for e in ds.train])


def test_the_seed_draws_the_tasks_training_images(tiny_models):
    models = dict(tiny_models)
    default = build_task("tiny", "classification", "mini-objects", models)
    seed0 = build_task("tiny", "classification", "mini-objects", models, seed=0)
    seed1 = build_task("tiny", "classification", "mini-objects", models, seed=1)
    assert seed0 is default  # seed 0 is the default split, built once
    assert seed1 is not seed0
    assert torch.equal(_pixels(seed0.ds), _pixels(load_dataset("mini-objects")))
    assert not torch.equal(_pixels(seed1.ds), _pixels(seed0.ds))  # other training images...
    assert [e.label for e in seed1.ds.train] == [e.label for e in seed0.ds.train]  # ...of the same concepts


def test_two_seeds_of_one_word_are_trained_apart_and_on_their_own_images(tiny_models, tmp_path):
    trials = [Trial("tiny", "classification", "mini-objects", "star", "circle", float("inf"), seed=s) for s in (0, 1)]
    groups = group_trials(trials)
    assert len(groups) == 2 and [g[0][3] for g in groups] == [0, 1]  # the seed is part of a group's key
    store = ResultStore(tmp_path)
    run_trials(trials, store, progress=False, models=dict(tiny_models))
    w0, w1 = store.load_words(trials)
    assert not torch.allclose(w0, w1)  # before: the classifier had no randomness, so seeds gave the same word
    again = ResultStore(tmp_path / "alone")
    run_trials(trials[1:], again, progress=False, models=dict(tiny_models))
    assert torch.allclose(again.load_words(trials[1:])[0], w1)  # a seed's word does not depend on its company


@pytest.mark.slow  # 14 s beside a training: two words trained, six tasks built
def test_the_modality_gap_reads_each_seeds_own_held_out_images(tiny_models, tmp_path):
    from vwlib.cones import modality_gap, modality_gap_table
    from vwlib.tasks import make_batch

    trials = [Trial("tiny", "classification", "mini-objects", "star", "circle", float("inf"), seed=s) for s in (0, 1)]
    store = ResultStore(tmp_path)
    run_trials(trials, store, progress=False, models=dict(tiny_models))
    table = modality_gap_table("tiny", store, trials, dict(tiny_models)).set_index("embedding")
    assert table.loc["input-space", "n"] == 2 and table.loc["name prompt", "n"] == 2 * 10  # each seed's names
    expected = []
    for trial, word in zip(trials, store.load_words(trials)):  # each word against its own seed's images
        task = build_task("tiny", "classification", "mini-objects", dict(tiny_models), seed=trial.seed)
        batch = make_batch(task, [trial])
        with torch.no_grad():
            expected += modality_gap(task, task.text_output(word[None], batch), batch.concepts)
    assert table.loc["input-space", "gap"] == pytest.approx(sum(expected) / 2, abs=1e-6)
