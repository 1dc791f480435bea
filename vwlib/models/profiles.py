"""The model profiles: which four models play generation, detection, classification and the generation scorer.

| profile | what                                                   | where the weights come from                    |
|---------|--------------------------------------------------------|-----------------------------------------------|
| `paper` | SD 2.1, OWL-v2, DFN CLIP, OpenAI CLIP L/14 (the paper) | the Hugging Face cache, or $VWLIB_MODELS_DIR/<hub id> |
| `mini`  | small models of the same classes, trained in this repo | `vwlib/checkpoints/mini/<role>` (shipped)      |
| `tiny`  | random models of the same classes, for tests            | built in memory                               |
| `paper-random` | the paper's four architectures at full size      | built in memory, random (vwlib/models/families/paper_configs.py) |

Usage:
    import vwlib
    vwlib.load_model("mini", "detection")          # Loaded(family="owl", ...)
    for row in vwlib.model_table("paper"): print(row)
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import MissingModelError, VWError
from ..paths import CHECKPOINTS, MODELS_DIR_ENV
from ..roles import PROFILE_NAMES, ROLES
from . import compact, vision
from .accel import resolve_device
from .loaders import KEY_FILE, Loaded, build_paper_random, build_tiny, load_from_dir


@dataclass(frozen=True)
class ModelSpec:
    """One model of a profile. `source` is a hub id (paper), a checkpoint folder (mini), "random" (tiny) or
    "paper-config" (paper-random: the paper's architecture, random weights)."""

    profile: str
    role: str
    family: str
    source: str
    kind: str  # "hub" | "checkpoint" | "random"

    def locate(self) -> Path | None:
        """The local folder holding this model, or None when it is not on this machine."""
        if self.kind == "random":
            return None
        if self.kind == "checkpoint":
            path = Path(self.source)  # shipped compact (the loader materialises it), or a full folder
            return path if compact.is_compact(path) or (path / KEY_FILE[self.family]).is_file() else None
        models_dir = os.environ.get(MODELS_DIR_ENV)
        if models_dir and (Path(models_dir) / self.source / KEY_FILE[self.family]).is_file():
            return Path(models_dir) / self.source
        return _hf_cache_snapshot(self.source, KEY_FILE[self.family])

    def stock_folder(self) -> Path | None:
        """The folder the model's stock class loads (diffusers `StableDiffusionPipeline`, transformers
        `Owlv2ForObjectDetection` / `CLIPModel`, open_clip): a shipped compact mini checkpoint's full folder, built
        into the cache on first use; a full folder or hub snapshot as it is; None for a random or missing model."""
        path = self.locate()
        return compact.materialise(path) if path is not None and compact.is_compact(path) else path

    def available(self) -> bool:
        return self.kind == "random" or self.locate() is not None

    def missing_message(self) -> str:
        if self.kind == "checkpoint":
            return (f"the {self.profile} {self.role} checkpoint is missing at {self.source}; "
                    f"rebuild it with: vw mini train --model {_MINI_NAME[self.role]}")
        where = os.environ.get(MODELS_DIR_ENV) or f"${MODELS_DIR_ENV} (unset)"
        return (f"model '{self.source}' ({self.profile} profile, {self.role}) is not on this machine "
                f"(looked in the Hugging Face cache and {where}); fetch it on a machine with hub access: "
                f"hf download {self.source}")


def _hf_cache_snapshot(repo_id: str, key_file: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo_id, key_file)
    return Path(hit).parent if isinstance(hit, str) else None


_MINI_NAME = {"generation": "sd", "detection": "owl", "classification": "clip", "scorer": "scorer"}
_FAMILY = {"generation": "sd", "detection": "owl", "classification": "open_clip", "scorer": "hf_clip"}
_PAPER_IDS = {
    "generation": "stabilityai/stable-diffusion-2-1",  # v-prediction, 768 px
    "detection": "google/owlv2-base-patch16-ensemble",
    "classification": "apple/DFN2B-CLIP-ViT-L-14",  # open_clip: hf-hub:apple/DFN2B-CLIP-ViT-L-14
    "scorer": "openai/clip-vit-large-patch14",  # [decided] the generation scorer (docs/spec.md §1)
}

PROFILES: dict[str, dict[str, ModelSpec]] = {
    "paper": {r: ModelSpec("paper", r, _FAMILY[r], _PAPER_IDS[r], "hub") for r in ROLES},
    # mini-scorer is an open_clip CLIP (a conv vision tower suits 32 px generations); see vwlib/mini/models.py
    "mini": {r: ModelSpec("mini", r, {**_FAMILY, "scorer": "open_clip"}[r], str(CHECKPOINTS / "mini" / _MINI_NAME[r]),
                          "checkpoint") for r in ROLES},
    "tiny": {r: ModelSpec("tiny", r, _FAMILY[r], "random", "random") for r in ROLES},
    "paper-random": {r: ModelSpec("paper-random", r, _FAMILY[r], "paper-config", "random") for r in ROLES},
}
assert tuple(PROFILES) == PROFILE_NAMES  # the CLI checks --profile against the names alone


def fingerprint(profile: str, role: str) -> str:
    """A short id of the weights playing `role` in `profile` (trial keys include it, so a retrained or updated model
    never reuses another model's finished trials): the checkpoint's content digest, the hub snapshot, or "random"."""
    spec = get_spec(profile, role)
    if spec.kind == "random":
        return "random"
    if spec.kind == "checkpoint":
        marker = Path(spec.source) / compact.MARKER
        return _digest_cached(spec.source, marker.stat().st_mtime_ns if marker.is_file() else 0)
    path = spec.locate()
    return path.name if path is not None else "missing"


def evaluator_fingerprint(profile: str, task: str) -> str:
    """What a task's scores depend on: the task model's weights, for generation also the scorer's (it votes on the
    generated images), for detection also the NMS threshold of its post-processing; so a retrained scorer or a new
    threshold re-scores stored words instead of reusing stale metrics (the words themselves are not retrained)."""
    own = fingerprint(profile, task)
    if task == "generation":
        return f"{own}+{fingerprint(profile, 'scorer')}"
    return f"{own}+nms{vision.OWL_NMS_IOU:g}" if task == "detection" else own


@functools.lru_cache(maxsize=32)
def _digest_cached(path: str, mtime: int) -> str:
    return compact.digest(path) if mtime else "missing"


def get_spec(profile: str, role: str) -> ModelSpec:
    if profile not in PROFILES:
        raise VWError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if role not in ROLES:
        raise VWError(f"unknown model role {role!r}; choose one of {', '.join(ROLES)}")
    return PROFILES[profile][role]


def load_model(profile: str, role: str, device: str = "cpu", seed: int = 0) -> Loaded:
    """Load the model playing `role` in `profile` on `device` (cpu, cuda[:N] or auto); a missing model raises
    MissingModelError (one line, with the fix)."""
    device = resolve_device(device)
    spec = get_spec(profile, role)
    if spec.kind == "random":
        build = build_paper_random if spec.source == "paper-config" else build_tiny
        loaded = build(spec.family, seed=seed)
        loaded.model.to(device)
        return loaded
    path = spec.locate()
    if path is None:
        raise MissingModelError(spec.missing_message())
    loaded = load_from_dir(spec.family, path, device=device)  # mini: knows only its MiniLM-seeded and trained rows
    loaded.source = spec.source
    return loaded


def model_table(profile: str | None = None) -> list[dict]:
    """One row per (profile, role): family, source and whether it is on this machine."""
    names = [profile] if profile else list(PROFILES)
    rows = []
    for name in names:
        for role in ROLES:
            spec = get_spec(name, role)
            path = spec.locate()
            rows.append({"profile": name, "role": role, "family": spec.family, "source": spec.source,
                         "available": spec.available(), "path": str(path) if path else ""})
    return rows


def parameter_breakdown(profile: str) -> tuple[list[dict], list[str]]:
    """Parameter counts of each available model of `profile`, split into token table / rest of text encoder / rest.

    Returns (rows, missing): rows of {role, family, component, parameters}; one message per missing model.
    """
    rows, missing = [], []
    for role in ROLES:
        try:
            m = load_model(profile, role)
        except MissingModelError as e:
            missing.append(str(e))
            continue
        table = m.token_embedding().weight.numel()
        text = sum(p.numel() for p in m.adapter.text_parameters())
        total = m.num_parameters()
        for component, n in (("token table", table), ("rest of text encoder", text - table),
                             ("image side", total - text)):
            rows.append({"role": role, "family": m.family, "component": component, "parameters": n})
    return rows, missing
