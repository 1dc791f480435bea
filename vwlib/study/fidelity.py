"""Does the mini world reproduce the paper? `vw fidelity` measures the paper's three findings on the fidelity grid,
each number with its 95% bootstrap CI, its n, its threshold and whether it passed.

The findings and their checks (the thresholds are those of the fidelity issue):
1. control: unconstrained in-domain words work: every cell >= 0.9 x the concept names' own score ("name control"),
   its CI above the floor's; on mini-objects and mini-instances also classification >= 0.85, generation >= 0.85,
   detection mAP >= 0.50.
2. δ curve: words from unrelated anchors are near the floor at δ = 0.1; every cell reaches 0.75 of its δ = ∞ value by
   δ = 0.5.
3. transfer fails by the paper's mechanism: the lstsq maps carry the vocabulary (each world word, left out of the
   fit, maps back onto itself; held-out R² >= 0.70), so transferred words at δ <= 0.5 read back as their anchor and
   score near the floor (own-name anchors aside). The δ = ∞ matrix and a δ = 0 control are reported beside it.
4. floor: a null word (a random known row, never trained) scores <= 0.25 in the classifier.
5. layers: the generator's end-of-text token groups by anchor at layer 1 and by concept at the last layer, in-domain
   only (5-NN purity, mini-objects, δ = 0.5); every mini text encoder has >= 6 blocks.

Definitions: the **floor** of an evaluator is the mean score of null words in it, per dataset; the **name control**
is the score of the concept's own name in the same evaluator. What the store lacks is computed and kept in it
(trials, transfers, and `records/`), so a second call only reads.

Usage:
    report = fidelity(FIDELITY_GRID.out)                 # {"checks": [...], "passed": n, "failed": n, ...}
    vw fidelity --out runs/fidelity --json
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from ..data.datasets import MINI_DATASETS, own_anchor
from ..mini.vocab import world_words
from ..models.accel import resolve_device
from ..models.probes import evenly_spaced_layers, knn_shares, pooled_activations
from ..models.profiles import evaluator_fingerprint, fingerprint
from ..models.text import TextSide
from ..models.tokenizer import single_token_id
from ..roles import TASKS
from ..runner import build_task, load_models, run_trials, stored_maps, transfer_all
from ..stats import HEADLINE, PAPER_ANALOGUE, bootstrap_ci, headline, paper_reference
from ..store import ResultStore
from ..tasks import PROMPTS, make_batch
from ..transfer import shared_ids
from ..trials import Trial
from .config import StudyConfig

# The fidelity grid: every concept x every anchor of each mini dataset at three δ (100 words per cell).
FIDELITY_GRID = StudyConfig(profile="mini", datasets=MINI_DATASETS, tasks=TASKS, deltas=(0.1, 0.5, "inf"),
                            concepts=10, anchors="grid", out="runs/fidelity")
NULLS_PER_CONCEPT = 10  # null words per concept: 100 per (dataset, evaluator), as many as a cell has words
NAMES_PER_CONCEPT = 10  # name-control samples per concept (generation: 10 seeds; the others are deterministic)
PROBE_DATASET, PROBE_DELTA = "mini-objects", 0.5  # the layer check of paper Fig. 7
ABSOLUTE_BARS = {"classification": 0.85, "generation": 0.85, "detection": 0.50}  # on objects and instances


# --------------------------------------------------------------------------------------------------------------
# Measurements the trial table does not hold: floors, name controls, vocabulary round trips, layer probes
# --------------------------------------------------------------------------------------------------------------

def _metric(task_name: str, metrics: list[dict]) -> list[float]:
    return [float(m[HEADLINE[task_name][0]]) for m in metrics]


@torch.no_grad()
def null_scores(task, concepts: list[str], anchors: list[str], profile: str, per_concept: int = NULLS_PER_CONCEPT,
                seed: int = 0) -> list[float]:
    """Scores of null words (random known rows of the model, never trained) put in place of each concept's anchor."""
    known = task.text.known_ids()
    g = torch.Generator().manual_seed(seed)
    trials = [Trial(profile, task.name, task.ds.name, c, a, seed=k) for c, a in zip(concepts, anchors)
              for k in range(per_concept)]
    rows = known[torch.randint(len(known), (len(trials),), generator=g)]
    words = task.text.embedding.weight.detach()[rows.to(task.text.embedding.weight.device)].float()
    return _metric(task.name, task.evaluate(words, make_batch(task, trials)))


