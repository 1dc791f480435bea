"""The runner: train, score and store trials, and score stored words after transfer. The only module that brings
the engine, ConES, the transfer maps and the result store together; the CLI, studies and sweeps call it.

Usage:
    run_trials(trials, store)                         # train what is missing, score in-domain, write atomically
    transfer_all("mini", models, store, trials=trials)   # fit the 6 maps, score each word in the other models
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from pathlib import Path

import torch

from .cones import OutputSpace, train_output_words
from .data.datasets import is_folder_dataset, load_dataset
from .engine import nearest_word_distance, train_words
from .errors import VWError
from .export import read_textual_inversion
from .models.accel import accelerate, resolve_device
from .models.profiles import evaluator_fingerprint, fingerprint, get_spec, load_model
from .models.text import TextSide
from .models.tokenizer import single_token_id
from .roles import ROLES, TASKS
from .tasks import DEFAULTS, TrialBatch, make_batch, make_task, task_kwargs_for
from .transfer import TransferMap, fit_all, fit_all_output, load_maps, map_end, nearest_typable_word, nearest_words
from .trials import IMPORTED, Trial


def model(models: dict, profile: str, role: str, device: str = "cpu"):
    """models[role], loaded into `models` first when missing. models: {role: Loaded}, all of one profile (the one
    shape every function of the runner and the study takes)."""
    if role not in models:
        models[role] = load_model(profile, role, device=device)
    return models[role]


def load_models(profile: str, device: str = "cpu", roles=ROLES) -> dict:
    """{role: Loaded} for the roles of `profile` (all four by default)."""
    return {role: load_model(profile, role, device=device) for role in roles}


def build_task(profile: str, task_name: str, dataset: str, models: dict, task_kwargs: dict | None = None,
               device: str = "cpu", scorer: bool = True, seed: int = 0):
    """The one place a study builds a task: the profile's options for it (with `task_kwargs` overrides), its dataset,
    and, for generation, the profile's scorer (`scorer=False`: a generator that only draws, and loads no scorer).
    Models missing from `models` ({role: Loaded}) are loaded into it.

    `seed` is the trials' seed, and it draws the dataset's images: a mini dataset generates its 8 training and its
    held-out images per concept from it, a paper dataset draws them from its local copy without replacement (seed
    0: the study's default split). So the seeds of a trial differ in what the word is trained and scored on, as the
    paper's repeats do. A folder of your own keeps its one split (its rule in vwlib.data.datasets) at every seed.

    A task is built once per loaded model, dataset and options, and kept on the model (`Loaded.meta["tasks"]`):
    building computes the frozen image side (features, OWL proposals, VAE latents), the costly part, and every
    later caller (training groups, transfers, figures, the fidelity checks) reuses it. A folder of your own is read
    again at every call, so that images added to it are seen.

    Usage: clf = build_task("mini", "classification", "mini-objects", load_models("mini"))"""
    kwargs = task_kwargs_for(profile, task_name, task_kwargs)
    if task_name == "generation" and "scorer" not in kwargs:
        kwargs["scorer"] = model(models, profile, "scorer", device) if scorer else None
    loaded = model(models, profile, task_name, device)
    if is_folder_dataset(dataset):
        return make_task(task_name, loaded, load_dataset(dataset), **kwargs)
    # options by value; a model (the scorer) or any other object by identity
    key = (task_name, dataset, seed, tuple(sorted((k, v if isinstance(v, (bool, int, float, str, type(None))) else
                                                   id(v)) for k, v in kwargs.items())))
    built = loaded.meta.setdefault("tasks", {})
    if key not in built:
        built[key] = make_task(task_name, loaded, load_dataset(dataset, seed=seed), **kwargs)
    return built[key]


def stored_maps(profile: str, models: dict, store, method: str = "lstsq", device: str = "cpu"
                ) -> dict[tuple[str, str], TransferMap]:
    """The 6 token-table maps of `profile` from `store`, fitted (on `models`, loaded into it when missing) and saved
    there first when the store has none or they were fitted on other weights: every transferred word of a study goes
    through these maps."""
    maps = load_maps(store, profile, method)
    current = all((m.source, m.target) == (map_end(profile, s), map_end(profile, d)) for (s, d), m in maps.items())
    if len(maps) < len(TASKS) * (len(TASKS) - 1) or not current:  # missing, or fitted on earlier weights
        for role in TASKS:
            model(models, profile, role, device)
        maps = fit_all(profile, models, method, store=store)
    return maps


def score(task, words: torch.Tensor, batch: TrialBatch, space: str, scored_by: str) -> list[dict]:
    """In-domain metrics of trained words (input space: plus the nearest vocabulary word), each stamped with
    `scored_by`, the fingerprint of the weights that scored it."""
    device = task.text.embedding.weight.device
    if space == "output":
        metrics = task.evaluate_from(OutputSpace(task, batch).compose(words.to(device)), batch)
    else:
        metrics = task.evaluate(words.to(device), batch)
        nearest = nearest_words(task.text, words, k=1)  # the word each new word is closest to, in its own model
        metrics = [m | {"nearest_word": n[0][0], "nearest_is_anchor": n[0][0] == a}
                   for m, n, a in zip(metrics, nearest, batch.anchors)]
    return [m | {"evaluator_fingerprint": scored_by} for m in metrics]


def validate(trials: list[Trial], models: dict) -> None:
    """Fail before anything is written: unknown dataset/concept, anchors that are not one token, bad δ."""
    for t in trials:
        ds = load_dataset(t.dataset)
        ds.concept_index(t.concept)
        for loaded in models.values():
            single_token_id(loaded.tokenizer, t.anchor)


CURVE_POINTS = 40  # points of each trial's stored training curve (loss and distance from the anchor)


def group_trials(trials: list[Trial], max_size: int | dict[str, int] = 0) -> list[tuple[tuple, list[Trial]]]:
    """Trials that can share one batched forward pass: same (profile, task, dataset, seed, steps, lr, space) (the
    seed draws the dataset's images: `build_task`), at most `max_size` per group (0: no limit; a mapping: per task),
    in first-seen order. Returns [((profile, task, dataset, seed, steps, lr, space), [Trial])]."""
    groups: dict[tuple, list[Trial]] = defaultdict(list)
    for t in trials:
        steps, lr = DEFAULTS[t.profile][t.task]
        groups[(t.profile, t.task, t.dataset, t.seed, t.steps or steps, t.lr or lr, t.space)].append(t)
    out = []
    for key, group in groups.items():
        size = (max_size.get(key[1], 0) if isinstance(max_size, dict) else max_size) or len(group)
        out += [(key, group[i:i + size]) for i in range(0, len(group), size)]
    return out


def run_trials(trials: list[Trial], store, device: str = "cpu", progress: bool = True,
               models: dict | None = None, task_kwargs: dict | None = None, max_size: int | dict[str, int] = 0,
               compile: bool = False) -> list:
    """Train every trial not yet in `store`, evaluate each in-domain, write each atomically. Returns trial dirs.

    models: {role: Loaded} of the trials' one profile, to reuse loaded models (missing ones are loaded into it);
    task_kwargs: {task: {option: value}} overrides; max_size: at most this many trials per batched forward pass
    (0: all trials of a group at once); compile: torch.compile the dominant frozen module (worth it for long GPU sweeps only).
    """
    todo = [t for t in trials if not store.done(t)]
    # Finished words whose in-domain score came from other weights (generation: a retrained scorer) are re-scored,
    # not retrained: a trial's key holds only the weights its training depends on.
    stale = [t for t in trials if store.done(t) and store.evaluated_by(t, t.task) not in
             (None, evaluator_fingerprint(t.profile, t.task))]
    if not todo and not stale:
        return [store.path(t) for t in trials]
    profiles = sorted({t.profile for t in todo + stale})
    if len(profiles) > 1:
        raise VWError(f"run_trials takes the trials of one profile, got {', '.join(profiles)}: run each profile's "
                      f"trials in a call of its own")
    device = resolve_device(device)
    models = models if models is not None else {}
    for t in todo + stale:
        model(models, t.profile, t.task, device)  # task names are roles
    validate(todo, models)
    for loaded in models.values():
        if "accelerated" not in loaded.meta and (compile or str(device).startswith("cuda")):
            accelerate(loaded, compile=compile)
    for (profile, task_name, dataset, seed, steps, lr, space), group in group_trials(todo, max_size):
        task = build_task(profile, task_name, dataset, models, task_kwargs, device, seed=seed)
        batch = make_batch(task, group)
        log_every = max(1, steps // CURVE_POINTS)
        if space == "output":  # ConES: the parameter stands in for the text encoder's output
            words, info = train_output_words(task, batch, steps, lr, log_every=log_every)
            start = info["space"].init()
        else:
            words, info = train_words(task, batch, [t.delta for t in group], steps, lr, log_every=log_every,
                                      progress=progress)
            start = task.text.embedding.weight.detach()[batch.anchor_ids.to(words.device)].float()
        metrics = score(task, words, batch, space, evaluator_fingerprint(profile, task_name))
        spec = get_spec(profile, task_name)
        for row, trial in enumerate(group):
            meta = {"model_id": spec.source, "model_fingerprint": fingerprint(profile, task_name),
                    "anchor_id": int(batch.anchor_ids[row]), "steps_run": steps, "lr_run": lr, "space": space,
                    "radius": info.get("radii", [math.inf] * len(group))[row], "final_loss": info["final_loss"][row],
                    "distance_to_anchor": float((words[row] - start[row]).norm())}
            log = info["log"]
            curve = {"step": [e["step"] for e in log], "loss": [e["loss"][row] for e in log],
                     "distance": [e["distance"][row] for e in log], "d_nn": info.get("d_nn", [None] * len(group))[row]}
            if row in info["failed"]:
                store.write(trial, None, {**meta, "status": "failed", "reason": info["failed"][row]}, {}, curve)
            else:
                store.write(trial, words[row:row + 1], {**meta, "status": "ok"}, {task_name: metrics[row]}, curve)
    for (profile, task_name, dataset, seed, _, _, space), group in group_trials(stale, max_size):
        task = build_task(profile, task_name, dataset, models, task_kwargs, device, seed=seed)
        scored_by = evaluator_fingerprint(profile, task_name)
        for trial, m in zip(group, score(task, store.load_words(group), make_batch(task, group), space, scored_by)):
            store.add_evaluation(trial, task_name, m)
    return [store.path(t) for t in trials]


# --------------------------------------------------------------------------------------------------------------
# Transferred words, scored by the in-domain evaluators of the other models
# --------------------------------------------------------------------------------------------------------------

def evaluate_transfers(store, maps: dict[tuple[str, str], TransferMap], models: dict, task_kwargs: dict | None = None,
                       profile: str | None = None, space: str = "input", trials: list | None = None) -> int:
    """Map every finished word of the store into each other task model and score it there with the same evaluator
    objects as in-domain; writes eval-<target>.json (with the method, the map quality and the nearest word) into
    each trial. Returns the number of evaluations written; existing ones by the same target model are kept
    (idempotent), ones by an earlier version of the target model are redone. `space`: the trials whose words are
    mapped, input-space words with token-table maps (`fit_all`) or output-space embeddings with output maps
    (`fit_all_output`). `trials`: only these (default: every trial in the store). models: {role: Loaded}."""
    groups = defaultdict(list)
    for trial in store.finished(trials):
        if trial.space != space or (profile and trial.profile != profile):
            continue
        for (src, dst) in maps:
            current = (store.evaluation(trial, dst) or {}).get("target_fingerprint")
            if src == trial.task and current != evaluator_fingerprint(trial.profile, dst):
                groups[(trial.dataset, trial.seed, src, dst)].append(trial)
    written = 0
    for (dataset, seed, src, dst), group in groups.items():
        tmap = maps[(src, dst)]
        task = build_task(group[0].profile, dst, dataset, models, task_kwargs, str(models[dst].adapter.device),
                          seed=seed)
        batch = make_batch(task, group)
        mapped = tmap(store.load_words(group).to(task.text.embedding.weight.device))
        if space == "output":
            metrics = task.evaluate_from(OutputSpace(task, batch).compose(mapped), batch)
            readouts = [{} for _ in group]
        else:
            metrics = task.evaluate(mapped, batch)
            readouts = [{"nearest_word": nn[0][0], "nearest_is_anchor": nn[0][0] == t.anchor}
                        for nn, t in zip(nearest_words(TextSide(models[dst]), mapped, k=1), group)]
        for trial, m, readout in zip(group, metrics, readouts):
            store.add_evaluation(trial, dst, {**m, "transfer_method": tmap.method, "map_r2": tmap.quality.get("r2"),
                                              **readout, "target_fingerprint": evaluator_fingerprint(trial.profile, dst)})
            written += 1
    return written


def transfer_all(profile: str, models: dict, store, method: str = "lstsq", task_kwargs: dict | None = None,
                 spaces=("input",), trials: list | None = None) -> int:
    """Fit the 6 maps between the task models (token tables for input-space words, text outputs for output-space
    embeddings), save them in the store, and score the finished words of `trials` (default: the whole store) in the
    two other models. Returns the number of evaluations written (current ones are kept). models: {role: Loaded}."""
    written = 0
    if "input" in spaces:
        maps = fit_all(profile, models, method, store=store)
        written += evaluate_transfers(store, maps, models, task_kwargs=task_kwargs, profile=profile, trials=trials)
    if "output" in spaces:
        maps = fit_all_output(profile, models, method=method, store=store)
        written += evaluate_transfers(store, maps, models, task_kwargs=task_kwargs, profile=profile, space="output",
                                      trials=trials)
    return written


# --------------------------------------------------------------------------------------------------------------
# Words trained elsewhere
# --------------------------------------------------------------------------------------------------------------

def import_word(path, task_name: str, profile: str, dataset: str, concept: str, store, device: str = "cpu",
                models: dict | None = None, method: str = "lstsq", task_kwargs: dict | None = None) -> Trial:
    """Bring a word trained elsewhere (a diffusers textual-inversion file, or a vwlib word file) into `store` as a
    trial of its own: space "imported", anchored at its nearest known word, δ its distance from that word in d_nn
    units; scored in-domain as a word for `dataset`'s `concept`, and in the two other models through the store's
    transfer maps. Importing the same file again changes nothing. Returns the trial.

    Usage: trial = import_word("learned_embeds.safetensors", "generation", "mini", "mini-objects", "star", store)"""
    token, vector = read_textual_inversion(path)
    device = resolve_device(device)
    models = models if models is not None else {}
    text = TextSide(model(models, profile, task_name, device))
    if vector.shape[1] != text.width:
        raise VWError(f"{path} holds a {vector.shape[1]}-wide word; the {profile} {task_name} model's token table "
                      f"is {text.width} wide: import it into the model it was trained for (--model, --profile)")
    load_dataset(dataset).concept_index(concept)  # an unknown dataset or concept fails here, before any write
    anchor, anchor_id, distance = nearest_typable_word(text, vector)  # the anchor is named in prompts
    d_nn = nearest_word_distance(text.embedding.weight.detach(), text.known_ids(), anchor_id)
    if distance == 0:
        raise VWError(f"{path}: '{token}' is the known word '{anchor}' itself (δ = 0): there is no new word in it")
    source = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    trial = Trial(profile, task_name, dataset, concept, anchor, distance / d_nn, space=IMPORTED, source=source)
    if not store.done(trial):
        task = build_task(profile, task_name, dataset, models, task_kwargs, device)
        metrics = score(task, vector, make_batch(task, [trial]), "input", evaluator_fingerprint(profile, task_name))
        meta = {"model_id": get_spec(profile, task_name).source, "model_fingerprint": fingerprint(profile, task_name),
                "anchor_id": anchor_id, "space": IMPORTED, "status": "ok", "distance_to_anchor": distance,
                "d_nn": d_nn, "token": token, "imported_from": str(path)}
        store.write(trial, vector, meta, {task_name: metrics[0]})
    maps = stored_maps(profile, models, store, method, device)
    evaluate_transfers(store, maps, models, task_kwargs, profile, space=IMPORTED, trials=[trial])
    return trial
