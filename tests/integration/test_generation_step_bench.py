"""bench/generation_step.py times a generation word's step in parts, and takes a past commit's mini-sd out of git."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).parents[2] / "bench"


def _bench():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("generation_step", BENCH / "generation_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # 5 s: the tiny generator and its dataset's latents
def test_the_step_is_timed_in_its_parts_and_trains_nothing():
    from vwlib.models.profiles import load_model

    bench = _bench()
    loaded = load_model("tiny", "generation")
    before = loaded.model.text_encoder.get_input_embeddings().weight.clone()
    seconds = bench.step_seconds(loaded, profile="tiny", repeats=1, concepts=("star",), anchors=("star", "heart"))
    assert set(seconds) == {"step", "text", "unet"} and all(s > 0 for s in seconds.values())
    assert torch.equal(loaded.model.text_encoder.get_input_embeddings().weight, before)  # the model is untouched


def test_a_commits_shipped_generator_is_taken_out_of_git(tmp_path):
    from vwlib.models.compact import is_compact

    path = _bench().checkpoint_of_commit("HEAD", tmp_path)
    assert path == tmp_path / "vwlib/checkpoints/mini/sd" and is_compact(path)
