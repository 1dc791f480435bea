"""Stable Diffusion (generation): a diffusers `StableDiffusionPipeline` whose `CLIPTextModel` holds the words.

SD 2.1's text encoder is OpenCLIP ViT-H's text tower as a transformers `CLIPTextModel` (the penultimate-layer variant:
23 blocks), pads with "!" (id 0) to 77 tokens, and conditions the UNet on its whole last hidden state [B, 77, D].
Prompts are padded with the pipeline's own tokenizer's pad token ("!" for SD 2.x; "<|endoftext|>" for SD 1.x and a
mini-sd candidate trained so, #32): the UNet reads the padding's states, so they must be the ones it was trained on.
SD 2.1 (768) is a v-prediction model sampled with DDIM.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..tokenizer import VOCAB_SIZE, clip_tokenizer
from .base import Family, Loaded, batches, clip_text_config, compile_mode, folder_tokenizer, register, set_sdpa
from .paper_configs import SD21_SCHEDULER, SD21_TEXT_ENCODER, SD21_UNET, SD21_VAE


@register
class SDFamily(Family):
    name = "sd"
    pooled = False  # the UNet attends to every position of the 77
    key_file = "model_index.json"

    @property
    def pad_id(self) -> int:
        return self.model.tokenizer.pad_token_id  # the UNet was trained on this padding (module docstring)

    @property
    def text_module(self):
        return self.model.text_encoder

    @property
    def max_tokens(self) -> int:
        return self.model.tokenizer.model_max_length

    def encode_text(self, ids):
        return self.model.text_encoder(ids)[0]  # [B, L, D] after the final layer norm, as the pipeline uses it

    def parameter_modules(self):
        return {"text_encoder": self.model.text_encoder, "unet": self.model.unet, "vae": self.model.vae}

    @property
    def device(self):
        return next(self.model.unet.parameters()).device

    @torch.no_grad()
    def latents(self, images, batch: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
        """VAE posterior mean and std of PIL `images`, scaled by the VAE's scaling factor: [N, C, h, w] each."""
        pipe, device = self.model, self.device
        size = pipe.unet.config.sample_size * pipe.vae_scale_factor
        means, stds = [], []
        for chunk in batches(images, batch):
            arr = np.stack([np.asarray(im.convert("RGB").resize((size, size), resample=3)) for im in chunk])
            x = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(device, pipe.vae.dtype)
            dist = pipe.vae.encode(x).latent_dist
            means.append(dist.mean.float() * pipe.vae.config.scaling_factor)
            stds.append(dist.std.float() * pipe.vae.config.scaling_factor)
        return torch.cat(means), torch.cat(stds)

    def accelerate(self, compile: bool | str = False) -> None:
        from diffusers.models.attention_processor import AttnProcessor2_0

        pipe = self.model
        pipe.unet.set_attn_processor(AttnProcessor2_0())  # torch SDPA (flash / memory-efficient kernels on GPU)
        set_sdpa(pipe.text_encoder)
        if self.device.type == "cuda":  # NHWC convolutions are faster under bf16
            pipe.unet.to(memory_format=torch.channels_last)
            pipe.vae.to(memory_format=torch.channels_last)
        if compile and not hasattr(pipe.unet, "_orig_mod"):
            # attribute access passes through to the UNet (config, dtype); "reduce-overhead": CUDA graphs
            pipe.unet = torch.compile(pipe.unet, mode=compile_mode(compile))

    def save(self, path: Path, with_tokenizer: bool = False) -> None:
        pipe = self.model
        tok = pipe.tokenizer
        if not with_tokenizer:
            pipe.tokenizer = None
        try:
            pipe.save_pretrained(path, safe_serialization=True)
        finally:
            pipe.tokenizer = tok

    @classmethod
    def load(cls, path: Path, device="cpu") -> Loaded:
        from diffusers import StableDiffusionPipeline

        tokenizer = folder_tokenizer(path / "tokenizer", pad_token="!")
        pipe = StableDiffusionPipeline.from_pretrained(
            path, tokenizer=tokenizer, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False, local_files_only=True,
        )
        pipe.set_progress_bar_config(disable=True)
        return Loaded("sd", pipe.to(device), pipe.tokenizer, None, str(path))

    @classmethod
    def build_tiny(cls, width: int = 32) -> Loaded:
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        # SD 2.1's text encoder: OpenCLIP ViT-H text tower as CLIPTextModel, gelu, 77 positions, pads with "!".
        text_encoder = CLIPTextModel(CLIPTextConfig(**clip_text_config(width, 3, 77, VOCAB_SIZE), hidden_act="gelu",
                                                    projection_dim=width, pad_token_id=1, bos_token_id=0,
                                                    eos_token_id=2))
        unet = UNet2DConditionModel(
            sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=width, attention_head_dim=(2, 4), use_linear_projection=True, norm_num_groups=32,
        )
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32),
                            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                            norm_num_groups=32, sample_size=16)
        return _pipeline(text_encoder, unet, vae, DDIMScheduler(**SD21_SCHEDULER), "tiny")

    @classmethod
    def build_paper_random(cls) -> Loaded:
        """SD 2.1 (768, v-prediction) with its published configuration and random weights (1.3 B parameters)."""
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPTextConfig, CLIPTextModel

        return _pipeline(CLIPTextModel(CLIPTextConfig(**SD21_TEXT_ENCODER)), UNet2DConditionModel(**SD21_UNET),
                         AutoencoderKL(**SD21_VAE), DDIMScheduler(**SD21_SCHEDULER), "paper-random")


def _pipeline(text_encoder, unet, vae, scheduler, source: str) -> Loaded:
    """A StableDiffusionPipeline of these parts, with the CLIP tokenizer padding with "!" as SD 2.1's does."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(pad_token="!"),
                                   unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return Loaded("sd", pipe, pipe.tokenizer, None, source)
