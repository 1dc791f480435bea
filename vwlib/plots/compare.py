"""Did this run redraw the committed figures? Each figure's numbers are written beside it (`<name>.csv`, by `save`);
after `make figures` every CSV is compared with its committed version, one line per figure.

A figure is *equal* (every cell the same), *within tolerance* (numbers moved by no more than their tolerance: float
rounding on another machine, say), or *different* (a number moved further, or rows or labels changed: a broken
install or a changed result). Where the numbers carry 95% CIs (columns ci_low, ci_high), a row's numbers may move by
half of that row's committed CI (a move that small cannot change what the figure says; a row whose CI has no width
takes the figure's narrowest positive one; the CI bounds themselves set the tolerance and are not compared: a
bootstrap CI of a nearly all-zero sample jumps when one vote flips); without CIs by 0.005 (the last digits of a
mean over 100 trials).

Why per row: float rounding that differs by 1e-8 between two machines (or two exact rewrites of a loss) stays at
1e-8 for a word held within δ ≤ 0.5 of its anchor, but Adam amplifies it along the flat directions of an
unconstrained word (about 1e-3 after 200 steps, measured), enough to flip a vote: an accuracy over 25 one-image
trials then moves by 0.04, inside its own CI but not inside the narrowest CI of the figure.

Usage:
    lines = compare_figures("figures", committed={"fig6_delta_mini.csv": "<the committed text>"})
    print("\\n".join(line.text for line in lines))
"""

from __future__ import annotations

import io
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_TOLERANCE = 0.005  # without CIs: the last digits of a mean over 100 trials


@dataclass(frozen=True)
class Comparison:
    figure: str
    verdict: str  # "equal" | "within tolerance" | "different" | "new"
    largest: float  # the largest difference of a number (nan when not comparable)
    tolerance: float
    why: str  # where the tolerance comes from, or what differs

    @property
    def text(self) -> str:
        if self.verdict == "equal":
            return f"{self.figure}: equal"
        if self.verdict == "new":
            return f"{self.figure}: new (no committed numbers to compare with)"
        if self.verdict == "within tolerance":
            return (f"{self.figure}: within tolerance (largest difference {self.largest:.4g} <= {self.tolerance:.4g}, "
                    f"{self.why})")
        return f"{self.figure}: DIFFERENT ({self.why})"


def tolerance(reference: pd.DataFrame) -> tuple[np.ndarray, str]:
    """[rows]: half of each row's 95% CI (columns ci_low / ci_high; a row without width: the figure's narrowest
    positive one), else the default for every row; and why."""
    if {"ci_low", "ci_high"} <= set(reference.columns):
        widths = (reference["ci_high"] - reference["ci_low"]).astype(float).to_numpy()
        positive = widths[widths > 0]
        if len(positive):
            return np.where(widths > 0, widths, positive.min()) / 2, "half that row's 95% CI"
    return np.full(len(reference), DEFAULT_TOLERANCE), "no CI: the last digits of a mean over 100 trials"


def compare_table(figure: str, new: pd.DataFrame, reference: pd.DataFrame) -> Comparison:
    """One figure's numbers against its reference: same shape and labels, numbers within the tolerance."""
    tols, why = tolerance(reference)
    tol = float(tols.min()) if len(tols) else DEFAULT_TOLERANCE
    if list(new.columns) != list(reference.columns) or len(new) != len(reference):
        return Comparison(figure, "different", math.nan, tol, f"rows or columns changed: {len(reference)} x "
                          f"{len(reference.columns)} committed, {len(new)} x {len(new.columns)} now")
    numeric = [c for c in reference.columns if pd.api.types.is_numeric_dtype(reference[c])
               and pd.api.types.is_numeric_dtype(new[c])]
    labels = [c for c in reference.columns if c not in numeric]
    changed = [c for c in labels if not new[c].astype(str).equals(reference[c].astype(str))]
    if changed:
        return Comparison(figure, "different", math.nan, tol, f"labels changed in column(s) {', '.join(changed)}")
    diff = _differences(new[numeric], reference[numeric])
    if not diff.size or diff.max() == 0:  # every number the same, CI bounds included
        return Comparison(figure, "equal", 0.0, tol, why)
    if np.isnan(diff).any():  # a number appeared or vanished (nan on one side)
        return Comparison(figure, "different", math.nan, tol, "a number is missing on one side")
    if why.startswith("half"):  # the CI bounds set the tolerance; what is compared is where the points sit
        diff = diff[:, [c not in ("ci_low", "ci_high") for c in numeric]]
    # the row that used most of its tolerance speaks for the figure
    row = int((diff.max(1) / tols).argmax())
    largest, tol = float(diff[row].max()), float(tols[row])
    if largest <= tol:
        return Comparison(figure, "within tolerance", largest, tol, why)
    return Comparison(figure, "different", largest, tol, f"largest difference {largest:.4g} > {tol:.4g}, {why}")


def _differences(new: pd.DataFrame, reference: pd.DataFrame) -> np.ndarray:
    """[rows, columns] |new − reference|: 0 where equal (inf included) or nan on both sides, nan where one side is."""
    a, b = new.astype(float).to_numpy(), reference.astype(float).to_numpy()
    same = (a == b) | ((a != a) & (b != b))
    with np.errstate(invalid="ignore"):  # inf - inf
        diff = abs(a - b)
    diff[same] = 0.0
    return diff


def committed_tables(folder: Path) -> dict[str, str]:
    """{file name: text} of the CSVs of `folder` as committed at HEAD ({} outside a git checkout)."""
    try:
        root = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=folder, capture_output=True,
                                   text=True, check=True).stdout.strip())
        names = subprocess.run(["git", "ls-files", "*.csv"], cwd=folder, capture_output=True, text=True,
                               check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return {}
    out = {}
    for name in names:
        rel = (folder.resolve() / name).relative_to(root.resolve())
        shown = subprocess.run(["git", "show", f"HEAD:{rel.as_posix()}"], cwd=root, capture_output=True, text=True)
        if shown.returncode == 0:
            out[Path(name).name] = shown.stdout
    return out


def compare_figures(folder: str | Path, committed: dict[str, str] | None = None, names: list[str] | None = None
                    ) -> list[Comparison]:
    """Every figure CSV of `folder` (or only `names`) against its committed version (default: git's HEAD)."""
    folder = Path(folder)
    committed = committed_tables(folder) if committed is None else committed
    out = []
    for path in sorted(folder.glob("*.csv")):
        if names is not None and path.name not in names:
            continue
        figure = path.stem
        if path.name not in committed:
            out.append(Comparison(figure, "new", math.nan, math.nan, ""))
            continue
        out.append(compare_table(figure, pd.read_csv(path), pd.read_csv(io.StringIO(committed[path.name]))))
    return out
