"""Which δ-ball words does the paper's diffusion loss prefer: those textual inversion finds, or those on their
concept's name's state? (#32, docs/results.md "The generator's words at the paper's budget")

For the grid's words of one dataset at one δ (10 concepts x 10 anchors), three rows per trial, all in mini-sd:
- inversion: the study's words (trained with the paper's loss, read from a result store at `--steps`);
- text-only: words trained with no image and no UNet, only to bring their prompt's last-layer end-of-text state
  onto their concept's name's, inside the same δ-ball (`vw probe --text-only`: vwlib.ceiling.text_only_words, the
  profile's 100 steps);
- name: each concept's own name row (the control).
Each row's paper loss (`task.losses`, the v-prediction MSE) is averaged over `--draws` calls on batches that see the
same images, timesteps and noise (one `make_batch` per row kind: each trial's generator gives every kind the same
sequence), on the 8 training images per concept that inversion fits (`--images training`) or on the concept's
held-out images (`--images held-out`: is a lower loss than the name's a fit to those 8?); each word's generation
accuracy is the study's evaluator's.

Usage: python docs/experiments/inversion_vs_name_states.py --store runs/fidelity-gen-1000 --steps 1000 \
           --dataset mini-objects --delta 0.5 [--images held-out] [--draws 25] [--csv out.csv]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import pandas as pd
import torch

from vwlib.ceiling import text_only_words
from vwlib.data.datasets import own_anchor
from vwlib.models.probes import pooled_activations
from vwlib.models.tokenizer import single_token_id
from vwlib.runner import build_task, run_trials
from vwlib.store import ResultStore
from vwlib.study.config import StudyConfig
from vwlib.tasks import DEFAULTS, PROMPTS, make_batch, make_task, task_kwargs_for
from vwlib.trials import parse_delta


def grid_words(store: str, dataset: str, delta, steps: int = 0, profile: str = "mini", concepts: int = 10) -> dict:
    """The grid's generation words of one dataset at one δ (10 concepts x 10 anchors), with what they were trained
    in: {"task", "trials", "names" (each trial's concept name), "ids" [T, L] (each trial's prompt, its anchor in the
    word's place), "anchor_ids" [T], "words": {"inversion", "text_only", "name"}: [T, D] each}. Inversion words
    missing from `store` are trained into it first."""
    cfg = StudyConfig(profile=profile, datasets=(dataset,), tasks=("generation",), deltas=(delta,), concepts=concepts,
                      anchors="grid", steps=steps, out=store, device="cpu")
    trials = cfg.trials()
    models = {}
    task = build_task(profile, "generation", dataset, models)
    results = ResultStore(store)
    run_trials(trials, results, progress=False, models=models)
    text, tok = task.text, task.loaded.tokenizer
    table = text.embedding.weight.detach()
    anchor_ids = torch.tensor([single_token_id(tok, t.anchor) for t in trials])
    names = [own_anchor(dataset, t.concept) for t in trials]
    name_states = pooled_activations(text, text.ids([PROMPTS["generation"].format(n) for n in names]),
                                     layers=[text.num_layers])[text.num_layers]
    ids = text.ids([PROMPTS["generation"].format(t.anchor) for t in trials])
    text_only, _ = text_only_words(text, ids, anchor_ids, name_states, parse_delta(delta),
                                   *DEFAULTS[profile]["generation"])
    words = {"inversion": results.load_words(trials).float(), "text_only": text_only.detach(),
             "name": table[torch.tensor([single_token_id(tok, n) for n in names])].float()}
    return {"task": task, "trials": trials, "names": names, "ids": ids, "anchor_ids": anchor_ids, "words": words}


def compare(store: str, dataset: str, delta, steps: int = 0, draws: int = 25, profile: str = "mini",
            concepts: int = 10, images: str = "training") -> list[dict]:
    """One dict per grid trial: {"concept", "anchor", "own", "loss_inversion", "loss_text_only", "loss_name",
    "acc_inversion", "acc_text_only"}. Inversion words missing from `store` are trained into it first."""
    grid = grid_words(store, dataset, delta, steps, profile, concepts)
    task, trials, names, words = grid["task"], grid["trials"], grid["names"], grid["words"]
    # the name row sits in the anchor's place of the anchor's prompt, as a trained word does
    judge = task
    if images == "held-out":  # the same model and options, its loss drawn from the held-out images instead
        judge = make_task("generation", task.loaded, replace(task.ds, train=task.ds.val),
                          **task_kwargs_for(profile, "generation", None) | {"scorer": task.scorer})
    losses = {}
    with torch.no_grad():
        for kind, w in words.items():
            batch = make_batch(judge, trials)  # fresh generators: every kind sees the same draws
            losses[kind] = torch.stack([judge.losses(w, batch) for _ in range(draws)]).mean(0)
    acc = {kind: [float(m["accuracy"]) for m in task.evaluate(words[kind], make_batch(task, trials))]
           for kind in ("inversion", "text_only")}
    return [{"concept": t.concept, "anchor": t.anchor, "own": t.anchor == n,
             "loss_inversion": float(losses["inversion"][i]), "loss_text_only": float(losses["text_only"][i]),
             "loss_name": float(losses["name"][i]), "acc_inversion": acc["inversion"][i],
             "acc_text_only": acc["text_only"][i]} for i, (t, n) in enumerate(zip(trials, names))]


def summary(rows: list[dict]) -> dict:
    """Means, and the paired difference inversion − text-only (mean ± s.e.) with the share where inversion is lower."""
    df = pd.DataFrame(rows)
    diff = df.loss_inversion - df.loss_text_only
    return {"words": len(df), **{c: round(float(df[c].mean()), 4) for c in df.columns if c.startswith(("loss", "acc"))},
            "inversion_minus_text_only": round(float(diff.mean()), 4),
            "se": round(float(diff.std(ddof=1) / len(diff) ** 0.5), 4),
            "inversion_lower": round(float((diff < 0).mean()), 2)}


def grid_arguments(description: str) -> argparse.ArgumentParser:
    """The command line of a script over `grid_words`: --store, --dataset, --delta, --steps, --csv."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--store", required=True)
    p.add_argument("--dataset", default="mini-objects")
    p.add_argument("--delta", default="0.5")
    p.add_argument("--steps", type=int, default=0)
    p.add_argument("--csv")
    return p


def main() -> None:
    p = grid_arguments(__doc__.split("\n\n")[0])
    p.add_argument("--draws", type=int, default=25)
    p.add_argument("--images", default="training", choices=["training", "held-out"])
    args = p.parse_args()
    rows = compare(args.store, args.dataset, args.delta, args.steps, args.draws, images=args.images)
    if args.csv:
        pd.DataFrame(rows).to_csv(args.csv, index=False)
    print(summary(rows))


if __name__ == "__main__":
    main()
