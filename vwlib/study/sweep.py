"""Sweeps: a YAML grid of trials, grouped into batched jobs, run here or on a Ray cluster, resumable after kill -9.

A sweep file holds a `StudyConfig` (the grid: profile, datasets, tasks, concepts, anchors, deltas, seeds, steps, out)
plus how to run it:

    profile: mini
    out: runs/sweep-mini          # the result store; on a cluster, a filesystem every node mounts
    datasets: [mini-objects]
    tasks: [classification]
    concepts: 10                  # the first n concepts of each dataset
    anchors: grid                 # grid: n x n concepts x anchors; dataset: all 10 anchors; own: each its own
    deltas: [0.1, 0.5, inf]
    group_size: 64                # trials per batched forward pass (one job), or one per task
                                  # ({generation: 2, detection: 8, classification: 64}); bound it by GPU memory
    transfer: true                # after training, score every word in the two other task models
    device: auto                  # auto: CUDA when present (bf16 frozen towers, SDPA, channels-last), else cpu
    compile: false                # torch.compile the UNet / text tower: pays off over long GPU sweeps
    ray: {num_cpus: 1, num_gpus: 0}   # resources of one job on a Ray cluster

Every trial is keyed by its parameters and the model's fingerprint (`Trial.key`), and written as one atomic
directory, so a re-run skips what is finished, and two workers that race on one trial leave it written once.

Usage:
    cfg = load_sweep("sweeps/mini.yaml")
    summary = run_sweep(cfg, backend="local")          # or backend="ray", address="auto"
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import VWError
from ..roles import PROFILE_NAMES, ROLES, TASKS
from ..runner import group_trials, model, run_trials, transfer_all, validate
from ..store import ResultStore
from ..trials import Trial
from .config import StudyConfig

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class SweepConfig:
    study: StudyConfig
    group_size: int | dict = field(default=64, hash=False)  # trials per pass; or per task: {generation: 2, ...}
    transfer: bool = True
    device: str = "auto"  # auto: CUDA when the machine running the job has it, else the CPU
    compile: bool = False  # torch.compile the dominant frozen module (long GPU sweeps)
    ray: dict = field(default_factory=lambda: {"num_cpus": 1, "num_gpus": 0}, hash=False)

    def trials(self) -> list[Trial]:
        return self.study.trials()


def load_sweep(path: str | Path, **overrides) -> SweepConfig:
    """Read a sweep file; unknown keys are an error that lists the known ones. `overrides` replace file values."""
    path = Path(path)
    if not path.is_file():
        raise VWError(f"no sweep file at {path}; see sweeps/ for examples")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise VWError(f"{path} is not valid YAML{line} ({getattr(e, 'problem', None) or 'parse error'}); fix the "
                      f"file (see sweeps/mini-small.yaml for the format)") from None
    if not isinstance(raw, dict):
        raise VWError(f"{path}: a sweep file is a mapping of settings, got {type(raw).__name__}")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    study_keys = {f.name for f in dataclasses.fields(StudyConfig)}
    sweep_keys = {f.name for f in dataclasses.fields(SweepConfig)} - {"study"}
    unknown = sorted(set(raw) - study_keys - sweep_keys)
    if unknown:
        raise VWError(f"{path}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(study_keys | sweep_keys))}")
    study = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in study_keys}
    if "deltas" in study:
        study["deltas"] = tuple("inf" if isinstance(d, float) and math.isinf(d) else d for d in study["deltas"])
    if study.get("concepts") == "all":
        study["concepts"] = 10**6
    run = {k: v for k, v in raw.items() if k in sweep_keys}
    _check_types(path, study, run)
    try:
        cfg = SweepConfig(StudyConfig(**study), **run)
    except VWError as e:
        raise VWError(f"{path}: {e}") from None
    sizes = cfg.group_size if isinstance(cfg.group_size, dict) else {"all": cfg.group_size}
    for task, size in sizes.items():
        if task not in ("all", *TASKS) or isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise VWError(f"{path}: group_size must be a whole number >= 1, or one per task ({', '.join(TASKS)}), "
                          f"got {cfg.group_size!r}")
    if cfg.device not in ("auto", "cpu", "cuda") and not str(cfg.device).startswith("cuda:"):
        raise VWError(f"{path}: device must be auto, cpu, cuda or cuda:N, got {cfg.device!r}")
    return cfg


_TYPES = {"profile": str, "out": str, "transfer_method": str, "steps": int, "lr": (int, float), "group_size": (int, dict),
          "transfer": bool, "compile": bool, "device": str, "ray": dict, "task_kwargs": dict,
          "concepts": (int, tuple), "anchors": (str, tuple), "datasets": tuple, "tasks": tuple, "deltas": tuple,
          "seeds": tuple, "spaces": tuple}


def _check_types(path: Path, study: dict, run: dict) -> None:
    """A setting of the wrong kind is one line naming it and the kind it needs."""
    words = {int: "a whole number", float: "a number", str: "a text", bool: "true or false", dict: "a mapping",
             tuple: "a list"}
    for key, value in {**study, **run}.items():
        kinds = _TYPES.get(key)
        if kinds is None:
            continue
        kinds = kinds if isinstance(kinds, tuple) else (kinds,)
        wrong_bool = isinstance(value, bool) and bool not in kinds  # YAML's true is an int to Python
        if not isinstance(value, kinds) or wrong_bool:
            raise VWError(f"{path}: {key} must be {' or '.join(words[k] for k in kinds)}, got {value!r}")
    if study.get("profile", "mini") not in PROFILE_NAMES:
        raise VWError(f"{path}: unknown profile {study['profile']!r}; choose one of {', '.join(PROFILE_NAMES)}")


def plan(cfg: SweepConfig, store) -> tuple[list[Trial], list[list[Trial]]]:
    """(all trials of the grid, jobs of the unfinished ones): each job is one batched forward pass."""
    trials = cfg.trials()
    todo = [t for t in trials if not store.done(t)]
    return trials, [group for _, group in group_trials(todo, cfg.group_size)]


# One model cache per process: a local sweep, or a Ray worker that runs many jobs, loads each model once.
_MODELS: dict[str, dict] = {}  # {profile: {role: Loaded}}


def run_job(trial_dicts: list[dict], out: str, task_kwargs: dict, device: str = "cpu", compile: bool = False
            ) -> list[str]:
    """Train, evaluate and write one job's trials (runs in the driver or in a Ray worker). Returns their keys."""
    trials = [Trial.from_dict(d) for d in trial_dicts]
    models = _MODELS.setdefault(trials[0].profile, {})
    run_trials(trials, ResultStore(out), device=device, progress=False, models=models, task_kwargs=task_kwargs,
               compile=compile)
    return [t.key() for t in trials]


