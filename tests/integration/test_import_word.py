"""Words from elsewhere: a textual-inversion file (or a vwlib word file) imported into a result store is a trial of
its own: the same vector, its nearest known word and δ, its scores in-domain and through the store's maps."""

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from vwlib.errors import VWError
from vwlib.runner import import_word, run_trials, transfer_all
from vwlib.store import ResultStore
from vwlib.trials import IMPORTED, Trial

KW = {"generation": {"num_inference_steps": 1}}


def _vw(*argv):
    proc = subprocess.run([sys.executable, "-m", "vwlib", *argv], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _imported(store):
    (trial,) = [t for t in store.finished() if t.space == IMPORTED]
    return trial


def test_a_generation_word_exported_and_imported_back_is_the_same_word_at_the_same_delta(tmp_path, tiny_models):
    store = ResultStore(tmp_path / "runs")
    trial = Trial("tiny", "generation", "mini-objects", "star", "heart", 0.5, steps=3)
    run_trials([trial], store, progress=False, models={"generation": tiny_models["generation"]}, task_kwargs=KW)
    _vw("export-diffusers", str(store.path(trial)), str(tmp_path / "ti"), "--token", "<star>")
    out = _vw("import-word", str(tmp_path / "ti" / "learned_embeds.safetensors"), "--model", "generation",
              "--profile", "tiny", "--dataset", "mini-objects", "--concept", "star", "--out", str(store.root))
    imported = _imported(store)
    assert torch.equal(store.load_words([imported]), store.load_words([trial]))
    assert imported.anchor == "heart"  # within 0.5 d_nn, the anchor is the nearest known word (docs/spec.md §3)
    trained = json.loads((store.path(trial) / "config.json").read_text())
    d_nn = store.curve(trial)["d_nn"]
    assert imported.delta == pytest.approx(trained["distance_to_anchor"] / d_nn, rel=1e-5) and imported.delta <= 0.5
    assert "nearest known word 'heart'" in out and "'<star>'" in out
    for task in ("detection", "classification"):  # transferred through the store's maps
        assert store.evaluation(imported, task)["transfer_method"] == "lstsq"


def test_an_imported_classification_word_scores_what_it_scored_before(tmp_path, tiny_models):
    store = ResultStore(tmp_path / "runs")
    trial = Trial("tiny", "classification", "mini-objects", "star", "heart", 0.5, steps=3)
    models = dict(tiny_models)
    run_trials([trial], store, progress=False, models=models)
    transfer_all("tiny", models, store, task_kwargs=KW, trials=[trial])
    _vw("export-word", str(store.path(trial)), str(tmp_path / "w.safetensors"))
    imported = import_word(tmp_path / "w.safetensors", "classification", "tiny", "mini-objects", "star", store,
                           models=models, task_kwargs=KW)
    for task in ("classification", "detection"):  # deterministic evaluators: the same word scores the same
        before, after = store.evaluation(trial, task), store.evaluation(imported, task)
        for metric in ("accuracy", "map"):
            if metric in before:
                assert after[metric] == pytest.approx(before[metric])
    n = len(store.trial_dirs())
    assert import_word(tmp_path / "w.safetensors", "classification", "tiny", "mini-objects", "star", store,
                       models=models, task_kwargs=KW) == imported and len(store.trial_dirs()) == n  # idempotent


def test_bad_files_are_refused_with_the_fix(tmp_path, tiny_models):
    store = ResultStore(tmp_path / "runs")
    models = dict(tiny_models)
    (tmp_path / "w.bin").write_bytes(b"pickle")
    with pytest.raises(VWError, match="pickle file.*save_file"):
        import_word(tmp_path / "w.bin", "generation", "tiny", "mini-objects", "star", store, models=models)
    save_file({"<w>": torch.zeros(48)}, str(tmp_path / "wide.safetensors"))
    with pytest.raises(VWError, match="48-wide word; the tiny generation model's token table is 32 wide"):
        import_word(tmp_path / "wide.safetensors", "generation", "tiny", "mini-objects", "star", store, models=models)
    row = models["generation"].token_embedding().weight.detach()[1565].clone()  # a known word's own row
    save_file({"<w>": row}, str(tmp_path / "known.safetensors"))
    with pytest.raises(VWError, match="is the known word .* itself"):
        import_word(tmp_path / "known.safetensors", "generation", "tiny", "mini-objects", "star", store, models=models)
    save_file({"<w>": torch.zeros(4, 32)}, str(tmp_path / "four.safetensors"))
    with pytest.raises(VWError, match="is 4 vectors"):
        import_word(tmp_path / "four.safetensors", "generation", "tiny", "mini-objects", "star", store, models=models)
    with pytest.raises(VWError, match="unknown concept 'sombrero'"):
        save_file({"<w>": torch.randn(32)}, str(tmp_path / "ok.safetensors"))
        import_word(tmp_path / "ok.safetensors", "generation", "tiny", "mini-objects", "sombrero", store, models=models)
    assert not store.root.exists() or not store.trial_dirs()  # nothing written


@pytest.mark.slow  # 15 s: a 3 x 3 grid trained and probed
def test_vw_probe_places_an_imported_word_among_the_grid_words_layer_by_layer(tmp_path, tiny_models):
    from vwlib import StudyConfig
    from vwlib.study.figure_data import imported_layer_neighbours

    store = ResultStore(tmp_path / "runs")
    trial = Trial("tiny", "classification", "mini-objects", "star", "heart", 0.5, steps=3)
    models = dict(tiny_models)
    run_trials([trial], store, progress=False, models=models)
    _vw("export-word", str(store.path(trial)), str(tmp_path / "w.safetensors"))
    import_word(tmp_path / "w.safetensors", "classification", "tiny", "mini-objects", "star", store, models=models,
                task_kwargs=KW)
    cfg = StudyConfig(profile="tiny", datasets=("mini-objects",), concepts=4, out=str(store.root), device="cpu")
    assert "star" in cfg.concepts_of("mini-objects")
    rows = imported_layer_neighbours(cfg, "mini-objects", "generation", k=3)  # mapped into the generator
    layers = sorted({r["layer"] for r in rows})
    assert len(rows) == len(layers) >= 2 and {r["word"] for r in rows} == {"heart"}  # a word file's token: its anchor
    concepts = set(cfg.concepts_of("mini-objects"))
    assert all(r["nearest"] in concepts and r["agree"] in (0, 1 / 3, 2 / 3, 1) for r in rows)
    assert all(r["trained_for"] == "classification" and r["concept"] == "star" for r in rows)
    assert imported_layer_neighbours(cfg, "mini-instances", "generation") == []  # none imported there
    out = _vw("probe", "--profile", "tiny", "--dataset", "mini-objects", "--concepts", "2", "--out", str(store.root))
    section = out.split("imported words (vw import-word)")[1].strip().splitlines()
    assert len(section) == 3 + len(layers) and all(line.split()[0] == "heart" for line in section[2:-1])
    # with 2 concepts (circle, square) no probed word is a star: said, not scored as disagreement
    assert all(line.split()[-1] == "None" for line in section[2:-1])
    assert section[-1] == "star: not among the 2 concepts probed (agree: None); probe more with --concepts"
