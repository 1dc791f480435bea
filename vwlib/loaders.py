"""Load, build and save the four model families of the study, one code path per family for every profile.

A model is always loaded from a local directory in its library's own format, whichever profile it belongs to:
the `paper` profile resolves a hub id to a folder of the Hugging Face cache (or of $VWLIB_MODELS_DIR), the `mini`
profile to a checkpoint folder shipped in this package. The `tiny` profile builds randomly initialised models of
the same classes in memory (and `save_model` can write them out in the paper's layout, which is how the paper
loading code is tested offline).

| family      | task            | library objects                                                          |
|-------------|-----------------|--------------------------------------------------------------------------|
| `sd`        | generation      | diffusers `StableDiffusionPipeline` (CLIPTextModel, UNet2DConditionModel, AutoencoderKL, v-prediction DDIM) |
| `owl`       | detection       | transformers `Owlv2ForObjectDetection` + `Owlv2Processor`                 |
| `open_clip` | classification  | open_clip `CLIP` (quick_gelu) + its eval transform                       |
| `hf_clip`   | generation scorer | transformers `CLIPModel` + `CLIPProcessor`                             |

Usage:
    from vwlib.loaders import build_tiny, load_from_dir, save_model
    m = build_tiny("owl")                 # Loaded(family="owl", model=Owlv2ForObjectDetection, processor=...)
    save_model(m, "/tmp/owl"); m2 = load_from_dir("owl", "/tmp/owl")
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .tokenizer import VOCAB_SIZE, clip_tokenizer

FAMILIES = ("sd", "owl", "open_clip", "hf_clip")

# The file whose presence marks a complete model folder of each family.
KEY_FILE = {
    "sd": "model_index.json",
    "owl": "config.json",
    "open_clip": "open_clip_config.json",
    "hf_clip": "config.json",
}


@dataclass
class Loaded:
    """A model with what it needs to read text and images.

    model: the library object (a StableDiffusionPipeline for `sd`).
    tokenizer: a CLIP BPE tokenizer (ids shared by every model of the study).
    processor: image preprocessing (an Owlv2Processor / CLIPProcessor, open_clip's transform; None for `sd`).
    """

    family: str
    model: Any
    tokenizer: Any
    processor: Any = None
    source: str = ""
    meta: dict = field(default_factory=dict)

    def num_parameters(self) -> int:
        modules = _modules(self)
        return sum(p.numel() for m in modules.values() for p in m.parameters())

    def text_encoder(self) -> torch.nn.Module:
        """The module holding the token-embedding table that new words are written into."""
        if self.family == "sd":
            return self.model.text_encoder
        if self.family in ("owl", "hf_clip"):
            return self.model.owlv2.text_model if self.family == "owl" else self.model.text_model
        return self.model  # open_clip keeps the text tower on the CLIP module itself

    def token_embedding(self) -> torch.nn.Embedding:
        """The input token-embedding table, [49408, D]."""
        if self.family == "open_clip":
            return self.model.token_embedding
        return self.text_encoder().embeddings.token_embedding


def _modules(m: Loaded) -> dict[str, torch.nn.Module]:
    if m.family == "sd":
        return {"text_encoder": m.model.text_encoder, "unet": m.model.unet, "vae": m.model.vae}
    return {"model": m.model}


# --------------------------------------------------------------------------------------------------------------
# Loading from a local directory (paper and mini profiles)
# --------------------------------------------------------------------------------------------------------------


def load_from_dir(family: str, path: str | os.PathLike, device: str | torch.device = "cpu") -> Loaded:
    """Load a model folder written in its library's format (a hub snapshot, a mini checkpoint, or `save_model`)."""
    path = Path(path)
    if family == "sd":
        from diffusers import StableDiffusionPipeline

        tokenizer = _folder_tokenizer(path / "tokenizer", pad_token="!")
        pipe = StableDiffusionPipeline.from_pretrained(
            path, tokenizer=tokenizer, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False, local_files_only=True,
        )
        pipe.set_progress_bar_config(disable=True)
        return Loaded("sd", pipe.to(device), pipe.tokenizer, None, str(path))
    if family == "owl":
        from transformers import Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

        model = Owlv2ForObjectDetection.from_pretrained(path, local_files_only=True).eval().to(device)
        # OWL-v2 pads queries with "!" (id 0) to at most 16 tokens.
        tokenizer = _folder_tokenizer(path, pad_token="!", model_max_length=16)
        processor = Owlv2Processor(Owlv2ImageProcessor.from_pretrained(path, local_files_only=True), tokenizer)
        return Loaded("owl", model, tokenizer, processor, str(path))
    if family == "hf_clip":
        from transformers import CLIPImageProcessor, CLIPModel, CLIPProcessor

        model = CLIPModel.from_pretrained(path, local_files_only=True).eval().to(device)
        tokenizer = _folder_tokenizer(path, pad_token="<|endoftext|>")
        processor = CLIPProcessor(CLIPImageProcessor.from_pretrained(path, local_files_only=True), tokenizer)
        return Loaded("hf_clip", model, tokenizer, processor, str(path))
    if family == "open_clip":
        import open_clip

        model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{path}", device=device)
        return Loaded("open_clip", model.eval(), clip_tokenizer(pad_token="!"), preprocess, str(path))
    raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")


def _folder_tokenizer(path: Path, pad_token: str, model_max_length: int = 77):
    """The folder's own tokenizer when it ships one (hub snapshots do), else the offline CLIP BPE tokenizer."""
    if (path / "tokenizer_config.json").is_file() and ((path / "vocab.json").is_file() or (path / "tokenizer.json").is_file()):
        from transformers import CLIPTokenizer

        return CLIPTokenizer.from_pretrained(path, local_files_only=True)
    # Checkpoints of this repo ship no tokenizer files (3 MB each): the vocabulary is open_clip's, rebuilt here.
    return clip_tokenizer(pad_token=pad_token, model_max_length=model_max_length)


def save_model(m: Loaded, path: str | os.PathLike, with_tokenizer: bool = False) -> Path:
    """Write `m` in the layout `load_from_dir` reads (the same layout as the hub repositories of the paper models)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if m.family == "sd":
        tok = m.model.tokenizer
        if not with_tokenizer:
            m.model.tokenizer = None
        try:
            m.model.save_pretrained(path, safe_serialization=True)
        finally:
            m.model.tokenizer = tok
    elif m.family in ("owl", "hf_clip"):
        m.model.save_pretrained(path, safe_serialization=True)
        m.processor.image_processor.save_pretrained(path)
        if with_tokenizer:
            m.tokenizer.save_pretrained(path)
    elif m.family == "open_clip":
        from safetensors.torch import save_file

        (path / "open_clip_config.json").write_text(json.dumps(m.meta["open_clip_config"], indent=2))
        state = {k: v.contiguous() for k, v in m.model.state_dict().items()}
        save_file(state, str(path / "open_clip_model.safetensors"))
    else:
        raise ValueError(f"unknown model family {m.family!r}")
    return path


# --------------------------------------------------------------------------------------------------------------
# Tiny, randomly initialised models of the paper's classes (unit and integration tests)
# --------------------------------------------------------------------------------------------------------------

TINY_WIDTH = 32  # every tiny text/vision width; the paper models use 1024 (SD), 512 (OWL), 768 (DFN)


def build_tiny(family: str, seed: int = 0, width: int = TINY_WIDTH) -> Loaded:
    """A randomly initialised model of the same class and config shape as the paper's model of that family."""
    torch.manual_seed(seed)
    if family == "sd":
        return _tiny_sd(width)
    if family == "owl":
        return _tiny_owl(width)
    if family == "open_clip":
        return _tiny_open_clip(width)
    if family == "hf_clip":
        return _tiny_hf_clip(width)
    raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")


def _clip_text_config(width: int, layers: int, max_positions: int, **kw) -> dict:
    return dict(vocab_size=VOCAB_SIZE, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                num_attention_heads=2, max_position_embeddings=max_positions, **kw)


def _tiny_sd(width: int) -> Loaded:
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    # SD 2.1's text encoder: OpenCLIP ViT-H text tower as CLIPTextModel, gelu, 77 positions, pads with "!".
    text_encoder = CLIPTextModel(CLIPTextConfig(**_clip_text_config(width, 3, 77), hidden_act="gelu",
                                                projection_dim=width, pad_token_id=1, bos_token_id=0, eos_token_id=2))
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=width, attention_head_dim=(2, 4), use_linear_projection=True, norm_num_groups=32,
    )
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32),
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=32, sample_size=16)
    # SD 2.1 (768) samples with DDIM and is trained for v-prediction.
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                              steps_offset=1, prediction_type="v_prediction")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(pad_token="!"),
                                   unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return Loaded("sd", pipe, pipe.tokenizer, None, "tiny")


