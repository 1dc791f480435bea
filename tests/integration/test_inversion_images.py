"""docs/experiments/inversion_images.py: the grid's generation words trained on more images per concept than the
paper's eight, generated and probed (nothing stored)."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "docs" / "experiments" / "inversion_images.py"


@pytest.mark.slow  # 4 tiny generation words, 2 steps, then generated and probed
def test_words_held_at_their_anchors_group_by_anchor_whatever_the_images():
    spec = importlib.util.spec_from_file_location("inversion_images", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    row = module.measure(3, delta=1e-9, steps=2, profile="tiny", concepts=3)
    assert row["images"] == 3 and row["words"] == 9
    # Held at their anchors, the 3 words of an anchor are one state: of each word's 5 nearest, 2 share its anchor and
    # none its concept, and the next 3 are one other anchor's words, one of them of its concept; every anchor is a
    # concept's name, so a word is nearest its own name only when its anchor is that name
    assert row["layer1_purity_anchor"] == pytest.approx(2 / 5)
    assert row["last_purity_concept"] == pytest.approx(1 / 5)
    assert row["last_near_name"] == pytest.approx(1 / 3, abs=1e-4)
