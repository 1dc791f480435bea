"""What a generation word's training step costs, in parts, for two mini-sd checkpoints in one run (#32): the shipped one
and another compact checkpoint folder, or the one a past commit shipped (taken out of git, not checked out).

For the same 25 trials (5 concepts x 5 anchors of mini-objects at δ = 0.5) it times one step of the study's loss
forward and backward (the whole step), the text encoder alone (forward and backward from the word), and the UNet alone
(forward and backward from the conditioning), and prints each model's seconds per step and the ratio of the two.

Usage:
    python bench/generation_step.py --other-commit 833085a     # mini-sd v5 (shipped) against v4 (833085a's)
    python bench/generation_step.py --other DIR --threads 1    # against any compact mini-sd folder
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from vwlib.models.loaders import load_from_dir
from vwlib.models.profiles import load_model
from vwlib.runner import build_task
from vwlib.tasks import make_batch
from vwlib.trials import Trial

CONCEPTS = ("star", "ring", "moon", "heart", "cross")
ANCHORS = ("star", "heart", "moon", "arrow", "ring")
SD = "vwlib/checkpoints/mini/sd"


def _timed(step, repeats: int) -> float:
    """Mean seconds of `step()` over `repeats` calls, after one call that is not timed (first-call allocations)."""
    step()
    t0 = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - t0) / repeats


def step_seconds(loaded, profile: str = "mini", dataset: str = "mini-objects", repeats: int = 5,
                 concepts=CONCEPTS, anchors=ANCHORS) -> dict:
    """{"step", "text", "unet"}: seconds of one training step of len(concepts) x len(anchors) generation words in
    `loaded` (a generation Loaded), of its text encoder part and of its UNet part. The words start at their anchors'
    rows; the noise, timesteps and images are each trial's own draws, as in training.

    Usage: step_seconds(load_model("mini", "generation"), repeats=5)["step"]
    """
    task = build_task(profile, "generation", dataset, {"generation": loaded}, scorer=False)  # the study's own task
    trials = [Trial(profile, "generation", dataset, c, a, 0.5) for c in concepts for a in anchors]
    batch = make_batch(task, trials)
    table = loaded.model.text_encoder.get_input_embeddings().weight
    words = table[batch.anchor_ids].detach().clone().requires_grad_(True)  # [T, D]
    cond = task.text_output(words, batch).detach().requires_grad_(True)  # [T, L, D]
    return {"step": _timed(lambda: task.losses(words, batch).sum().backward(), repeats),
            "text": _timed(lambda: task.text_output(words, batch).sum().backward(), repeats),
            "unet": _timed(lambda: task.losses_from(cond, batch).sum().backward(), repeats)}


def checkpoint_of_commit(commit: str, into: Path) -> Path:
    """The mini-sd compact checkpoint that `commit` shipped, written under `into` (git archive: no checkout)."""
    root = Path(__file__).resolve().parents[1]  # the checkout this script is in, wherever it is run from
    archive = subprocess.run(["git", "-C", str(root), "archive", commit, SD], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / SD


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    other = p.add_mutually_exclusive_group(required=True)
    other.add_argument("--other", help="a compact mini-sd checkpoint folder")
    other.add_argument("--other-commit", help="the commit whose shipped mini-sd to compare with")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.other) if args.other else checkpoint_of_commit(args.other_commit, Path(tmp))
        label = args.other or args.other_commit
        models = {"shipped": load_model("mini", "generation"), label: load_from_dir("sd", path)}
        result = {name: step_seconds(m, repeats=args.repeats) for name, m in models.items()}
    layers = {name: m.model.text_encoder.config.num_hidden_layers for name, m in models.items()}
    print(f"generation word step, 25 words, {args.threads} threads (seconds: whole step / text encoder / UNet)")
    for name, r in result.items():
        print(f"  {name:>10} ({layers[name]}-block encoder): {r['step']:.3f} / {r['text']:.3f} / {r['unet']:.3f}")
    print(f"  shipped / {label}: {result['shipped']['step'] / result[label]['step']:.2f}x the step")
    out = {"threads": args.threads, "repeats": args.repeats, "text_layers": layers, "seconds": result}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
