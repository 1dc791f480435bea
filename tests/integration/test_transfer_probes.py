"""Transfer maps and layer probes on tiny models of the paper's classes."""

import json
import math

import pytest
import torch

from vwlib import build_tiny
from vwlib.models.probes import pooled_activations
from vwlib.models.text import TextSide
from vwlib.runner import evaluate_transfers, run_trials
from vwlib.store import ResultStore
from vwlib.transfer import fit_all, nearest_words
from vwlib.trials import Trial


@pytest.mark.parametrize("family", ["sd", "owl", "open_clip", "hf_clip"])
def test_last_layer_activation_is_the_models_own_pooled_output(family):
    loaded = build_tiny(family)
    text = TextSide(loaded)
    ids = text.ids(["a photo of a star", "a red circle"])
    acts = pooled_activations(text, ids)
    assert sorted(acts) == list(range(1, text.num_layers + 1))
    last = acts[text.num_layers]
    m = loaded.model
    with torch.no_grad():
        if family == "open_clip":
            own = m.encode_text(ids)
            assert torch.allclose(last @ m.text_projection, own, atol=1e-5)
        elif family == "sd":
            own = m.text_encoder(ids)[0]
            eos = (ids == 49407).int().argmax(1)
            assert torch.allclose(last, own[torch.arange(2), eos], atol=1e-5)
        else:
            module = m.owlv2.text_model if family == "owl" else m.text_model
            own = module(input_ids=ids).pooler_output
            assert torch.allclose(last, own, atol=1e-5)
    assert not torch.allclose(acts[1], last)


def test_fit_all_six_maps_with_quality(tiny_models, tmp_path):
    store = ResultStore(tmp_path)
    maps = fit_all("tiny", tiny_models, "lstsq", store=store)
    assert len(maps) == 6 and len(list(store.maps_dir.glob("*.safetensors"))) == 6
    assert set(store.map_paths("tiny", "lstsq")) == set(maps)
    for (src, dst), tmap in maps.items():
        assert tmap.weight.shape == (32, 32) and tmap.weight.dtype == torch.float64
        assert set(tmap.quality) >= {"r2", "mean_cosine", "n_fit", "n_test"}
        assert tmap.quality["n_fit"] > 40000  # the shared vocabulary: every row but the specials


def test_mlp_map_fits_its_training_rows_better_than_lstsq():
    from vwlib.transfer import fit_rows

    g = torch.Generator().manual_seed(0)
    Y = torch.randn(3000, 8, generator=g, dtype=torch.float64)
    X = Y @ torch.randn(8, 6, generator=g, dtype=torch.float64) + 0.5 * torch.tanh(3 * Y[:, :6])  # a non-linear part
    lstsq, mlp = (fit_rows(Y, X, method, seed=0, mlp_steps=300) for method in ("lstsq", "mlp"))
    assert mlp.mlp is not None and lstsq.mlp is None
    assert torch.equal(mlp.weight, lstsq.weight)  # the MLP is a residual on top of the same least-squares map
    err = {name: float(((m(Y.float()).double() - X) ** 2).mean()) for name, m in (("lstsq", lstsq), ("mlp", mlp))}
    assert err["mlp"] < 0.8 * err["lstsq"], err  # measured: 0.028 vs 0.040
    assert mlp.quality["r2"] > lstsq.quality["r2"]  # and on held-out rows too


def test_transferred_words_are_scored_by_the_target_evaluators(tiny_models, tmp_path):
    store = ResultStore(tmp_path / "runs")
    trials = [Trial("tiny", "classification", "mini-objects", "star", "star", math.inf, steps=2),
              Trial("tiny", "detection", "mini-objects", "ring", "heart", 0.5, steps=2)]
    run_trials(trials, store, progress=False, models={t.task: tiny_models[t.task] for t in trials})
    maps = fit_all("tiny", tiny_models, "lstsq")
    n = evaluate_transfers(store, maps, tiny_models, task_kwargs={"generation": {"num_inference_steps": 1}})
    assert n == 4
    table = store.table()
    assert len(table) == 6  # 2 words x 3 evaluating tiny_models: the in-domain cell and two transfers each
    cross = table[table["evaluated_on"] != table["task"]]
    assert set(cross["transfer_method"]) == {"lstsq"} and cross["nearest_word"].notna().all()
    assert evaluate_transfers(store, maps, tiny_models) == 0  # idempotent
    stale = store.path(trials[0]) / "eval-detection.json"  # as if the detector had been retrained since
    record = json.loads(stale.read_text())
    assert record["target_fingerprint"] == "random+nms0.5"  # the detector's weights and its NMS threshold
    stale.write_text(json.dumps(record | {"target_fingerprint": "older"}))
    assert evaluate_transfers(store, maps, tiny_models) == 1


