"""Mini world v4's lexicons: each model's synonyms stand for a shape in its captions and detection queries, and the
detector's targets read a synonym as the shape it stands for."""

import numpy as np

from vwlib.data.world import ObjectSpec
from vwlib.mini.data import object_phrase
from vwlib.mini.train_owl import LEXICON, PRETRAIN_SEED, _matches
from vwlib.mini.vocab import shape_synonyms, world_words


def test_each_model_draws_its_own_lexicon_of_non_world_words():
    owl, clip = shape_synonyms(30, PRETRAIN_SEED), shape_synonyms(30, 11)
    assert owl != clip and all(len(v) == 30 for v in owl.values())
    words = [w for v in owl.values() for w in v]
    assert len(set(words)) == len(words) and not set(words) & set(world_words())


def test_a_synonym_query_matches_the_objects_of_its_shape_only():
    synonyms = shape_synonyms(30, PRETRAIN_SEED)
    meaning = {w: shape for shape, ws in synonyms.items() for w in ws}
    star, heart = ObjectSpec("star", "red"), ObjectSpec("heart", "red")
    word = synonyms["star"][0]
    assert _matches(f"red {word}", star, meaning) and not _matches(f"red {word}", heart, meaning)
    assert not _matches(f"red {word}", star)  # without the lexicon the word means nothing
    assert _matches("a red star", star, meaning) and not _matches("a blue star", star, meaning)


def test_phrases_use_the_lexicon_in_about_its_share_of_shape_mentions():
    synonyms = shape_synonyms(LEXICON["synonyms_per_shape"], PRETRAIN_SEED)
    rng = np.random.default_rng(0)
    o = ObjectSpec("star", "red")
    last = [object_phrase(o, rng, synonyms=synonyms, synonym_share=LEXICON["synonym_share"]).split()[-1]
            for _ in range(2000)]
    share = np.mean([w in synonyms["star"] for w in last])
    assert abs(share - 0.92 * LEXICON["synonym_share"]) < 0.04  # 8% of mentions say "shape" instead


def test_every_training_variant_names_arguments_its_trainer_takes():
    import inspect

    from vwlib.mini.train import VARIANTS, variant_kwargs
    from vwlib.mini.train_owl import train_owl
    from vwlib.mini.train_sd import train_sd

    trainers = {"sd": train_sd, "owl": train_owl}
    for name, variants in VARIANTS.items():
        for variant in variants:
            inspect.signature(trainers[name]).bind(1, **variant_kwargs(name, variant))  # TypeError if one is unknown
    assert variant_kwargs("owl", "lexicon-towers")["lexicon_in_queries"] is False
    assert variant_kwargs("sd", None) == {}


def test_an_unknown_variant_is_named_with_the_known_ones():
    import pytest

    from vwlib.errors import VWError
    from vwlib.mini.train import variant_kwargs

    with pytest.raises(VWError, match="no training variant 'nope'.*lexicon-unet"):
        variant_kwargs("sd", "nope")


def test_the_unet_captions_use_the_text_encoders_own_lexicon():
    import pytest

    from vwlib.mini.data import caption_pool
    from vwlib.mini.train_sd import TEXT_SEED, UNET_LEXICON, train_sd

    own = {w for ws in shape_synonyms(UNET_LEXICON["synonyms_per_shape"], TEXT_SEED).values() for w in ws}
    pool = caption_pool(300, 8, seed=3, synonym_seed=TEXT_SEED, **UNET_LEXICON)
    said = {w.strip(",") for c in pool.captions for w in c.split()}
    assert len(said & own) > 20  # the encoder's synonyms are in the UNet's captions
    with pytest.raises(ValueError, match="warm_from"):
        train_sd(1, keep_text=True)  # keeping a text encoder needs one to keep
