"""The results browser shows what the store holds: set its menus from code, read back its widgets."""

import io
import math

import pytest
from PIL import Image
from safetensors.torch import save_file

from vwlib import StudyConfig
from vwlib.data.datasets import concept_names
from vwlib.store import ResultStore

pytest.importorskip("ipywidgets")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from vwlib.study.browser import WordBrowser

    out = tmp_path_factory.mktemp("runs")
    cfg = StudyConfig(profile="tiny", datasets=("mini-objects", "mini-instances"), out=str(out), device="cpu")
    return WordBrowser(cfg, n=2, k=4)


def _png_size(image_widget):
    return Image.open(io.BytesIO(image_widget.value)).size


def test_first_view_is_a_stored_word_in_three_models(browser):
    card, store = browser.card, ResultStore(browser.inspector.cfg.out)
    trial = card["trial"]
    assert (trial.dataset, trial.task, trial.delta) == ("mini-objects", "generation", 0.5)
    assert store.done(trial)  # trained on demand, into the study's store
    assert [v["model"] for v in card["views"]] == ["generation", "detection", "classification"]
    assert [v["source"] for v in card["views"]] == ["in-domain", "mapped from generation", "mapped from generation"]
    # within 0.5 d_nn of its anchor, the anchor is provably the word's nearest word (docs/spec.md §3)
    assert card["views"][0]["nearest"][0][0] == trial.anchor
    assert card["distance"] == pytest.approx(0.5, abs=1e-3)
    assert len(browser.columns.children) == 3
    for column, view in zip(browser.columns.children, card["views"]):
        html, image = column.children
        stored = store.evaluation(trial, view["model"])
        metric = {"generation": "accuracy", "detection": "map", "classification": "accuracy"}[view["model"]]
        assert f"<b>{stored[metric]:.3f}</b>" in html.value  # the score shown is the stored one
        assert all(w in html.value for w, _ in view["nearest"])
        assert len(view["images"]) == len(view["captions"]) == 2
        assert _png_size(image)[0] > 200  # a drawn row of two images


def test_menus_set_from_code_redraw_the_chosen_word(browser):
    concepts, anchors = concept_names("mini-objects")
    card = browser.select(concept=concepts[1], anchor=anchors[3], delta="inf", trained_for="detection")
    trial = card["trial"]
    assert (trial.concept, trial.anchor, trial.task, math.isinf(trial.delta)) == (concepts[1], anchors[3], "detection",
                                                                                   True)
    assert card["views"][0]["model"] == "detection" and card["views"][0]["boxes"] is not None
    assert all(len(b) == 1 and len(b[0]) == 4 for b in card["views"][0]["boxes"])
    assert trial.key() in browser.status.value


def test_changing_the_dataset_menu_refills_concepts_and_redraws(browser):
    browser.dataset.value = "mini-instances"  # as a click in Lab does
    concepts, anchors = concept_names("mini-instances")
    assert list(browser.concept.options) == concepts and browser.concept.value == concepts[0]
    assert browser.anchor.value == anchors[1]  # an unrelated anchor by default
    assert browser.card["trial"].dataset == "mini-instances"
    assert browser.card["trial"].concept == concepts[0]


def test_transfer_gallery_is_paper_fig4_from_stored_words(browser):
    from dataclasses import replace

    from vwlib.plots.figures import transfer_gallery_figure
    from vwlib.study.inspector import transfer_gallery

    cfg = replace(browser.inspector.cfg, concepts=2, deltas=("inf",))
    gallery = transfer_gallery(cfg, inspector=browser.inspector)
    concepts, anchors = concept_names("mini-instances")  # the fine-grained dataset; mini-objects is neither
    assert gallery["rows"] == ["real image (held out)", "trained for generation", "classification → generation",
                               "detection → generation"]
    assert gallery["columns"] == [f"{concepts[0]}\n(from '{anchors[1]}')", f"{concepts[1]}\n(from '{anchors[0]}')"]
    assert [len(r) for r in gallery["images"]] == [2, 2, 2, 2]
    store = ResultStore(cfg.out)
    words = [t for t in store.finished() if t.dataset == "mini-instances" and math.isinf(t.delta)]
    assert sorted((t.task, t.concept) for t in words) == sorted((task, c) for task in ("generation", "classification",
                                                                                       "detection") for c in concepts[:2])
    assert all(cap.removeprefix("scorer: ") in concepts for row in gallery["captions"][1:] for cap in row)
    fig = transfer_gallery_figure(gallery)
    assert len(fig.axes) == 8


def test_an_imported_word_is_listed_for_its_dataset_and_shown_in_three_models(browser, tmp_path):
    from vwlib.runner import import_word

    store = ResultStore(browser.inspector.cfg.out)
    trained = browser.select(dataset="mini-objects", word="trained here")["trial"]
    row = store.load_words([trained])[0] + 0.01
    save_file({"<mine>": row}, str(tmp_path / "mine.safetensors"))
    imported = import_word(tmp_path / "mine.safetensors", trained.task, "tiny", "mini-objects", trained.concept,
                           store, models=browser.inspector.models)
    browser.dataset.value = "mini-instances"
    assert list(browser.word.options) == ["trained here"]  # imported into mini-objects only
    browser.dataset.value = "mini-objects"  # the menu is refilled from the store
    label = f"<mine> ({trained.task}, imported)"
    assert list(browser.word.options) == ["trained here", label]
    card = browser.select(word=label)
    assert card["trial"] == imported and imported.space == "imported"
    assert [v["source"] for v in card["views"]] == ["imported"] + [f"mapped from {trained.task}"] * 2
    assert card["distance"] == pytest.approx(imported.delta)
    assert imported.key() in browser.status.value
