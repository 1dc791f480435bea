"""The result store: one directory per trial, written atomically, read back as one tidy table.

    <root>/<trial key>/
        config.json              the trial (profile, task, dataset, concept, anchor, δ, seed, steps, lr, ...)
        embedding.safetensors    {"embedding": [1, D]} + metadata (model id, anchor word and id, δ, ...)
        eval-<task>.json         metrics of the word evaluated by <task>'s model: in-domain when <task> is the
                                 trial's own task, after transfer otherwise (written by later stages)
    <root>/maps/<profile>-<src>-to-<dst>-<method>[-output].safetensors    the transfer maps the words were mapped by
    <root>/records/<name>.json   derived measurements (null-word floors, name controls, layer probes: vw fidelity)

The store owns these files: every other module reads and writes them through its methods.

A trial directory appears whole or not at all (written under a temporary name, then renamed), so an interrupted run
leaves no torn trial, and a re-run skips every trial whose directory exists. Temporary names carry the writer's
host and pid (".<name>@host-pid@..."), so `clean_stale` can remove what a killed writer left behind.

Usage:
    store = ResultStore("runs/mini")
    store.done(trial)                                  # True once written
    store.write(trial, vector, meta, {"classification": {...}})
    store.table()                                      # pandas DataFrame, one row per (trial, evaluated_on)
    store.map_path("mini", "classification", "generation", "lstsq")   # where that transfer map lives
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .errors import VWError
from .roles import TASKS
from .trials import IMPORTED, Trial


def _dump(obj) -> str:
    return json.dumps(obj, indent=1, allow_nan=False, default=str)


def _writer_tag() -> str:
    """host-pid of this process: names its temporary files, so a later run can tell a dead writer's leftovers."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _dead_writer(name: str) -> bool:
    """True when temporary file/dir `name` ("...@host-pid@...") belongs to a process of this host that has died."""
    parts = name.split("@")
    if len(parts) < 3:
        return False
    host, _, pid = parts[1].rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's writer (a Ray node): only that machine can tell whether it is alive
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}@{_writer_tag()}@.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class ResultStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, trial: Trial) -> Path:
        return self.root / trial.key()

    def done(self, trial: Trial) -> bool:
        return (self.path(trial) / "config.json").is_file()

    def write(self, trial: Trial, vector: torch.Tensor | None, meta: dict, evaluations: dict[str, dict],
              curve: dict | None = None) -> Path:
        """Write a finished trial (vector [1, D], or None for a failed one) as one atomic directory;
        `curve` ({"step", "loss", "distance", "d_nn"}: its training curve) goes to curve.json."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.path(trial)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}@{_writer_tag()}@", dir=self.root))
        try:
            if vector is not None:
                save_file({"embedding": vector.detach().float().cpu().contiguous()}, str(tmp / "embedding.safetensors"),
                          metadata={k: str(v) for k, v in meta.items()})
            for task, metrics in evaluations.items():
                (tmp / f"eval-{task}.json").write_text(_dump(_clean(metrics)))
            if curve is not None:
                (tmp / "curve.json").write_text(_dump(curve))
            (tmp / "config.json").write_text(_dump(_clean({**trial.to_dict(), **meta})))  # last: marks a whole trial
            try:
                os.replace(tmp, final)  # atomic; fails if another process finished the same trial first
            except OSError:
                if not self.done(trial):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def curve(self, trial: Trial) -> dict | None:
        """The trial's training curve {"step": [K], "loss": [K], "distance": [K] (from the anchor), "d_nn"}, or None
        when it was trained before curves were kept."""
        path = self.path(trial) / "curve.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def clean_stale(self) -> int:
        """Remove the temporary files of writers that died (kill -9) before renaming them; returns how many.
        Finished trials are never touched; live writers' files (this host or others) are left alone."""
        if not self.root.is_dir():
            return 0
        stale = [p for p in self.root.glob(".*") if _dead_writer(p.name)]
        stale += [p for p in self.root.glob("*/.*.tmp") if _dead_writer(p.name)]
        for p in stale:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        return len(stale)

    def evaluated_by(self, trial: Trial, task: str) -> str | None:
        """The fingerprint of the weights that scored this finished trial's word on `task` (None: not scored, or a
        failed trial). Evaluations written before fingerprints were stamped were scored by the trial's own model."""
        path = self.path(trial) / f"eval-{task}.json"
        if not path.is_file():
            return None
        config = json.loads((self.path(trial) / "config.json").read_text())
        return json.loads(path.read_text()).get("evaluator_fingerprint", config.get("model_fingerprint"))

    def add_evaluation(self, trial: Trial, task: str, metrics: dict) -> None:
        """Add (or replace) the metrics of this trial's word evaluated by `task` (e.g. after transfer)."""
        atomic_write_text(self.path(trial) / f"eval-{task}.json", _dump(_clean(metrics)))

    def config(self, trial: Trial) -> dict:
        """The finished trial's config.json (its fields, model id and fingerprint, status, ...)."""
        return read_config(self.path(trial))

    def status(self, trial: Trial) -> str:
        """"ok" or "failed" for a finished trial."""
        return self.config(trial).get("status", "ok")

    def evaluation(self, trial: Trial, task: str) -> dict | None:
        """The metrics of this trial's word evaluated by `task`'s model (None: not evaluated there)."""
        path = self.path(trial) / f"eval-{task}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def finished(self, trials: list[Trial] | None = None, status: str = "ok") -> list[Trial]:
        """Finished trials with `status` among `trials` (default: every trial in the store), in order."""
        if trials is None:
            trials = [Trial.from_dict(read_config(d)) for d in self.trial_dirs()]
        return [t for t in trials if self.done(t) and self.status(t) == status]

    def imported(self, profile: str, dataset: str) -> list[tuple[str, Trial]]:
        """[(token, trial)] of the words `vw import-word` brought into this store for `dataset` of `profile`."""
        return [(self.config(t).get("token", t.source), t) for t in self.finished()
                if t.space == IMPORTED and t.dataset == dataset and t.profile == profile]

    # -- derived measurements (vw fidelity) ------------------------------------------------------------------------
    def record_path(self, name: str) -> Path:
        return self.root / "records" / f"{name}.json"

    def write_record(self, name: str, record: dict) -> None:
        """Keep a derived measurement (floors, name controls, probes) beside the trials, atomically."""
        path = self.record_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, _dump(record))

    def read_record(self, name: str) -> dict | None:
        path = self.record_path(name)
        return json.loads(path.read_text()) if path.is_file() else None

    # -- transfer maps -------------------------------------------------------------------------------------------
    @property
    def maps_dir(self) -> Path:
        return self.root / "maps"

    def map_path(self, profile: str, source: str, target: str, method: str, space: str = "input") -> Path:
        suffix = "-output" if space == "output" else ""
        return self.maps_dir / f"{profile}-{source}-to-{target}-{method}{suffix}.safetensors"

    def map_paths(self, profile: str, method: str, space: str = "input") -> dict[tuple[str, str], Path]:
        """{(source task, target task): path} of the stored maps of `profile`, `method` and `space`."""
        out = {}
        for src in TASKS:
            for dst in TASKS:
                path = self.map_path(profile, src, dst, method, space)
                if src != dst and path.is_file():
                    out[(src, dst)] = path
        return out

    def load_vector(self, trial_dir: str | os.PathLike) -> torch.Tensor:
        return load_embedding(Path(trial_dir) / "embedding.safetensors")

    def load_words(self, trials) -> torch.Tensor:
        """[T, D]: the words of finished `trials`, in order."""
        return torch.cat([self.load_vector(self.path(t)) for t in trials])

    def trial_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if not p.name.startswith(".") and (p / "config.json").is_file())

    def table(self, trials: list[Trial] | None = None):
        """One row per (trial, evaluating task): the trial's config plus `evaluated_on` and its metrics; only the
        rows of `trials` when given (e.g. a study's grid within a store that holds more)."""
        import pandas as pd

        keys = None if trials is None else {t.key() for t in trials}
        rows = []
        for d in self.trial_dirs():
            if keys is not None and d.name not in keys:
                continue
            config = json.loads((d / "config.json").read_text())
            evals = sorted(d.glob("eval-*.json"))
            if not evals:
                rows.append({**config, "evaluated_on": None, "trial_dir": str(d)})
            for e in evals:
                metrics = json.loads(e.read_text())
                rows.append({**config, "evaluated_on": e.stem[len("eval-"):], **metrics, "trial_dir": str(d)})
        return pd.DataFrame(rows)


