"""The tiny profile: random models of the paper's classes, and the paper loading code run on them offline."""

import numpy as np
import pytest
import torch
from PIL import Image

import vwlib
from vwlib import build_tiny, load_from_dir, load_model, save_model
from vwlib.models.profiles import get_spec
from vwlib.models.tokenizer import VOCAB_SIZE
from vwlib.roles import ROLES

IMAGE = Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype("uint8"))


@pytest.fixture(scope="module")
def tiny():
    return {role: load_model("tiny", role) for role in ROLES}


def test_classes_match_the_paper_models(tiny):
    import open_clip
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPModel, CLIPTextModel, Owlv2ForObjectDetection

    sd = tiny["generation"].model
    assert isinstance(sd, StableDiffusionPipeline)
    assert isinstance(sd.text_encoder, CLIPTextModel) and isinstance(sd.unet, UNet2DConditionModel)
    assert isinstance(sd.vae, AutoencoderKL)
    assert sd.scheduler.config.prediction_type == "v_prediction"  # SD 2.1 (768) is a v-prediction model
    owl = tiny["detection"].model
    assert isinstance(owl, Owlv2ForObjectDetection)
    assert owl.config.text_config.max_position_embeddings == 16  # OWL-v2 queries: at most 16 tokens
    clip = tiny["classification"].model
    assert isinstance(clip, open_clip.CLIP)
    assert type(clip.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"  # DFN CLIP uses quick_gelu
    assert isinstance(tiny["scorer"].model, CLIPModel)
    for m in tiny.values():
        assert m.token_embedding().weight.shape[0] == VOCAB_SIZE


def test_generation_pipeline_runs(tiny):
    out = tiny["generation"].model("a photo of a cat", num_inference_steps=2, height=32, width=32,
                                   guidance_scale=7.5, output_type="np", generator=torch.Generator().manual_seed(0))
    assert out.images.shape == (1, 32, 32, 3)
    assert np.isfinite(out.images).all()


def test_detection_forward(tiny):
    m = tiny["detection"]
    inputs = m.processor(text=[["a cat", "a dog"]], images=IMAGE, return_tensors="pt")
    assert inputs["input_ids"].shape == (2, 16)
    with torch.no_grad():
        out = m.model(**inputs)
    patches = (64 // 16) ** 2
    assert out.logits.shape == (1, patches, 2) and out.pred_boxes.shape == (1, patches, 4)


def test_classification_and_scorer_forward(tiny):
    m = tiny["classification"]
    ids = torch.tensor(m.tokenizer(["a photo of a cat"], padding="max_length", max_length=77)["input_ids"])
    with torch.no_grad():
        assert m.model.encode_image(m.processor(IMAGE)[None]).shape == (1, 32)
        assert m.model.encode_text(ids).shape == (1, 32)
    s = tiny["scorer"]
    inputs = s.processor(text=["a cat", "a dog", "a car"], images=IMAGE, return_tensors="pt", padding=True)
    with torch.no_grad():
        assert s.model(**inputs).logits_per_image.shape == (1, 3)


@pytest.mark.parametrize("role", ROLES)
def test_paper_loading_code_reads_a_models_dir(role, tmp_path, monkeypatch, empty_hub):
    """Lay tiny models out as $VWLIB_MODELS_DIR/<hub id>: the paper profile must load them through its real code."""
    spec = get_spec("paper", role)
    original = build_tiny(spec.family, seed=1)
    save_model(original, tmp_path / spec.source)
    monkeypatch.setenv("VWLIB_MODELS_DIR", str(tmp_path))
    assert vwlib.get_spec("paper", role).available()
    loaded = load_model("paper", role)
    assert loaded.family == spec.family and loaded.source == spec.source
    for (name, a), (_, b) in zip(_text_state(original), _text_state(loaded)):
        assert torch.equal(a, b), name


def _text_state(m):
    return sorted(m.text_encoder().state_dict().items())


def test_save_and_load_round_trip_keeps_outputs(tmp_path):
    m = build_tiny("open_clip", seed=3)
    m2 = load_from_dir("open_clip", save_model(m, tmp_path / "clip"))
    ids = torch.tensor(m.tokenizer(["a photo of a dog"], padding="max_length", max_length=77)["input_ids"])
    with torch.no_grad():
        assert torch.allclose(m.model.encode_text(ids), m2.model.encode_text(ids))
