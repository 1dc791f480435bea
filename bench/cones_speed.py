"""Training speed of output-space embeddings (ConES: no text encoder in the step) against input-space words (the
paper: every step runs the text encoder), on the same trials with the same steps, per task (issue #8).

Both are batched and use the cached image side; only where the parameter lives differs. Prints trials per second
and the ratio.

Usage:
    python bench/cones_speed.py                      # all three tasks on the mini world, 2 threads
    python bench/cones_speed.py --task classification --trials 100 --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch
from engine_speed import trials_for  # noqa: E402  (bench/ is the script's folder)

from vwlib.cones import train_output_words
from vwlib.data.datasets import load_dataset
from vwlib.engine import train_words
from vwlib.models.profiles import load_model
from vwlib.tasks import DEFAULTS, make_batch, make_task, task_kwargs_for


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="all", choices=["all", "generation", "detection", "classification"])
    p.add_argument("--profile", default="mini")
    p.add_argument("--dataset", default="mini-objects")
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--steps", type=int, help="default: the profile's per task")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.dataset)
    rows = []
    for task_name in ("classification", "detection", "generation") if args.task == "all" else [args.task]:
        model = load_model(args.profile, task_name, device=args.device)
        kwargs = task_kwargs_for(args.profile, task_name)
        kwargs.pop("num_inference_steps", None), kwargs.pop("guidance_scale", None)
        task = make_task(task_name, model, ds, **kwargs)  # the image side is cached once, outside both timings
        steps, lr = DEFAULTS[args.profile][task_name]
        steps = args.steps or steps
        trials = trials_for(args.profile, task_name, args.dataset, args.trials, float("inf"))
        timings = {}
        for space in ("input", "output"):
            batch = make_batch(task, trials)  # fresh generators: both runs draw the same noise
            t0 = time.perf_counter()
            if space == "input":
                train_words(task, batch, [t.delta for t in trials], steps, lr)
            else:
                train_output_words(task, batch, steps, lr)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            timings[space] = time.perf_counter() - t0
        row = {"task": task_name, "trials": len(trials), "steps": steps,
               "input_trials_per_s": len(trials) / timings["input"], "output_trials_per_s": len(trials) / timings["output"]}
        row["speedup"] = row["output_trials_per_s"] / row["input_trials_per_s"]
        rows.append(row)
        print(f"{task_name:<15} input-space {row['input_trials_per_s']:8.2f} trials/s | output-space "
              f"{row['output_trials_per_s']:8.2f} trials/s | ratio {row['speedup']:5.1f}x "
              f"({len(trials)} trials x {steps} steps)", flush=True)
    return rows


if __name__ == "__main__":
    main()