@torch.no_grad()
def name_scores(task, concepts: list[str], anchors: list[str], profile: str,
                per_concept: int = NAMES_PER_CONCEPT) -> list[float]:
    """Scores of each concept's own name, written out in the task's prompt, in the same evaluator."""
    repeats = per_concept if task.name == "generation" else 1  # only generation is random (its noise seeds)
    trials = [Trial(profile, task.name, task.ds.name, c, a, seed=k) for c, a in zip(concepts, anchors)
              for k in range(repeats)]
    batch = make_batch(task, trials)
    prompts = [PROMPTS[task.name].format(task.ds.display_name(t.concept)) for t in trials]
    output = task.text.encode(task.text.ids(prompts))
    return _metric(task.name, task.evaluate_from(output, batch))


def vocabulary_round_trips(src_text, dst_text, words: list[str]) -> list[bool]:
    """For each word (a known row of both models): fit the lstsq map on every other shared row, map the word, and
    ask whether its nearest known row of the target (of all of them) is the word itself."""
    ids = shared_ids(src_text, dst_text)
    Y = src_text.embedding.weight.detach()[ids].double().cpu()
    X = dst_text.embedding.weight.detach()[ids].double().cpu()
    target = dst_text.embedding.weight.detach()[dst_text.known_ids()].double().cpu()
    known = dst_text.known_ids().tolist()
    gram, cross = Y.T @ Y, Y.T @ X  # leave-one-out by downdating the normal equations (the lstsq solution)
    position = {int(i): k for k, i in enumerate(ids)}
    hits = []
    for word in words:
        wid = single_token_id(src_text.loaded.tokenizer, word)
        y, x = Y[position[wid]], X[position[wid]]
        W = torch.linalg.solve(gram - torch.outer(y, y), cross - torch.outer(y, x))
        nearest = int((target - y @ W).norm(dim=1).argmin())
        hits.append(known[nearest] == wid)
    return hits


# --------------------------------------------------------------------------------------------------------------
# Collecting everything into the store
# --------------------------------------------------------------------------------------------------------------

def _stamp(cfg: StudyConfig, dataset: str | None = None, tasks: tuple | None = None) -> dict:
    """What a record depends on: the models' weights and evaluators, and the part of the grid it was measured on
    (`dataset`, `tasks`: one dataset's cell, or one source's; None: not on the grid at all) — so that notebooks
    judging one dataset and `vw fidelity` judging three share their records. JSON-normal: a stamp read back from
    disk compares equal."""
    models = {t: evaluator_fingerprint(cfg.profile, t) for t in TASKS}
    models |= {f"{t}-weights": fingerprint(cfg.profile, t) for t in TASKS}
    grid = None
    if dataset is not None:
        grid = {"dataset": dataset, "tasks": tasks, "concepts": cfg.concepts, "anchors": cfg.anchors,
                "deltas": cfg.deltas, "transfer_method": cfg.transfer_method, "task_kwargs": cfg.task_kwargs,
                "steps": cfg.steps, "lr": cfg.lr}
    return json.loads(json.dumps({"models": models, "grid": grid, "records": RECORDS_VERSION}, default=str))


RECORDS_VERSION = 4  # 2: the δ = 0 control records which anchors are the concepts' own; 3: one record per cell; 4: the
# classifier's δ = 0 control untied (ClassificationTask.evaluate_from)


def _cached(store: ResultStore, name: str, stamp: dict, compute):
    record = store.read_record(name)
    if record is None or record.get("stamp") != stamp:
        record = {"stamp": stamp, "values": compute()}
        store.write_record(name, record)
    return record["values"]


