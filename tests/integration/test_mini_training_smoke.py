"""A few training steps of each mini model: losses are finite and the checkpoint loads through the profile code."""

import math

import pytest

from vwlib.mini.train import train
from vwlib.models.compact import materialise
from vwlib.models.loaders import load_from_dir

FAMILY = {"clip": "open_clip", "scorer": "open_clip", "owl": "owl", "sd": "sd"}
SMALL = {"clip": dict(pool_size=64, batch=16), "scorer": dict(pool_size=64, batch=16),
         "owl": dict(pool_size=32, batch=4, pretrain_steps=2, pretrain_pool=32),
         "sd": dict(pool_size=64, batch=4, vae_steps=2, text_steps=2)}
# the stages of each model's training, in order: the paper's lineage (a contrastive text tower first, then the task);
# mini world v4's generator keeps the shipped autoencoder (it reads no text) and goes on from the shipped UNet
STAGES = {"clip": [], "scorer": [], "owl": ["towers", "detection"], "sd": ["text", "unet"]}


# clip's few steps (33 s) run in make test-all only: test_mini_clip_v4_... below trains and loads mini-clip in 14 s and
# keeps make test under its 5 minutes
@pytest.mark.parametrize("name", [pytest.param("clip", marks=pytest.mark.slow), "scorer", "owl", "sd"])
def test_a_few_training_steps(name, tmp_path, monkeypatch):
    monkeypatch.setenv("VWLIB_CACHE", str(tmp_path / "cache"))
    info = train(name, tmp_path / name, steps=3, log_every=1, **SMALL[name])
    losses = [c[-1] for c in info["loss_curve"]]
    assert len(losses) >= 3 and all(math.isfinite(v) for v in losses)
    loaded = load_from_dir(FAMILY[name], materialise(tmp_path / name))
    assert loaded.token_embedding().weight.shape == (49408, 64)
    assert (tmp_path / name / "training.json").is_file()
    assert list(dict.fromkeys(c[0] for c in info["loss_curve"] if isinstance(c[0], str))) == STAGES[name]


def test_the_generators_text_encoder_is_pretrained_then_frozen():
    """As SD 2.1's: the text encoder moves in the contrastive stage and is frozen for the UNet's."""
    import torch

    from vwlib.mini.models import build_sd
    from vwlib.mini.train_sd import train_sd

    loaded, curve = train_sd(steps=3, vae_steps=1, text_steps=2, pool_size=64, batch=4, log_every=1)
    text = loaded.model.text_encoder
    assert not any(p.requires_grad for p in text.parameters()) and not text.training
    fresh = build_sd().model.text_encoder  # the same seeded init: the contrastive stage moved it
    name = next(n for n, _ in text.named_parameters() if n.endswith("layers.0.mlp.fc1.weight"))
    assert not torch.equal(dict(fresh.named_parameters())[name], dict(text.named_parameters())[name])
    assert [c[0] for c in curve].count("unet") == 3


@pytest.mark.slow  # 6 s: the open_clip lineage's few steps (make test-all)
def test_the_open_clip_lineage_trains_a_tower_and_conditions_the_unet_on_its_conversion():
    import torch

    from vwlib.mini.models import build_sd
    from vwlib.mini.train_sd import train_sd

    loaded, curve = train_sd(steps=2, vae_steps=1, text_steps=2, pool_size=64, batch=4, log_every=1, text_layers=2,
                             text_class="open_clip")
    text = loaded.model.text_encoder
    assert text.config.hidden_act == "quick_gelu" and text.config.num_hidden_layers == 2
    assert not any(p.requires_grad for p in text.parameters())
    fresh = build_sd(2, "quick_gelu").model.text_encoder
    name = "encoder.layers.0.mlp.fc1.weight"  # the trained tower's weights, carried over
    assert not torch.equal(fresh.get_parameter(name), text.get_parameter(name))
    assert [c[0] for c in curve].count("text") >= 2 and [c[0] for c in curve].count("unet") == 2


def test_mini_clip_v4_trains_its_text_tower_against_the_shipped_image_tower_centred(tmp_path, monkeypatch):
    """Mini world v4 (vwlib.mini.lab.WORLD_RECIPE): the image tower is the shipped one with its mean feature moved to
    0, frozen; only the text side trains."""
    import torch

    from vwlib.mini.common import to_clip_pixels
    from vwlib.mini.data import caption_pool
    from vwlib.models.profiles import load_model

    monkeypatch.setenv("VWLIB_CACHE", str(tmp_path / "cache"))
    train("clip", tmp_path / "clip", steps=2, pool_size=64, batch=16)
    new = load_from_dir("open_clip", materialise(tmp_path / "clip")).model.eval()
    shipped = load_model("mini", "classification").model.eval()
    a, b = dict(new.visual.named_parameters()), dict(shipped.visual.named_parameters())
    assert all(torch.equal(a[k], b[k]) for k in a if k != "attnpool.c_proj.bias")
    fc = "resblocks.0.mlp.c_fc.weight"
    assert not torch.equal(new.transformer.get_parameter(fc), shipped.transformer.get_parameter(fc))  # the text trained
    with torch.no_grad():
        raw = new.visual(to_clip_pixels(caption_pool(256, 64, seed=5).images))
    assert raw.mean(0).norm() < 0.1 * raw.norm(dim=1).mean()  # centred (on other images than it was centred on)


@pytest.mark.slow  # 10-30 s: two short trainings from the shipped detector (make test-all)
def test_the_image_query_variant_goes_on_from_the_shipped_detector_with_its_loss_added():
    """mini-owl v5's recipe (`--variant image-queries-lexicon`): no contrastive stage, and at its first step (the same
    weights and batch as `more-detection`'s) the loss is the detection loss plus a positive image-query term."""
    from vwlib.mini.train import variant_kwargs
    from vwlib.mini.train_owl import train_owl
    from vwlib.models.profiles import load_model

    shipped, first = load_model("mini", "detection"), {}
    for variant in ("more-detection", "image-queries-lexicon"):
        kwargs = {**variant_kwargs("owl", variant), "synonym_share": 0.0}  # the same queries in both runs
        assert kwargs.pop("warm_from") == "shipped"
        _, curve = train_owl(2, batch=4, pool_size=32, log_every=1, warm_from=shipped, **kwargs)
        assert {c[0] for c in curve} == {"detection"}
        first[variant] = curve[0][-1]
    assert first["image-queries-lexicon"] > first["more-detection"] + 1e-3


@pytest.mark.slow
def test_the_word_positions_variant_trains_the_unet_on_captions_without_their_tail():
    """`--variant word-positions` (train_sd(tail_dropout=)): the same seeded run, the UNet's first loss changes once
    the captions lose their end-of-text and padding states, and the run goes through."""
    from vwlib.mini.train_sd import train_sd

    small = dict(steps=2, vae_steps=1, text_steps=1, pool_size=64, batch=4, log_every=1)
    _, plain = train_sd(**small)
    _, dropped = train_sd(**small, tail_dropout=1.0)
    first = [next(c[-1] for c in curve if c[0] == "unet") for curve in (plain, dropped)]
    assert first[0] != first[1]
    assert [c[0] for c in dropped].count("unet") == 2