def _clean(metrics: dict) -> dict:
    """JSON has no inf/nan: write them as strings."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = str(v)
        out[k] = v
    return out


def read_config(trial_dir: str | os.PathLike) -> dict:
    """config.json of a trial directory; a folder that is not one is a VWError naming how to list trials."""
    path = Path(trial_dir) / "config.json"
    if not path.is_file():
        raise VWError(f"{trial_dir} is not a trial directory (no config.json); list trials with vw results")
    return json.loads(path.read_text())


def load_embedding(path: str | os.PathLike, width: int | None = None) -> torch.Tensor:
    """[1, D] from a trial's embedding.safetensors; a corrupt or wrong-width file is a VWError."""
    path = Path(path)
    if not path.is_file():
        raise VWError(f"no embedding at {path}: train the trial first (vw train)")
    try:
        vector = load_file(str(path))["embedding"]
    except Exception as e:  # safetensors raises several types for a damaged header or body
        raise VWError(f"embedding file {path} is corrupt ({type(e).__name__}); delete its trial directory and re-run "
                      f"vw train") from None
    if width is not None and vector.shape[-1] != width:
        raise VWError(f"embedding {path} is {vector.shape[-1]} wide but the model's tokens are {width}: it was "
                      f"trained for another model; map it with vw transfer")
    return vector
