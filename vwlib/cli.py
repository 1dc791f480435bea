"""The `vw` command line (also `python -m vwlib`).

Usage:
    vw models [--profile mini] [--load]     # the profiles, their models, and whether each is on this machine
    vw tokens strawberry "scuba diver"      # CLIP BPE ids of words; is each a single token?
    vw mini train --model clip              # rebuild a mini checkpoint from its seed
    vw mini eval --json                     # the mini models' quality bars, on fresh held-out images
    vw notebooks [--profile mini]           # run all notebooks headlessly (what `make figures` does)
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import VWError


def _cmd_models(args) -> int:
    from .profiles import PROFILES, load_model, model_table

    rows = model_table(args.profile)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for profile in PROFILES if args.profile is None else [args.profile]:
            print(f"{profile}:")
            for r in (r for r in rows if r["profile"] == profile):
                state = "available" if r["available"] else "MISSING"
                where = r["path"] if r["path"] and r["path"] != r["source"] else ""
                print(f"  {r['role']:<15} {r['family']:<10} {state:<10} {r['source']}" + (f"  ({where})" if where else ""))
    if args.load:
        for r in rows:
            m = load_model(r["profile"], r["role"])  # raises MissingModelError: one line, with the fix
            print(f"loaded {r['profile']}/{r['role']}: {m.num_parameters():,} parameters")
    return 0


def _cmd_tokens(args) -> int:
    from .tokenizer import clip_tokenizer

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
    from .notebooks import run_notebooks

    run_notebooks(profile=args.profile)
    return 0


def _cmd_mini(args) -> int:
    if args.action == "train":
        from .mini.train import train
        from .profiles import CHECKPOINTS

        names = ["clip", "scorer", "owl", "sd"] if args.model == "all" else [args.model]
        for name in names:
            info = train(name, args.out or CHECKPOINTS / "mini" / name, steps=args.steps)
            print(f"mini-{name}: {info['steps']} steps in {info['wall_seconds'] / 60:.1f} min "
                  f"on {info['threads']} threads, final loss {info['loss_curve'][-1][-1]:.4f}")
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
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vw", description="vwlib: learn words for visual concepts and test whether "
                                "they transfer between generation, detection and classification models.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("models", help="list the model profiles and whether each model is on this machine")
    s.add_argument("--profile", choices=["paper", "mini", "tiny"], help="only this profile")
    s.add_argument("--json", action="store_true", help="print the table as JSON")
    s.add_argument("--load", action="store_true", help="also load every listed model (fails on the first missing one)")
    s.set_defaults(func=_cmd_models)

    s = sub.add_parser("tokens", help="show the CLIP BPE ids of words and whether each is a single token")
    s.add_argument("words", nargs="+")
    s.add_argument("--strict", action="store_true", help="exit 1 if any word is not a single token")
    s.set_defaults(func=_cmd_tokens)

    s = sub.add_parser("mini", help="train or evaluate the mini world's models")
    s.add_argument("action", choices=["train", "eval"])
    s.add_argument("--model", default="all", choices=["all", "clip", "scorer", "owl", "sd"])
    s.add_argument("--steps", type=int, help="training steps (default: each model's own)")
    s.add_argument("--out", help="checkpoint folder (default: the shipped one, vwlib/checkpoints/mini/<model>)")
    s.add_argument("--json", action="store_true", help="eval: print one JSON object")
    s.add_argument("--per-concept", type=int, default=20, help="eval: held-out images per concept")
    s.set_defaults(func=_cmd_mini)

    s = sub.add_parser("notebooks", help="run every notebook headlessly with papermill, writing figures/")
    s.add_argument("--profile", default="mini", choices=["paper", "mini", "tiny"])
    s.set_defaults(func=_cmd_notebooks)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except VWError as e:
        print(f"vw: error: {e}", file=sys.stderr)
        return 2
