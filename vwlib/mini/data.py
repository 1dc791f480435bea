"""Training data of the mini models: pools of rendered images with sampled captions (and boxes, for detection).

Captions mention a random subset of each object's attributes (the shape almost always), so that short prompts
("a photo of a star") and full ones ("a photo of a red striped heart") both match what is drawn.

Usage:
    pool = caption_pool(20000, size=32, seed=0)      # Pool(images uint8 [N, 3, 32, 32], captions, scenes)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.world import ObjectSpec, Scene, render, sample_scene, sample_single
from .vocab import SYNONYM_SEED, shape_synonyms

PREFIXES = ("", "a photo of ", "a picture of ", "a rendering of ")


@dataclass
class Pool:
    images: torch.Tensor  # uint8 [N, 3, S, S]
    captions: list[str]
    scenes: list[Scene]


def object_phrase(o: ObjectSpec, rng: np.random.Generator, full: bool = False,
                  synonyms: dict[str, tuple[str, ...]] | None = None, synonym_share: float = 0.0,
                  bare_share: float = 0.0) -> str:
    """A phrase naming object `o` with a random subset of its attributes ("a large red striped star"); `bare_share`
    of them without the article ("red star", "star": the study's detection query is the bare word, docs/spec.md)."""
    keep = lambda p: full or rng.random() < p  # noqa: E731
    words = []
    if o.size != "medium" and keep(0.4):
        words.append(o.size)
    if keep(0.7):
        words.append(o.colour)
    if o.pattern != "plain" and keep(0.6):
        words.append(o.pattern)
    shape = o.shape if full or rng.random() < 0.92 else "shape"
    if synonym_share and shape in synonyms and rng.random() < synonym_share:  # no draw when off: pools stay the same
        shape = str(rng.choice(synonyms[shape]))
    words.append(shape)
    if bare_share and rng.random() < bare_share:  # no draw when off: pools stay the same
        return " ".join(words)
    return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)


def sample_caption(scene: Scene, rng: np.random.Generator, largest_only: float = 0.3, **phrase_kwargs) -> str:
    order = [scene.largest()] + [i for i in range(len(scene.objects)) if i != scene.largest()]
    phrases = [object_phrase(scene.objects[i], rng, **phrase_kwargs) for i in order]
    if len(phrases) > 1 and rng.random() < largest_only:
        phrases = phrases[:1]  # name only the largest object, as the scene datasets' labels do
    text = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    if rng.random() < 0.25:
        text += " on " + {"grass": "grass", "sand": "sand"}.get(scene.background, f"a {scene.background} background")
    return str(rng.choice(PREFIXES)) + text


def caption_pool(n: int, size: int, seed: int, scene_share: float = 0.3, largest_only: float = 0.3,
                 synonyms_per_shape: int = 0, synonym_share: float = 0.0, bare_share: float = 0.0,
                 synonym_seed: int = SYNONYM_SEED) -> Pool:
    """`n` images (single objects, and scenes of 2-4 objects for `scene_share` of them) with sampled captions;
    `largest_only`: share of scene captions that name only the largest object (the scene datasets' label);
    `synonym_share`: share of shape mentions that use one of the shape's `synonyms_per_shape` synonyms instead
    (vwlib.mini.vocab.shape_synonyms, of lexicon `synonym_seed`); `bare_share`: share of object phrases without
    their article (object_phrase)."""
    phrase = {"bare_share": bare_share} if bare_share else {}
    if synonym_share:
        phrase |= {"synonyms": shape_synonyms(synonyms_per_shape, synonym_seed), "synonym_share": synonym_share}
    rng = np.random.default_rng(seed)
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    captions, scenes = [], []
    for k in range(n):
        scene = sample_scene(rng, (2, 4)) if rng.random() < scene_share else sample_single(rng)
        images[k] = torch.from_numpy(np.array(render(scene, size))).permute(2, 0, 1)
        captions.append(sample_caption(scene, rng, largest_only, **phrase))
        scenes.append(scene)
    return Pool(images, captions, scenes)
