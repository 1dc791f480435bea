"""ConES output-space embeddings on tiny models of the paper's classes: same losses, no text encoder in the step,
batching-invariant, stored and transferred through the same store and evaluators, the modality gap."""

import math

import pytest
import torch

from vwlib.cones import OutputSpace, modality_gap, modality_gap_table, train_output_words
from vwlib.data.datasets import load_dataset
from vwlib.errors import VWError
from vwlib.runner import evaluate_transfers, run_trials
from vwlib.stats import headline
from vwlib.store import ResultStore
from vwlib.tasks import make_batch, make_task
from vwlib.transfer import fit_all_output, vocabulary_outputs
from vwlib.trials import Trial

FAMILY = {"generation": "sd", "detection": "owl", "classification": "open_clip"}
PAIRS = (("star", "star"), ("heart", "star"), ("circle", "heart"))


def _task(name, models):
    kwargs = {"scorer": models["scorer"], "num_inference_steps": 2, "batch_per_trial": 2} if name == "generation" else {}
    return make_task(name, models[name], load_dataset("mini-objects"), **kwargs)


def _trials(name, pairs=PAIRS):
    return [Trial("tiny", name, "mini-objects", c, a, space="output") for c, a in pairs]


@pytest.mark.parametrize("name", list(FAMILY))
def test_output_space_starts_at_the_anchor_prompts_output_and_skips_the_text_encoder(name, tiny_models):
    task = _task(name, tiny_models)
    batch = make_batch(task, _trials(name))
    space = OutputSpace(task, batch)
    plain = task.text_output(None, batch)
    assert torch.equal(space.compose(space.init()), plain.float())
    assert torch.allclose(task.losses_from(space.compose(space.init()), batch),
                          task.losses(task.text.embedding.weight[batch.anchor_ids].float(), make_batch(task, _trials(name))),
                          atol=1e-5)
    calls = []
    handle = task.text.embedding.register_forward_hook(lambda *a: calls.append(1))  # runs in every encoder pass
    try:
        params, info = train_output_words(task, make_batch(task, _trials(name)), steps=3, lr=1e-2)
    finally:
        handle.remove()
    assert calls == [1]  # once, for the starting point; never in a training step
    assert params.shape == (3, space.init().shape[1]) and params.dtype == torch.float32
    assert not torch.equal(params, space.init())  # it trained


@pytest.mark.parametrize("name", list(FAMILY))
def test_output_space_batched_equals_one_by_one(name, tiny_models):
    task = _task(name, tiny_models)
    together, _ = train_output_words(task, make_batch(task, _trials(name)), steps=3, lr=1e-2)
    alone = torch.cat([train_output_words(task, make_batch(task, _trials(name, [p])), steps=3, lr=1e-2)[0]
                       for p in PAIRS])
    assert torch.allclose(together, alone, atol=1e-5)


def test_output_trials_have_their_own_keys_and_refuse_a_delta():
    word = Trial("tiny", "classification", "mini-objects", "star", "star")
    out = Trial("tiny", "classification", "mini-objects", "star", "star", space="output")
    assert "space" not in word.to_dict()  # input-space keys are what they were before ConES
    assert out.to_dict()["space"] == "output" and "-output-" in out.key() and out.key() != word.key()
    with pytest.raises(VWError, match="no anchor row.*delta inf"):
        Trial("tiny", "classification", "mini-objects", "star", "star", 0.5, space="output")
    with pytest.raises(VWError, match="unknown space 'latent'"):
        Trial("tiny", "classification", "mini-objects", "star", "star", space="latent")


@pytest.mark.parametrize("name", list(FAMILY))
def test_vocabulary_outputs_equal_encoding_the_word_in_the_template(name, tiny_models):
    task = _task(name, tiny_models)
    tok = task.loaded.tokenizer
    ids = torch.tensor([tok.convert_tokens_to_ids("star</w>"), tok.convert_tokens_to_ids("heart</w>")])
    got = vocabulary_outputs(task, ids)
    trials = [Trial("tiny", name, "mini-objects", "star", w, space="output") for w in ("star", "heart")]
    batch = make_batch(task, trials)
    assert torch.allclose(got, OutputSpace(task, batch).init(), atol=1e-5)


def test_output_space_words_are_stored_and_transferred_apart_from_input_words(tiny_models, tmp_path):
    store = ResultStore(tmp_path)
    kw = {"generation": {"num_inference_steps": 2, "batch_per_trial": 2}}
    trials = [Trial("tiny", t, "mini-objects", "star", "star", steps=2, space=s) for t in FAMILY for s in ("input", "output")]
    run_trials(trials, store, progress=False, models=dict(tiny_models), task_kwargs=kw)
    for t in trials:
        assert store.load_vector(store.path(t)).shape == (1, 32)  # tiny tiny_models: token, feature and query width 32
    maps = fit_all_output("tiny", tiny_models, max_words=500, store=store)
    assert len(maps) == 6 and len(list(store.maps_dir.glob("*-output.safetensors"))) == 6
    assert all(m.quality["n_fit"] + m.quality["n_test"] == 500 for m in maps.values())
    written = evaluate_transfers(store, maps, tiny_models, task_kwargs=kw, space="output")
    assert written == 6  # 3 output-space embeddings x 2 other tiny_models; the input-space words are left alone
    table = store.table()
    assert set(table[table.evaluated_on != table.task]["space"]) == {"output"}
    assert set(headline(table)["space"]) == {"input"}  # the paper's figures see only token words
    assert set(headline(table, space=None)["space"]) == {"input", "output"}
    gaps = modality_gap_table("tiny", store, trials, tiny_models)
    assert set(gaps["embedding"]) == {"name prompt", "input-space", "output-space"}
    assert set(gaps["task"]) == {"classification", "detection"}
    assert ((gaps["gap"] >= 0) & (gaps["gap"] <= 2)).all()


def test_modality_gap_is_zero_on_the_images_and_grows_away_from_them(tiny_models):
    task = _task("classification", tiny_models)
    from vwlib.cones import image_embeddings

    images = image_embeddings(task, 0)
    mean_image = images.mean(0, keepdim=True)
    on, off = modality_gap(task, torch.cat([mean_image, -mean_image]), [0, 0])
    assert on < off and off > math.sqrt(2) - 0.2
    with pytest.raises(VWError, match="no joint text-image space"):
        image_embeddings(_task("generation", tiny_models), 0)
