"""The `vw` command line (also `python -m vwlib`).

Usage:
    vw models [--profile mini] [--load]     # the profiles, their models, and whether each is on this machine
    vw tokens strawberry "scuba diver"      # CLIP BPE ids of words; is each a single token?
    vw train --task classification --dataset mini-objects --anchors dataset --deltas 0.5 inf
    vw results --csv results.csv            # every trial of a result store, one row per evaluation
    vw export-diffusers runs/mini/<trial> out/ --token "<star>"   # for StableDiffusionPipeline.load_textual_inversion
    vw export-word runs/mini/<trial> star.safetensors  # any task's word; vwlib.load_word(stock_model, path)
    vw import-word learned_embeds.safetensors --model generation --dataset mini-objects --concept star
    vw data check [--profile paper]         # the profile's datasets: present, missing, how to get them
    vw transfer fit|eval --profile mini     # the 6 maps between the task models; transferred words scored
    vw probe --dataset mini-objects --task generation   # layer-wise kNN purity by concept and by anchor
    vw probe --working --delta inf          # the same over every in-domain word and over those that did their job
    vw probe --text-only                    # the encoder's ceiling: words trained only toward their name's state
    vw mini train --model clip              # rebuild a mini checkpoint from its seed
    vw mini eval --json                     # the mini models' quality bars, on fresh held-out images
    vw mini lab --recipe minilm --pair      # screen a text-tower recipe in minutes; one row in docs/data/tower_lab.csv
    vw notebooks [--profile mini] [--only 04 07] [--log-output]   # run notebooks headlessly (`make figures`)
    vw sweep sweeps/mini.yaml [--backend ray --address auto]   # a grid of trials, resumable after kill -9
    vw fidelity --out runs/fidelity [--json]   # the paper's three findings on the mini world, with 95% CIs

Subcommands import what they need when they run, so that `vw tokens` or a refused argument answers at once.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from .errors import VWError
from .roles import PROFILE_NAMES, TASKS

# --------------------------------------------------------------------------------------------------------------
# Inputs checked at the edge: every argument is validated before any model loads or any file is written
# --------------------------------------------------------------------------------------------------------------

class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line on stderr (`vw train: error: argument --lr: ...`), exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive, finite number, got {text!r}")
    return value


def whole_number(minimum: int):
    """An argparse type: a whole number >= `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


positive_int, seed = whole_number(1), whole_number(0)


def delta(text: str) -> str:
    from .trials import parse_delta

    try:
        parse_delta(text)
    except VWError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def folder(text: str) -> str:
    """A folder to write into: it may not exist yet, but it may not be a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder (it is created if missing)")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{parent} is a file, so {text} cannot be created; give a folder")
            break
    return text


def new_file(text: str) -> str:
    """A file to write: its folder must exist, and it may not be a folder."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    if not path.absolute().parent.is_dir():
        raise argparse.ArgumentTypeError(f"folder {path.parent} does not exist; create it first")
    return text


def device(text: str) -> str:
    """An argparse type: cpu, cuda, cuda:N or auto (CUDA when this machine has it, else the CPU), resolved."""
    import torch

    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return text
    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text}: no CUDA device on this machine; use --device cpu")
        return text
    raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda or cuda:N, got {text!r}")


def check_anchors(words: list[str]) -> None:
    """Every anchor must be one CLIP BPE token (the vocabulary every model of the study shares)."""
    from .models.tokenizer import clip_tokenizer, single_token_id

    tok = clip_tokenizer()
    for word in words:
        single_token_id(tok, word)


def _cmd_models(args) -> int:
    from .models.profiles import get_spec, load_model, model_table

    rows = model_table(args.profile)
    for r in rows:  # where a stock class loads each model from (a mini checkpoint's is built on first use)
        folder = get_spec(r["profile"], r["role"]).stock_folder() if r["available"] else None
        r["stock_folder"] = str(folder) if folder else ""
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for profile in PROFILE_NAMES if args.profile is None else [args.profile]:
            print(f"{profile}:")
            for r in (r for r in rows if r["profile"] == profile):
                state = "available" if r["available"] else "MISSING"
                where = r["path"] if r["path"] and r["path"] != r["source"] else ""
                print(f"  {r['role']:<15} {r['family']:<10} {state:<10} {r['source']}"
                      + (f"  ({where})" if where else ""))
                if r["stock_folder"] and r["stock_folder"] != r["path"]:
                    print(f"  {'':<15} stock folder (diffusers / transformers / open_clip format): {r['stock_folder']}")
    if args.load:
        for r in rows:
            m = load_model(r["profile"], r["role"])  # raises MissingModelError: one line, with the fix
            print(f"loaded {r['profile']}/{r['role']}: {m.num_parameters():,} parameters")
    return 0


def _cmd_tokens(args) -> int:
    from .models.tokenizer import clip_tokenizer

    tok = clip_tokenizer()
    bad = 0
    for word in args.words:
        ids = tok(word, add_special_tokens=False)["input_ids"]
        pieces = tok.convert_ids_to_tokens(ids)
        verdict = "single token" if len(ids) == 1 else f"{len(ids)} tokens"
        bad += len(ids) != 1
        print(f"{word!r}: {ids} {pieces} ({verdict})")
    return 1 if bad and args.strict else 0


def _cmd_notebooks(args) -> int:
    from .study.notebooks import FULL, run_notebooks

    if args.dry_run:  # the study grid the notebooks would train, what it needs and what it would cost
        from .data.datasets import PROFILE_DATASETS
        from .study.bill import bill
        from .study.config import StudyConfig

        cfg = StudyConfig(profile=args.profile, datasets=PROFILE_DATASETS[args.profile],
                          concepts=FULL["concepts"] if args.full else 5)
        trials = cfg.trials()
        print(json.dumps({"trials": len(trials)} | bill(cfg, trials), indent=1))
        return 0
    run_notebooks(profile=args.profile, full=args.full, only=args.only, log_output=args.log_output,
                  parameters={"device": args.device})
    return 0


def _cmd_mini(args) -> int:
    if args.action == "lab":
        return _mini_lab(args)
    if args.action == "train":
        from .mini.train import train, variant_kwargs
        from .paths import CHECKPOINTS

        if args.variant and args.model == "all":
            raise VWError("--variant names one model's training candidate: give --model too "
                          "(vwlib.mini.train.VARIANTS)")
        extra = variant_kwargs(args.model, args.variant)  # an unknown variant fails here, before any training

        names = ["clip", "scorer", "owl", "sd"] if args.model == "all" else [args.model]
        for name in names:
            # --out with --model all is a parent folder: one checkpoint folder per model inside it
            out = (Path(args.out) / name if len(names) > 1 else args.out) if args.out else CHECKPOINTS / "mini" / name
            info = train(name, out, steps=args.steps, device=args.device, **extra)
            print(f"mini-{name}: {info['steps']} steps in {info['wall_seconds'] / 60:.1f} min "
                  f"on {args.device} ({info['threads']} threads), final loss {info['loss_curve'][-1][-1]:.4f}")
        return 0
    from .mini.evaluate import evaluate

    models = ["clip", "scorer", "owl", "sd"] if args.model == "all" else [args.model]
    report = evaluate(models, per_concept=args.per_concept)
    if args.json:
        print(json.dumps(report))
    else:
        for key, bar in report["bars"].items():
            if key in report:
                verdict = "ok" if report["passed"][key] else "BELOW BAR"
                per = ", ".join(f"{d} {v:.3f}" for d, v in report["per_dataset"][key].items())
                print(f"{key:<20} {report[key]:.3f} (bar {bar:.2f}, {verdict})  [{per}]")
        if "sd_study_gen_acc" in report["per_dataset"]:
            per = ", ".join(f"{d} {v:.3f}" for d, v in report["per_dataset"]["sd_study_gen_acc"].items())
            print(f"{'sd_study_gen_acc':<20} generations from the study's prompt 'a photo of <name>' (no bar)  [{per}]")
        if "owl_study_map" in report:
            verdict = "ok" if report["passed"]["owl_study_map"] else "BELOW BAR"
            per = ", ".join(f"{d} {v:.3f} (bar {report['study_map_bars'][d]:.2f})"
                            for d, v in report["owl_study_map"].items())
            print(f"{'owl_study_map':<20} the study's name control, mAP@[.5:.95] of the bare name ({verdict})  [{per}]")
        for model, s in report["sensitivity"].items():
            print(f"sensitivity mini-{model:<7} reach/gap {s['reach_over_gap']:.2f} (target {s['target']:g}), toward a "
                  f"chosen concept {s['toward']:.2f}; σ_max {s['sigma_max']:.2f}, d_nn {s['d_nn']:.3f}, "
                  f"gap {s['gap']:.3f}")
    return 0


def _mini_lab(args) -> int:
    from .mini.lab import RECIPES, append_row, lab_table, recipe_named, run_lab

    if args.table:
        print(lab_table(args.csv))
        return 0
    if not args.recipe:
        for r in RECIPES.values():
            print(f"{r.name:<16} {r.tower:<8} {json.dumps(r.levers(), sort_keys=True):<48} {r.note}")
        print("run one: vw mini lab --recipe NAME [--pair]; each run appends a row to docs/data/tower_lab.csv")
        return 0
    overrides = {"steps": args.steps} if args.steps else {}
    row = run_lab(recipe_named(args.recipe, **overrides), pair=args.pair or bool(args.pair_image),
                  pair_image=args.pair_image or "clip")
    if args.csv != "-":
        print(f"appended to {append_row(row, args.csv)}")
    print(json.dumps(row) if args.json else "\n".join(f"{k:<24} {v}" for k, v in row.items()))
    return 0


def study_from_args(args):
    """The StudyConfig of `vw train`'s arguments (one grid builder for the CLI, notebooks and sweeps)."""
    from .data.datasets import folder_summary, is_folder_dataset, load_dataset, require
    from .study.config import ANCHOR_CHOICES, StudyConfig

    require(args.dataset)
    if is_folder_dataset(args.dataset):  # your own concepts: one key however the folder was named
        args.dataset = str(Path(args.dataset).resolve())
        print(folder_summary(load_dataset(args.dataset)))
    anchors = args.anchors
    if anchors == ["all"]:
        raise VWError("--anchors all is ambiguous; use 'dataset' (every anchor of the dataset) or 'grid' (the anchors "
                      "of the chosen concepts: the paper's n x n grid)")
    if len(anchors) == 1 and anchors[0] in ANCHOR_CHOICES:
        anchors = anchors[0]
    else:
        check_anchors(anchors)
        anchors = tuple(anchors)
    cfg = StudyConfig(profile=args.profile, datasets=(args.dataset,), tasks=tuple(dict.fromkeys(args.task)),
                      deltas=tuple(args.deltas), concepts=tuple(args.concepts) if args.concepts else 10**6,
                      anchors=anchors, seeds=tuple(args.seeds), out=args.out, steps=args.steps or 0, lr=args.lr or 0.0)
    trials = cfg.trials()  # checks the concepts
    check_anchors(sorted({t.anchor for t in trials}))
    return cfg, trials


def _cmd_train(args) -> int:
    from .runner import run_trials
    from .store import ResultStore

    cfg, trials = study_from_args(args)
    store = ResultStore(args.out)
    todo = sum(not store.done(t) for t in trials)
    print(f"{len(trials)} trials ({len(trials) - todo} already done) -> {args.out}")
    run_trials(trials, store, device=args.device, progress=True)
    table = store.table(trials)
    if len(table):
        cols = [c for c in ("task", "concept", "anchor", "delta", "status", "accuracy", "map_50", "map") if c in table]
        print(table[cols].to_string(index=False))
    return 0


def _cmd_results(args) -> int:
    from .store import ResultStore

    store = ResultStore(args.out)
    if not store.root.is_dir():
        raise VWError(f"no result store at {args.out}; train words first (vw train --out {args.out}, or make figures)")
    table = store.table()
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"{len(table)} rows -> {args.csv}")
    else:
        print(table.to_string(index=False) if len(table) else "no trials yet")
    return 0


def _cmd_export(args) -> int:
    from .export import export_textual_inversion

    if not args.token.strip() or any(ch.isspace() for ch in args.token):
        raise VWError(f"--token must be one placeholder without spaces, e.g. \"<star>\"; got {args.token!r}")

    path = export_textual_inversion(args.trial_dir, args.out_dir, args.token)
    print(f"wrote {path}; load it with pipe.load_textual_inversion({str(path)!r}, token={args.token!r})")
    from .store import read_config

    profile = read_config(Path(args.trial_dir)).get("profile")
    if profile in ("mini", "paper"):
        from .models.profiles import get_spec

        folder = get_spec(profile, "generation").stock_folder()
        if folder:
            print(f"the {profile} generator, in a folder stock diffusers loads: "
                  f"pipe = StableDiffusionPipeline.from_pretrained({str(folder)!r})")
    return 0


def _cmd_import_word(args) -> int:
    from .runner import import_word
    from .store import ResultStore

    store = ResultStore(args.out)
    trial = import_word(args.file, args.model, args.profile, args.dataset, args.concept, store, device=args.device)
    config = store.config(trial)
    print(f"imported '{config['token']}' as {store.path(trial)}: nearest known word '{trial.anchor}' at "
          f"δ = {trial.delta:.3f} (distance {config['distance_to_anchor']:.4f}, d_nn {config['d_nn']:.4f})")
    for task in TASKS:
        metrics = store.evaluation(trial, task) or {}
        score = metrics.get("map", metrics.get("accuracy"))
        where = "in-domain" if task == args.model else f"mapped into {task}"
        print(f"  {task:<15} {where:<27} " + (f"{score:.3f}" if score is not None else "not scored")
              + (f"  (nearest word there: {metrics['nearest_word']})" if metrics.get("nearest_word") else ""))
    return 0


def _cmd_data(args) -> int:
    from .data.datasets import check_data, data_root
    from .paths import DATA_DIR_ENV

    rows = check_data(args.profile)
    for r in rows:
        print(f"{r['dataset']:<15} {r['status']:<10} {r['detail']}" + (f"  [{r['root']}]" if r["root"] else ""))
        if r["status"] in ("missing", "incomplete"):
            print(f"{'':<15} get it: {r['obtain']}")
    missing = [r["dataset"] for r in rows if r["status"] in ("missing", "incomplete")]
    if missing:
        print(f"{len(missing)} of {len(rows)} datasets not ready; put them under ${DATA_DIR_ENV} (now: "
              f"{data_root('').resolve()})")
    return 1 if missing else 0


def _cmd_export_word(args) -> int:
    from .export import export_word

    path = export_word(args.trial_dir, args.out)
    print(f"wrote {path}; in Python: prompt = vwlib.load_word(model, {str(path)!r}) puts it into the stock model "
          f"(it takes over its anchor token there)")
    return 0


def _cmd_transfer(args) -> int:
    from .runner import evaluate_transfers, load_models
    from .store import ResultStore
    from .transfer import fit_all, load_maps

    store = ResultStore(args.out)
    if args.action == "eval" and not store.map_paths(args.profile, args.method):
        raise VWError(f"no {args.method} maps for {args.profile} in {store.maps_dir}; fit them first: "
                      f"vw transfer fit --profile {args.profile} --method {args.method} --out {args.out}")
    models = load_models(args.profile, args.device)
    if args.action == "fit":
        maps = fit_all(args.profile, models, args.method, store=store)
        for (src, dst), tmap in maps.items():
            q = tmap.quality
            print(f"{src:>14} -> {dst:<14} {tmap.method}: R² {q['r2']:.3f}, mean cosine {q['mean_cosine']:.3f} "
                  f"({q['n_fit']} words fitted, {q['n_test']} held out)")
        print(f"maps saved in {store.maps_dir}")
        return 0
    n = evaluate_transfers(store, load_maps(store, args.profile, args.method), models, profile=args.profile)
    print(f"{n} transferred evaluations written to {args.out}")
    return 0


def _cmd_probe(args) -> int:
    import pandas as pd

    from .data.datasets import require
    from .study.config import StudyConfig
    from .study.figure_data import (imported_layer_neighbours, layer_panels_data, text_only_purity,
                                    working_word_purity)

    require(args.dataset)
    if args.working and args.text_only:
        raise VWError("--working and --text-only are two different probes: choose one")
    if args.score and not args.text_only:
        raise VWError("--score scores the words --text-only trains (the study's own words are scored already: "
                      "vw results); add --text-only")
    if args.transfer_from == args.task and not (args.working or args.text_only):  # they read no mapped words
        raise VWError(f"--transfer-from must name another task than --task {args.task}: the words mapped in for "
                      f"comparison come from a different model")
    if args.concepts < 2:
        raise VWError(f"--concepts must be >= 2: purity compares concepts, got {args.concepts}")

    cfg = StudyConfig(profile=args.profile, datasets=(args.dataset,), concepts=args.concepts, out=args.out,
                      device=args.device)
    if args.working or args.text_only:
        if args.working:
            table = pd.DataFrame(working_word_purity(cfg, args.dataset, args.task, args.delta))
        else:
            table = pd.DataFrame(text_only_purity(cfg, args.dataset, args.task, args.delta, score=args.score))
        print(table.round(3).to_string(index=False))
        if args.csv:
            table.to_csv(args.csv, index=False)
        return 0
    panels = layer_panels_data(cfg, args.dataset, args.task, args.delta, args.transfer_from, args.method)
    table = pd.DataFrame([{k: p[k] for k in ("row", "layer", "purity_concept", "purity_anchor")} for p in panels])
    print(table.round(3).to_string(index=False))
    if args.csv:
        table.to_csv(args.csv, index=False)
    imported = imported_layer_neighbours(cfg, args.dataset, args.task, args.delta)
    if imported:
        print("\nimported words (vw import-word) among the in-domain words, layer by layer: the most common concept "
              "of their 5 nearest, and the share that is their own concept")
        print(pd.DataFrame(imported).round(2).to_string(index=False))
        missing = sorted({r["concept"] for r in imported if r["agree"] is None})
        if missing:
            print(f"{', '.join(missing)}: not among the {args.concepts} concepts probed (agree: None); probe more "
                  f"with --concepts")
    return 0


def _cmd_sweep(args) -> int:
    from .store import ResultStore
    from .study.sweep import load_sweep, plan, run_sweep

    cfg = load_sweep(args.config, out=args.out, device=args.device, group_size=args.group_size)
    try:
        folder(cfg.study.out)
    except argparse.ArgumentTypeError as e:
        raise VWError(f"{args.config}: out: {e}") from None
    check_anchors(sorted({t.anchor for t in cfg.trials()}))
    if cfg.study.profile == "paper" and not args.dry_run:  # the paper's datasets must be on this machine
        from .data.datasets import require

        for name in cfg.study.datasets:
            require(name)
    if args.dry_run:
        from .study.bill import bill

        trials, jobs = plan(cfg, ResultStore(cfg.study.out))
        todo = [t for job in jobs for t in job]
        print(json.dumps({"trials": len(trials), "unfinished": len(todo), "jobs": len(jobs)}
                         | bill(cfg.study, todo), indent=1))
        return 0
    summary = run_sweep(cfg, backend=args.backend, address=args.address, progress=not args.quiet)
    print(json.dumps(summary))
    return 0


def _cmd_fidelity(args) -> int:
    from .study.fidelity import fidelity

    result = fidelity(args.out, profile=args.profile, concepts=args.concepts, progress=not args.json,
                      device=args.device, tasks=tuple(args.task), steps=args.steps or 0)
    if args.json:
        print(json.dumps(result, default=float))
        return 0
    for c in result["checks"]:
        verdict = {True: "pass", False: "FAIL", None: ""}[c["passed"]]
        bar = "" if c["threshold"] is None else f"{c['op']} {c['threshold']:.3f}"
        print(f"{c['check']:<62} {c['value']:7.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}] n={c['n']:<4} "
              f"{bar:<10} {verdict}")
    print(f"{result['passed']} passed, {result['failed']} failed ({result['info']} reported without a threshold); "
          f"{result['seconds']} s")
    return 0


SHARED = {  # the options many commands share, written once: name -> (default, help)
    "profile": ("mini", "the model profile"),
    "out": ("runs/mini", "the result store: one directory per trial, its maps and records (missing words are trained)"),
    "device": ("auto", "auto (CUDA when present), cpu, cuda[:N]"),
}


def shared(*names: str, **defaults) -> list[argparse.ArgumentParser]:
    """A parent parser holding the shared options `names` (--profile, --out, --device), with `defaults` changed for
    this command, e.g. shared("profile", profile="paper"). Built anew for each command: argparse shares a parent's
    option objects with its children, so one parent for all would carry one command's default into every other."""
    parent = Parser(add_help=False)
    kinds = {"profile": {"choices": PROFILE_NAMES}, "out": {"type": folder}, "device": {"type": device}}
    for name in names:
        default, text = SHARED[name]
        default = defaults.get(name, default)
        parent.add_argument(f"--{name}", default=default, help=f"{text} (default: {default})", **kinds[name])
    return [parent]


def _model_commands(sub) -> None:
    """Models and tokens: what is on this machine, the mini world's own models, CLIP BPE."""
    s = sub.add_parser("models", help="list the model profiles and whether each model is on this machine")
    s.add_argument("--profile", choices=PROFILE_NAMES, help="only this profile")
    s.add_argument("--json", action="store_true", help="print the table as JSON")
    s.add_argument("--load", action="store_true", help="also load every listed model (fails on the first missing one)")
    s.set_defaults(func=_cmd_models)

    s = sub.add_parser("tokens", help="show the CLIP BPE ids of words and whether each is a single token")
    s.add_argument("words", nargs="+")
    s.add_argument("--strict", action="store_true", help="exit 1 if any word is not a single token")
    s.set_defaults(func=_cmd_tokens)

    s = sub.add_parser("mini", help="train, evaluate or screen (lab) the mini world's models", parents=shared("device"))
    s.add_argument("action", choices=["train", "eval", "lab"])
    s.add_argument("--model", default="all", choices=["all", "clip", "scorer", "owl", "sd"])
    s.add_argument("--steps", type=positive_int, help="training steps (default: each model's own)")
    s.add_argument("--out", type=folder,
                   help="checkpoint folder (default: the shipped one, vwlib/checkpoints/mini/<model>)")
    s.add_argument("--variant", help="train: a named training candidate of --model (vwlib.mini.train.VARIANTS)")
    s.add_argument("--json", action="store_true", help="eval: print one JSON object")
    s.add_argument("--per-concept", type=positive_int, default=20, help="eval: held-out images per concept")
    s.add_argument("--recipe", help="lab: the text-tower recipe to screen (none: list them; vwlib.mini.lab.RECIPES)")
    s.add_argument("--pair", action="store_true", help="lab: also train a second tower of the recipe (another seed) "
                   "and measure whether words move between them (finding ii)")
    s.add_argument("--pair-image", choices=["clip", "scorer"], help="lab: the image tower the second tower is fitted "
                   "to (implies --pair; default clip: the same one, an upper bound on transfer; scorer: another "
                   "model's image side)")
    s.add_argument("--csv", default="docs/data/tower_lab.csv", help="lab: the CSV the row is appended to (- : none)")
    s.add_argument("--table", action="store_true", help="lab: print the CSV's main columns as a Markdown table")
    s.set_defaults(func=_cmd_mini)

    s = sub.add_parser("data", help="which datasets a profile needs, which are on this machine, how to get the rest",
                       parents=shared("profile", profile="paper"))
    s.add_argument("action", choices=["check"])
    s.set_defaults(func=_cmd_data)


def _word_commands(sub) -> None:
    """Words: train them, tabulate them, transfer them, probe them, export them."""
    s = sub.add_parser("train", help="train new words (a grid of trials) into a result store",
                       parents=shared("profile", "out", "device"))
    s.add_argument("--task", nargs="+", default=["classification"], choices=TASKS)
    s.add_argument("--dataset", default="mini-objects", help="a mini or paper dataset, or a folder of your own: one "
                   "sub-folder of images per concept (>= 2 concepts, >= 3 images each)")
    s.add_argument("--concepts", nargs="*", help="default: all 10 of the dataset")
    s.add_argument("--anchors", nargs="+", default=["own"],
                   help="anchor words, or one of: own (default: each concept's own anchor), grid (the anchors of the "
                        "chosen concepts: an n x n grid), dataset (every anchor of the dataset)")
    s.add_argument("--deltas", nargs="+", type=delta, default=["inf"], help="δ values > 0; inf = unconstrained")
    s.add_argument("--seeds", nargs="+", type=seed, default=[0],
                   help="each seed draws its own training and held-out images of the dataset (0: the default split)")
    s.add_argument("--steps", type=positive_int, help="optimizer steps (default: the profile's)")
    s.add_argument("--lr", type=positive_float, help="Adam learning rate (default: the profile's)")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("results", help="one tidy table of every trial in a result store", parents=shared("out"))
    s.add_argument("--csv", type=new_file, help="write the table to this CSV file")
    s.set_defaults(func=_cmd_results)

    s = sub.add_parser("transfer", help="fit transfer maps between a profile's models, or evaluate transferred words",
                       parents=shared("profile", "out", "device"))
    s.add_argument("action", choices=["fit", "eval"])
    s.add_argument("--method", default="lstsq", choices=["lstsq", "ridge", "procrustes", "mlp"])
    s.set_defaults(func=_cmd_transfer)

    s = sub.add_parser("probe", help="kNN purity of the end-of-text token by concept and by anchor, per layer",
                       parents=shared("profile", "out", "device"))
    s.add_argument("--dataset", default="mini-objects")
    s.add_argument("--task", default="generation", choices=TASKS, help="the model whose text-encoder layers are probed")
    s.add_argument("--transfer-from", default="classification", choices=TASKS,
                   help="words of this task, mapped in, for comparison")
    s.add_argument("--delta", type=delta, default="0.5")
    s.add_argument("--concepts", type=positive_int, default=10,
                   help="the n x n grid of the first n concepts and anchors")
    s.add_argument("--method", default="tsne", choices=["tsne", "umap"])
    s.add_argument("--working", action="store_true",
                   help="in-domain words only: purity over every word and over the words that did their job "
                        "(accuracy 1), per layer")
    s.add_argument("--text-only", action="store_true",
                   help="the encoder's ceiling: the grid's words trained only to bring their last-layer end-of-text "
                        "state onto their concept's name's (no image, nothing stored), then purity per layer")
    s.add_argument("--score", action="store_true",
                   help="with --text-only: also score those words in the task's model, as the study scores its own")
    s.add_argument("--csv", type=new_file, help="write the purity table here")
    s.set_defaults(func=_cmd_probe)

    s = sub.add_parser("export-diffusers", help="write a trained word as a diffusers textual-inversion file")
    s.add_argument("trial_dir")
    s.add_argument("out_dir", type=folder)
    s.add_argument("--token", required=True, help='the placeholder token, e.g. "<sombrero>"')
    s.set_defaults(func=_cmd_export)

    s = sub.add_parser("import-word", help="bring a textual-inversion word (safetensors) into a result store: its "
                       "nearest word, its δ, its scores in-domain and in the two other models",
                       parents=shared("profile", "out", "device"))
    s.add_argument("file", help="learned_embeds.safetensors (diffusers' textual inversion) or a vwlib word file")
    s.add_argument("--model", required=True, choices=TASKS, help="the model the word was trained for")
    s.add_argument("--dataset", required=True, help="the dataset of the concept the word stands for")
    s.add_argument("--concept", required=True, help="the concept it stands for (it is scored as a word for it)")
    s.set_defaults(func=_cmd_import_word)

    s = sub.add_parser("export-word", help="write any task's word for its stock model (vwlib.load_word reads it)")
    s.add_argument("trial_dir")
    s.add_argument("out", type=new_file, help="the word file to write, e.g. star.safetensors")
    s.set_defaults(func=_cmd_export_word)


def _study_commands(sub) -> None:
    """Whole studies: the notebooks, the fidelity grid, sweeps."""
    s = sub.add_parser("notebooks", help="run every notebook headlessly with papermill, writing figures/",
                       parents=shared("profile", "device"))
    s.add_argument("--full", action="store_true", help="the full 10 x 10 grid (default: the quick 5 x 5 one)")
    s.add_argument("--only", nargs="+", metavar="PREFIX", help="run only these notebooks, e.g. --only 04 07")
    s.add_argument("--log-output", action="store_true", help="stream each cell's output while it runs")
    s.add_argument("--dry-run", action="store_true", help="print the models, datasets and trials the notebooks "
                   "need and the GPU-hours they would cost (paper profiles), and run nothing")
    s.set_defaults(func=_cmd_notebooks)

    s = sub.add_parser("fidelity", help="does the mini world reproduce the paper? every check with its 95%% CI",
                       parents=shared("profile", "out", "device", out="runs/fidelity"))
    s.add_argument("--concepts", type=positive_int, default=10, help="the n x n grid of each dataset (10: the "
                   "fidelity grid; fewer for a quick look)")
    s.add_argument("--task", nargs="+", choices=TASKS, default=list(TASKS), help="the tasks whose words are trained "
                   "and judged (each scored in all three models; a later call on the same store adds the others)")
    s.add_argument("--steps", type=positive_int, help="optimizer steps of every trained word (default: the "
                   "profile's: 100 for mini generation words; the paper's is 1000). Words of another budget are other "
                   "trials, kept beside the default's in the same store")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=_cmd_fidelity)

    s = sub.add_parser("sweep", help="run a sweep file's grid of trials locally or on a Ray cluster (resumable)")
    s.add_argument("config", help="a sweep YAML file (see sweeps/)")
    s.add_argument("--backend", default="local", choices=["local", "ray"])
    s.add_argument("--address", help="ray: the cluster to join (e.g. auto); default: start one on this machine")
    s.add_argument("--out", type=folder, help="override the file's result store")
    s.add_argument("--device", type=device, help="override the file's device (auto, cpu, cuda)")
    s.add_argument("--group-size", type=positive_int, help="override the trials per batched forward pass")
    s.add_argument("--dry-run", action="store_true", help="print how many trials and jobs are left, run nothing")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_sweep)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="vw", description="vwlib: learn words for visual concepts and test whether they transfer between "
               "generation, detection and classification models.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    _model_commands(sub)
    _word_commands(sub)
    _study_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except VWError as e:
        print(f"vw: error: {e}", file=sys.stderr)
        return 2
