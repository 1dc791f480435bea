"""The GPU fast path: bf16 autocast of the frozen towers (the word, its gradient and Adam state stay fp32), SDPA
attention, channels-last UNet/VAE, optional `torch.compile` (each family's settings live in its adapter), and the
levers a GPU run may turn on one at a time (`Levers`: each off by default where it changes numbers).

Usage:
    accelerate(loaded, compile=False)       # once, after loading onto the device
    with autocast(device):
        losses = task.losses(words, batch)
    levers = LEVERS["attention-flash"]
    with attention_backend(levers.attention, device):   # SDPA's kernel, checked to exist here
        train_words(...)
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import torch

from ..errors import VWError


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


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """`tensor` (CPU) on `device`; to CUDA from pinned memory without blocking the host (a plain copy from pageable
    memory waits for the device: one host sync per call)."""
    device = torch.device(device)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def autocast(device: torch.device | str):
    """bf16 autocast on CUDA (frozen towers in bf16, the fp32 word parameter untouched); nothing elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# Operations that make the host wait for the device on CUDA: a scalar read back (.item(), float(), bool(), an `if`
# on a tensor), an output whose size depends on the data (nonzero, boolean-mask indexing), and copies between the
# host and the device in either direction (a CPU tensor `.to("cuda")` from pageable memory waits too).
_SYNC_OPS = {"aten._local_scalar_dense.default", "aten.nonzero.default", "aten.masked_select.default",
             "aten.is_nonzero.default", "aten.equal.default", "aten.unique_consecutive.default",
             "aten._unique2.default"}


class HostSyncCounter:
    """Counts the host-device synchronisations of the code run inside it, on any device, so a CPU test can check
    the CUDA path: the operations above, boolean-mask indexing, `tolist()`/`numpy()`, and blocking copies between
    CPU and CUDA tensors. `counts` names each kind.

    Usage:
        with HostSyncCounter() as syncs:
            train_words(task, batch, deltas, steps=5, lr=5e-3)
        syncs.total, syncs.counts       # 7, {"aten._local_scalar_dense.default": 5, "tolist": 2}
    """

    def __init__(self):
        self.counts: dict[str, int] = {}

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def _add(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def __enter__(self):
        from torch.utils._python_dispatch import TorchDispatchMode

        counter = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                name = str(func)
                if name in _SYNC_OPS:
                    counter._add(name)
                elif name in ("aten.index.Tensor", "aten.index_put_.default", "aten.index_put.default"):
                    if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] or ())
                           if i is not None):
                        counter._add(f"{name} (boolean mask)")
                elif name in ("aten._to_copy.default", "aten.copy_.default"):
                    src = args[1] if name == "aten.copy_.default" else args[0]
                    dst = args[0].device if name == "aten.copy_.default" else kwargs.get("device") or src.device
                    if (isinstance(src, torch.Tensor) and torch.device(dst).type != src.device.type
                            and not kwargs.get("non_blocking", False)):
                        counter._add("copy between host and device")
                return func(*args, **kwargs)

        self._mode = Mode()
        self._patched = {}
        for method in ("tolist", "numpy"):
            original = getattr(torch.Tensor, method)
            self._patched[method] = original

            def wrapped(t, *a, _original=original, _method=method, **kw):
                counter._add(_method)
                return _original(t, *a, **kw)

            setattr(torch.Tensor, method, wrapped)
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)
        for method, original in self._patched.items():
            setattr(torch.Tensor, method, original)
        return False


