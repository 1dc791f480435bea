"""One word of a study seen in all three models (the data behind the results browser), and paper Fig. 4's
transfer gallery built from it.

Usage:
    insp = WordInspector(StudyConfig(profile="mini", out="runs/mini"))
    card = insp.card("mini-objects", "star", "heart", 0.5, "classification")
    gallery = transfer_gallery(cfg)   # {"images" [4][C], "captions", "rows", "columns", "delta"}
"""

from __future__ import annotations

import functools

import torch

from ..data.datasets import load_dataset, own_anchor
from ..metrics import image_votes, zero_shot_votes
from ..models.accel import resolve_device
from ..models.text import TextSide
from ..models.vision import best_boxes, clip_image_features, owl_image_side, owl_logits
from ..roles import TASKS
from ..runner import build_task, load_models, run_trials, stored_maps, transfer_all
from ..stats import HEADLINE
from ..store import ResultStore
from ..tasks import make_batch
from ..transfer import nearest_words
from ..trials import IMPORTED, Trial, parse_delta
from .config import StudyConfig


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
        self.tasks = functools.partial(build_task, cfg.profile, models=self.models, task_kwargs=cfg.task_kwargs,
                                       device=self.device)  # (task, dataset, seed=) -> the model's one task
        self._maps = None

    def trial(self, dataset: str, concept: str, anchor: str, delta, trained_for: str, seed: int = 0) -> Trial:
        return Trial(self.cfg.profile, trained_for, dataset, concept, anchor, parse_delta(delta), seed, self.cfg.steps,
                     self.cfg.lr)

    def ensure(self, trials: list[Trial]) -> None:
        """Train what the store lacks of `trials` and score their words in the two other models."""
        run_trials(trials, self.store, device=self.device, progress=False, models=self.models,
                   task_kwargs=self.cfg.task_kwargs)
        transfer_all(self.cfg.profile, self.models, self.store, self.cfg.transfer_method, self.cfg.task_kwargs,
                     ("input",), trials)

    def vector_in(self, trial: Trial, task: str) -> torch.Tensor:
        """The trial's word [1, D] in `task`'s token space: its own vector, or the one the study's map sends it to."""
        word = self.store.load_words([trial])
        if task == trial.task:
            return word
        if self._maps is None:
            self._maps = stored_maps(self.cfg.profile, self.models, self.store, self.cfg.transfer_method, self.device)
        return self._maps[(trial.task, task)](word.to(self.models[task].adapter.device))

    def generations(self, trial: Trial, n: int = 3, into: str = "generation"):
        """n generator images (seeds 0..n-1; seed 0 is the one the generation score judged) from the trial's word,
        mapped into the generator when it was trained for another task, with the scorer's vote on each."""
        task = self.tasks(into, trial.dataset, seed=trial.seed)
        vec, batch = self.vector_in(trial, into), make_batch(task, [trial])
        images = [task.generate(vec, batch, seed=s)[0][0] for s in range(n)]
        return images, [task.ds.concepts[v] for v in image_votes(task.scorer, images, task.name_features()).tolist()]

    def detections(self, trial: Trial, n: int = 3):
        """The detector's best box (xyxy) and its score on the first n held-out images of the trial's concept."""
        task = self.tasks("detection", trial.dataset, seed=trial.seed)
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
        task = self.tasks("classification", trial.dataset, seed=trial.seed)
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
        return self.card_of(trial, n, k)

    def card_of(self, trial: Trial, n: int = 3, k: int = 5) -> dict:
        """`card` of a finished trial of the store (a trained word, or an imported one: see `imported`)."""
        trained_for = trial.task
        meta = self.store.config(trial)
        d_nn = (self.store.curve(trial) or {}).get("d_nn", meta.get("d_nn"))  # an imported word has no curve
        views = []
        for model in [trained_for] + [t for t in TASKS if t != trained_for]:
            metric, label = HEADLINE[model]
            stored = self.store.evaluation(trial, model) or {}
            nearest = nearest_words(TextSide(self.models[model]), self.vector_in(trial, model), k=k)[0]
            own = "imported" if trial.space == IMPORTED else "in-domain"
            view = {"model": model, "source": own if model == trained_for else f"mapped from {trained_for}",
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
            anchors = cfg.anchors_of(dataset, concept)
            unrelated = [a for a in anchors if a != own_anchor(dataset, concept)]
            columns.append((dataset, concept, (unrelated or anchors)[0]))
    sources = [t for t in ("generation", "classification", "detection") if t in cfg.tasks]
    trials = {(col, src): insp.trial(*col, delta, src, seed) for col in columns for src in sources}
    insp.ensure(list(trials.values()))
    rows = ["real image (held out)"] + [f"trained for {s}" if s == "generation" else f"{s} → generation" for s in sources]
    images, captions = [[] for _ in rows], [[] for _ in rows]
    for col in columns:
        ds = load_dataset(col[0], seed=seed)  # the seed's own held-out images
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
