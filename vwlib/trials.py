"""A trial: one new word for one (profile, task model, dataset, concept, anchor word, δ, seed).

Usage:
    t = Trial("mini", "classification", "mini-objects", "star", "heart", delta=0.5)
    t.key()          # "mini-classification-mini-objects-star-heart-d0.5-s0-3f2a9c1e"  (stable, filesystem-safe)
    StudyConfig(...).trials()   # a grid of them (vwlib.study.config)
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, fields

from .errors import VWError
from .models.profiles import fingerprint
from .roles import TASKS

IMPORTED = "imported"  # the space of a word trained elsewhere and brought in by `vw import-word` (a token row)
SPACES = ("input", "output")  # input: a token embedding (the paper); output: the text encoder's output (ConES)


def parse_delta(value) -> float:
    """A δ from the command line or a config: a positive number, or inf / none for the unconstrained runs."""
    if isinstance(value, str) and value.lower() in ("inf", "infinity", "none", "unconstrained", "∞"):
        return math.inf
    try:
        delta = float(value)
    except (TypeError, ValueError):
        raise VWError(f"δ must be a positive number or 'inf', got {value!r}") from None
    if not delta > 0:
        raise VWError(f"δ must be > 0 (it scales the distance to the anchor's nearest word), got {value!r}; "
                      f"use inf for unconstrained")
    return delta


@dataclass(frozen=True)
class Trial:
    profile: str
    task: str
    dataset: str
    concept: str
    anchor: str
    delta: float = math.inf
    seed: int = 0
    steps: int = 0  # 0: the profile's default for the task
    lr: float = 0.0  # 0: the profile's default for the task
    space: str = "input"
    source: str = ""  # imported words: a digest of the file they came from (two files never share a trial)

    def __post_init__(self):
        if self.task not in TASKS:
            raise VWError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.space not in (*SPACES, IMPORTED):
            raise VWError(f"unknown space {self.space!r}; choose one of {', '.join(SPACES)}")
        object.__setattr__(self, "delta", parse_delta(self.delta))
        if self.space == "output" and not math.isinf(self.delta):
            raise VWError("output-space embeddings (ConES) have no anchor row to stay near: use delta inf")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["delta"] = "inf" if math.isinf(self.delta) else self.delta
        if self.space == "input":
            del d["space"]  # the default, left out so that input-space keys stay what they were before ConES
        if not self.source:
            del d["source"]  # likewise: only imported words have one
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Trial":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def key(self) -> str:
        """Stable and filesystem-safe; it hashes every field and the fingerprint of the model the word is trained in,
        so a retrained model's trials never collide with its predecessor's. (What scores the word, e.g. the scorer
        of generations, is stamped on each evaluation instead: a new scorer re-scores words, it does not retrain
        them.)"""
        # "num_vectors": 1 stays in the hash (a field once, always 1: one vector per word, as in the paper) so that
        # every store written before keeps its keys
        content = {**self.to_dict(), "num_vectors": 1, "model": fingerprint(self.profile, self.task)}
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:8]
        delta = "inf" if math.isinf(self.delta) else f"{self.delta:g}"
        space = "" if self.space == "input" else f"-{self.space}"
        name = (f"{self.profile}-{self.task}{space}-{self.dataset}-{self.concept}-{self.anchor}-d{delta}-s{self.seed}"
                f"-{digest}")
        return re.sub(r"[^\w.+-]", "_", name)  # filesystem-safe: "scuba diver" -> "scuba_diver"
