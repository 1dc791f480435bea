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

