"""The study as one configuration: the grid of trials (`StudyConfig` builds every grid of the CLI, the notebooks
and the sweeps), trained into one result store, transferred, tabulated.

Usage:
    cfg = StudyConfig(profile="mini", datasets=("mini-objects",), deltas=(0.5, "inf"), concepts=3)
    scores = run_study(cfg)        # trains what is missing, evaluates transfers, returns the tidy score table
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..data.datasets import MINI_DATASETS, concept_names, own_anchor
from ..errors import VWError
from ..models.accel import resolve_device
from ..roles import TASKS
from ..runner import load_models, run_trials, transfer_all
from ..stats import headline
from ..store import ResultStore
from ..trials import SPACES, Trial, parse_delta

# The anchors of a grid, by name (each word one meaning):
ANCHOR_CHOICES = {
    "grid": "every concept with the anchors of the chosen concepts (the paper's n x n concept x anchor grid)",
    "dataset": "every concept with every anchor of its dataset (10 per concept)",
    "own": "each concept with its own anchor only",
}


@dataclass(frozen=True)
class StudyConfig:
    """The grid of a study: every trial the CLI, the notebooks and the sweeps run is built by `trials()`."""

    profile: str = "mini"  # paper | mini | tiny
    datasets: tuple = MINI_DATASETS
    tasks: tuple = TASKS  # the tasks words are trained for
    deltas: tuple = (0.1, 0.2, 0.5, 1.0, "inf")  # δ values; "inf" = unconstrained
    concepts: int | tuple = 10  # the first n concepts of each dataset, or a tuple of concept names
    anchors: str | tuple = "grid"  # "grid" | "dataset" | "own" (see ANCHOR_CHOICES), or a tuple of anchor words
    seeds: tuple = (0,)
    spaces: tuple = ("input",)  # input: token words (the paper); output: output-space embeddings (ConES, δ = inf only)
    out: str = "runs/mini"  # the result store
    transfer_method: str = "lstsq"  # lstsq | ridge | procrustes | mlp
    steps: int = 0  # 0: the profile's default per task
    lr: float = 0.0  # 0: the profile's default per task
    task_kwargs: dict = field(default_factory=dict, hash=False)  # e.g. {"generation": {"num_inference_steps": 20}}
    device: str = field(default="auto", compare=False)  # where models run: auto (CUDA when present), cpu, cuda[:N]

    def __post_init__(self):
        for name in ("datasets", "tasks", "deltas", "seeds", "spaces"):
            if isinstance(getattr(self, name), (str, int, float)):
                object.__setattr__(self, name, (getattr(self, name),))
        if isinstance(self.anchors, list):
            object.__setattr__(self, "anchors", tuple(self.anchors))
        if isinstance(self.concepts, list):
            object.__setattr__(self, "concepts", tuple(self.concepts))
        if isinstance(self.anchors, str) and self.anchors not in ANCHOR_CHOICES:
            raise VWError(f"anchors must be one of {', '.join(ANCHOR_CHOICES)} or a list of anchor words, got "
                          f"{self.anchors!r} (grid: {ANCHOR_CHOICES['grid']}; dataset: {ANCHOR_CHOICES['dataset']})")
        if isinstance(self.concepts, int) and not isinstance(self.concepts, bool) and self.concepts < 1:
            raise VWError(f"concepts must be >= 1 (the first n concepts) or a list of names, got {self.concepts}")
        for task in self.tasks:
            if task not in TASKS:
                raise VWError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
        for space in self.spaces:
            if space not in SPACES:
                raise VWError(f"unknown space {space!r}; choose from {', '.join(SPACES)}")
        for delta in self.deltas:
            parse_delta(delta)
        if self.steps < 0 or not self.lr >= 0 or math.isinf(self.lr):
            raise VWError(f"steps and lr must be positive (0: the profile's default), got steps={self.steps}, "
                          f"lr={self.lr}")

    def concepts_of(self, dataset: str) -> list[str]:
        """The concepts of `dataset` in this grid (names only: planning loads no image)."""
        names, _ = concept_names(dataset)
        if isinstance(self.concepts, int):
            return names[: self.concepts]
        for c in self.concepts:
            if c not in names:
                raise VWError(f"unknown concept {c!r} in {dataset}; choose one of {', '.join(names)}")
        return list(self.concepts)

    def anchors_of(self, dataset: str, concept: str) -> list[str]:
        """The anchors `concept` of `dataset` is trained from in this grid."""
        if not isinstance(self.anchors, str):
            return list(self.anchors)
        if self.anchors == "own":
            return [own_anchor(dataset, concept)]
        names, anchors = concept_names(dataset)
        if self.anchors == "dataset":
            return list(anchors)
        return [anchors[names.index(c)] for c in self.concepts_of(dataset)]  # "grid"

    def trials(self) -> list[Trial]:
        out = []
        for name in self.datasets:
            for task in self.tasks:
                for concept in self.concepts_of(name):
                    for anchor in self.anchors_of(name, concept):
                        for space in self.spaces:
                            deltas = self.deltas if space == "input" else ("inf",)  # ConES has no δ
                            for delta in deltas:
                                for seed in self.seeds:
                                    out.append(Trial(self.profile, task, name, concept, anchor, parse_delta(delta),
                                                     seed, self.steps, self.lr, space=space))
        return out


def run_study(cfg: StudyConfig, progress: bool = True, transfer: bool = True, device: str | None = None):
    """Train every missing trial of `cfg`, evaluate each word in the two other models, return `headline` scores.
    `device` overrides `cfg.device`."""

    device = resolve_device(device or cfg.device)
    store = ResultStore(cfg.out)
    models = load_models(cfg.profile, device)
    trials = cfg.trials()
    run_trials(trials, store, device=device, progress=progress, models=models, task_kwargs=cfg.task_kwargs)
    if transfer:
        transfer_all(cfg.profile, models, store, cfg.transfer_method, cfg.task_kwargs, cfg.spaces, trials)
    return headline(store.table(trials), space=None)


def training_curves(cfg: StudyConfig, trials: list[Trial] | None = None):
    """Long table of the stored training curves of `trials` (default: cfg's grid): one row per (trial, logged step)
    with concept, anchor, task, delta, step, loss, distance (‖v − anchor‖) and distance_over_dnn (‖v − anchor‖ / d_nn).
    Trials trained before curves were kept have none.

    Usage: training_curves(cfg).groupby(["delta", "step"]).distance_over_dnn.mean()
    """
    import pandas as pd

    store = ResultStore(cfg.out)
    rows = []
    for t in trials if trials is not None else cfg.trials():
        curve = store.curve(t) if store.done(t) else None
        if not curve:
            continue
        d_nn = curve.get("d_nn") or math.nan
        for step, loss, distance in zip(curve["step"], curve["loss"], curve["distance"]):
            rows.append({"concept": t.concept, "anchor": t.anchor, "task": t.task, "dataset": t.dataset,
                         "delta": t.delta, "step": step, "loss": loss, "distance": distance,
                         "distance_over_dnn": distance / d_nn})
    return pd.DataFrame(rows)
