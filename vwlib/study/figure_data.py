"""What the figure notebooks need beyond the score table: the anchor grid (paper Fig. 5), and the truncated
generator and per-layer end-of-text activations (paper Fig. 7). Missing words are trained into the study's store
first; a word trained for another model reaches the target through the store's transfer maps.

Usage:
    images, boxes, concepts, anchors = anchor_grid(cfg, "mini-objects", task="generation", delta=0.5)
    images, layers = truncation_row(cfg, "mini-objects", "star", "heart")
    panels = layer_panels_data(cfg, "mini-objects")   # [{"row", "layer", "xy", "purity_concept", ...}]
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from ..ceiling import label_codes, layer_ceiling
from ..data.datasets import own_anchor
from ..errors import VWError
from ..models.probes import evenly_spaced_layers, knn_purity, pooled_activations, project_2d
from ..models.text import TextSide
from ..models.tokenizer import single_token_id
from ..models.vision import best_boxes, owl_image_side, owl_logits
from ..runner import build_task, model, run_trials, stored_maps
from ..stats import HEADLINE
from ..store import ResultStore
from ..tasks import DEFAULTS, PROMPTS, make_batch
from ..trials import Trial, parse_delta
from .config import StudyConfig


def grid_trials(cfg: StudyConfig, dataset: str, task: str, delta) -> list[list[Trial]]:
    """[concept][anchor] trials of one dataset, task and δ (the anchor grid of paper Fig. 5)."""
    one = replace(cfg, datasets=(dataset,), tasks=(task,), deltas=(delta,), seeds=cfg.seeds[:1], spaces=("input",))
    flat = one.trials()
    n = len(one.anchors_of(dataset, one.concepts_of(dataset)[0]))
    return [flat[i:i + n] for i in range(0, len(flat), n)]


def _words_in(cfg: StudyConfig, trials: list[Trial], target: str, models: dict, store: ResultStore) -> torch.Tensor:
    """The stored words of `trials` (trained first when missing) [N, D], in `target`'s token space: mapped by the
    store's transfer map when they were trained for another model (all `trials` share one task)."""
    run_trials(trials, store, device=cfg.device, progress=False, models=models, task_kwargs=cfg.task_kwargs)
    words = store.load_words(trials)
    source = trials[0].task
    if source == target:
        return words
    return stored_maps(cfg.profile, models, store, cfg.transfer_method, cfg.device)[(source, target)](words)


def _rows(flat: list, n: int) -> list[list]:
    return [flat[i:i + n] for i in range(0, len(flat), n)]


def anchor_grid(cfg: StudyConfig, dataset: str, task: str = "generation", delta=0.5, seed: int = 0):
    """Images for the anchor grid: generations from each word (generation), or each word's best box on a held-out
    image of its concept (detection). Returns (images [C][A], boxes [C][A] or None, concepts, anchors)."""
    if task not in ("generation", "detection"):
        raise ValueError("the anchor grid draws generations or detections")
    store, models = ResultStore(cfg.out), {}
    grid = grid_trials(cfg, dataset, task, delta)
    flat = [t for row in grid for t in row]
    words = _words_in(cfg, flat, task, models, store)
    t = build_task(cfg.profile, task, dataset, models, cfg.task_kwargs, cfg.device, scorer=False, seed=flat[0].seed)
    batch = make_batch(t, flat)
    n_a = len(grid[0])
    concepts, anchors = [row[0].concept for row in grid], [t.anchor for t in grid[0]]
    if task == "generation":
        images = [imgs[0] for imgs in t.generate(words, batch, seed=seed)]
        return _rows(images, n_a), None, concepts, anchors
    examples = [next(e for e in t.ds.val if e.label == t.ds.concept_index(tr.concept)) for tr in flat]
    side = owl_image_side(t.loaded, [e.image for e in examples])
    with torch.no_grad():
        q = t.query_features(words, batch)
    own = owl_logits(side, q).diagonal(dim1=0, dim2=2).T  # [N, P]: image i with its own word i
    boxes = [[box] for box in best_boxes(side, own)[0]]
    return _rows([e.image for e in examples], n_a), _rows(boxes, n_a), concepts, anchors


def truncation_row(cfg: StudyConfig, dataset: str, concept: str, anchor: str, delta=0.5, seed: int = 0,
                   source_task: str = "generation"):
    """Generations from one word through the generator's text encoder truncated after each block (paper Fig. 7
    top). A word trained for another task is first mapped into the generator. Returns (images, layer numbers)."""
    store, models = ResultStore(cfg.out), {}
    trial = Trial(cfg.profile, source_task, dataset, concept, anchor, parse_delta(delta), cfg.seeds[0], cfg.steps,
                  cfg.lr)
    words = _words_in(cfg, [trial], "generation", models, store)
    task = build_task(cfg.profile, "generation", dataset, models, cfg.task_kwargs, cfg.device, scorer=False,
                      seed=trial.seed)
    batch = make_batch(task, [trial])
    layers = list(range(1, task.text.num_layers + 1))
    images = [task.generate(words, batch, seed=seed, layers=k)[0][0] for k in layers]
    return images, layers


