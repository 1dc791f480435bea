"""The token-optimization engine: train many new words at once, each kept within δ of its anchor (SPEC §2–§3).

v = anchor row + u; after every Adam step u is projected back onto the ball ||u|| <= δ · d_nn(anchor), where d_nn is
the distance from the anchor to its nearest other *known* vocabulary row of this model (δ = inf: unconstrained).
Each trial is one row of a [T, D] fp32 parameter; the total loss is the sum of per-trial losses, so Adam (which is
element-wise) updates every row exactly as if it were trained alone.

Usage:
    words, info = train_words(task, batch, deltas=[0.5, inf], steps=300, lr=5e-3)    # words [T, D]
    run_trials(trials, store)        # train, evaluate in-domain, write to the result store; skips finished trials
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict

import torch
from tqdm.auto import tqdm

from .accel import accelerate, autocast
from .errors import VWError
from .tasks import TrialBatch, make_task
from .tokenizer import single_token_id
from .trials import Trial

# Profile defaults: (steps, lr) per task. paper: SPEC §2 (Adam, lr 1e-4, 1000 steps, batch 8); mini: measured
# to converge on 2 CPU cores in seconds; tiny: smoke tests.
DEFAULTS = {
    "paper": {"generation": (1000, 1e-4), "detection": (1000, 1e-4), "classification": (1000, 1e-4)},
    "mini": {"generation": (100, 5e-3), "detection": (200, 5e-3), "classification": (200, 5e-3)},
    "tiny": {"generation": (4, 1e-2), "detection": (4, 1e-2), "classification": (4, 1e-2)},
}
# Evaluation settings per profile (generation: DDIM steps and guidance; the paper's are 50 and 7.5).
TASK_KWARGS = {
    "mini": {"generation": {"num_inference_steps": 30, "guidance_scale": 7.5, "batch_per_trial": 2}},
    "tiny": {"generation": {"num_inference_steps": 2}},
}


def task_kwargs_for(profile: str, task: str, overrides: dict | None = None) -> dict:
    """The task's constructor options for `profile`, updated by `overrides` ({task: {option: value}})."""
    return {**TASK_KWARGS.get(profile, {}).get(task, {}), **(overrides or {}).get(task, {})}


ADAM = dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)  # [paper] Adam; [decided] no weight decay


def nearest_word_distance(table: torch.Tensor, known_ids: torch.Tensor, anchor_id: int) -> float:
    """d_nn: distance from the anchor's row to the nearest other known row of `table` [V, D]."""
    rows = table[known_ids[known_ids != anchor_id]].float()
    return float((rows - table[anchor_id].float()).norm(dim=1).min())


def project(vectors: torch.Tensor, anchors: torch.Tensor, radii: torch.Tensor) -> None:
    """In place: pull each row of `vectors` [T, D] back to within `radii` [T] of `anchors` [T, D]."""
    u = vectors - anchors
    norm = u.norm(dim=1, keepdim=True)
    scale = torch.clamp(radii[:, None] / norm.clamp(min=1e-12), max=1.0)
    vectors.copy_(anchors + u * scale)


def trial_seed(trial: Trial) -> int:
    """A seed of the trial's own, from its key: its randomness never depends on which trials share its batch."""
    return int(hashlib.sha256(trial.key().encode()).hexdigest()[:8], 16) + trial.seed


def trial_generator(trial: Trial) -> torch.Generator:
    return torch.Generator().manual_seed(trial_seed(trial))


def make_batch(task, trials: list[Trial]) -> TrialBatch:
    tok = task.loaded.tokenizer
    return TrialBatch(
        concept=torch.tensor([task.ds.concept_index(t.concept) for t in trials]),
        anchor_ids=torch.tensor([single_token_id(tok, t.anchor) for t in trials]),
        anchors=[t.anchor for t in trials],
        generators=[trial_generator(t) for t in trials],
        seeds=[trial_seed(t) for t in trials],
    )