# --------------------------------------------------------------------------------------------------------------
# Levers of a GPU run (issue #35): each one named, off by default where it changes numbers, and reported
# --------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Levers:
    """attention: SDPA's backend ("default": PyTorch's choice, or "flash", "efficient", "cudnn", "math"; refused
    where it cannot run); gpu_nms: the detection evaluator's NMS for every image and word in one batched call on the
    model's device (the same detections as the per-image CPU path); weights_bf16: the frozen weights stored in bf16
    (`apply_levers`) and everything run under bf16 autocast (`lever_context`: image sides, training, evaluation),
    the word, its gradient and Adam's state in fp32 — it changes numbers (the anchor rows are read from a bf16
    table), within the tolerance its test states; compile: torch.compile's mode for the module that dominates a
    step (the UNet; the text tower otherwise), "" for none: "default", or "reduce-overhead", which also captures
    CUDA graphs on a GPU (the generation step's shapes are static) — equal to eager within 1e-4 on tiny models
    (tested, slow: the compile takes ~30 s on a CPU)."""

    attention: str = "default"
    gpu_nms: bool = False
    weights_bf16: bool = False
    compile: str = ""

    def named(self) -> dict:
        return asdict(self)


LEVERS = {  # what bench/gpu_run.sh turns on, one at a time, after an eager run
    "eager": Levers(),
    "attention-flash": Levers(attention="flash"),
    "attention-efficient": Levers(attention="efficient"),
    "gpu-nms": Levers(gpu_nms=True),
    "bf16-weights": Levers(weights_bf16=True),
    "compile": Levers(compile="default"),
    "cuda-graphs": Levers(compile="reduce-overhead"),
}


def apply_levers(loaded, levers: Levers):
    """Put the model-side levers on a loaded model, in place (`weights_bf16`: its frozen modules cast to bf16;
    `compile`: torch.compile in that mode); recorded in loaded.meta["levers"]. Run the model inside
    `lever_context(levers, device)` afterwards."""
    if levers.weights_bf16:
        for module in loaded.adapter.frozen_modules():
            module.to(torch.bfloat16)
    if levers.compile:
        loaded.adapter.accelerate(compile=levers.compile)
    loaded.meta["levers"] = levers.named()
    return loaded


def lever_context(levers: Levers, device: torch.device | str):
    """The context-side levers: the attention backend, and bf16 autocast on any device for bf16 weights (fp32
    inputs such as pixels and the fp32 word then meet bf16 weights; the engine's own autocast is CUDA-only)."""
    stack = contextlib.ExitStack()
    stack.enter_context(attention_backend(levers.attention, device))
    if levers.weights_bf16:
        stack.enter_context(torch.autocast(torch.device(device).type, dtype=torch.bfloat16))
    return stack


def _backends() -> dict:
    from torch.nn.attention import SDPBackend

    return {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}


def backend_available(name: str, device: torch.device | str) -> bool:
    """Whether SDPA can run backend `name` on `device` (probed with one small call, in the dtype the fast path uses:
    bf16 on CUDA, fp32 elsewhere)."""
    from torch.nn.attention import sdpa_kernel

    device = torch.device(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    q = torch.zeros(1, 2, 8, 64, device=device, dtype=dtype)
    try:
        with sdpa_kernel([_backends()[name]]):
            torch.nn.functional.scaled_dot_product_attention(q, q, q)
        return True
    except RuntimeError:
        return False


def attention_backend(name: str, device: torch.device | str):
    """A context in which every SDPA call runs backend `name` ("default": no constraint). Raises VWError, naming the
    backends this device has, when `name` is unknown or cannot run here — not a silent fallback."""
    if name == "default":
        return contextlib.nullcontext()
    if name not in _backends():
        raise VWError(f"unknown attention backend {name!r}; choose default, {', '.join(_backends())}")
    if not backend_available(name, device):
        have = [b for b in _backends() if backend_available(b, device)]
        raise VWError(f"the {name!r} attention backend cannot run on {torch.device(device)} here (available: "
                      f"{', '.join(have) or 'none'}); choose one of those, or 'default'")
    from torch.nn.attention import sdpa_kernel

    return sdpa_kernel([_backends()[name]])


def device_name(device: torch.device | str) -> str:
    """The device in words, for a benchmark's record: "NVIDIA H100 80GB HBM3", or "cpu (<n> threads)"."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"
