"""The paper's four models' configurations, written down so that they can be built with random weights.

With these, the `paper-random` profile runs the paper's exact architectures (layer counts, widths, image sizes,
schedulers) through training and evaluation on a machine without their weights: shape, dtype and memory bugs of
the paper path show up here, and the GPU benchmark measures the paper's cost. The values are those of each model's
published configuration (the hub repository named beside it); DFN's comes from open_clip's own `ViT-L-14-quickgelu`.

Usage:
    from vwlib.models.families.paper_configs import SD21_UNET
    UNet2DConditionModel(**SD21_UNET)      # 866 M parameters, random
"""

# stabilityai/stable-diffusion-2-1 (768 px, v-prediction): unet/config.json
SD21_UNET = dict(
    sample_size=96, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True, upcast_attention=True,
    norm_num_groups=32, norm_eps=1e-5, act_fn="silu", flip_sin_to_cos=True, freq_shift=0, downsample_padding=1,
)
# text_encoder/config.json: the OpenCLIP ViT-H/14 text tower as a CLIPTextModel (23 of its 24 layers: SD 2.x
# conditions on the penultimate layer), gelu, pads with "!" (id 1)
SD21_TEXT_ENCODER = dict(
    vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
    max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=512,
    pad_token_id=1, bos_token_id=0, eos_token_id=2,
)
# vae/config.json
SD21_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
    act_fn="silu", sample_size=768, scaling_factor=0.18215,
)
# scheduler/scheduler_config.json
SD21_SCHEDULER = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
    set_alpha_to_one=False, steps_offset=1, prediction_type="v_prediction",
)


def _tower(width: int, layers: int, heads: int, **kw) -> dict:
    """A transformers CLIP-style tower config: MLP 4 x width, quick_gelu (as both published configs below)."""
    return dict(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers, num_attention_heads=heads,
                hidden_act="quick_gelu", **kw)


# google/owlv2-base-patch16-ensemble: config.json (960 px input, 60 x 60 patches, queries of 16 tokens)
OWLV2_BASE_PATCH16 = dict(
    text_config=_tower(512, 12, 8, vocab_size=49408, max_position_embeddings=16, pad_token_id=0,
                       bos_token_id=49406, eos_token_id=49407),
    vision_config=_tower(768, 12, 12, image_size=960, patch_size=16),
    projection_dim=512,
)
OWLV2_IMAGE_SIZE = 960

# openai/clip-vit-large-patch14 (the generation scorer): config.json
CLIP_VIT_L14 = dict(
    text_config=_tower(768, 12, 12, vocab_size=49408, max_position_embeddings=77, pad_token_id=1, bos_token_id=0,
                       eos_token_id=2),
    vision_config=_tower(1024, 24, 16, image_size=224, patch_size=14),
    projection_dim=768,
)

# apple/DFN2B-CLIP-ViT-L-14: open_clip's built-in config of this name (quick_gelu, 224 px, 77 tokens)
DFN_OPEN_CLIP_NAME = "ViT-L-14-quickgelu"
