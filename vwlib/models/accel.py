"""The GPU fast path: bf16 autocast of the frozen towers (the word, its gradient and Adam state stay fp32), SDPA
attention, channels-last UNet/VAE, optional `torch.compile` (each family's settings live in its adapter).

Usage:
    accelerate(loaded, compile=False)       # once, after loading onto the device
    with autocast(device):
        losses = task.losses(words, batch)
"""

from __future__ import annotations

import contextlib

import torch


def resolve_device(device: str = "auto") -> str:
    """"auto" -> "cuda" when this machine has a CUDA device, else "cpu"; any other name is returned as given.

    Usage: load_model("paper", "generation", device=resolve_device())   # the default of every command and notebook
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def accelerate(loaded, compile: bool = False):
    """Put a loaded model on the fast path for its device: SDPA attention everywhere (checked; the libraries'
    default), channels-last UNet/VAE on CUDA (their convolutions run faster in NHWC under bf16), and optionally
    `torch.compile` of the module that dominates a training step (the UNet; the text encoder otherwise)."""
    loaded.adapter.accelerate(compile)
    loaded.meta["accelerated"] = {"device": str(loaded.adapter.device), "compile": compile}
    return loaded


def autocast(device: torch.device | str):
    """bf16 autocast on CUDA (frozen towers in bf16, the fp32 word parameter untouched); nothing elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
