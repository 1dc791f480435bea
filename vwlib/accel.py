"""The GPU fast path: frozen towers under bf16 autocast, SDPA attention, channels-last convolutions, optional
torch.compile. The trainable words and Adam's state stay fp32: autocast runs the matmuls in bf16, while the word
parameter, its gradient and the δ projection are fp32 (the radius of δ = 0.1 is a few percent of a row's norm,
below bf16's resolution of the sum anchor + u).

Usage:
    accelerate(loaded, compile=False)          # in place; returns `loaded`
    with autocast(device):                     # bf16 on CUDA; a no-op on CPU (bf16 matmuls there are slower)
        losses = task.losses(words, batch)
"""

from __future__ import annotations

import contextlib

import torch


def model_device(loaded) -> torch.device:
    module = loaded.model.unet if loaded.family == "sd" else loaded.model
    return next(module.parameters()).device


def accelerate(loaded, compile: bool = False):
    """Put a loaded model on the fast path for its device: SDPA attention everywhere (checked; the libraries'
    default), channels-last UNet/VAE on CUDA (their convolutions run faster in NHWC under bf16), and optionally
    `torch.compile` of the module that dominates a training step (the UNet; the text encoder otherwise)."""
    device = model_device(loaded)
    if loaded.family == "sd":
        from diffusers.models.attention_processor import AttnProcessor2_0

        pipe = loaded.model
        pipe.unet.set_attn_processor(AttnProcessor2_0())  # torch SDPA (flash / memory-efficient kernels on GPU)
        _sdpa(pipe.text_encoder)
        if device.type == "cuda":
            pipe.unet.to(memory_format=torch.channels_last)
            pipe.vae.to(memory_format=torch.channels_last)
        if compile and not _compiled(pipe.unet):
            pipe.unet = torch.compile(pipe.unet)  # attribute access passes through to the UNet (config, dtype)
    elif loaded.family in ("owl", "hf_clip"):
        _sdpa(loaded.model)
        if compile:
            text = loaded.model.owlv2.text_model if loaded.family == "owl" else loaded.model.text_model
            text.forward = torch.compile(text.forward)
    elif loaded.family == "open_clip":
        # open_clip's blocks use nn.MultiheadAttention with need_weights=False: PyTorch runs SDPA inside.
        if compile:
            loaded.model.transformer.forward = torch.compile(loaded.model.transformer.forward)
    loaded.meta["accelerated"] = {"device": str(device), "compile": compile}
    return loaded


def _sdpa(model) -> None:
    if getattr(model.config, "_attn_implementation", "sdpa") != "sdpa":
        model.set_attn_implementation("sdpa")


def _compiled(module) -> bool:
    return hasattr(module, "_orig_mod")


def autocast(device: torch.device | str):
    """bf16 autocast on CUDA (frozen towers in bf16, the fp32 word parameter untouched); nothing elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