def measure(cfg: StudyConfig = FIDELITY_GRID, progress: bool = True, device: str | None = None) -> dict:
    """Train and transfer what the store lacks of `cfg`'s grid, and compute (or read) every derived measurement of
    its datasets and of the tasks its words are trained for (`cfg.tasks`; their words are scored in all three).
    Returns {"table": the store table of the grid's trials, "floors", "names", "vocabulary", "layers", "blocks",
    "delta0", "seconds"} (see `report` for how they are judged). Each record is kept per (dataset, task), so a
    second call, or a call on fewer datasets or tasks, only reads."""
    t0 = time.time()
    device = resolve_device(device or cfg.device)
    store = ResultStore(cfg.out)
    models = load_models(cfg.profile, device)
    trials = cfg.trials()
    run_trials(trials, store, device=device, progress=progress, models=models, task_kwargs=cfg.task_kwargs)
    transfer_all(cfg.profile, models, store, cfg.transfer_method, cfg.task_kwargs, ("input",), trials)
    out = {"floors": {}, "names": {}, "delta0": {}, "layers": {}}
    # built only when a record is missing: building a task computes its frozen image side, the costly part
    tasks = functools.cache(functools.partial(build_task, cfg.profile, models=models, task_kwargs=cfg.task_kwargs,
                                              device=device))
    texts = {t: TextSide(models[t]) for t in TASKS}
    words = [w for w in world_words() if all(_known(texts[t], w) for t in TASKS)]
    # the maps transfer_all fitted and stored: the vocabulary is judged on the paper's lstsq ones
    maps = stored_maps(cfg.profile, models, store, cfg.transfer_method, device)
    lstsq = maps if cfg.transfer_method == "lstsq" else stored_maps(cfg.profile, models, store, "lstsq", device)
    out["vocabulary"] = _cached(store, "vocabulary", _stamp(cfg), lambda: _vocabulary(lstsq, texts, words))
    for dataset in cfg.datasets:
        concepts = cfg.concepts_of(dataset)
        own = [own_anchor(dataset, c) for c in concepts]
        for task_name in cfg.tasks:
            key, stamp = f"{dataset}/{task_name}", _stamp(cfg, dataset, (task_name,))
            out["floors"][key] = _cached(store, f"floor-{dataset}-{task_name}", stamp,
                                         lambda: null_scores(tasks(task_name, dataset), concepts, own, cfg.profile))
            out["names"][key] = _cached(store, f"name-{dataset}-{task_name}", stamp,
                                        lambda: name_scores(tasks(task_name, dataset), concepts, own, cfg.profile))
            out["delta0"] |= _cached(store, f"delta0-{dataset}-{task_name}", stamp,
                                     lambda: _delta0(cfg, tasks, texts, maps, dataset, task_name))
            out["layers"] |= _cached(store, f"layers-{dataset}-{task_name}", stamp,
                                     lambda: _layers(cfg, store, texts, maps, dataset, task_name))
    out["blocks"] = {t: texts[t].num_layers for t in TASKS} | {"scorer": TextSide(models["scorer"]).num_layers}
    out["table"] = store.table(trials)
    out["seconds"] = round(time.time() - t0, 1)
    return out


def _known(text, word: str) -> bool:
    try:
        wid = single_token_id(text.loaded.tokenizer, word)
    except Exception:
        return False
    return bool((text.known_ids() == wid).any())


def _vocabulary(maps: dict, texts: dict, words: list[str]) -> dict:
    out = {}
    for src in TASKS:
        for dst in TASKS:
            if src != dst:
                tmap = maps[(src, dst)]
                hits = vocabulary_round_trips(texts[src], texts[dst], words)
                out[f"{src}->{dst}"] = {"r2": tmap.quality["r2"], "n_test": tmap.quality["n_test"],
                                        "words": words, "self_nearest": [bool(h) for h in hits]}
    return out


@torch.no_grad()
def _delta0(cfg: StudyConfig, tasks: Callable, texts: dict, maps: dict, dataset: str, src: str) -> dict:
    """The δ = 0 control of `src` words on `dataset`: each grid trial's anchor row itself (no training), mapped into
    each other model and scored there; and in its own model (the anchor word as it is). {"<dataset>/<src>-><dst>":
    {"scores": [T], "own": [T] (whether the trial's anchor is its concept's own)}}."""
    out = {}
    trials = replace(cfg, datasets=(dataset,), tasks=(src,), deltas=("inf",)).trials()
    ids = torch.tensor([single_token_id(texts[src].loaded.tokenizer, t.anchor) for t in trials])
    rows = texts[src].embedding.weight.detach()[ids].float()
    for dst in TASKS:
        task = tasks(dst, dataset)
        words = rows if dst == src else maps[(src, dst)](rows)
        batch = make_batch(task, [replace(t, task=dst) for t in trials])
        out[f"{dataset}/{src}->{dst}"] = {"scores": _metric(dst, task.evaluate(words, batch)),
                                           "own": [t.anchor == own_anchor(dataset, t.concept) for t in trials]}
    return out


