"""Architectures of the four mini models: the paper's classes, small configs, MiniLM-seeded token tables.

Each model has its own text encoder (6 blocks), trained separately, over a token table whose known rows are the
shared word meanings under its own rotation and noise (see vocab.py), frozen while it trains: a linear map carries
words between the tables, while what each encoder makes of a vector is its own.

Usage:
    clf = build_mini("clip")        # Loaded(family="open_clip", ...) with an untrained, seeded model
"""

from __future__ import annotations

import torch

from ..models.loaders import Loaded
from ..models.tokenizer import VOCAB_SIZE, clip_tokenizer
from .vocab import init_token_table

TEXT_WIDTH = 64
TEXT_LAYERS = 6  # every mini text encoder: deep enough that layers can differ in what they encode (paper Fig. 7)
CONTEXT = 32  # mini prompts are short; the paper models use 77 (SD, DFN) and 16 (OWL-v2)
IMAGE_SIZE = {"sd": 32, "owl": 64, "clip": 64, "scorer": 32}
SEEDS = {"clip": 11, "owl": 12, "sd": 13, "scorer": 14}  # one seed per model: its init and its projection


def build_mini(name: str) -> Loaded:
    torch.manual_seed(SEEDS[name])
    loaded = {"clip": _clip, "scorer": _scorer, "owl": _owl, "sd": _sd}[name]()
    with torch.no_grad():
        loaded.token_embedding().weight.copy_(init_token_table(TEXT_WIDTH, SEEDS[name]))
    loaded.meta["mini_name"] = name
    return loaded


def _text_config(layers: int, positions: int, **kw) -> dict:
    return dict(vocab_size=VOCAB_SIZE, hidden_size=TEXT_WIDTH, intermediate_size=4 * TEXT_WIDTH,
                num_hidden_layers=layers, num_attention_heads=2, max_position_embeddings=positions, **kw)


def open_clip_mini(image_size: int, vision_width: int, text_layers: int) -> Loaded:
    """A small open_clip CLIP of the mini world (untrained): a ModifiedResNet image tower, a 64-wide text tower."""
    import open_clip
    from open_clip.transform import image_transform

    cfg = {
        "embed_dim": 64,
        "quick_gelu": True,
        # A ModifiedResNet vision tower (open_clip's RN50 design, tiny): on 2 CPU cores a conv net learns the
        # world's shapes far faster than a ViT of the same cost. The text tower, where words are learned, is the
        # same transformer as DFN CLIP's.
        "vision_cfg": {"image_size": image_size, "layers": [1, 1, 1, 1], "width": vision_width, "head_width": 32},
        "text_cfg": {"context_length": CONTEXT, "vocab_size": VOCAB_SIZE, "width": TEXT_WIDTH, "heads": 2,
                     "layers": text_layers},
    }
    model = open_clip.CLIP(**cfg)
    config = {"model_cfg": cfg, "preprocess_cfg": {"size": image_size, "mean": list(open_clip.OPENAI_DATASET_MEAN),
                                                    "std": list(open_clip.OPENAI_DATASET_STD)}}
    return Loaded("open_clip", model, clip_tokenizer(pad_token="!"), image_transform(image_size, False), "mini",
                  meta={"open_clip_config": config})


def _clip() -> Loaded:
    return open_clip_mini(IMAGE_SIZE["clip"], vision_width=16, text_layers=TEXT_LAYERS)


def _scorer() -> Loaded:
    # The scorer judges 32 px generations, so it sees 32 px (trained at 64 px it reached 0.91 on held-out images but
    # judged the upsampled generations worse: 0.53 vs 0.62). An open_clip CLIP of its own (other width, depth, seed
    # and data), independent of mini-clip. The paper's scorer is a transformers CLIPModel: both families share one
    # feature code path (vwlib.mini.evaluate.clip_features).
    return open_clip_mini(IMAGE_SIZE["scorer"], vision_width=32, text_layers=TEXT_LAYERS)


def _owl() -> Loaded:
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    config = Owlv2Config(
        text_config=_text_config(TEXT_LAYERS, 16),
        vision_config=dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                           image_size=IMAGE_SIZE["owl"], patch_size=8),
        projection_dim=64,
    )
    model = Owlv2ForObjectDetection(config)
    with torch.no_grad():
        # Start from the patch-anchored prior boxes and plain cosine logits: with random weights the box head and
        # the logit shift/scale saturate (sigmoid at 1.0, logits in the thousands) and their gradients vanish.
        for layer in (model.box_head.dense2, model.class_head.logit_shift, model.class_head.logit_scale):
            layer.weight.zero_()
            layer.bias.zero_()
    size = IMAGE_SIZE["owl"]
    tokenizer = clip_tokenizer(pad_token="!", model_max_length=16)
    processor = Owlv2Processor(Owlv2ImageProcessor(size={"height": size, "width": size}), tokenizer)
    return Loaded("owl", model, tokenizer, processor, "mini")


def _sd() -> Loaded:
    return build_sd()