def _activations(text: TextSide, trials: list[Trial], words: torch.Tensor | None, task: str
                 ) -> dict[int, torch.Tensor]:
    """{layer: [N, D]} end-of-text states of `words` [N, D] (each in its trial's anchor's place in `task`'s prompt;
    None: the anchor words themselves) at evenly spaced layers of `text`."""
    anchor_ids = torch.tensor([single_token_id(text.loaded.tokenizer, t.anchor) for t in trials])
    ids = text.ids([PROMPTS[task].format(t.anchor) for t in trials])
    return pooled_activations(text, ids, anchor_ids, words, evenly_spaced_layers(text.num_layers))


def layer_panels_data(cfg: StudyConfig, dataset: str, task: str = "generation", delta=0.5,
                      transfer_from: str = "classification", method: str = "tsne", perplexity: float = 10.0,
                      seed: int = 0) -> list[dict]:
    """End-of-text activations of every (concept, anchor) word of `dataset` at evenly spaced layers of `task`'s text
    encoder, in-domain and for words trained for `transfer_from` mapped into it; projected to 2-D, with kNN purity
    by concept and by anchor (paper Fig. 7 bottom)."""
    store, models = ResultStore(cfg.out), {}
    text = TextSide(model(models, cfg.profile, task, cfg.device))
    panels = []
    for row, source in ((f"in-domain ({task})", task), (f"{transfer_from} -> {task}", transfer_from)):
        flat = [t for r in grid_trials(cfg, dataset, source, delta) for t in r]
        acts = _activations(text, flat, _words_in(cfg, flat, task, models, store), task)
        concepts = [t.concept for t in flat]
        anchors = [t.anchor for t in flat]
        for k, x in acts.items():
            panels.append({"row": row, "layer": k, "xy": project_2d(x.numpy(), method, perplexity, seed),
                           "labels": concepts, "purity_concept": knn_purity(x, label_codes(concepts)),
                           "purity_anchor": knn_purity(x, label_codes(anchors))})
    return panels


def working_word_purity(cfg: StudyConfig, dataset: str, task: str = "generation", delta=0.5) -> list[dict]:
    """kNN purity by concept and by anchor of `task`'s own (concept, anchor) words of `dataset` at `delta`, at the
    layers of Fig. 7, over every word and over the words that did their job (in-domain accuracy 1): whether the last
    layer's weak grouping by concept comes from the words that fail. And whether a word's state is nearest to its
    concept's *name* there ("near_name": among the grid's concepts, each own anchor word in the same prompt): a
    word that does its job from a state unlike its name's acts off the names' manifold, and no layer need group it
    with its concept. Generation and classification (accuracy) only.
    [{"layer", "words", "purity_concept", "purity_anchor", "near_name", "working", "working_purity_concept",
    "working_purity_anchor", "working_near_name"}]

    Usage: rows = working_word_purity(cfg, "mini-objects", "generation", "inf")"""
    if task == "detection":
        raise VWError("working-word purity needs a 0/1 score per word: use --task generation or classification")
    store, models = ResultStore(cfg.out), {}
    text = TextSide(model(models, cfg.profile, task, cfg.device))
    flat = [t for r in grid_trials(cfg, dataset, task, delta) for t in r]
    acts = _activations(text, flat, _words_in(cfg, flat, task, models, store), task)
    names = list(dict.fromkeys(t.concept for t in flat))  # the grid's concepts, in order
    own = [Trial(cfg.profile, task, dataset, c, own_anchor(dataset, c), math.inf) for c in names]  # prompts only
    name_acts = _activations(text, own, None, task)  # {layer: [C, D]} the names' own prompts
    works = torch.tensor([(store.evaluation(t, task) or {}).get("accuracy") == 1 for t in flat])
    enough = works.sum() > 5  # the 5 nearest neighbours need more than 5 words
    concepts = torch.tensor(label_codes([t.concept for t in flat]))
    anchors = torch.tensor(label_codes([t.anchor for t in flat]))
    own_name = torch.tensor([names.index(t.concept) for t in flat])
    rows = []
    for k, x in acts.items():
        near = torch.cdist(x, name_acts[k]).argmin(1) == own_name  # [N] nearest name is the word's concept's
        rows.append({"layer": k, "words": len(flat), "purity_concept": knn_purity(x, concepts),
                     "purity_anchor": knn_purity(x, anchors), "near_name": float(near.float().mean()),
                     "working": int(works.sum()),
                     "working_purity_concept": knn_purity(x[works], concepts[works]) if enough else float("nan"),
                     "working_purity_anchor": knn_purity(x[works], anchors[works]) if enough else float("nan"),
                     "working_near_name": float(near[works].float().mean()) if works.any() else float("nan")})
    return rows