def _layers(cfg: StudyConfig, store: ResultStore, texts: dict, maps: dict, dataset: str, source: str) -> dict:
    """5-NN purity shares of the generator's end-of-text activations at evenly spaced layers, by concept and by
    anchor, for `source` words of `dataset` at δ = 0.5 (generation: in-domain; the others mapped in).
    {"<dataset>/<source>": {layer: {"concept": [T], "anchor": [T]}}}, or {} with too few words."""
    target = texts["generation"]
    layers = evenly_spaced_layers(target.num_layers)
    grid = replace(cfg, datasets=(dataset,), tasks=(source,), deltas=(PROBE_DELTA,)).trials()
    grid = [t for t in grid if store.done(t) and store.status(t) == "ok"]
    if len(grid) < 4:  # too few points for a neighbourhood
        return {}
    words = store.load_words(grid)
    if source != "generation":
        words = maps[(source, "generation")](words)
    anchor_ids = torch.tensor([single_token_id(target.loaded.tokenizer, t.anchor) for t in grid])
    ids = target.ids([PROMPTS["generation"].format(t.anchor) for t in grid])
    acts = pooled_activations(target, ids, anchor_ids, words, layers)
    concepts = pd.factorize(pd.Series([t.concept for t in grid]))[0]
    anchors = pd.factorize(pd.Series([t.anchor for t in grid]))[0]
    return {f"{dataset}/{source}": {str(k): {"concept": knn_shares(x, concepts).tolist(),
                                             "anchor": knn_shares(x, anchors).tolist()} for k, x in acts.items()}}


# --------------------------------------------------------------------------------------------------------------
# The report: pure arithmetic on the measurements (tested on a synthetic store)
# --------------------------------------------------------------------------------------------------------------

def _check(name: str, values, threshold: float | None, op: str = ">=", value: float | None = None,
           note: str = "") -> dict:
    """One reported number: the mean of `values` (or `value`) with its 95% bootstrap CI and n, its threshold, and
    whether the point estimate meets it (op ">=", "<=" or ">": the value's CI low above the threshold)."""
    values = [float(v) for v in values]
    mean, lo, hi = bootstrap_ci(values) if values else (math.nan,) * 3
    point = mean if value is None else float(value)
    passed = None
    if threshold is not None and not math.isnan(point):
        passed = bool(point >= threshold if op == ">=" else point <= threshold if op == "<=" else point > threshold)
    return {"check": name, "value": point, "ci_low": lo, "ci_high": hi, "n": len(values),
            "threshold": threshold, "op": op, "passed": passed, "note": note}


def report(measured: dict) -> dict:
    """Judge the measurements: {"checks": [one dict per number], "passed": n, "failed": n, "info": n,
    "matrix": the δ = ∞ 3 x 3 table beside the paper's}. Only `measured`'s values are read."""
    scores = headline(measured["table"])
    floors, names = measured["floors"], measured["names"]
    inside = scores[scores.in_domain]
    own = _is_own(inside)
    delta0 = measured.get("delta0", {})
    checks = (_control_and_delta_checks(inside, own, floors, names, delta0) + _transfer_checks(measured, scores)
              + _layer_checks(measured))
    passed = sum(c["passed"] is True for c in checks)
    failed = sum(c["passed"] is False for c in checks)
    return {"checks": checks, "passed": passed, "failed": failed, "info": len(checks) - passed - failed,
            "matrix": transfer_matrix_vs_paper(scores), "curves": _curves(inside, own),
            "floors": {k: float(np.mean(v)) for k, v in floors.items()},
            "names": {k: float(np.mean(v)) for k, v in names.items() if v}, "seconds": measured.get("seconds")}


def _unrelated_control(delta0: dict, key: str) -> float:
    """Mean score of the δ = 0 control (the anchor word itself, mapped when `key` crosses models) over unrelated
    anchors: what an unrelated word scores before it learns anything (nan when not measured)."""
    record = delta0.get(key)
    scores = [s for s, own in zip(record["scores"], record["own"]) if not own] if record else []
    return float(np.mean(scores)) if scores else math.nan


