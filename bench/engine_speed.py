"""The batched, cached engine against a sequential diffusers-style loop, on the same trials, per task (issue #7).

    sequential  one trial at a time, its own Adam; every step re-encodes the image side from pixels, as a
                textual-inversion script does (classification: all training images, the loss contrasts them;
                detection: the concept's 8 images; generation: a batch of the concept's images through the VAE)
    batched     vwlib.engine.train_words: the image side encoded once per task (timed), every trial one row of one
                forward pass

Both use the task's own loss code and the profile's steps and learning rate. The sequential loop runs the first
`--seq-trials` trials (each costs the same), the batched engine all `--trials`; trials per second are compared.

It also prints words per hour of the batched engine and its achieved TFLOP/s (FLOPs of a training step counted by
torch's FlopCounterMode), and with --peak-tflops the share of the device's peak; and the engine's time in parts:
set-up (the image side), warm-up (the first step's extra), the steady seconds per step (and its TFLOP/s, share of
peak), scoring per word, and words per hour end to end (set-up, warm-up, the profile's steps, scoring).

With `--levers` it times the batched engine once per GPU lever (vwlib.models.accel.LEVERS: "eager" first, then
each lever alone, in this one process) and writes one JSON per (task, lever) into `--out-dir`, the device named.

Usage:
    python bench/engine_speed.py                       # all three tasks on the mini world, 2 threads
    python bench/engine_speed.py --profile paper --device cuda --trials 8 --peak-tflops 989   # an H100, bf16
    python bench/engine_speed.py --profile paper-random --device cuda --task detection \
        --levers eager attention-flash gpu-nms --out-dir bench/results/cuda   # bench/gpu_run.sh does this
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import replace

import torch

from vwlib.data.datasets import load_dataset
from vwlib.engine import ADAM, nearest_word_distance, project, train_words
from vwlib.models.accel import LEVERS, accelerate, apply_levers, autocast, device_name, lever_context
from vwlib.models.profiles import load_model
from vwlib.study.config import StudyConfig
from vwlib.tasks import DEFAULTS, make_batch, make_task, task_kwargs_for

TARGETS = {"classification": 30.0, "detection": 10.0, "generation": 2.0}  # issue #7, mini world on 2 CPU cores


def trials_for(profile: str, task: str, dataset: str, n: int, delta: float):
    """The first `n` trials of the dataset's concept x anchor grid at one δ."""
    grid = StudyConfig(profile=profile, datasets=(dataset,), tasks=(task,), deltas=(delta,), concepts=10).trials()
    return grid[:n]


def image_subset(ds, task: str, concept: str, k: int):
    """The images a sequential loop re-encodes at each step of one trial."""
    if task == "classification":
        return ds  # the loss contrasts the concept's images with every other concept's
    own = ds.train_of(concept)
    return replace(ds, train=own[:k] if task == "generation" else own)


def run_batched(task_name, model, ds, trials, steps, lr, kwargs, device, eval_kwargs=None):
    """The batched engine, timed in parts: {"seconds" (set-up + training), "setup" (the cached image side and the
    batch), "warmup" (the first step: allocations, kernel selection, lazy inits), "steady_step" (seconds per step
    after it: (time of `steps` steps − time of one) / (steps − 1), each run from a fresh start), "scoring_per_word"
    (the task's in-domain score of the trained words, per word; with `eval_kwargs`' evaluation settings), "flops"
    (of one training step, counted by FlopCounterMode, times `steps`)}."""
    from torch.utils.flop_counter import FlopCounterMode

    deltas = [t.delta for t in trials]
    t0 = time.perf_counter()
    task = make_task(task_name, model, ds, **kwargs)  # the cached image side: part of the timed cost
    batch = make_batch(task, trials)
    _sync(device)
    setup = time.perf_counter() - t0
    words, _ = train_words(task, batch, deltas, steps, lr)
    _sync(device)
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    train_words(task, make_batch(task, trials), deltas, 1, lr)  # one step alone: the warm-up's share
    _sync(device)
    one_step = time.perf_counter() - t1
    steady = (seconds - setup - one_step) / max(1, steps - 1)
    scorer = make_task(task_name, model, ds, **{**kwargs, **(eval_kwargs or {})})
    t2 = time.perf_counter()
    scorer.evaluate(words, batch)
    _sync(device)
    scoring = (time.perf_counter() - t2) / len(trials)
    with FlopCounterMode(display=False) as counter:  # forward + backward of one step, counted, not timed
        train_words(task, make_batch(task, trials), deltas, 1, lr)
    return {"seconds": seconds, "setup": setup, "warmup": max(0.0, one_step - steady), "steady_step": steady,
            "scoring_per_word": scoring, "flops": counter.get_total_flops() * steps,
            "step_flops": counter.get_total_flops()}


