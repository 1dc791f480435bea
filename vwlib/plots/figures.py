"""The paper's figures, drawn from the result store's table (the notebooks call these and `vwlib.save`).

Usage:
    scores = vwlib.stats.headline(store.table())     # one score per (trial, evaluating model)
    fig = delta_curves(scores)                       # paper Fig. 6
    fig = unconstrained_bars(scores)                 # paper Fig. 3
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..stats import CHANCE, HEADLINE, PAPER_ANALOGUE, paper_reference, summary

# The paper dataset each mini dataset mirrors, for overlaying the paper's numbers.
TASK_COLOURS = {"generation": "tab:blue", "detection": "tab:orange", "classification": "tab:green"}


def _with_numbers(fig, numbers: pd.DataFrame):
    """Attach the numbers a figure draws (`save` writes them beside it as <name>.csv, and `make figures` compares
    them with the committed ones)."""
    fig.numbers = numbers.reset_index(drop=True)
    return fig


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
                                & (reference.dataset == PAPER_ANALOGUE.get(ds, ds))]
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
    return _with_numbers(fig, stats)


def unconstrained_bars(scores: pd.DataFrame, datasets: list[str] | None = None, reference: pd.DataFrame | None = None,
                       spaces: tuple = ("input",)):
    """Paper Fig. 3 (δ = inf): rows = evaluating model's metric, columns = datasets, a bar per task the word was
    trained for (in-domain hatched), 95% CI whiskers; the paper's means as black ticks when `reference` is given.
    With spaces=("input", "output") (scores from `headline(table, space=None)`), each task gets a pair of bars:
    the paper's token words (solid) and ConES output-space embeddings (pale)."""
    scores = scores[scores["delta"].map(math.isinf)]
    if "space" not in scores:
        scores = scores.assign(space="input")
    datasets = datasets or sorted(scores["dataset"].unique())
    stats = summary(scores, by=("dataset", "evaluated_on", "trained_for", "space"))
    fig, axes = plt.subplots(3, len(datasets), figsize=(3.2 * len(datasets), 6 + 0.5 * (len(spaces) > 1)),
                             squeeze=False, sharex=True)
    tasks = list(TASK_COLOURS)
    height = 0.8 / len(spaces)
    for r, evaluated in enumerate(HEADLINE):
        for c, ds in enumerate(datasets):
            ax = axes[r, c]
            for i, trained in enumerate(tasks):
                for j, space in enumerate(spaces):
                    s = stats[(stats.dataset == ds) & (stats.evaluated_on == evaluated)
                              & (stats.trained_for == trained) & (stats.space == space)]
                    if s.empty:
                        continue
                    m, lo, hi = float(s["mean"].iloc[0]), float(s.ci_low.iloc[0]), float(s.ci_high.iloc[0])
                    ax.barh(i + (j - (len(spaces) - 1) / 2) * height, m, height=height * 0.95,
                            color=TASK_COLOURS[trained], alpha=1.0 if space == "input" else 0.45,
                            hatch="//" if trained == evaluated else None, edgecolor="white",
                            xerr=[[m - lo], [hi - m]], capsize=3)
                if reference is not None:
                    ref = reference[(reference.metric_model_task == evaluated) & (reference.trained_for == trained)
                                    & (reference.dataset == PAPER_ANALOGUE.get(ds, ds))]
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
    if len(spaces) > 1:
        from matplotlib.patches import Patch

        fig.legend(handles=[Patch(facecolor="gray", label="input space: token word (the paper)"),
                            Patch(facecolor="gray", alpha=0.45, label="output space: encoder output (ConES)"),
                            Patch(facecolor="white", edgecolor="gray", hatch="//", label="in-domain")],
                   loc="lower center", ncol=3, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    else:
        fig.tight_layout()
    return _with_numbers(fig, stats)


def image_grid(images: list[list], row_labels: list[str], col_labels: list[str], title: str = "",
               boxes: list[list] | None = None, cell: float = 0.9, captions: list[list[str]] | None = None):
    """A grid of PIL images (paper Figs. 4, 5, 8–11): rows x columns, optional xyxy boxes per cell drawn in
    magenta and a caption under each cell."""
    from matplotlib.patches import Rectangle

    rows, cols = len(images), len(images[0])
    fig, axes = plt.subplots(rows, cols, figsize=(cell * cols + 1.2, (cell + 0.25 * bool(captions)) * rows + 0.6),
                             squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(images[r][c])
            for b in (boxes[r][c] if boxes else []):
                ax.add_patch(Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, ec="magenta", lw=1.2))
            ax.set_xticks([]), ax.set_yticks([])
            if captions:
                ax.set_xlabel(captions[r][c], fontsize=6, linespacing=0.9)
            if r == 0:
                ax.set_title(col_labels[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(row_labels[r].replace("_", "\n"), fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def truncation_figure(images: list, layers: list[int], title: str = ""):
    """One generation per truncated text encoder (paper Fig. 7 top): image k used blocks 1..layers[k] only.

    Usage: vw.truncation_figure(*vw.truncation_row(cfg, "mini-objects", "star", "heart"), title="star from heart")"""
    fig, axes = plt.subplots(1, len(images), figsize=(1.6 * len(images), 1.9))
    for ax, img, k in zip(axes, images, layers):
        ax.imshow(img)
        ax.set_title(f"layers 1–{k}", fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return fig


def layer_panels(panels: list[dict], title: str = ""):
    """t-SNE/UMAP panels (paper Fig. 7 bottom): each dict has xy [N, 2], labels (colour), layer, purity, row."""
    rows = sorted({p["row"] for p in panels})
    cols = max(sum(p["row"] == r for p in panels) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.6 * cols, 2.6 * len(rows)), squeeze=False)
    palette = plt.get_cmap("tab10")
    for r, row in enumerate(rows):
        for c, p in enumerate([p for p in panels if p["row"] == row]):
            ax = axes[r, c]
            labels = list(p["labels"])
            names = sorted(set(labels), key=labels.index)
            for k, name in enumerate(names):
                pts = p["xy"][[i for i, l in enumerate(labels) if l == name]]
                ax.scatter(pts[:, 0], pts[:, 1], s=9, color=palette(k % 10), label=name)
            ax.set_title(f"{row}: layer {p['layer']}\npurity concept {p['purity_concept']:.2f} / "
                         f"anchor {p['purity_anchor']:.2f}", fontsize=7)
            ax.set_xticks([]), ax.set_yticks([])
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, [l.replace("_", " ") for l in labels], loc="lower center", ncol=5, fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return _with_numbers(fig, pd.DataFrame([{k: p[k] for k in ("row", "layer", "purity_concept", "purity_anchor")}
                                            for p in panels]))


def training_curves_figure(curves: pd.DataFrame, title: str = ""):
    """Loss and ‖v − anchor‖ / d_nn against step, one line per δ (mean over the table's words), from
    `vwlib.training_curves`. The distance panel marks the δ-ball (1 = the anchor's nearest other word)."""
    fig, (ax_loss, ax_dist) = plt.subplots(1, 2, figsize=(8, 3))
    if curves.empty:  # words trained before curves were kept
        ax_loss.text(0.5, 0.5, "no stored curves: these words were trained before vwlib kept them",
                     ha="center", fontsize=8, transform=ax_loss.transAxes)
        return fig
    means = []
    for delta, rows in curves.groupby("delta"):
        mean = rows.groupby("step")[["loss", "distance_over_dnn"]].mean()
        label = "δ = ∞" if math.isinf(delta) else f"δ = {delta:g}"
        ax_loss.plot(mean.index, mean["loss"], label=label)
        ax_dist.plot(mean.index, mean["distance_over_dnn"], label=label)
        means.append(mean.reset_index().assign(delta=delta))
    ax_dist.axhline(1.0, ls=":", color="gray")
    ax_dist.text(0, 1.0, " nearest other word", va="bottom", fontsize=7, color="gray")
    ax_loss.set(xlabel="step", ylabel="loss (mean over words)")
    ax_dist.set(xlabel="step", ylabel="‖v − anchor‖ / d_nn")
    ax_loss.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _with_numbers(fig, pd.concat(means)[["delta", "step", "loss", "distance_over_dnn"]])


def _heatmap(ax, m: pd.DataFrame) -> None:
    """A 3 x 3 (trained for x evaluated on) score matrix in [0, 1], each cell written on it, tasks abbreviated."""
    ax.imshow(m.values.astype(float), vmin=0, vmax=1, cmap="viridis")
    for i in range(len(m.index)):
        for j in range(len(m.columns)):
            v = float(m.values[i, j])
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black")
    ax.set_xticks(range(len(m.columns)), [t[:5] + "." for t in m.columns], fontsize=8)
    ax.set_yticks(range(len(m.index)), [t[:5] + "." for t in m.index], fontsize=8)


def transfer_matrix(scores: pd.DataFrame, delta: float | None = None):
    """The 3 x 3 (trained for x evaluated on) mean-score matrix per dataset at one δ (default: the largest)."""
    delta = scores["delta"].max() if delta is None else delta
    at = scores[scores["delta"] == delta]
    datasets = sorted(at["dataset"].unique())
    tasks = list(TASK_COLOURS)
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets), 3.3), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        m = at[at.dataset == ds].pivot_table(index="trained_for", columns="evaluated_on", values="score", aggfunc="mean")
        _heatmap(ax, m.reindex(index=tasks, columns=tasks))
        ax.set_xlabel("evaluated on")
        ax.set_title(ds, fontsize=9)
    axes[0, 0].set_ylabel("trained for")
    fig.suptitle(f"mean score at δ = {'∞' if math.isinf(delta) else f'{delta:g}'} (diagonal: in-domain)", fontsize=9)
    fig.tight_layout()
    # the numbers beside it carry the 95% CIs the heatmap does not draw: the comparison of make figures reads them
    return _with_numbers(fig, summary(at, by=("dataset", "trained_for", "evaluated_on")))


GAP_MARKERS = {"name prompt": "s", "input-space": "o", "output-space": "D"}


def modality_gap_plot(table: pd.DataFrame):
    """The ConES modality-gap table drawn: one panel per joint-space task, a row per dataset, the mean distance from
    each kind of text-side embedding to its concept's image embeddings (lower: closer to the images), 95% CI."""
    tasks = list(dict.fromkeys(table["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 0.5 + 0.9 * table["dataset"].nunique()),
                             squeeze=False)
    datasets = sorted(table["dataset"].unique())
    for ax, task in zip(axes[0], tasks):
        for j, (kind, marker) in enumerate(GAP_MARKERS.items()):
            s = table[(table.task == task) & (table.embedding == kind)].set_index("dataset").reindex(datasets)
            y = [i + (j - 1) * 0.22 for i in range(len(datasets))]
            ax.errorbar(s["gap"], y, xerr=[s["gap"] - s["ci_low"], s["ci_high"] - s["gap"]], fmt=marker, capsize=2,
                        label=kind)
        ax.set_yticks(range(len(datasets)), datasets)
        ax.invert_yaxis()
        ax.set_title(f"{task}: text-to-image distance")
        ax.set_xlabel("mean L2 distance of unit embeddings (0 = on the images)")
    axes[0, -1].legend(fontsize=8, frameon=False, loc="best")
    fig.tight_layout()
    return _with_numbers(fig, table)


def fidelity_figure(result: dict):
    """Does the mini world reproduce the paper? Top: in-domain score against δ per evaluating model (one line per
    dataset, all words solid, unrelated anchors dashed), the floor (dotted) and the name control (star), the paper's
    in-domain curve of the analogue dataset (dash-dot; its δ = ∞ point from Fig. 3). Bottom: the δ = ∞ transfer
    matrix, mini (mean over datasets) beside the paper's (mean over its analogue datasets); the checks that passed and
    failed, per finding."""
    fig = plt.figure(figsize=(12, 7.2))
    grid = fig.add_gridspec(2, 3, height_ratios=(1.1, 1))
    _fidelity_curves([fig.add_subplot(grid[0, c]) for c in range(3)], result)
    tasks = list(HEADLINE)
    matrix = pd.DataFrame(result["matrix"])
    for c, (column, title) in enumerate((("mean", "mini world, δ = ∞"), ("paper", "paper, δ = ∞"))):
        ax = fig.add_subplot(grid[1, c])
        m = (matrix.pivot_table(index="trained_for", columns="evaluated_on", values=column, aggfunc="mean")
             .reindex(index=tasks, columns=tasks) if len(matrix) else pd.DataFrame(index=tasks, columns=tasks))
        _heatmap(ax, m)
        ax.set_xlabel("evaluated on", fontsize=8)
        ax.set_ylabel("trained for", fontsize=8)
        ax.set_title(title, fontsize=9)
    _check_bars(fig.add_subplot(grid[1, 2]), result)
    fig.tight_layout()
    checks = pd.DataFrame(result["checks"])
    columns = ["check", "value", "ci_low", "ci_high", "n", "threshold", "passed"]
    return _with_numbers(fig, checks[columns] if len(checks) else pd.DataFrame(columns=columns))


def _fidelity_curves(axes: list, result: dict) -> None:
    """One panel per evaluating model: the mini world's in-domain δ curves with the floor, the name control and the
    paper's analogue curve (see fidelity_figure)."""
    curves = pd.DataFrame(result["curves"])
    ref, free = paper_reference("fig6_delta"), paper_reference("fig3_unconstrained")  # the paper's δ curve and δ = ∞
    columns = ["metric_model_task", "trained_for", "dataset", "delta", "mean"]
    paper_all = pd.concat([ref[columns], free.assign(delta=math.inf)[columns]])
    colours = dict(zip(sorted(curves["dataset"].unique()) if len(curves) else [], ("tab:blue", "tab:orange",
                                                                                     "tab:green", "tab:red")))
    pos = _delta_positions(curves["delta"]) if len(curves) else {}
    for c, (ax, task) in enumerate(zip(axes, HEADLINE)):
        for i, (dataset, colour) in enumerate(colours.items()):
            for words, ls in (("all", "-"), ("unrelated", "--")):
                s = curves[(curves.dataset == dataset) & (curves.task == task) & (curves.words == words)]
                s = s.assign(x=s["delta"].map(pos)).sort_values("x")
                ax.plot(s.x, s["mean"], ls=ls, marker="o", ms=3, color=colour,
                        label=f"{dataset}" if words == "all" else None)
                ax.fill_between(s.x, s.ci_low, s.ci_high, color=colour, alpha=0.12)
            key = f"{dataset}/{task}"
            if key in result["floors"]:
                ax.axhline(result["floors"][key], color=colour, ls=":", lw=1)
            if key in result["names"] and pos:
                ax.plot([max(pos.values()) + 0.25 + 0.12 * i], [result["names"][key]], marker="*", ms=9, color=colour)
            paper = paper_all[(paper_all.metric_model_task == task) & (paper_all.trained_for == task)
                              & (paper_all.dataset == PAPER_ANALOGUE.get(dataset))]
            paper = paper.assign(x=paper["delta"].map(pos)).dropna(subset=["x"]).sort_values("x")
            ax.plot(paper.x, paper["mean"], color=colour, ls="-.", lw=1, alpha=0.5)
        ax.set_xticks(list(pos.values()), ["∞" if math.isinf(d) else f"{d:g}" for d in pos])
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{HEADLINE[task][1]} (in-domain)", fontsize=9)
        ax.set_xlabel("δ  (dashed: unrelated anchors; dotted: floor; ★: the concept's name;\n"
                      "dash-dot: the paper's analogue dataset)", fontsize=7)
        if c == 0:
            ax.legend(fontsize=7, frameon=False, loc="upper left")


def _check_bars(ax, result: dict) -> None:
    """The judged checks per finding, passed (green) and failed (red)."""
    findings = ["control", "delta", "vocabulary", "transfer", "floor", "layers"]
    judged = [ch for ch in result["checks"] if ch["passed"] is not None]
    passed = [sum(ch["passed"] for ch in judged if ch["check"].startswith(f)) for f in findings]
    failed = [sum(not ch["passed"] for ch in judged if ch["check"].startswith(f)) for f in findings]
    ax.barh(findings, passed, color="tab:green", label="passed")
    ax.barh(findings, failed, left=passed, color="tab:red", label="failed")
    ax.invert_yaxis()
    ax.set_title(f"checks: {result['passed']} passed, {result['failed']} failed", fontsize=9)
    ax.legend(fontsize=7, frameon=False)


def transfer_gallery_figure(gallery: dict):
    """Paper Fig. 4 from `study.transfer_gallery`: real images, then the generator's image of the word trained for
    generation and of the words mapped into it from classification and detection, each with the scorer's vote."""
    import textwrap

    delta = gallery["delta"]
    captions = [[textwrap.fill(c.replace("_", " "), 18) for c in row] for row in gallery["captions"]]
    return image_grid(gallery["images"], gallery["rows"], gallery["columns"], cell=1.3, captions=captions,
                      title=f"One word per concept in the generator\n(δ = {'∞' if str(delta) == 'inf' else delta}: "
                            "trained for it, or mapped into it)")