def _control_and_delta_checks(inside: pd.DataFrame, own: pd.Series, floors: dict, names: dict,
                              delta0: dict) -> list[dict]:
    """1. control (δ = ∞ words against the name control, the floor and the absolute bars), 2. the δ curve, and 4.
    the classifier's floor, per (dataset, task)."""
    checks = []
    for key in sorted(floors):
        dataset, task = key.split("/")
        floor = floors[key]
        floor_mean, _, floor_hi = bootstrap_ci(floor)
        cell = inside[(inside.dataset == dataset) & (inside.evaluated_on == task)]
        free = cell[np.isinf(cell.delta)].score.tolist()
        name_mean = float(np.mean(names[key])) if names.get(key) else math.nan
        checks.append(_check(f"floor/{dataset}/{task}", floor, None, note="null words: random known rows"))
        checks.append(_check(f"name/{dataset}/{task}", names.get(key, []), None, note="the concept's own name"))
        checks.append(_check(f"control/{dataset}/{task}/vs_name", free, 0.9 * name_mean, ">=",
                             note="in-domain δ=∞ >= 0.9 x name control"))
        lo = bootstrap_ci(free)[1] if free else math.nan
        checks.append(_check(f"control/{dataset}/{task}/above_floor", free, floor_hi, ">", value=lo,
                             note="value: the cell's CI low; threshold: the floor's CI high"))
        if dataset in ("mini-objects", "mini-instances"):
            checks.append(_check(f"control/{dataset}/{task}/absolute", free, ABSOLUTE_BARS[task], ">="))
        unrelated = cell[(cell.delta == 0.1) & ~own.loc[cell.index]].score.tolist()
        # The paper's own comparison: a word that barely moved scores what its anchor word scores (in a 10-way vote
        # that holds the concept's name, an unrelated concept name as anchor already scores above the null floor)
        checks.append(_check(f"delta/{dataset}/{task}/unrelated_at_0.1", unrelated,
                             _unrelated_control(delta0, f"{dataset}/{task}->{task}") + 0.10, "<=",
                             note="unrelated anchors at δ=0.1 <= the anchor word itself (δ=0) + 0.10"))
        half = cell[cell.delta == 0.5].score.tolist()
        free_mean = float(np.mean(free)) if free else math.nan
        checks.append(_check(f"delta/{dataset}/{task}/saturation_at_0.5", half, 0.75 * free_mean, ">=",
                             note="δ=0.5 >= 0.75 x δ=∞"))
        if task == "classification":
            checks.append(_check(f"floor/{dataset}/classification/at_most_0.25", floor, 0.25, "<="))
    return checks


def _transfer_checks(measured: dict, scores: pd.DataFrame) -> list[dict]:
    """3. transfer by the paper's mechanism: the maps' vocabulary, the anchor read-back, and the transferred scores
    against the δ = 0 control, the anchor word itself mapped (with δ = ∞ and the control reported beside them)."""
    table, checks = measured["table"], []
    for pair, v in sorted(measured["vocabulary"].items()):
        checks.append(_check(f"vocabulary/{pair}/self_nearest", [float(h) for h in v["self_nearest"]], 0.90, ">=",
                             note="world words left out of the fit map back onto themselves"))
        checks.append(_check(f"vocabulary/{pair}/r2", [], 0.70, ">=", value=v["r2"],
                             note=f"held-out R² on {v['n_test']} other known rows"))
    cross = table[(table.evaluated_on != table.task) & table.evaluated_on.notna() & (table.get("status") == "ok")]
    cross = cross.assign(delta=cross["delta"].map(lambda d: math.inf if str(d) == "inf" else float(d)))
    small = cross[cross.delta <= 0.5]
    checks.append(_check("transfer/readback_anchor", small["nearest_is_anchor"].astype(float).tolist(), 0.80, ">=",
                         note="transferred words at δ<=0.5 whose nearest target word is their anchor"))
    tscores = scores[~scores.in_domain]
    for (dataset, src, dst), g in tscores.groupby(["dataset", "trained_for", "evaluated_on"]):
        unrelated = g[(g.delta <= 0.5) & ~_is_own(g)].score.tolist()
        control = _unrelated_control(measured.get("delta0", {}), f"{dataset}/{src}->{dst}")
        checks.append(_check(f"transfer/{dataset}/{src}->{dst}/unrelated_at_most_0.5", unrelated, control + 0.10,
                             "<=", note="transferred, unrelated anchors, δ<=0.5: <= the anchor word itself, mapped "
                                        "(δ=0), + 0.10"))
        checks.append(_check(f"transfer/{dataset}/{src}->{dst}/delta_inf", g[np.isinf(g.delta)].score.tolist(), None))
        zero = measured.get("delta0", {}).get(f"{dataset}/{src}->{dst}", {}).get("scores", [])
        checks.append(_check(f"transfer/{dataset}/{src}->{dst}/delta_0", zero, None,
                             note="the anchor's own row, mapped and scored"))
    return checks


