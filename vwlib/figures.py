"""The paper's figures, drawn from the result store's table (the notebooks call these and `vwlib.save`).

Usage:
    scores = headline(store.table())                 # one score per (trial, evaluating model)
    fig = delta_curves(scores)                       # paper Fig. 6
    fig = unconstrained_bars(scores)                 # paper Fig. 3
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

# The headline metric of each evaluating model (paper Fig. 3 and 6 rows) and its chance level (10-way: 0.1).
HEADLINE = {"generation": ("accuracy", "generation accuracy"), "detection": ("map", "mAP (detector)"),
            "classification": ("accuracy", "classifier accuracy")}
CHANCE = {"generation": 0.1, "classification": 0.1}
# The paper dataset each mini dataset mirrors, for overlaying the paper's numbers.
ANALOGUE = {"mini-objects": "imagenet", "mini-instances": "dreambooth", "mini-scenes": "coco"}
TASK_COLOURS = {"generation": "tab:blue", "detection": "tab:orange", "classification": "tab:green"}


def headline(table: pd.DataFrame) -> pd.DataFrame:
    """Tidy scores: dataset, concept, anchor, delta (float, inf), trained_for, evaluated_on, score, in_domain."""
    rows = table[(table.get("status") == "ok") & table["evaluated_on"].notna()].copy()
    rows["trained_for"] = rows["task"]
    rows["score"] = [float(r[HEADLINE[r["evaluated_on"]][0]]) for _, r in rows.iterrows()]
    rows["delta"] = rows["delta"].map(lambda d: math.inf if str(d) == "inf" else float(d))
    rows["in_domain"] = rows["trained_for"] == rows["evaluated_on"]
    return rows[["dataset", "concept", "anchor", "delta", "seed", "trained_for", "evaluated_on", "score", "in_domain",
                 "trial_dir"]].reset_index(drop=True)


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


def _delta_positions(deltas) -> dict[float, float]:
    finite = sorted(d for d in set(deltas) if math.isfinite(d))
    pos = {d: float(i) for i, d in enumerate(finite)}
    if any(math.isinf(d) for d in deltas):
        pos[math.inf] = float(len(finite))
    return pos


def delta_curves(scores: pd.DataFrame, datasets: list[str] | None = None, reference: pd.DataFrame | None = None):
    """Paper Fig. 6: rows = evaluating model's metric, columns = datasets, one line per task the word was trained
    for, shaded 95% CI over trials, chance marked. δ = inf is drawn at the right end."""
    datasets = datasets or sorted(scores["dataset"].unique())
    stats = summary(scores)
    pos = _delta_positions(stats["delta"])
    fig, axes = plt.subplots(3, len(datasets), figsize=(3.2 * len(datasets), 7.5), squeeze=False, sharex=True)
    for r, evaluated in enumerate(HEADLINE):
        for c, ds in enumerate(datasets):
            ax = axes[r, c]
            for trained, colour in TASK_COLOURS.items():
                s = stats[(stats.dataset == ds) & (stats.evaluated_on == evaluated) & (stats.trained_for == trained)]
                if s.empty:
                    continue
                s = s.assign(x=s["delta"].map(pos)).sort_values("x")
                label = f"trained for {trained}" + (" (in-domain)" if trained == evaluated else "")
                ax.plot(s.x, s["mean"], marker="o", color=colour, lw=2 if trained == evaluated else 1.2, label=label)
                ax.fill_between(s.x, s.ci_low, s.ci_high, color=colour, alpha=0.2)
            if evaluated in CHANCE:
                ax.axhline(CHANCE[evaluated], color="gray", ls=":", lw=1, label="chance")
            if reference is not None:
                ref = reference[(reference.metric_model_task == evaluated) & (reference.trained_for == evaluated)
                                & (reference.dataset == ANALOGUE.get(ds, ds))]
                ref = ref.assign(x=ref["delta"].map(pos)).dropna(subset=["x"]).sort_values("x")
                if len(ref):
                    ax.plot(ref.x, ref["mean"], ls="--", color="black", lw=1, label="paper (in-domain, mean)")
            ax.set_ylim(-0.02, 1.02)
            if r == 0:
                ax.set_title(ds)
            if c == 0:
                ax.set_ylabel(HEADLINE[evaluated][1])
            ax.set_xticks(list(pos.values()), ["∞" if math.isinf(d) else f"{d:g}" for d in pos])
            if r == 2:
                ax.set_xlabel("δ (radius / nearest-word distance)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for ax in axes.flat:  # collect every label once
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def unconstrained_bars(scores: pd.DataFrame, datasets: list[str] | None = None, reference: pd.DataFrame | None = None):
    """Paper Fig. 3 (δ = inf): rows = evaluating model's metric, columns = datasets, a bar per task the word was
    trained for (in-domain hatched), 95% CI whiskers; the paper's means as black ticks when `reference` is given."""
    scores = scores[scores["delta"].map(math.isinf)]
    datasets = datasets or sorted(scores["dataset"].unique())
    stats = summary(scores, by=("dataset", "evaluated_on", "trained_for"))
    fig, axes = plt.subplots(3, len(datasets), figsize=(3.2 * len(datasets), 6), squeeze=False, sharex=True)
    tasks = list(TASK_COLOURS)
    for r, evaluated in enumerate(HEADLINE):
        for c, ds in enumerate(datasets):
            ax = axes[r, c]
            for i, trained in enumerate(tasks):
                s = stats[(stats.dataset == ds) & (stats.evaluated_on == evaluated) & (stats.trained_for == trained)]
                if s.empty:
                    continue
                m, lo, hi = float(s["mean"].iloc[0]), float(s.ci_low.iloc[0]), float(s.ci_high.iloc[0])
                ax.barh(i, m, color=TASK_COLOURS[trained], hatch="//" if trained == evaluated else None,
                        edgecolor="white", xerr=[[m - lo], [hi - m]], capsize=3)
                if reference is not None:
                    ref = reference[(reference.metric_model_task == evaluated) & (reference.trained_for == trained)
                                    & (reference.dataset == ANALOGUE.get(ds, ds))]
                    if len(ref):
                        ax.plot([float(ref["mean"].iloc[0])] * 2, [i - 0.4, i + 0.4], color="black", lw=2)
            if evaluated in CHANCE:
                ax.axvline(CHANCE[evaluated], color="gray", ls=":", lw=1)
            ax.set_yticks(range(3), [f"{t}" for t in tasks] if c == 0 else [""] * 3)
            ax.set_xlim(0, 1)
            if r == 0:
                ax.set_title(ds)
            if c == 0:
                ax.set_ylabel(f"{HEADLINE[evaluated][1]}\ntrained for", fontsize=9)
    fig.tight_layout()
    return fig


_REFERENCE_TASK = {"sd21": "generation", "owlv2": "detection", "dfn": "classification"}


def paper_reference(name: str = "fig6_delta") -> pd.DataFrame:
    """The paper's plotted numbers (../shared/paper/reference/<name>.csv) with `metric_model_task` added; an empty
    frame when the file is not beside this checkout."""
    from .notebooks import REPO_ROOT

    path = REPO_ROOT.parent / "shared" / "paper" / "reference" / f"{name}.csv"
    if not path.is_file():
        return pd.DataFrame(columns=["metric_model_task", "trained_for", "dataset", "delta", "mean"])
    ref = pd.read_csv(path, comment="#")
    ref["metric_model_task"] = ref["metric_model"].map(_REFERENCE_TASK)
    return ref
