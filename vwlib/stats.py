"""Statistics of the result table: one headline score per (trial, evaluating model), bootstrap CIs, summaries, and
the paper's own numbers (shipped in vwlib/reference/). A leaf: imports nothing of vwlib but its paths.

Usage:
    scores = headline(store.table())                 # one score per (trial, evaluating model)
    mean, lo, hi = bootstrap_ci(scores["score"])     # the 95% percentile bootstrap CI of the mean
    summary(scores)                                  # mean and CI per (dataset, evaluated_on, trained_for, delta)
    paper_reference("fig6_delta")                    # the paper's plotted values
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .paths import REFERENCE_DIR

# The headline metric of each evaluating model (paper Fig. 3 and 6 rows) and its chance level (10-way: 0.1).
HEADLINE = {"generation": ("accuracy", "generation accuracy"), "detection": ("map", "mAP (detector)"),
            "classification": ("accuracy", "classifier accuracy")}
CHANCE = {"generation": 0.1, "classification": 0.1}


def headline(table: pd.DataFrame, space: str | None = "input") -> pd.DataFrame:
    """Tidy scores: dataset, concept, anchor, delta (float, inf), space, trained_for, evaluated_on, score, in_domain.
    space: "input" (the paper's token words; the default of every paper figure), "output" (ConES), None: both."""
    rows = table[(table.get("status") == "ok") & table["evaluated_on"].notna()].copy()
    rows["space"] = rows["space"].fillna("input") if "space" in rows else "input"  # stores written before ConES
    if space is not None:
        rows = rows[rows["space"] == space]
    rows["trained_for"] = rows["task"]
    rows["score"] = [float(r[HEADLINE[r["evaluated_on"]][0]]) for _, r in rows.iterrows()]
    rows["delta"] = rows["delta"].map(lambda d: math.inf if str(d) == "inf" else float(d))
    rows["in_domain"] = rows["trained_for"] == rows["evaluated_on"]
    return rows[["dataset", "concept", "anchor", "delta", "seed", "space", "trained_for", "evaluated_on", "score",
                 "in_domain", "trial_dir"]].reset_index(drop=True)


def bootstrap_ci(values, n: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean and the percentile bootstrap CI of the mean (seaborn's errorbar=("ci", 95))."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n, len(v)))].mean(1)
    lo, hi = np.percentile(means, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(v.mean()), float(lo), float(hi)


def summary(scores: pd.DataFrame, by=("dataset", "evaluated_on", "trained_for", "delta")) -> pd.DataFrame:
    """Mean and 95% bootstrap CI over trials for each group."""
    out = []
    for key, g in scores.groupby(list(by)):
        mean, lo, hi = bootstrap_ci(g["score"])
        out.append(dict(zip(by, key)) | {"mean": mean, "ci_low": lo, "ci_high": hi, "n": len(g)})
    return pd.DataFrame(out)


_REFERENCE_TASK = {"sd21": "generation", "owlv2": "detection", "dfn": "classification"}
# the paper dataset each mini dataset stands in for (its numbers are drawn beside the mini world's)
PAPER_ANALOGUE = {"mini-objects": "imagenet", "mini-instances": "dreambooth", "mini-scenes": "coco"}


def paper_reference(name: str = "fig6_delta") -> pd.DataFrame:
    """The paper's plotted numbers (vwlib/reference/<name>.csv: "fig3_unconstrained" or "fig6_delta"; source in
    vwlib/reference/README.md), with `metric_model_task` added (the task of the evaluating model)."""
    path = REFERENCE_DIR / f"{name}.csv"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in REFERENCE_DIR.glob("*.csv")))
        raise ValueError(f"no paper reference table {name!r}; choose one of {known}")
    ref = pd.read_csv(path, comment="#")
    ref["metric_model_task"] = ref["metric_model"].map(_REFERENCE_TASK)
    return ref