def _tiny_owl(width: int) -> Loaded:
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    config = Owlv2Config(
        text_config=_clip_text_config(width, 2, 16),  # OWL-v2 queries: at most 16 tokens
        vision_config=dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                           num_attention_heads=2, image_size=64, patch_size=16),
        projection_dim=width,
    )
    model = Owlv2ForObjectDetection(config).eval()
    image_processor = Owlv2ImageProcessor(size={"height": 64, "width": 64})
    tokenizer = clip_tokenizer(pad_token="!", model_max_length=16)
    return Loaded("owl", model, tokenizer, Owlv2Processor(image_processor, tokenizer), "tiny")


def _tiny_open_clip(width: int) -> Loaded:
    import open_clip
    from open_clip.transform import image_transform

    # DFN2B-CLIP-ViT-L-14 is an open_clip CLIP with quick_gelu; same class, smaller towers.
    cfg = {
        "embed_dim": width,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": width, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": VOCAB_SIZE, "width": width, "heads": 2, "layers": 2},
    }
    model = open_clip.CLIP(**cfg).eval()
    preprocess = image_transform(32, is_train=False)
    config = {"model_cfg": cfg, "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN),
                                                    "std": list(open_clip.OPENAI_DATASET_STD)}}
    return Loaded("open_clip", model, clip_tokenizer(pad_token="!"), preprocess, "tiny",
                  meta={"open_clip_config": config})


def _tiny_hf_clip(width: int) -> Loaded:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    config = CLIPConfig(
        text_config=_clip_text_config(width, 2, 77),
        vision_config=dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2,
                           num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=width,
    )
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    tokenizer = clip_tokenizer()
    return Loaded("hf_clip", CLIPModel(config).eval(), tokenizer, CLIPProcessor(image_processor, tokenizer), "tiny")
