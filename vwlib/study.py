"""The study as one configuration: the grid of trials, trained into one result store, transferred, tabulated.

Usage:
    cfg = StudyConfig(profile="mini", datasets=("mini-objects",), deltas=(0.5, "inf"), concepts=3)
    scores = run_study(cfg)        # trains what is missing, evaluates transfers, returns the tidy score table
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .accel import resolve_device
from .datasets import MINI_DATASETS, concept_names, load_dataset
from .errors import VWError
from .metrics import image_votes, zero_shot_votes
from .probes import evenly_spaced_layers, knn_purity, pooled_activations, project_2d
from .profiles import load_model
from .runner import TaskCache, load_models, run_trials, transfer_all
from .stats import HEADLINE, headline
from .store import ResultStore
from .tasks import PROMPTS, make_batch, make_task, task_kwargs_for
from .text import TextSide
from .tokenizer import single_token_id
from .transfer import fit_transfer, load_maps, nearest_words
from .trials import SPACES, TASKS, Trial, parse_delta
from .vision import best_boxes, clip_image_features, owl_image_side, owl_logits

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
        names, anchors = concept_names(dataset)
        if not isinstance(self.anchors, str):
            return list(self.anchors)
        if self.anchors == "own":
            return [anchors[names.index(concept)]]
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
    run_trials(trials, store, device=device, progress=progress, models={(cfg.profile, r): m for r, m in models.items()},
               task_kwargs=cfg.task_kwargs)
    if transfer:
        transfer_all(cfg.profile, models, store, cfg.transfer_method, cfg.task_kwargs, cfg.spaces, trials)
    keys = {t.key() for t in trials}
    scores = headline(store.table(), space=None)
    return scores[scores["trial_dir"].map(lambda d: Path(d).name in keys)].reset_index(drop=True)


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


BENCH_RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results" / "engine_cuda_h100.json"


def bill(cfg: StudyConfig, unfinished: list[Trial], bench: Path = BENCH_RESULTS) -> dict:
    """What running `unfinished` trials of `cfg` needs and costs, before paying it: the profile's models (and which
    are missing), its datasets (and which are missing), the trial count per task, and an estimate of GPU-hours from
    the engine benchmark measured at the paper's size (`bench/results/engine_cuda_h100.json`, with its device).

    Usage: print(json.dumps(bill(cfg, [t for t in cfg.trials() if not store.done(t)]), indent=1))
    """
    import json as _json

    from .datasets import check_data, is_folder_dataset
    from .profiles import model_table

    models = [{"role": r["role"], "source": r["source"], "available": r["available"]}
              for r in model_table(cfg.profile)]
    known = {r["dataset"]: r for r in check_data(cfg.profile)} if cfg.profile == "paper" else {}
    datasets = [{"dataset": d, "status": "folder" if is_folder_dataset(d) else known.get(d, {}).get("status", "generated")}
                for d in cfg.datasets]
    per_task = {task: sum(t.task == task for t in unfinished) for task in cfg.tasks}
    out = {"profile": cfg.profile, "per_task": per_task, "models": models, "datasets": datasets,
           "missing": [m["source"] for m in models if not m["available"]]
           + [d["dataset"] for d in datasets if d["status"] in ("missing", "incomplete")]}
    if cfg.profile not in ("paper", "paper-random"):
        out["estimate"] = "no GPU estimate: the mini and tiny profiles run on the CPU in minutes (make figures)"
    elif not bench.is_file():
        out["estimate"] = f"no GPU estimate: no benchmark at {bench} (python bench/engine_speed.py --profile " \
                          f"paper-random --device cuda ... writes one)"
    else:
        measured = _json.loads(bench.read_text())
        rate = {r["task"]: r["words_per_hour_at_profile_steps"] for r in measured["rows"]}
        hours = {task: round(n / rate[task], 2) for task, n in per_task.items() if task in rate and n}
        out["estimate"] = {"gpu_hours": hours, "total_gpu_hours": round(sum(hours.values()), 1),
                           "device": measured["device"], "how": "trials / words per hour of the paper's 1,000-step "
                           "budget measured by bench/engine_speed.py at the paper's size (transfers not counted)"}
    return out


def chance_note(scores) -> str:
    """One line per (dataset, evaluated_on) of in-domain means at the smallest and largest δ."""
    lines = []
    inside = scores[scores["in_domain"]]
    for (ds, task), g in inside.groupby(["dataset", "evaluated_on"]):
        lo, hi = g["delta"].min(), g["delta"].max()
        lines.append(f"{ds} {task}: δ={lo:g} {g[g.delta == lo].score.mean():.2f}, "
                     f"δ={'∞' if math.isinf(hi) else f'{hi:g}'} {g[g.delta == hi].score.mean():.2f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# What the figure notebooks need beyond the score table
# --------------------------------------------------------------------------------------------------------------


def grid_trials(cfg: StudyConfig, dataset: str, task: str, delta) -> list[list[Trial]]:
    """[concept][anchor] trials of one dataset, task and δ (the anchor grid of paper Fig. 5)."""
    one = replace(cfg, datasets=(dataset,), tasks=(task,), deltas=(delta,), seeds=cfg.seeds[:1], spaces=("input",))
    flat = one.trials()
    n = len(one.anchors_of(dataset, one.concepts_of(dataset)[0]))
    return [flat[i:i + n] for i in range(0, len(flat), n)]


def anchor_grid(cfg: StudyConfig, dataset: str, task: str = "generation", delta=0.5, seed: int = 0):
    """Images for the anchor grid: generations from each word (generation), or each word's best box on a held-out
    image of its concept (detection). Returns (images [C][A], boxes [C][A] or None, concepts, anchors)."""
    store = ResultStore(cfg.out)
    grid = grid_trials(cfg, dataset, task, delta)
    flat = [t for row in grid for t in row]
    run_trials(flat, store, device=cfg.device, progress=False, task_kwargs=cfg.task_kwargs)
    ds = load_dataset(dataset)
    model = load_model(cfg.profile, task, device=cfg.device)
    kwargs = task_kwargs_for(cfg.profile, task, cfg.task_kwargs)
    if task == "generation":
        kwargs["scorer"] = None
    t = make_task(task, model, ds, **kwargs)
    batch = make_batch(t, flat)
    words = store.load_words(flat)
    n_a = len(grid[0])
    concepts, anchors = [row[0].concept for row in grid], [t.anchor for t in grid[0]]
    if task == "generation":
        images = [imgs[0] for imgs in t.generate(words, batch, seed=seed)]
        return [images[i:i + n_a] for i in range(0, len(images), n_a)], None, concepts, anchors
    if task != "detection":
        raise ValueError("the anchor grid draws generations or detections")
    examples = [next(e for e in ds.val if e.label == ds.concept_index(tr.concept)) for tr in flat]
    side = owl_image_side(model, [e.image for e in examples])
    with torch.no_grad():
        q = t.query_features(words, batch)
    own = owl_logits(side, q).diagonal(dim1=0, dim2=2).T  # [N, P]: image i with its own word i
    boxes = [[box] for box in best_boxes(side, own)[0]]
    images = [e.image for e in examples]
    return ([images[i:i + n_a] for i in range(0, len(images), n_a)],
            [boxes[i:i + n_a] for i in range(0, len(boxes), n_a)], concepts, anchors)


def truncation_row(cfg: StudyConfig, dataset: str, concept: str, anchor: str, delta=0.5, seed: int = 0,
                   source_task: str = "generation"):
    """Generations from one word through the generator's text encoder truncated after each block (paper Fig. 7
    top). A word trained for another task is first mapped into the generator. Returns (images, layer numbers)."""
    store = ResultStore(cfg.out)
    trial = Trial(cfg.profile, source_task, dataset, concept, anchor, parse_delta(delta), cfg.seeds[0], cfg.steps,
                  cfg.lr)
    run_trials([trial], store, device=cfg.device, progress=False, task_kwargs=cfg.task_kwargs)
    gen = load_model(cfg.profile, "generation", device=cfg.device)
    task = make_task("generation", gen, load_dataset(dataset),
                     **(task_kwargs_for(cfg.profile, "generation", cfg.task_kwargs) | {"scorer": None}))
    words = store.load_words([trial])
    if source_task != "generation":
        src = TextSide(load_model(cfg.profile, source_task, device=cfg.device))
        words = fit_transfer(src, task.text, cfg.transfer_method)(words)
    batch = make_batch(task, [trial])
    layers = list(range(1, task.text.num_layers + 1))
    images = [task.generate(words, batch, seed=seed, layers=k)[0][0] for k in layers]
    return images, layers


def layer_panels_data(cfg: StudyConfig, dataset: str, task: str = "generation", delta=0.5,
                      transfer_from: str = "classification", method: str = "tsne", perplexity: float = 10.0,
                      seed: int = 0) -> list[dict]:
    """End-of-text activations of every (concept, anchor) word of `dataset` at evenly spaced layers of `task`'s text
    encoder, in-domain and for words trained for `transfer_from` mapped into it; projected to 2-D, with kNN purity
    by concept and by anchor (paper Fig. 7 bottom)."""
    store = ResultStore(cfg.out)
    target = load_model(cfg.profile, task, device=cfg.device)
    text = TextSide(target)
    panels = []
    for row, source in ((f"in-domain ({task})", task), (f"{transfer_from} -> {task}", transfer_from)):
        flat = [t for r in grid_trials(cfg, dataset, source, delta) for t in r]
        run_trials(flat, store, device=cfg.device, progress=False, task_kwargs=cfg.task_kwargs)
        words = store.load_words(flat)
        if source != task:
            source_text = TextSide(load_model(cfg.profile, source, device=cfg.device))
            words = fit_transfer(source_text, text, cfg.transfer_method)(words)
        anchor_ids = torch.tensor([single_token_id(target.tokenizer, t.anchor) for t in flat])
        ids = text.ids([PROMPTS[task].format(t.anchor) for t in flat])
        acts = pooled_activations(text, ids, anchor_ids, words, evenly_spaced_layers(text.num_layers))
        concepts = [t.concept for t in flat]
        anchors = [t.anchor for t in flat]
        for k, x in acts.items():
            panels.append({"row": row, "layer": k, "xy": project_2d(x.numpy(), method, perplexity, seed),
                           "labels": concepts, "purity_concept": knn_purity(x, _codes(concepts)),
                           "purity_anchor": knn_purity(x, _codes(anchors))})
    return panels


def _codes(labels: list[str]) -> list[int]:
    index = {l: i for i, l in enumerate(sorted(set(labels)))}
    return [index[l] for l in labels]


# --------------------------------------------------------------------------------------------------------------
# One word, seen in all three models (the results browser), and paper Fig. 4's transfer gallery
# --------------------------------------------------------------------------------------------------------------

class WordInspector:
    """One word of a study, seen in each of the three models: in-domain in the model it was trained for, mapped by
    the study's transfer map into the two others. Missing words are trained (and scored after transfer) on demand,
    into the study's result store. The data behind the results browser and paper Fig. 4.

    Usage:
        insp = WordInspector(StudyConfig(profile="mini", out="runs/mini"))
        card = insp.card("mini-objects", "star", "heart", 0.5, "classification")
        card["views"][0]["score"], card["views"][1]["nearest"]   # in-domain score; nearest words in the next model
    """

    def __init__(self, cfg: StudyConfig, models: dict | None = None):
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.store = ResultStore(cfg.out)
        self.models = models if models is not None else load_models(cfg.profile, self.device)
        self.tasks = TaskCache(cfg.profile, self.models, cfg.task_kwargs)
        self._maps = None

    def trial(self, dataset: str, concept: str, anchor: str, delta, trained_for: str, seed: int = 0) -> Trial:
        return Trial(self.cfg.profile, trained_for, dataset, concept, anchor, parse_delta(delta), seed, self.cfg.steps,
                     self.cfg.lr)

    def ensure(self, trials: list[Trial]) -> None:
        """Train what the store lacks of `trials` and score their words in the two other models."""
        keyed = {(self.cfg.profile, r): m for r, m in self.models.items()}
        run_trials(trials, self.store, device=self.device, progress=False, models=keyed,
                   task_kwargs=self.cfg.task_kwargs)
        transfer_all(self.cfg.profile, self.models, self.store, self.cfg.transfer_method, self.cfg.task_kwargs,
                     ("input",), trials)

    def vector_in(self, trial: Trial, task: str) -> torch.Tensor:
        """The trial's word [1, D] in `task`'s token space: its own vector, or the one the study's map sends it to."""
        word = self.store.load_words([trial])
        if task == trial.task:
            return word
        if self._maps is None:
            self._maps = load_maps(self.store, self.cfg.profile, self.cfg.transfer_method)
        return self._maps[(trial.task, task)](word.to(self.models[task].adapter.device))

    def generations(self, trial: Trial, n: int = 3, into: str = "generation"):
        """n generator images (seeds 0..n-1; seed 0 is the one the generation score judged) from the trial's word,
        mapped into the generator when it was trained for another task, with the scorer's vote on each."""
        task = self.tasks(into, trial.dataset)
        vec, batch = self.vector_in(trial, into), make_batch(task, [trial])
        images = [task.generate(vec, batch, seed=s)[0][0] for s in range(n)]
        return images, [task.ds.concepts[v] for v in image_votes(task.scorer, images, task.name_features()).tolist()]

    def detections(self, trial: Trial, n: int = 3):
        """The detector's best box (xyxy) and its score on the first n held-out images of the trial's concept."""
        task = self.tasks("detection", trial.dataset)
        c = task.ds.concept_index(trial.concept)
        examples = [e for e in task.ds.val if e.label == c][:n]
        side = owl_image_side(task.loaded, [e.image for e in examples])
        with torch.no_grad():
            q = task.query_features(self.vector_in(trial, "detection"), make_batch(task, [trial]))
        boxes, scores = best_boxes(side, owl_logits(side, q)[:, :, 0])  # one query, every image
        return [e.image for e in examples], [[box] for box in boxes], scores

    def votes(self, trial: Trial, n: int = 3):
        """The classifier's vote on the first n held-out images of the trial's concept, with the word in place of the
        concept's name among the dataset's class texts (as its accuracy is scored)."""
        task = self.tasks("classification", trial.dataset)
        c = task.ds.concept_index(trial.concept)
        examples = [e for e in task.ds.val if e.label == c][:n]
        names = task.name_features()
        with torch.no_grad():
            word = task.text_output(self.vector_in(trial, "classification"), make_batch(task, [trial]))
        names[c] = torch.nn.functional.normalize(word.float(), dim=-1)[0]
        chosen = zero_shot_votes(clip_image_features(task.loaded, [e.image for e in examples]), names)
        return [e.image for e in examples], [task.ds.concepts[int(k)] for k in chosen]

    def card(self, dataset: str, concept: str, anchor: str, delta, trained_for: str, seed: int = 0, n: int = 3,
             k: int = 5) -> dict:
        """Everything about one word: {"trial", "distance" (‖v − anchor‖ / d_nn), "views": one per model, the one
        it was trained for first, each {"model", "source" ("in-domain" or "mapped from <task>"), "metric", "score"
        (stored), "nearest" [(word, distance)] * k, "images", "boxes" (detection), "captions"}}."""
        trial = self.trial(dataset, concept, anchor, delta, trained_for, seed)
        self.ensure([trial])
        meta = self.store.config(trial)
        curve = self.store.curve(trial) or {}
        d_nn = curve.get("d_nn")
        views = []
        for model in [trained_for] + [t for t in TASKS if t != trained_for]:
            metric, label = HEADLINE[model]
            stored = self.store.evaluation(trial, model) or {}
            nearest = nearest_words(TextSide(self.models[model]), self.vector_in(trial, model), k=k)[0]
            view = {"model": model, "source": "in-domain" if model == trained_for else f"mapped from {trained_for}",
                    "metric": label, "score": stored.get(metric), "nearest": nearest, "boxes": None}
            if model == "generation":
                view["images"], votes = self.generations(trial, n)
                view["captions"] = [f"scorer: {v}" for v in votes]
            elif model == "detection":
                view["images"], view["boxes"], scores = self.detections(trial, n)
                view["captions"] = [f"best box {s:.2f}" for s in scores]
            else:
                view["images"], chosen = self.votes(trial, n)
                view["captions"] = [f"vote: {v}" for v in chosen]
            views.append(view)
        distance = meta.get("distance_to_anchor")
        return {"trial": trial, "views": views,
                "distance": distance / d_nn if distance is not None and d_nn else None}