def train_words(task, batch: TrialBatch, deltas: list[float], steps: int, lr: float,
                log_every: int = 0, progress: bool = False) -> tuple[torch.Tensor, dict]:
    """Train one word per row of `batch`; returns words [T, D] (fp32) and {"failed": {row: reason}, "log": [...]}.

    A trial whose loss turns NaN/inf stops there (its row is frozen and reported); the others go on.
    """
    if steps < 1:
        raise VWError(f"steps must be >= 1, got {steps}")
    table = task.text.embedding.weight.detach()
    device = table.device
    anchors = table[batch.anchor_ids.to(device)].float().clone()  # [T, D], fp32 whatever the towers run in
    known = task.text.known_ids()
    radii = torch.tensor([math.inf if math.isinf(d) else d * nearest_word_distance(table, known, int(a))
                          for d, a in zip(deltas, batch.anchor_ids)], device=device)
    words = torch.nn.Parameter(anchors.clone())
    opt = torch.optim.Adam([words], lr=lr, **ADAM)
    failed: dict[int, str] = {}
    log = []
    for module in _frozen_modules(task):
        module.requires_grad_(False)
    for step in tqdm(range(steps), disable=not progress, desc=task.name, mininterval=2):
        with autocast(device):  # bf16 frozen towers on CUDA; the fp32 words get fp32 gradients
            losses = task.losses(words, batch).float()  # [T]
        bad = ~torch.isfinite(losses.detach())
        for row in torch.nonzero(bad).flatten().tolist():
            failed.setdefault(row, f"loss became {float(losses.detach()[row])} at step {step}")
        alive = torch.tensor([r not in failed for r in range(len(batch))], device=device)
        opt.zero_grad(set_to_none=True)
        torch.where(alive, losses, torch.zeros_like(losses)).sum().backward()
        if words.grad is not None:
            words.grad[~alive] = 0  # a failed trial's row stays where it was
        frozen = words.detach()[~alive].clone()
        opt.step()
        with torch.no_grad():
            words[~alive] = frozen
            project(words.data, anchors, radii)
        if log_every and (step % log_every == 0 or step == steps - 1):
            log.append({"step": step, "loss": losses.detach().tolist(),
                        "distance": (words.detach() - anchors).norm(dim=1).tolist()})
    return words.detach(), {"failed": failed, "log": log, "radii": radii.tolist(),
                            "final_loss": losses.detach().tolist()}


def _task(profile: str, task_name: str, dataset: str, models: dict, task_kwargs: dict | None, device: str):
    """The task object of a group of trials (the scorer joins generation tasks)."""
    from .datasets import load_dataset
    from .profiles import load_model

    kwargs = task_kwargs_for(profile, task_name, task_kwargs)
    if task_name == "generation" and "scorer" not in kwargs:
        kwargs["scorer"] = models.setdefault((profile, "scorer"), load_model(profile, "scorer", device=device))
    return make_task(task_name, models[(profile, task_name)], load_dataset(dataset), **kwargs)


def _score(task, words: torch.Tensor, batch: TrialBatch, space: str, scored_by: str) -> list[dict]:
    """In-domain metrics of trained words (input space: plus the nearest vocabulary word), each stamped with
    `scored_by`, the fingerprint of the weights that scored it."""
    from .transfer import nearest_words

    if space == "output":
        from .cones import OutputSpace

        metrics = task.evaluate_from(OutputSpace(task, batch).compose(words.to(task.text.embedding.weight.device)), batch)
    else:
        metrics = task.evaluate(words.to(task.text.embedding.weight.device), batch)
        nearest = nearest_words(task.text, words, k=1)  # the word each new word is closest to, in its own model
        metrics = [m | {"nearest_word": n[0][0], "nearest_is_anchor": n[0][0] == a}
                   for m, n, a in zip(metrics, nearest, batch.anchors)]
    return [m | {"evaluator_fingerprint": scored_by} for m in metrics]


def _frozen_modules(task) -> list[torch.nn.Module]:
    m = task.loaded.model
    if task.loaded.family == "sd":
        return [m.text_encoder, m.unet, m.vae]
    return [m]


# --------------------------------------------------------------------------------------------------------------
# Running trials into the result store
# --------------------------------------------------------------------------------------------------------------

def validate(trials: list[Trial], models: dict) -> None:
    """Fail before anything is written: unknown dataset/concept, anchors that are not one token, bad δ."""
    from .datasets import load_dataset

    for t in trials:
        ds = load_dataset(t.dataset)
        ds.concept_index(t.concept)
        for loaded in models.values():
            single_token_id(loaded.tokenizer, t.anchor)