def _layer_checks(measured: dict) -> list[dict]:
    """5. layers: blocks per text encoder, and the generator's end-of-text purity by concept and anchor per layer."""
    checks = []
    for model, n in sorted(measured["blocks"].items()):
        checks.append(_check(f"layers/{model}/blocks", [], 6, ">=", value=n))
    for key, per_layer in sorted(measured["layers"].items()):
        dataset, source = key.split("/")
        ks = sorted(per_layer, key=int)
        first, last = per_layer[ks[0]], per_layer[ks[-1]]
        judged = dataset == PROBE_DATASET
        for k in ks:
            for by in ("concept", "anchor"):
                checks.append(_check(f"layers/{dataset}/{source}/layer{k}/{by}", per_layer[k][by], None))
        if source == "generation":
            gain = np.array(last["concept"]) - np.array(first["concept"])
            checks.append(_check(f"layers/{dataset}/in_domain/last_by_concept", last["concept"],
                                 0.50 if judged else None, ">="))
            checks.append(_check(f"layers/{dataset}/in_domain/gain_by_concept", gain.tolist(),
                                 0.30 if judged else None, ">=", note="last layer minus layer 1"))
            checks.append(_check(f"layers/{dataset}/in_domain/first_by_anchor", first["anchor"],
                                 0.50 if judged else None, ">="))
        else:
            checks.append(_check(f"layers/{dataset}/{source}->generation/last_by_concept", last["concept"],
                                 0.30 if judged and source == "classification" else None, "<="))
    return checks


def _curves(inside: pd.DataFrame, own: pd.Series) -> list[dict]:
    """In-domain mean and 95% CI per (dataset, task, δ), over all words and over unrelated anchors only."""
    rows = []
    for (dataset, task, delta), g in inside.groupby(["dataset", "evaluated_on", "delta"]):
        for words, sel in (("all", g), ("unrelated", g[~own.loc[g.index]])):
            mean, lo, hi = bootstrap_ci(sel.score)
            rows.append({"dataset": dataset, "task": task, "delta": float(delta), "words": words, "mean": mean,
                         "ci_low": lo, "ci_high": hi, "n": len(sel)})
    return rows


def transfer_matrix_vs_paper(scores: pd.DataFrame) -> list[dict]:
    """δ = ∞ means of the 3 x 3 (trained for x evaluated on) matrix per dataset, beside the paper's analogue."""
    ref = paper_reference("fig3_unconstrained")
    rows = []
    free = scores[np.isinf(scores.delta)]
    for (dataset, src, dst), g in free.groupby(["dataset", "trained_for", "evaluated_on"]):
        paper = ref[(ref.dataset == PAPER_ANALOGUE.get(dataset)) & (ref.trained_for == src)
                    & (ref.metric_model_task == dst)]
        mean, lo, hi = bootstrap_ci(g.score)
        rows.append({"dataset": dataset, "trained_for": src, "evaluated_on": dst, "mean": mean, "ci_low": lo,
                     "ci_high": hi, "n": len(g), "paper": float(paper["mean"].iloc[0]) if len(paper) else math.nan})
    return rows


def _is_own(frame: pd.DataFrame) -> pd.Series:
    return pd.Series([a == own_anchor(d, c) for d, c, a in zip(frame.dataset, frame.concept, frame.anchor)],
                     index=frame.index, dtype=bool)


def fidelity(out: str = FIDELITY_GRID.out, profile: str = "mini", concepts: int = 10, progress: bool = True,
             device: str = "auto", datasets: tuple = MINI_DATASETS, tasks: tuple = TASKS, steps: int = 0) -> dict:
    """Measure (what the store lacks) and report the fidelity grid (`concepts` x `concepts` per dataset, words
    trained for `tasks`, each `steps` optimizer steps; 0: the profile's budget) in result store `out`.

    Usage: fidelity("runs/fidelity-1000", tasks=("generation",), steps=1000)  # the paper's generation budget
    """
    cfg = replace(FIDELITY_GRID, out=str(out), profile=profile, concepts=concepts, datasets=tuple(datasets),
                  tasks=tuple(tasks), steps=steps)
    budget = f"{steps} steps a word" if steps else "the profile's steps"
    grid = f"{concepts} × {concepts} concept × anchor grid of each dataset, δ = 0.1, 0.5, ∞, {budget}"
    return report(measure(cfg, progress=progress, device=device)) | {"grid": grid, "steps": steps}
