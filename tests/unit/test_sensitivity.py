"""The sensitivity measure of a text tower (vwlib.mini.sensitivity), on a tiny random CLIP."""

import math

import pytest
import torch

from vwlib.mini.sensitivity import pooled_feature, sensitivity
from vwlib.models.text import TextSide
from vwlib.models.tokenizer import single_token_id


def test_a_tiny_towers_sensitivity_is_finite_and_its_pieces_agree(tiny_models):
    s = sensitivity(tiny_models["classification"], "classification")
    assert s["anchors"] == 10 and s["target"] == 1.5
    assert all(math.isfinite(s[k]) and s[k] > 0 for k in ("sigma_max", "d_nn", "gap", "reach_over_gap", "toward"))


def test_the_jacobian_reach_matches_a_finite_step(tiny_models):
    """First order: a small step along the top right-singular vector moves the unit feature by about σ_max · step."""
    loaded = tiny_models["classification"]
    text = TextSide(loaded)
    wid = single_token_id(loaded.tokenizer, "star")
    f = pooled_feature(text, wid, "a photo of a star")
    v = text.embedding.weight.detach()[wid].float().clone()
    _, sigma, vh = torch.linalg.svd(torch.autograd.functional.jacobian(f, v))
    step = 1e-3
    assert float((f(v + step * vh[0]) - f(v)).norm()) == pytest.approx(float(sigma[0]) * step, rel=0.05)
    assert float((f(v + step * vh[-1]) - f(v)).norm()) < float(sigma[0]) * step  # the top direction is the top
