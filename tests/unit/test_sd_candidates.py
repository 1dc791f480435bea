"""mini-sd candidates (#32): `null-words` (a share of the UNet's captions name a known word the mini world gives no
meaning, so that the UNet learns to draw nothing in particular from the rest of its encoder's lexicon),
`deep-text` (a 12-block text encoder, which composes a word's meaning over its depth) and `noisy-states` (the UNet
trained on noisy text states)."""

import pytest

from vwlib.data.world import SHAPES
from vwlib.mini.data import PREFIXES
from vwlib.mini.train import variant_kwargs
from vwlib.mini.train_sd import NULL_WORDS, TEXT_SEED, UNET_LEXICON, null_word_captions
from vwlib.mini.vocab import known_words, shape_synonyms, world_words


def _word(caption: str) -> str:
    prefix = max((p for p in PREFIXES if caption.startswith(p)), key=len)
    return caption[len(prefix):]


def test_null_captions_name_no_world_word_and_no_synonym_of_the_encoder():
    captions = null_word_captions()
    words = [_word(c) for c in captions]
    lexicon = {w for ws in shape_synonyms(UNET_LEXICON["synonyms_per_shape"], TEXT_SEED).values() for w in ws}
    assert not set(words) & set(world_words()) and not set(words) & lexicon
    assert not set(words) & set(SHAPES)
    # every other known word is there, once: the whole rest of the lexicon is taught to mean nothing
    assert len(words) == len(set(words)) == len(known_words()) - len(set(world_words()) | lexicon)
    assert {c[:-len(w)] for c, w in zip(captions, words)} == set(PREFIXES)  # the pool's caption forms
    assert captions == null_word_captions()  # seeded


def test_the_variant_keeps_the_encoder_and_names_its_share():
    kwargs = variant_kwargs("sd", "null-words")
    assert kwargs["keep_text"] is True and kwargs["null_share"] == NULL_WORDS > 0
    assert kwargs["synonym_share"] == UNET_LEXICON["synonym_share"]  # the synonyms keep meaning their shape


def test_null_captions_tokenize_to_one_word_each():
    from vwlib.models.tokenizer import clip_tokenizer
    from vwlib.mini.common import tokenize
    captions = null_word_captions()[:50]
    ids = tokenize(clip_tokenizer(), captions, 77, pad_id=0)
    known = set(known_words().values())
    for caption, row in zip(captions, ids):
        assert known_words()[_word(caption)] in row.tolist() and all(int(i) in known or i in (0, 49406, 49407)
                                                                     for i in row)


@pytest.mark.slow  # 2 s: it builds mini-sd
def test_the_deep_text_variant_builds_a_deeper_encoder_and_refuses_to_keep_the_shallow_one():
    from vwlib.mini.models import build_sd
    from vwlib.mini.train_sd import DEEP_TEXT, train_sd

    kwargs = variant_kwargs("sd", "deep-text")
    assert kwargs == {"text_layers": DEEP_TEXT} and "keep_text" not in kwargs  # a new encoder is trained
    assert build_sd(DEEP_TEXT).model.text_encoder.config.num_hidden_layers == DEEP_TEXT
    with pytest.raises(ValueError, match="trained afresh"):
        train_sd(steps=1, keep_text=True, warm_from=object(), text_layers=DEEP_TEXT)


def test_an_open_clip_text_tower_converts_into_the_generators_class_exactly():
    """`deep-open-clip-text` trains mini-sd's encoder as an open_clip text tower (the class whose deep towers compose
    a word's meaning over depth in the tower lab) and converts it, as SD 2.1's was from OpenCLIP: the CLIPTextModel
    must then compute what the tower computed, at every position the tower has and at its pooled output."""
    import torch

    from vwlib.mini.models import open_clip_mini
    from vwlib.mini.models import clip_text_model_from_open_clip, sd_text_encoder
    from vwlib.models.tokenizer import clip_tokenizer

    torch.manual_seed(0)
    tower = open_clip_mini(32, 32, 2).model.eval()
    with torch.no_grad():  # away from the init: every weight (biases, norms) must be carried, not just look alike
        for name, p in tower.named_parameters():
            if not name.startswith("visual") and p.ndim:
                p.normal_(std=0.1)
    encoder = sd_text_encoder(2, 5, hidden_act="quick_gelu").eval()
    clip_text_model_from_open_clip(tower, encoder)
    ids = torch.tensor(clip_tokenizer(pad_token="!")(["a photo of a star", "a big red circle on grass"],
                                                     padding="max_length", max_length=32)["input_ids"])
    with torch.no_grad():
        out = encoder(ids)
        states = {}
        hook = tower.ln_final.register_forward_hook(lambda m, i, o: states.setdefault("last", o))
        pooled = tower.encode_text(ids)
        hook.remove()
    assert torch.allclose(out.pooler_output @ tower.text_projection, pooled, atol=1e-5)
    assert torch.allclose(out.last_hidden_state, states["last"], atol=1e-5)  # what the UNet reads
    with pytest.raises(ValueError, match="hidden_act='quick_gelu'"):
        clip_text_model_from_open_clip(tower, sd_text_encoder(2, 5))  # gelu: not the tower's activation


