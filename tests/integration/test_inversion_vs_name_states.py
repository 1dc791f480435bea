"""docs/experiments/inversion_vs_name_states.py: the paper's loss of the study's words, of words on their names'
states and of the names, on the same draws (docs/data/inversion_vs_name_states.csv)."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "docs" / "experiments" / "inversion_vs_name_states.py"


@pytest.mark.slow  # trains 4 tiny generation words, then 3 x 2 loss draws and 8 generations, twice
@pytest.mark.parametrize("images", ["training", "held-out"])
def test_words_held_at_their_anchors_score_the_same_loss_on_the_same_draws(tmp_path, images):
    """Held at their anchors (δ ≈ 0) the inversion and the text-only words are both the anchor rows, so on the same
    draws their losses are equal, trial by trial; where the anchor is the concept's own, so is the name's."""
    spec = importlib.util.spec_from_file_location("inversion_vs_name_states", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.compare(str(tmp_path / "store"), "mini-objects", 1e-9, steps=2, draws=2, profile="tiny",
                          concepts=2, images=images)
    assert len(rows) == 4 and sum(r["own"] for r in rows) == 2
    for r in rows:
        assert r["loss_inversion"] == pytest.approx(r["loss_text_only"], abs=1e-5)
        if r["own"]:
            assert r["loss_name"] == pytest.approx(r["loss_inversion"], abs=1e-5)
    other = [r for r in rows if not r["own"]]
    assert any(abs(r["loss_name"] - r["loss_inversion"]) > 1e-4 for r in other)  # the name is another row there
    assert module.summary(rows)["inversion_minus_text_only"] == pytest.approx(0, abs=1e-5)
