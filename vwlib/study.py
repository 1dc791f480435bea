"""The study as one configuration: the grid of trials, trained into one result store, transferred, tabulated.

Usage:
    cfg = StudyConfig(profile="mini", datasets=("mini-objects",), deltas=(0.5, "inf"), concepts=3)
    scores = run_study(cfg)        # trains what is missing, evaluates transfers, returns the tidy score table
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .datasets import MINI_DATASETS, load_dataset
from .trials import TASKS, Trial, parse_delta


@dataclass(frozen=True)
class StudyConfig:
    profile: str = "mini"  # paper | mini | tiny
    datasets: tuple = MINI_DATASETS
    tasks: tuple = TASKS  # the tasks words are trained for
    deltas: tuple = (0.1, 0.2, 0.5, 1.0, "inf")  # δ values; "inf" = unconstrained
    concepts: int = 10  # the first n concepts of each dataset
    anchors: str = "all"  # "all": the dataset's 10 anchors for every concept; "own": each concept's own
    seeds: tuple = (0,)
    out: str = "runs/mini"  # the result store
    transfer_method: str = "lstsq"  # lstsq | ridge | procrustes | mlp
    steps: int = 0  # 0: the profile's default per task
    task_kwargs: dict = field(default_factory=dict, hash=False)  # e.g. {"generation": {"num_inference_steps": 20}}

    def trials(self) -> list[Trial]:
        out = []
        for name in self.datasets:
            ds = load_dataset(name)
            for task in self.tasks:
                for c, concept in enumerate(ds.concepts[: self.concepts]):
                    anchors = ds.anchors if self.anchors == "all" else [ds.anchors[c]]
                    for anchor in anchors:
                        for delta in self.deltas:
                            for seed in self.seeds:
                                out.append(Trial(self.profile, task, name, concept, anchor, parse_delta(delta),
                                                 seed, self.steps))
        return out


def run_study(cfg: StudyConfig, progress: bool = True, transfer: bool = True):
    """Train every missing trial of `cfg`, evaluate each word in the two other models, return `headline` scores."""
    from .engine import run_trials
    from .figures import headline
    from .profiles import load_model
    from .store import ResultStore
    from .transfer import evaluate_transfers, fit_all

    store = ResultStore(cfg.out)
    roles = ("generation", "detection", "classification", "scorer")
    models = {r: load_model(cfg.profile, r) for r in roles}
    trials = cfg.trials()
    run_trials(trials, store, progress=progress, models={(cfg.profile, t): models[t] for t in roles},
               task_kwargs=cfg.task_kwargs)
    if transfer:
        maps = fit_all(cfg.profile, models, cfg.transfer_method, out_dir=Path(cfg.out) / "maps")
        evaluate_transfers(store, maps, models, task_kwargs=cfg.task_kwargs, profile=cfg.profile)
    keys = {t.key() for t in trials}
    scores = headline(store.table())
    return scores[scores["trial_dir"].map(lambda d: Path(d).name in keys)].reset_index(drop=True)


def chance_note(scores) -> str:
    """One line per (dataset, evaluated_on) of in-domain means at the smallest and largest δ."""
    lines = []
    inside = scores[scores["in_domain"]]
    for (ds, task), g in inside.groupby(["dataset", "evaluated_on"]):
        lo, hi = g["delta"].min(), g["delta"].max()
        lines.append(f"{ds} {task}: δ={lo:g} {g[g.delta == lo].score.mean():.2f}, "
                     f"δ={'∞' if math.isinf(hi) else f'{hi:g}'} {g[g.delta == hi].score.mean():.2f}")
    return "\n".join(lines)