def test_the_open_clip_lineage_variant_trains_a_new_deep_encoder():
    from vwlib.mini.train_sd import DEEP_TEXT, OPEN_CLIP_LINEAGE, train_sd

    assert variant_kwargs("sd", "deep-open-clip-text") == OPEN_CLIP_LINEAGE == {"text_layers": DEEP_TEXT,
                                                                                 "text_class": "open_clip"}
    with pytest.raises(ValueError, match="choose 'clip_text_model' or 'open_clip'"):
        train_sd(steps=1, text_class="bert")
    with pytest.raises(ValueError, match="trained afresh"):
        train_sd(steps=1, keep_text=True, warm_from=object(), text_class="open_clip")


def test_the_noisy_states_variants_name_their_noise_and_their_encoder():
    from vwlib.mini.train_sd import NOISY_STATES

    assert variant_kwargs("sd", "noisy-states") == {"keep_text": True, "cond_noise": NOISY_STATES}
    assert 0 < NOISY_STATES <= 1
    deep = variant_kwargs("sd", "deep-open-clip-noisy-states")
    assert deep == {"text_layers": 12, "text_class": "open_clip", "cond_noise": NOISY_STATES}  # a new encoder


@pytest.mark.slow  # 2 s: it builds mini-sd
def test_the_name_state_spread_is_the_mean_distance_between_the_names_pooled_states():
    import torch

    from vwlib.mini.common import tokenize
    from vwlib.mini.models import build_sd
    from vwlib.mini.train_sd import name_state_spread

    loaded = build_sd()
    ids = tokenize(loaded.tokenizer, [f"a photo of {s}" for s in SHAPES], 77, pad_id=0)
    with torch.no_grad():  # the encoder's own pooling (argmax of the ids: the end-of-text token), read independently
        pooled = loaded.model.text_encoder(ids).pooler_output
    distances = [float((pooled[i] - pooled[j]).norm()) for i in range(len(SHAPES)) for j in range(i)]
    spread = name_state_spread(loaded)
    assert spread > 0 and spread == pytest.approx(sum(distances) / len(distances), rel=1e-5)


class Fitted(Exception):
    """Raised by the patched fit: train_sd stops once its text tower is set up."""


def _fit_records(monkeypatch, module, seen: dict, load_shipped: bool):
    """Patch train_sd's seeded tower and fit to record the image tower they are given, and stop there."""
    seeded = module.seeded_open_clip

    def fake_seeded(layers, seed, image):
        seen["seeded"] = image
        return seeded(2, seed, image)

    def fake_fit(tower, tokenizer, recipe, seed, image, **fit):
        seen["fit"] = image
        if load_shipped:  # what the real fit does first: the shipped image tower must fit the encoder's own
            from vwlib.mini.lab import _shipped_clip
            tower.image_module.load_state_dict(_shipped_clip(False, image).model.visual.state_dict())
        raise Fitted

    monkeypatch.setattr(module, "seeded_open_clip", fake_seeded)
    monkeypatch.setattr(module, "fit_text_tower", fake_fit)


def test_the_clip_images_variant_fits_its_encoder_to_mini_clips_image_tower(monkeypatch):
    """`clip-images-eos-padding`: the open_clip lineage padded with its end-of-text token, its new encoder fitted to
    mini-clip's image tower instead of mini-scorer's; both the seeded tower and its fit must use that image tower."""
    from vwlib.mini import train_sd as module

    kwargs = variant_kwargs("sd", "clip-images-eos-padding")
    assert kwargs == {"text_layers": 12, "text_class": "open_clip", "pad_token": module.EOS_PADDING,
                      "text_image": "clip"}
    seen = {}
    _fit_records(monkeypatch, module, seen, load_shipped=False)
    with pytest.raises(Fitted):
        module.train_sd(steps=1, text_layers=2, text_class="open_clip", text_image="clip")
    assert seen == {"seeded": "clip", "fit": "clip"}
    with pytest.raises(ValueError, match="choose one of clip, scorer"):
        module.train_sd(steps=1, text_image="owl")
    with pytest.raises(ValueError, match="trained afresh"):
        module.train_sd(steps=1, keep_text=True, warm_from=object(), text_image="clip")


@pytest.mark.slow  # 5 s: it loads the shipped image towers
@pytest.mark.parametrize("text_class", ["open_clip", "clip_text_model"])
@pytest.mark.parametrize("image", ["clip", "scorer"])
def test_either_class_of_encoder_is_trained_beside_an_image_tower_that_takes_the_shipped_one(monkeypatch, text_class,
                                                                                             image):
    from vwlib.mini import train_sd as module

    seen = {}
    _fit_records(monkeypatch, module, seen, load_shipped=True)
    with pytest.raises(Fitted):
        module.train_sd(steps=1, text_layers=2, text_class=text_class, text_image=image)
    assert seen["fit"] == image