def sd_text_encoder(layers: int, seed: int, hidden_act: str = "gelu"):
    """mini-sd's text encoder, untrained: a `CLIPTextModel` (SD 2.1's class) of `layers` blocks, initialised with
    `seed` (the torch seed is set here), its token table the seeded known-word table. The tower lab builds it too
    (`text_class="clip_text_model"`), to tell the class's part from the recipe's. `hidden_act`: "quick_gelu" for
    an encoder that takes an open_clip mini tower's weights (`clip_text_model_from_open_clip`)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=VOCAB_SIZE, hidden_size=TEXT_WIDTH, intermediate_size=4 * TEXT_WIDTH, num_hidden_layers=layers,
        num_attention_heads=2, max_position_embeddings=77, hidden_act=hidden_act, projection_dim=TEXT_WIDTH,
        pad_token_id=1, bos_token_id=0, eos_token_id=2))  # SD 2.1's text-encoder config quirks, kept
    with torch.no_grad():
        text_encoder.get_input_embeddings().weight.copy_(init_token_table(TEXT_WIDTH, seed))
    return text_encoder


def _text_model(text_encoder):
    """The module holding a CLIPTextModel's embeddings, blocks and final norm (transformers 5 dropped the
    `text_model` wrapper; older versions have it)."""
    return getattr(text_encoder, "text_model", text_encoder)


def clip_text_model_from_open_clip(model, text_encoder) -> None:
    """In place: `text_encoder` (a `CLIPTextModel` of the same width and depth, hidden_act "quick_gelu", at least as
    many positions) takes the text tower of the open_clip CLIP `model` (vwlib.mini.models.open_clip_mini): token
    table, positions, blocks (each attention's packed q/k/v split into three), final norm; positions beyond the
    tower's context keep the encoder's own rows (no caption reaches them in training; the UNet sees padding there).
    SD 2.1's text encoder is the same conversion of OpenCLIP ViT-H's text tower. The text projection is not taken:
    the UNet reads the hidden states.

    Usage: clip_text_model_from_open_clip(mini_clip.model, sd_text_encoder(6, seed, hidden_act="quick_gelu"))"""
    config = text_encoder.config
    blocks = model.transformer.resblocks
    if (config.hidden_act, config.num_hidden_layers, config.hidden_size) != ("quick_gelu", len(blocks),
                                                                              model.token_embedding.weight.shape[1]):
        raise ValueError(f"a {config.num_hidden_layers}-block, {config.hidden_size}-wide {config.hidden_act} "
                         f"CLIPTextModel cannot take a {len(blocks)}-block open_clip tower (quick_gelu): build it "
                         f"with sd_text_encoder(layers, seed, hidden_act='quick_gelu')")
    tm = _text_model(text_encoder)
    with torch.no_grad():
        tm.embeddings.token_embedding.weight.copy_(model.token_embedding.weight)
        tm.embeddings.position_embedding.weight[: len(model.positional_embedding)].copy_(model.positional_embedding)
        for block, layer in zip(blocks, tm.encoder.layers):
            attn = layer.self_attn
            for proj, w, b in zip((attn.q_proj, attn.k_proj, attn.v_proj), block.attn.in_proj_weight.chunk(3),
                                  block.attn.in_proj_bias.chunk(3)):
                proj.weight.copy_(w)
                proj.bias.copy_(b)
            pairs = ((attn.out_proj, block.attn.out_proj), (layer.layer_norm1, block.ln_1),
                     (layer.layer_norm2, block.ln_2), (layer.mlp.fc1, block.mlp.c_fc),
                     (layer.mlp.fc2, block.mlp.c_proj))
            for mine, theirs in pairs:
                mine.load_state_dict(theirs.state_dict())
        tm.final_layer_norm.load_state_dict(model.ln_final.state_dict())


def open_clip_init_(text_encoder) -> None:
    """In place: a transformers CLIPTextModel's blocks and positions re-drawn by open_clip's TextTransformer scheme:
    q/k/v weights with std width^-½ and the attention's and MLP's output projections with width^-½ · (2 · depth)^-½
    (transformers' own scheme swaps the attention's two), MLP inputs (2 · width)^-½, positions 0.01; the token table
    is kept (the seeded known-word table). Draws from torch's global generator: seed it first."""
    tm = _text_model(text_encoder)
    width, depth = text_encoder.config.hidden_size, text_encoder.config.num_hidden_layers
    attn_std, proj_std, fc_std = width ** -0.5, width ** -0.5 * (2 * depth) ** -0.5, (2 * width) ** -0.5
    with torch.no_grad():
        torch.nn.init.normal_(tm.embeddings.position_embedding.weight, std=0.01)
        for layer in tm.encoder.layers:
            attn = layer.self_attn
            for proj, std in ((attn.q_proj, attn_std), (attn.k_proj, attn_std), (attn.v_proj, attn_std),
                              (attn.out_proj, proj_std), (layer.mlp.fc1, fc_std), (layer.mlp.fc2, proj_std)):
                torch.nn.init.normal_(proj.weight, std=std)


def build_sd(text_layers: int = TEXT_LAYERS, hidden_act: str = "gelu", pad_token: str = "!") -> Loaded:
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    text_encoder = sd_text_encoder(text_layers, SEEDS["sd"], hidden_act)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32, 64),
                        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                        layers_per_block=1, norm_num_groups=8, sample_size=IMAGE_SIZE["sd"])
    unet = UNet2DConditionModel(
        sample_size=IMAGE_SIZE["sd"] // 4, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(48, 96),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TEXT_WIDTH, attention_head_dim=(4, 8), use_linear_projection=True, norm_num_groups=16,
    )
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=False,
                              set_alpha_to_one=False, prediction_type="v_prediction", timestep_spacing="trailing")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(pad_token=pad_token),
                                   unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return Loaded("sd", pipe, pipe.tokenizer, None, "mini", meta={"mini_name": "sd"})

