"""mini-sd's `scenes-by-largest` candidate (#32): half the UNet's images are scenes, each captioned by its largest
object alone, as the scene datasets label them."""

import pytest

import vwlib.mini.train_sd as train_sd_module
from vwlib.mini.data import caption_pool
from vwlib.mini.train import variant_kwargs


def test_largest_only_captions_name_the_largest_object_alone():
    pool = caption_pool(200, 32, seed=3, scene_share=1.0, largest_only=1.0)
    for caption, scene in zip(pool.captions, pool.scenes):
        largest = scene.objects[scene.largest()].shape
        assert largest in caption or "shape" in caption  # 8% of phrases say "shape" for the shape's name
        assert " and " not in caption.split(" on ")[0]  # one object named, whatever the background
    listed = caption_pool(200, 32, seed=3, scene_share=1.0, largest_only=0.0)
    assert sum(" and " in c for c in listed.captions) == 200  # the default lists every object of a scene


class _PoolSeen(Exception):
    pass


@pytest.mark.slow  # 6 s: it builds mini-sd
def test_the_variant_reaches_the_unets_caption_pool(monkeypatch):
    seen = {}

    def pool(n, size, seed, **kwargs):
        seen.update(kwargs)
        raise _PoolSeen

    monkeypatch.setattr(train_sd_module, "caption_pool", pool)
    monkeypatch.setattr(train_sd_module, "fit_text_tower", lambda *a, **k: [])  # no text-tower training here
    kwargs = variant_kwargs("sd", "scenes-by-largest")
    assert kwargs.pop("keep_text") is True  # the shipped text encoder is kept
    with pytest.raises(_PoolSeen):
        train_sd_module.train_sd(steps=1, **kwargs)
    assert seen["scene_share"] == pytest.approx(0.5) and seen["largest_only"] == 1.0