def text_only_purity(cfg: StudyConfig, dataset: str, task: str = "generation", delta=0.5,
                     score: bool = False) -> list[dict]:
    """The encoder's own ceiling for Fig. 7: every (concept, anchor) word of the grid trained with no image and no
    model downstream, only to bring its end-of-text state at the last layer of `task`'s text encoder onto its
    concept's name's (cosine; the name: the concept's own anchor word in the same prompt), within its anchor's
    δ-ball, with the profile's steps and lr; then the probe's measures of those words, layer by layer. High
    last-layer purity here beside low purity of the trained words (`working_word_purity`) says that the model
    reading the encoder, not the encoder, keeps its words off their names' states. Nothing is stored.
    [{"layer", "words", "purity_concept", "purity_anchor", "near_name", "cosine"}] ("cosine": the words' mean
    cosine with their name's state at the last layer, repeated on every row). `score`: also score the words in
    `task`'s model, as the study scores its trained words ("score": their mean headline metric; "score_unrelated":
    over the anchors that are not their concept's own): do words on their names' states do the task?

    Usage: rows = text_only_purity(cfg, "mini-objects", "generation", 0.5, score=True)"""
    models = {}
    text = TextSide(model(models, cfg.profile, task, cfg.device))
    flat = [t for r in grid_trials(cfg, dataset, task, delta) for t in r]
    names = list(dict.fromkeys(t.concept for t in flat))
    own = [Trial(cfg.profile, task, dataset, c, own_anchor(dataset, c), math.inf) for c in names]

    def scores(words: torch.Tensor) -> dict:
        built = build_task(cfg.profile, task, dataset, models, device=cfg.device)
        values = torch.tensor([float(m[HEADLINE[task][0]]) for m in built.evaluate(words, make_batch(built, flat))])
        unrelated = torch.tensor([t.anchor != own_anchor(dataset, t.concept) for t in flat])
        return {"score": float(values.mean()), "score_unrelated": float(values[unrelated].mean())}

    return layer_ceiling(text, PROMPTS[task], [t.anchor for t in flat], [names.index(t.concept) for t in flat],
                         [t.anchor for t in own], parse_delta(delta), *DEFAULTS[cfg.profile][task],
                         score=scores if score else None)


def imported_layer_neighbours(cfg: StudyConfig, dataset: str, task: str = "generation", delta=0.5,
                              k: int = 5) -> list[dict]:
    """Where the imported words of `dataset` (`vw import-word`) sit among the in-domain (concept, anchor) grid
    words of `task`'s text encoder, layer by layer: the concepts of each one's k nearest grid words (Euclidean, as
    the purity of Fig. 7). A word imported into another model is first mapped into `task`'s by the store's
    transfer map. Returns [{"word", "trained_for", "concept", "layer", "nearest", "agree"}] ("nearest": the most
    common concept among the k; "agree": the share of the k that are its own concept, None when its concept is not
    among the grid's); [] without imported words.

    Usage: rows = imported_layer_neighbours(cfg, "mini-objects", "generation")"""
    store, models = ResultStore(cfg.out), {}
    imported = store.imported(cfg.profile, dataset)
    if not imported:
        return []
    text = TextSide(model(models, cfg.profile, task, cfg.device))
    grid = [t for r in grid_trials(cfg, dataset, task, delta) for t in r]
    grid_acts = _activations(text, grid, _words_in(cfg, grid, task, models, store), task)
    maps = None
    rows = []
    for name, trial in imported:
        word = store.load_words([trial])
        if trial.task != task:
            maps = maps or stored_maps(cfg.profile, models, store, cfg.transfer_method, cfg.device)
            word = maps[(trial.task, task)](word)
        for layer, x in _activations(text, [trial], word, task).items():
            near = torch.cdist(x.double(), grid_acts[layer].double())[0].topk(min(k, len(grid)), largest=False)
            concepts = [grid[i].concept for i in near.indices.tolist()]
            probed = trial.concept in {t.concept for t in grid}  # else no grid word can agree with it
            rows.append({"word": name, "trained_for": trial.task, "concept": trial.concept, "layer": layer,
                         "nearest": max(set(concepts), key=lambda c: (concepts.count(c), c == trial.concept)),
                         "agree": concepts.count(trial.concept) / len(concepts) if probed else None})
    return rows

