"""docs/experiments/minilm_layer_ceiling.py: MiniLM's text-only layer ceiling, the reference row beside the mini
encoders' (`vw probe --text-only`) in docs/data/text_only_layer_ceiling.csv."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "docs" / "experiments" / "minilm_layer_ceiling.py"


@pytest.mark.slow  # loads MiniLM and runs 100 prompts through it a few times
def test_words_held_at_their_anchors_sit_on_their_own_name_only_when_it_is_their_anchor():
    spec = importlib.util.spec_from_file_location("minilm_layer_ceiling", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    held = module.ceiling(1e-9, steps=2)
    assert [r["layer"] for r in held] == [1, 2, 3, 4, 5, 6]
    assert all(r["near_name"] == pytest.approx(0.1) and r["purity_anchor"] == 1.0 for r in held)
    moved = module.ceiling(2.0, steps=20, lr=2e-2)
    assert moved[-1]["cosine"] > held[-1]["cosine"] + 0.05 and moved[-1]["near_name"] > 0.1
