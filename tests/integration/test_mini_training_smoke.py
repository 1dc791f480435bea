"""A few training steps of each mini model: losses are finite and the checkpoint loads through the profile code."""

import math

import pytest

from vwlib.mini.train import train
from vwlib.models.compact import materialise
from vwlib.models.loaders import load_from_dir

FAMILY = {"clip": "open_clip", "scorer": "open_clip", "owl": "owl", "sd": "sd"}
SMALL = {"clip": dict(pool_size=64, batch=16), "scorer": dict(pool_size=64, batch=16),
         "owl": dict(pool_size=32, batch=4), "sd": dict(pool_size=64, batch=4, vae_steps=2)}


@pytest.mark.parametrize("name", ["clip", "scorer", "owl", "sd"])
def test_a_few_training_steps(name, tmp_path, monkeypatch):
    monkeypatch.setenv("VWLIB_CACHE", str(tmp_path / "cache"))
    info = train(name, tmp_path / name, steps=3, log_every=1, **SMALL[name])
    losses = [c[-1] for c in info["loss_curve"]]
    assert len(losses) >= 3 and all(math.isfinite(v) for v in losses)
    loaded = load_from_dir(FAMILY[name], materialise(tmp_path / name))
    assert loaded.token_embedding().weight.shape == (49408, 64)
    assert (tmp_path / name / "training.json").is_file()