def run_sweep(cfg: SweepConfig, backend: str = "local", address: str | None = None, progress: bool = True) -> dict:
    """Run every unfinished trial of `cfg` (then, if `cfg.transfer`, the transfer evaluations); returns a summary:
    {"trials", "already_done", "trained", "failed", "jobs", "seconds", "backend"}."""
    from tqdm.auto import tqdm

    if backend not in BACKENDS:
        raise VWError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    t0 = time.time()
    store = ResultStore(cfg.study.out)
    store.clean_stale()  # what a killed run left half-written
    trials, jobs = plan(cfg, store)
    todo = [t for job in jobs for t in job]
    if todo:  # fail on bad input before any job starts (unknown concept, multi-token anchor, missing model)
        models = _MODELS.setdefault(cfg.study.profile, {})
        for task in sorted({t.task for t in todo}):
            model(models, cfg.study.profile, task, cfg.device)
        validate(todo, models)
    bar = tqdm(total=len(todo), desc=f"sweep ({backend})", unit="trial", disable=not progress)
    payloads = [([t.to_dict() for t in job], str(store.root), cfg.study.task_kwargs, cfg.device, cfg.compile)
                for job in jobs]
    if backend == "local" or not jobs:
        for payload in payloads:
            run_job(*payload)
            bar.update(len(payload[0]))
    else:
        _run_ray(payloads, cfg.ray, address, bar)
    bar.close()
    if cfg.transfer:
        models = _MODELS.setdefault(cfg.study.profile, {})
        for role in ROLES:
            model(models, cfg.study.profile, role, cfg.device)
        transfer_all(cfg.study.profile, models, store, cfg.study.transfer_method, cfg.study.task_kwargs,
                     cfg.study.spaces, trials)
    failed = len(store.finished(trials, status="failed"))
    return {"backend": backend, "trials": len(trials), "already_done": len(trials) - len(todo), "trained": len(todo),
            "failed": failed, "jobs": len(jobs), "seconds": round(time.time() - t0, 1)}


def _run_ray(payloads: list[tuple], resources: dict, address: str | None, bar) -> None:
    """One Ray task per job; an existing cluster with `address` ("auto", "ray://host:10001"), else a local one."""
    try:
        import ray
    except ImportError:
        raise VWError("the ray backend needs Ray: pip install 'vwlib[ray]' (or use --backend local)") from None
    started = not ray.is_initialized()
    if started:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count(), log_to_driver=False, include_dashboard=False)  # this machine only
    remote = ray.remote(num_cpus=resources.get("num_cpus", 1), num_gpus=resources.get("num_gpus", 0),
                        max_retries=2)(run_job)  # a job lost with its node is retried; finished trials are skipped
    pending = {remote.remote(*p): len(p[0]) for p in payloads}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            ray.get(done[0])  # re-raises a job's error here
            bar.update(pending.pop(done[0]))
    finally:
        if started:
            ray.shutdown()
