"""The engine on tiny models of the paper's classes: one soft-token mechanism, the δ-ball, batching, the store."""

import json
import math
import subprocess
import sys

import pytest
import torch

from vwlib import build_tiny
from vwlib.data.datasets import load_dataset
from vwlib.engine import nearest_word_distance, train_words
from vwlib.models.text import TextSide
from vwlib.runner import run_trials
from vwlib.store import ResultStore
from vwlib.tasks import make_batch, make_task
from vwlib.trials import Trial

FAMILY = {"generation": "sd", "detection": "owl", "classification": "open_clip"}


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("mini-objects")


def _task(name, models, ds):
    kwargs = {"scorer": models["scorer"], "num_inference_steps": 2} if name == "generation" else {}
    return make_task(name, models[name], ds, **kwargs)


@pytest.mark.parametrize("family", ["sd", "owl", "open_clip", "hf_clip"])
def test_word_equal_to_anchor_row_gives_the_plain_prompts_output(family):
    text = TextSide(build_tiny(family))
    ids = text.ids(["a photo of a star", "a red heart"])
    anchors = torch.tensor([1565, 1936])  # star, heart
    words = text.embedding.weight[anchors].detach().clone()
    assert torch.allclose(text.encode(ids, anchors, words), text.encode(ids), atol=1e-6)
    # a constant shift would vanish in the layer norms: perturb in a random direction
    other = words + 0.5 * torch.randn(words.shape, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(text.encode(ids, anchors, other), text.encode(ids), atol=1e-3)


@pytest.mark.parametrize("task_name", ["classification", "detection", "generation"])
def test_words_stay_in_the_delta_ball_and_move(task_name, tiny_models, dataset):
    task = _task(task_name, tiny_models, dataset)
    trials = [Trial("tiny", task_name, "mini-objects", "star", a, d) for a, d in
              [("heart", 0.1), ("heart", 0.5), ("circle", math.inf)]]
    batch = make_batch(task, trials)
    words, info = train_words(task, batch, [t.delta for t in trials], steps=6, lr=0.05)
    table = task.text.embedding.weight.detach()
    known = task.text.known_ids()
    for row, t in enumerate(trials):
        dist = float((words[row] - table[batch.anchor_ids[row]]).norm())
        if math.isinf(t.delta):
            assert dist > 0.1 * nearest_word_distance(table, known, int(batch.anchor_ids[row]))
        else:
            d_nn = nearest_word_distance(table, known, int(batch.anchor_ids[row]))
            assert dist <= t.delta * d_nn * (1 + 1e-5)
            assert dist >= 0.5 * t.delta * d_nn  # it used its budget
    assert not info["failed"]


@pytest.mark.parametrize("task_name", ["classification", "detection", "generation"])
def test_batched_trials_equal_trials_run_one_by_one(task_name, tiny_models, dataset):
    task = _task(task_name, tiny_models, dataset)
    trials = [Trial("tiny", task_name, "mini-objects", c, a, d)
              for c, a, d in [("star", "star", math.inf), ("ring", "heart", 0.5), ("moon", "arrow", math.inf)]]
    together, _ = train_words(task, make_batch(task, trials), [t.delta for t in trials], steps=4, lr=0.05)
    for row, t in enumerate(trials):
        alone, _ = train_words(task, make_batch(task, [t]), [t.delta], steps=4, lr=0.05)
        assert torch.allclose(together[row], alone[0], atol=1e-5), t


def test_nan_loss_stops_that_trial_only(tiny_models, dataset):
    task = _task("classification", tiny_models, dataset)
    trials = [Trial("tiny", "classification", "mini-objects", c, c) for c in ("star", "ring")]
    original = task.losses

    def poisoned(words, batch):
        losses = original(words, batch)  # trial 0's loss turns NaN, as a diverging trial's would
        return losses + torch.where(torch.arange(len(losses)) == 0, float("nan"), 0.0)

    task.losses = poisoned
    batch = make_batch(task, trials)
    words, info = train_words(task, batch, [math.inf, math.inf], steps=3, lr=0.05)
    assert list(info["failed"]) == [0] and "nan" in info["failed"][0]
    assert torch.equal(words[0], task.text.embedding.weight[batch.anchor_ids[0]])
    assert torch.isfinite(words).all() and not torch.equal(words[1], task.text.embedding.weight[batch.anchor_ids[1]])


def test_store_skips_finished_trials_and_tabulates(tmp_path):
    store = ResultStore(tmp_path / "runs")
    trials = [Trial("tiny", "classification", "mini-objects", "star", a, 0.5, steps=2) for a in ("star", "heart")]
    dirs = run_trials(trials, store, progress=False)
    assert [d.name for d in dirs] == [t.key() for t in trials]
    for d in dirs:
        assert {p.name for p in d.iterdir()} == {"config.json", "embedding.safetensors", "eval-classification.json",
                                                   "curve.json"}
        config = json.loads((d / "config.json").read_text())
        assert config["status"] == "ok" and config["delta"] == 0.5 and config["model_id"] == "random"
    stamp = [d.stat().st_mtime_ns for d in dirs]
    run_trials(trials, store, progress=False)  # finished: nothing is redone
    assert [d.stat().st_mtime_ns for d in dirs] == stamp
    table = store.table()
    assert len(table) == 2 and set(table["evaluated_on"]) == {"classification"}
    assert table["accuracy"].between(0, 1).all() and table["false_positive_rate"].between(0, 1).all()
    assert not list((tmp_path / "runs").glob(".*"))  # no temporary leftovers


@pytest.mark.parametrize("argv,message", [
    (["--dataset", "mini-objects", "--concepts", "sombrero"], "unknown concept 'sombrero'"),
    (["--dataset", "imagenet-mini"], "unknown dataset 'imagenet-mini'"),
    (["--anchors", "cyan"], "'cyan' is 2 CLIP tokens"),
    (["--deltas", "0"], "δ must be > 0"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(argv, message, tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "vwlib", "train", "--profile", "tiny", "--steps", "1",
                           "--out", str(out), *argv], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() or not any(out.iterdir())


def test_export_diffusers_loads_in_a_stock_pipeline(tmp_path):
    store = ResultStore(tmp_path / "runs")
    trial = Trial("tiny", "generation", "mini-objects", "star", "star", math.inf, steps=1)
    run_trials([trial], store, progress=False, task_kwargs={"generation": {"num_inference_steps": 1}})
    proc = subprocess.run([sys.executable, "-m", "vwlib", "export-diffusers", str(store.path(trial)),
                           str(tmp_path / "export"), "--token", "<star>"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    pipe = build_tiny("sd").model
    pipe.load_textual_inversion(str(tmp_path / "export" / "learned_embeds.safetensors"), token="<star>")
    new_id = pipe.tokenizer.convert_tokens_to_ids("<star>")
    word = store.load_vector(store.path(trial))[0]
    assert torch.allclose(pipe.text_encoder.get_input_embeddings().weight[new_id], word)


def test_owl_query_over_16_tokens_is_refused(tiny_models):
    from vwlib import VWError

    text = TextSide(tiny_models["detection"])
    with pytest.raises(VWError, match="at most 16"):
        text.ids(["a very long query " * 4])


def test_wrong_width_and_corrupt_embeddings(tmp_path):
    from safetensors.torch import save_file

    from vwlib import VWError
    from vwlib.store import load_embedding

    path = tmp_path / "embedding.safetensors"
    save_file({"embedding": torch.zeros(1, 48)}, str(path))
    with pytest.raises(VWError, match="48 wide but the model's tokens are 32"):
        load_embedding(path, width=32)
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!")
    with pytest.raises(VWError, match="is corrupt"):
        load_embedding(path)
    with pytest.raises(VWError, match="no embedding at"):
        load_embedding(tmp_path / "missing.safetensors")


def test_missing_mini_checkpoint_names_the_rebuild_command(tmp_path, monkeypatch):
    from vwlib import MissingModelError
    from vwlib.models import profiles

    spec = profiles.ModelSpec("mini", "detection", "owl", str(tmp_path / "nowhere"), "checkpoint")
    monkeypatch.setitem(profiles.PROFILES["mini"], "detection", spec)
    with pytest.raises(MissingModelError, match="rebuild it with: vw mini train --model owl"):
        profiles.load_model("mini", "detection")


def test_generations_do_not_depend_on_the_other_trials_of_the_batch(tiny_models, dataset):
    import numpy as np

    task = _task("generation", tiny_models, dataset)
    trials = [Trial("tiny", "generation", "mini-objects", c, c) for c in ("star", "ring", "moon")]
    batch = make_batch(task, trials)
    words = task.text.embedding.weight[batch.anchor_ids].detach()
    together = task.generate(words, batch, chunk=2)
    alone = task.generate(words[2:], make_batch(task, trials[2:]))
    assert np.array_equal(np.asarray(together[2][0]), np.asarray(alone[0][0]))
    assert not np.array_equal(np.asarray(together[0][0]), np.asarray(together[1][0]))


def test_a_new_scorer_rescores_generation_words_without_retraining_them(tiny_models, tmp_path, monkeypatch):
    import vwlib.models.profiles as profiles

    store = ResultStore(tmp_path)
    kw = {"generation": {"num_inference_steps": 1}}
    models = dict(tiny_models)
    trials = [Trial("tiny", "generation", "mini-objects", "star", "star", steps=2),
              Trial("tiny", "classification", "mini-objects", "star", "star", steps=2)]
    run_trials(trials, store, progress=False, models=models, task_kwargs=kw)
    gen, clf = (store.path(t) for t in trials)
    assert json.loads((gen / "eval-generation.json").read_text())["evaluator_fingerprint"] == "random+random"
    before = {p: p.stat().st_mtime_ns for p in (gen / "embedding.safetensors", clf / "eval-classification.json")}
    real = profiles.fingerprint
    monkeypatch.setattr(profiles, "fingerprint", lambda p, role: "new" if role == "scorer" else real(p, role))
    assert [store.path(t) for t in trials] == run_trials(trials, store, progress=False, models=models, task_kwargs=kw)
    assert json.loads((gen / "eval-generation.json").read_text())["evaluator_fingerprint"] == "random+new"
    assert {p: p.stat().st_mtime_ns for p in before} == before  # the word was not retrained; the classifier untouched
    assert store.evaluated_by(trials[1], "classification") == "random"


def test_a_new_nms_threshold_rescores_detection_words_without_retraining_them(tiny_models, tmp_path, monkeypatch):
    import vwlib.models.vision as vision

    store = ResultStore(tmp_path)
    models = dict(tiny_models)
    trial = Trial("tiny", "detection", "mini-objects", "star", "star", steps=2)
    run_trials([trial], store, progress=False, models=models)
    word = store.path(trial) / "embedding.safetensors"
    before = word.stat().st_mtime_ns
    assert store.evaluated_by(trial, "detection") == "random+nms0.5"
    monkeypatch.setattr(vision, "OWL_NMS_IOU", 0.7)
    run_trials([trial], store, progress=False, models=models)
    assert store.evaluated_by(trial, "detection") == "random+nms0.7"
    assert word.stat().st_mtime_ns == before  # re-scored, not retrained


def test_each_trial_keeps_its_training_curve_inside_its_ball(tmp_path, tiny_models):
    """Loss and distance from the anchor every steps/40 steps, in curve.json; a δ-word never leaves δ·d_nn."""
    from vwlib import StudyConfig, training_curves, training_curves_figure

    store = ResultStore(tmp_path / "runs")
    trials = [Trial("tiny", "classification", "mini-objects", "star", "heart", d, steps=80) for d in (0.5, math.inf)]
    run_trials(trials, store, progress=False, models={"classification": tiny_models["classification"]})
    for t in trials:
        curve = store.curve(t)
        assert curve["step"] == list(range(0, 80, 2)) + [79]  # 41 points: every 2 steps and the last
        assert len(curve["loss"]) == len(curve["distance"]) == 41 and curve["d_nn"] > 0
        assert curve["distance"][0] > 0  # logged after the first step
    constrained = store.curve(trials[0])
    assert max(constrained["distance"]) <= 0.5 * constrained["d_nn"] * (1 + 1e-5)
    assert store.curve(trials[1])["distance"][-1] > 0.5 * constrained["d_nn"]  # the free word goes further
    table = training_curves(StudyConfig(profile="tiny", out=str(tmp_path / "runs")), trials)
    assert len(table) == 82 and table.distance_over_dnn.max() > 0.5
    assert len(training_curves_figure(table).axes) == 2