GALLERY_DATASETS = ("dreambooth", "pascal", "mini-instances", "mini-scenes")  # paper Fig. 4: fine-grained, common


def transfer_gallery(cfg: StudyConfig, per_dataset: int = 2, delta="inf", seed: int = 0,
                     inspector: WordInspector | None = None) -> dict:
    """Paper Fig. 4: per concept (columns: the first `per_dataset` concepts of the fine-grained and the common
    dataset of the study, i.e. DreamBooth and PASCAL, or mini-instances and mini-scenes; else the study's own), a
    held-out real image, then the generator's image of the word trained for generation, and of the words trained
    for classification and for detection mapped into the generator. Each word starts from an unrelated anchor of the
    grid where it has one. Returns {"images" [4][C], "captions" [4][C], "rows", "columns", "delta"}."""
    insp = inspector or WordInspector(cfg)
    datasets = [d for d in cfg.datasets if d in GALLERY_DATASETS] or list(cfg.datasets)
    columns = []
    for dataset in datasets:
        for concept in cfg.concepts_of(dataset)[:per_dataset]:
            names, own_anchors = concept_names(dataset)
            anchors = cfg.anchors_of(dataset, concept)
            unrelated = [a for a in anchors if a != own_anchors[names.index(concept)]]
            columns.append((dataset, concept, (unrelated or anchors)[0]))
    sources = [t for t in ("generation", "classification", "detection") if t in cfg.tasks]
    trials = {(col, src): insp.trial(*col, delta, src, seed) for col in columns for src in sources}
    insp.ensure(list(trials.values()))
    rows = ["real image (held out)"] + [f"trained for {s}" if s == "generation" else f"{s} → generation" for s in sources]
    images, captions = [[] for _ in rows], [[] for _ in rows]
    for col in columns:
        ds = load_dataset(col[0])
        real = next(e for e in ds.val if e.label == ds.concept_index(col[1]))
        images[0].append(real.image)
        captions[0].append("")
        for r, src in enumerate(sources, start=1):
            trial = trials[(col, src)]
            imgs, votes = insp.generations(trial, 1)  # seed 0: the image its generation score judged
            images[r].append(imgs[0])
            captions[r].append(f"scorer: {votes[0]}")
    return {"images": images, "captions": captions, "rows": rows,
            "columns": [f"{c}\n(from '{a}')" for _, c, a in columns], "delta": delta}