def run_sequential(task_name, model, ds, trials, steps, lr, kwargs, device):
    t0 = time.perf_counter()
    for trial in trials:
        sub = image_subset(ds, task_name, trial.concept, kwargs.get("batch_per_trial", 2))
        task = make_task(task_name, model, sub, **kwargs)
        batch = make_batch(task, [trial])
        table = task.text.embedding.weight.detach()
        anchor = table[batch.anchor_ids.to(table.device)].float()
        radius = torch.tensor([trial.delta * nearest_word_distance(table, task.text.known_ids(), int(batch.anchor_ids[0]))
                               if math.isfinite(trial.delta) else math.inf], device=table.device)
        word = torch.nn.Parameter(anchor.clone())
        opt = torch.optim.Adam([word], lr=lr, **ADAM)
        for _ in range(steps):
            task = make_task(task_name, model, sub, **kwargs)  # image side re-encoded from pixels, every step
            with autocast(table.device):
                loss = task.losses(word, batch).float().sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                project(word.data, anchor, radius)
    _sync(device)
    return time.perf_counter() - t0


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _task_setup(args, task_name: str):
    """(model, training kwargs, evaluation kwargs, the profile's steps, steps, lr, trials) of one task's run."""
    model = load_model(args.profile, task_name, device=args.device)
    if args.device.startswith("cuda"):
        accelerate(model)
    kwargs = task_kwargs_for(args.profile, task_name)
    eval_kwargs = {k: kwargs.pop(k) for k in ("num_inference_steps", "guidance_scale") if k in kwargs}
    if task_name == "generation":  # scoring generates with a scorer: the profile's
        eval_kwargs["scorer"] = load_model(args.profile, "scorer", device=args.device)
    profile_steps, lr = DEFAULTS[args.profile][task_name]
    steps = args.steps or profile_steps
    trials = trials_for(args.profile, task_name, args.dataset, args.trials, args.delta)
    return model, kwargs, eval_kwargs, profile_steps, steps, lr, trials


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="all", choices=["all", *TARGETS])
    p.add_argument("--profile", default="mini")
    p.add_argument("--dataset", default="mini-objects")
    p.add_argument("--trials", type=int, default=100, help="trials of the batched engine (the 10 x 10 grid)")
    p.add_argument("--seq-trials", type=int, default=2, help="trials of the sequential loop")
    p.add_argument("--steps", type=int, help="default: the profile's per task")
    p.add_argument("--delta", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--peak-tflops", type=float, help="the device's peak (e.g. 989 for an H100 SXM's dense bf16): "
                   "prints the achieved share of it")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--levers", nargs="+", choices=list(LEVERS),
                   help="time the batched engine under each GPU lever in turn (no sequential loop)")
    p.add_argument("--out-dir", help="with --levers: one JSON per (task, lever) here")
    args = p.parse_args(argv)
    if args.levers:
        return lever_runs(args)
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.dataset)
    rows = []
    for task_name in TARGETS if args.task == "all" else [args.task]:
        model, kwargs, eval_kwargs, profile_steps, steps, lr, trials = _task_setup(args, task_name)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        timing = run_batched(task_name, model, ds, trials, steps, lr, kwargs, args.device, eval_kwargs)
        batched, setup, flops = timing["seconds"], timing["setup"], timing["flops"]
        sequential = run_sequential(task_name, model, ds, trials[: args.seq_trials], steps, lr, kwargs, args.device)
        row = {"task": task_name, "profile": args.profile, "device": args.device, "threads": args.threads,
               "steps": steps, "batched_trials": len(trials), "sequential_trials": args.seq_trials,
               "batched_trials_per_s": len(trials) / batched, "sequential_trials_per_s": args.seq_trials / sequential}
        row["speedup"] = row["batched_trials_per_s"] / row["sequential_trials_per_s"]
        row["words_per_hour"] = 3600 * row["batched_trials_per_s"]
        # a word of the profile's budget: the set-up once, then the measured seconds per step times its steps
        row["profile_steps"] = profile_steps
        row["words_per_hour_at_profile_steps"] = 3600 * len(trials) / (
            setup + (batched - setup) / steps * profile_steps)
        row.update({k: timing[k] for k in ("setup", "warmup", "steady_step", "scoring_per_word")})
        # end to end at the profile's budget: set-up and warm-up once, the steady steps, then scoring every word
        end_to_end = (setup + timing["warmup"] + timing["steady_step"] * profile_steps
                      + timing["scoring_per_word"] * len(trials))
        row["words_per_hour_end_to_end"] = 3600 * len(trials) / end_to_end
        if args.device.startswith("cuda"):
            row["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        row["achieved_tflops"] = flops / batched / 1e12  # of the whole batched run, image-side caching included
        row["steady_tflops"] = timing["step_flops"] / timing["steady_step"] / 1e12  # training steps alone
        if args.peak_tflops:
            row["share_of_peak"] = row["achieved_tflops"] / args.peak_tflops
            row["steady_share_of_peak"] = row["steady_tflops"] / args.peak_tflops
        rows.append(row)
        target = TARGETS[task_name]
        print(f"{task_name:<15} batched {row['batched_trials_per_s']:8.3f} trials/s ({len(trials)} trials, {batched:.1f} s)"
              f" | sequential {row['sequential_trials_per_s']:8.4f} trials/s ({args.seq_trials} trials, {sequential:.1f} s)"
              f" | ratio {row['speedup']:6.1f}x (target {target:g}x on the mini world, 2 CPU cores)", flush=True)
        print(f"{'':<15} {row['words_per_hour_at_profile_steps']:,.0f} words/hour of {profile_steps} steps "
              f"({row['words_per_hour']:,.0f} of {steps}), {row['achieved_tflops']:.3f} TFLOP/s achieved"
              + (f" = {100 * row['share_of_peak']:.1f}% of the {args.peak_tflops:g} TFLOP/s peak" if args.peak_tflops
                 else ""), flush=True)
        print(f"{'':<15} set-up {setup:.2f} s, warm-up {timing['warmup']:.2f} s, steady {timing['steady_step']:.4f} "
              f"s/step ({row['steady_tflops']:.3f} TFLOP/s"
              + (f", {100 * row['steady_share_of_peak']:.1f}% of peak" if args.peak_tflops else "")
              + f"), scoring {timing['scoring_per_word']:.3f} s/word -> {row['words_per_hour_end_to_end']:,.0f} "
              f"words/hour end to end at {profile_steps} steps", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


def lever_runs(args) -> list[dict]:
    """The batched engine of each task once per lever, in this process (the model loaded once per task): set-up,
    warm-up, steady seconds per step, scoring per word, words per hour end to end at the profile's steps and, with
    --peak-tflops, the steady share of peak; one JSON per run in args.out_dir."""
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.dataset)
    rows = []
    for task_name in TARGETS if args.task == "all" else [args.task]:
        model, base, eval_kwargs, profile_steps, steps, lr, trials = _task_setup(args, task_name)
        for name in args.levers:
            lever = LEVERS[name]
            if lever.gpu_nms and task_name != "detection":
                continue  # only the detector's evaluator runs NMS
            kwargs = base | ({"gpu_nms": True} if lever.gpu_nms else {})
            # a model-side lever changes the model in place: it gets a fresh copy
            runs_on = model
            if lever.weights_bf16 or lever.compile:
                runs_on = load_model(args.profile, task_name, device=args.device)
                if args.device.startswith("cuda"):
                    accelerate(runs_on)
                apply_levers(runs_on, lever)
            with lever_context(lever, args.device):
                timing = run_batched(task_name, runs_on, ds, trials, steps, lr, kwargs, args.device, eval_kwargs)
            end_to_end = (timing["setup"] + timing["warmup"] + timing["steady_step"] * profile_steps
                          + timing["scoring_per_word"] * len(trials))
            row = {"task": task_name, "lever": name, "levers": lever.named(), "profile": args.profile,
                   "device": device_name(args.device), "trials": len(trials), "steps": steps,
                   "profile_steps": profile_steps, "words_per_hour_end_to_end": 3600 * len(trials) / end_to_end,
                   "steady_tflops": timing["step_flops"] / timing["steady_step"] / 1e12}
            row |= {k: timing[k] for k in ("setup", "warmup", "steady_step", "scoring_per_word")}
            if args.peak_tflops:
                row["steady_share_of_peak"] = row["steady_tflops"] / args.peak_tflops
            rows.append(row)
            print(f"{task_name:<15} {name:<20} steady {row['steady_step']:.4f} s/step, scoring "
                  f"{row['scoring_per_word']:.3f} s/word -> {row['words_per_hour_end_to_end']:,.0f} words/hour end to "
                  f"end ({row['device']})", flush=True)
            if args.out_dir:
                os.makedirs(args.out_dir, exist_ok=True)
                with open(os.path.join(args.out_dir, f"engine_{task_name}_{name}.json"), "w") as f:
                    json.dump(row, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