def test_nearest_words_of_an_anchor_row_is_the_anchor():
    text = TextSide(build_tiny("open_clip"))
    row = text.embedding.weight[1565][None].detach()  # "star"
    assert nearest_words(text, row, k=3)[0][0] == ("star", 0.0)


@pytest.mark.slow  # 31 s end to end; maps and probes are tested in-process above and by notebook 07's smoke run
def test_cli_transfer_fit_and_probe(tmp_path):
    import subprocess
    import sys

    import pandas as pd

    runs = tmp_path / "runs"
    train = subprocess.run([sys.executable, "-m", "vwlib", "train", "--profile", "tiny", "--steps", "1", "--concepts",
                            "star", "--out", str(runs)], capture_output=True, text=True)
    assert train.returncode == 0, train.stderr
    fit = subprocess.run([sys.executable, "-m", "vwlib", "transfer", "fit", "--profile", "tiny", "--out", str(runs)],
                         capture_output=True, text=True)
    assert fit.returncode == 0, fit.stderr
    assert fit.stdout.count("R²") == 6 and len(list((runs / "maps").glob("tiny-*-lstsq.safetensors"))) == 6
    # the maps `fit` wrote are the ones `eval` reads (one place: the store's maps/ folder)
    evaluate = subprocess.run([sys.executable, "-m", "vwlib", "transfer", "eval", "--profile", "tiny", "--out",
                               str(runs)], capture_output=True, text=True)
    assert evaluate.returncode == 0, evaluate.stderr
    assert "2 transferred evaluations written" in evaluate.stdout
    csv = tmp_path / "purity.csv"
    probe = subprocess.run([sys.executable, "-m", "vwlib", "probe", "--profile", "tiny", "--concepts", "3",
                            "--out", str(runs), "--csv", str(csv)], capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr
    table = pd.read_csv(csv)
    assert len(table) == 2 * 3  # in-domain and transferred, at the tiny generator's 3 layers
    assert table[["purity_concept", "purity_anchor"]].stack().between(0, 1).all()


@pytest.mark.slow
def test_cli_probe_working_words(tmp_path):
    """`vw probe --working`: the in-domain words' purity over all of them and over those that did their job
    (accuracy 1), layer by layer; the missing words of the grid are trained first."""
    import subprocess
    import sys

    import pandas as pd

    csv = tmp_path / "working.csv"
    working = subprocess.run([sys.executable, "-m", "vwlib", "probe", "--profile", "tiny", "--concepts", "3",
                              "--task", "classification", "--working", "--out", str(tmp_path / "runs"), "--csv",
                              str(csv)], capture_output=True, text=True)
    assert working.returncode == 0, working.stderr
    rows = pd.read_csv(csv)
    assert list(rows.columns) == ["layer", "words", "purity_concept", "purity_anchor", "near_name", "working",
                                  "working_purity_concept", "working_purity_anchor", "working_near_name"]
    assert (rows.words == 9).all() and rows.working.between(0, 9).all()
    assert rows[["purity_concept", "purity_anchor"]].stack().between(0, 1).all()


@pytest.mark.slow  # 6 s: loads the tiny models and trains 9 words
def test_near_name_finds_words_that_never_left_their_anchor_on_their_anchors_name(tmp_path):
    """`near_name`: with a step too small to move them, the 3 x 3 grid's words are their anchors' rows, so only the
    3 words on their concept's own anchor sit on their concept's name, at every layer."""
    from vwlib.study.config import StudyConfig
    from vwlib.study.figure_data import working_word_purity

    cfg = StudyConfig(profile="tiny", datasets=("mini-objects",), tasks=("classification",), concepts=3,
                      deltas=("inf",), out=str(tmp_path / "runs"), steps=1, lr=1e-12, device="cpu")
    rows = working_word_purity(cfg, "mini-objects", "classification", "inf")
    assert [r["near_name"] for r in rows] == [pytest.approx(3 / 9)] * len(rows)


@pytest.mark.slow  # 11 s: two grids of tiny words trained through the generator's encoder
def test_text_only_words_reach_their_names_state_only_as_far_as_their_ball_lets_them(tmp_path):
    """`vw probe --text-only`: the grid's words trained only toward their concept's name's last-layer state. Held
    at their anchors (a ball too small to move in), only the 3 words on their own concept's anchor sit on their
    name; unconstrained, the words come closer to their names' states than their anchors were."""
    from vwlib.study.config import StudyConfig
    from vwlib.study.figure_data import text_only_purity

    cfg = StudyConfig(profile="tiny", datasets=("mini-objects",), tasks=("generation",), concepts=3,
                      out=str(tmp_path / "runs"), device="cpu")
    held = text_only_purity(cfg, "mini-objects", "generation", 1e-9)
    free = text_only_purity(cfg, "mini-objects", "generation", "inf")
    assert [r["near_name"] for r in held] == [pytest.approx(3 / 9)] * len(held)
    assert free[-1]["cosine"] > held[-1]["cosine"] + 0.01
    assert [r["layer"] for r in free] == [r["layer"] for r in held] and all(r["words"] == 9 for r in free)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing stored


@pytest.mark.slow  # 8 s: mini-clip's image side for 3 concepts, and 9 words through its text tower
def test_text_only_words_are_scored_as_the_study_scores_its_words(tmp_path):
    """`vw probe --text-only --score`: held at their anchors, the text-only words are the anchor rows themselves, so
    they score what the anchor words score in the same evaluator (the shipped classifier), over all words and over
    the unrelated anchors; the names win their votes more often than the unrelated anchors do."""
    from vwlib.data.datasets import own_anchor
    from vwlib.models.tokenizer import single_token_id
    from vwlib.runner import build_task
    from vwlib.study.config import StudyConfig
    from vwlib.study.figure_data import grid_trials, text_only_purity
    from vwlib.tasks import make_batch

    cfg = StudyConfig(profile="mini", datasets=("mini-objects",), tasks=("classification",), concepts=3,
                      out=str(tmp_path / "runs"), device="cpu")
    rows = text_only_purity(cfg, "mini-objects", "classification", 1e-9, score=True)
    flat = [t for r in grid_trials(cfg, "mini-objects", "classification", 1e-9) for t in r]
    task = build_task("mini", "classification", "mini-objects", {}, device="cpu")
    ids = torch.tensor([single_token_id(task.text.loaded.tokenizer, t.anchor) for t in flat])
    rows_of_anchors = task.text.embedding.weight.detach()[ids].float()
    expected = torch.tensor([m["accuracy"] for m in task.evaluate(rows_of_anchors, make_batch(task, flat))])
    unrelated = torch.tensor([t.anchor != own_anchor("mini-objects", t.concept) for t in flat])
    assert expected[~unrelated].mean() > expected[unrelated].mean()  # the mask below can be told apart
    assert [r["score"] for r in rows] == [pytest.approx(float(expected.mean()))] * len(rows)
    assert [r["score_unrelated"] for r in rows] == [pytest.approx(float(expected[unrelated].mean()))] * len(rows)
    assert "score" not in text_only_purity(cfg, "mini-objects", "classification", 1e-9)[0]


def test_transfer_evaluation_can_be_limited_to_a_studys_trials(tiny_models, tmp_path):
    store = ResultStore(tmp_path / "runs")
    trials = [Trial("tiny", "classification", "mini-objects", c, "star", math.inf, steps=2) for c in ("star", "ring")]
    run_trials(trials, store, progress=False, models={"classification": tiny_models["classification"]})
    maps = {k: v for k, v in fit_all("tiny", tiny_models, "lstsq").items() if k == ("classification", "detection")}
    assert evaluate_transfers(store, maps, tiny_models, trials=trials[:1]) == 1  # the other word is not this study's
    assert not (store.path(trials[1]) / "eval-detection.json").exists()
    assert evaluate_transfers(store, maps, tiny_models) == 1


def test_stored_maps_are_refitted_when_a_model_changed(tmp_path, tiny_models, monkeypatch):
    """Every transferred word goes through the store's maps: maps fitted on earlier weights are not reused."""
    import vwlib.models.profiles as profiles
    from vwlib.runner import stored_maps

    store = ResultStore(tmp_path)
    models = dict(tiny_models)
    first = stored_maps("tiny", models, store)
    path = store.map_path("tiny", "classification", "detection", "lstsq", "input")
    written = path.stat().st_mtime_ns
    assert stored_maps("tiny", models, store)[("classification", "detection")].source == first[
        ("classification", "detection")].source and path.stat().st_mtime_ns == written  # current: read, not refitted
    real = profiles.fingerprint
    monkeypatch.setattr(profiles, "fingerprint", lambda p, role: "retrained" if role == "detection" else real(p, role))
    again = stored_maps("tiny", models, store)
    assert again[("classification", "detection")].target == "tiny/detection@retrained"
    assert path.stat().st_mtime_ns != written
