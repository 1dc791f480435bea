"""Wall time of `make figures` (every notebook, headless, on the mini world): from an empty result store, then a re-run
that finds every trial finished (issue #7). Prints both times and their ratio.

The store is a fresh temporary one, so the shipped `runs/` is untouched; the figures are rewritten in `figures/`
(the same code, the same numbers as `make figures`).

Usage:
    python bench/make_figures_time.py            # the quick 5 x 5 grid, as `make figures`
    python bench/make_figures_time.py --full     # the full 10 x 10 grid, as `make figures FULL=1`
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from vwlib.study.notebooks import run_notebooks


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="mini")
    p.add_argument("--full", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        store, build = str(Path(tmp) / "runs"), Path(tmp) / "build"
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            run_notebooks(args.profile, out_dir=build, parameters={"out": store}, full=args.full)
            times.append(time.perf_counter() - t0)
    result = {"first_run_s": times[0], "rerun_s": times[1], "ratio": times[0] / times[1]}
    print(f"make figures ({args.profile}, {'full' if args.full else 'quick'} grid): empty store {times[0] / 60:.1f} min, "
          f"re-run {times[1] / 60:.1f} min, ratio {result['ratio']:.1f}x")
    return result


if __name__ == "__main__":
    main()