def group_trials(trials: list[Trial], max_size: int = 0) -> list[tuple[tuple, list[Trial]]]:
    """Trials that can share one batched forward pass: same (profile, task, dataset, steps, lr, space), at most
    `max_size` per group (0: no limit), in first-seen order. Returns [((profile, task, dataset, steps, lr, space),
    [Trial])]."""
    groups: dict[tuple, list[Trial]] = defaultdict(list)
    for t in trials:
        steps, lr = DEFAULTS[t.profile][t.task]
        groups[(t.profile, t.task, t.dataset, t.steps or steps, t.lr or lr, t.space)].append(t)
    size = max_size or max([len(g) for g in groups.values()], default=1)
    return [(key, group[i:i + size]) for key, group in groups.items() for i in range(0, len(group), size)]


def run_trials(trials: list[Trial], store, device: str = "cpu", progress: bool = True,
               models: dict | None = None, task_kwargs: dict | None = None, max_size: int = 0,
               compile: bool = False) -> list:
    """Train every trial not yet in `store`, evaluate each in-domain, write each atomically. Returns trial dirs.

    models: {(profile, role): Loaded} to reuse loaded models; task_kwargs: {task: {option: value}} overrides;
    max_size: at most this many trials per batched forward pass (0: all trials of a group at once);
    compile: torch.compile the dominant frozen module (worth it for long GPU sweeps only).
    """
    from .profiles import evaluator_fingerprint, fingerprint, get_spec, load_model

    todo = [t for t in trials if not store.done(t)]
    # Finished words whose in-domain score came from other weights (generation: a retrained scorer) are re-scored,
    # not retrained: a trial's key holds only the weights its training depends on.
    stale = [t for t in trials if store.done(t) and store.evaluated_by(t, t.task) not in
             (None, evaluator_fingerprint(t.profile, t.task))]
    if not todo and not stale:
        return [store.path(t) for t in trials]
    models = models if models is not None else {}
    for t in todo + stale:
        if (t.profile, t.task) not in models:
            models[(t.profile, t.task)] = load_model(t.profile, t.task, device=device)  # task names are roles
    validate(todo, models)
    for loaded in models.values():
        if "accelerated" not in loaded.meta and (compile or str(device).startswith("cuda")):
            accelerate(loaded, compile=compile)
    for (profile, task_name, dataset, steps, lr, space), group in group_trials(todo, max_size):
        task = _task(profile, task_name, dataset, models, task_kwargs, device)
        batch = make_batch(task, group)
        if space == "output":  # ConES: the parameter stands in for the text encoder's output
            from .cones import train_output_words

            words, info = train_output_words(task, batch, steps, lr)
            start = info["space"].init()
        else:
            words, info = train_words(task, batch, [t.delta for t in group], steps, lr, progress=progress)
            start = task.text.embedding.weight.detach()[batch.anchor_ids.to(words.device)].float()
        metrics = _score(task, words, batch, space, evaluator_fingerprint(profile, task_name))
        spec = get_spec(profile, task_name)
        for row, trial in enumerate(group):
            meta = {"model_id": spec.source, "model_fingerprint": fingerprint(profile, task_name),
                    "anchor_id": int(batch.anchor_ids[row]), "steps_run": steps, "lr_run": lr, "space": space,
                    "radius": info.get("radii", [math.inf] * len(group))[row], "final_loss": info["final_loss"][row],
                    "distance_to_anchor": float((words[row] - start[row]).norm())}
            if row in info["failed"]:
                store.write(trial, None, {**meta, "status": "failed", "reason": info["failed"][row]}, {})
            else:
                store.write(trial, words[row:row + 1], {**meta, "status": "ok"}, {task_name: metrics[row]})
    for (profile, task_name, dataset, _, _, space), group in group_trials(stale, max_size):
        task = _task(profile, task_name, dataset, models, task_kwargs, device)
        scored_by = evaluator_fingerprint(profile, task_name)
        for trial, m in zip(group, _score(task, store.load_words(group), make_batch(task, group), space, scored_by)):
            store.add_evaluation(trial, task_name, m)
    return [store.path(t) for t in trials]
