"""Readings: what a figure shows, in measured numbers, beside the paper's.

A reading is a small table under a figure: for each claim of the paper the figure is about, the claim in one
sentence, the value `vw fidelity` measured (mean, 95% CI, n), its bar, the paper's value for the same quantity (from
the shipped reference data, vwlib/reference/) and the verdict. The verdicts are fidelity's own checks read back — a
reading adds no threshold of its own — and a claim drawn over several cells of a figure reads **reproduced** when
every cell's check passes, **partly** when some do, **not reproduced** when none does.

Usage:
    result = vw.fidelity(out, profile=profile, concepts=5, datasets=("mini-objects",))  # measured once per store
    vw.reading("fig6_delta", result)        # rendered under the figure in JupyterLab and the executed HTML
    vw.reading("tour", result, tasks=("classification",)).rows   # [{"claim", "check", "value", ...}]
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import VWError
from ..stats import PAPER_ANALOGUE, paper_reference

RESULTS_DOC = "../docs/results.md"  # relative to notebooks/, where the notebooks run
FIDELITY_SECTION = "#does-the-mini-world-reproduce-the-paper-vw-fidelity"
CANNOT_SHOW_SECTION = "#what-the-mini-world-cannot-show-and-why-32"  # the checks no mini model reached, and why
FINDINGS = {"i": "(i) a word near any anchor does the job", "ii": "(ii) such words do not transfer",
            "iii": "(iii) early layers group by anchor, the last by concept"}
VERDICTS = ("reproduced", "partly", "not reproduced")
_OPS = {">=": "≥", "<=": "≤", ">": ">"}


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, judged by the fidelity checks whose names match `check` (a regex whose named groups
    fill `sentence`); `paper(fields)` is the paper's value for the same quantity (nan: the paper gives none)."""

    finding: str
    check: str
    sentence: str  # one cell's claim
    general: str  # the claim over all the cells of a figure
    paper: Callable[[dict], float | str] | None = None

    def match(self, name: str) -> dict | None:
        m = re.fullmatch(self.check, name)
        return m.groupdict() if m else None


def _fig6(task: str, dataset: str, delta: float, trained_for: str | None = None) -> float | str:
    """The paper's Fig. 6 mean at `delta` for `trained_for` words (default: in-domain) scored by the `task` model on
    the paper dataset `dataset` stands in for; its detection transfers are not plotted one by one (all <= 0.16)."""
    trained_for = trained_for or task
    if trained_for != task and "detection" in (task, trained_for):
        return "≤ 0.16"
    ref = paper_reference("fig6_delta")
    row = ref[(ref.dataset == PAPER_ANALOGUE.get(dataset)) & (ref.metric_model_task == task)
              & (ref.trained_for == trained_for) & np.isclose(ref.delta, delta)]
    return float(row["mean"].iloc[0]) if len(row) else math.nan


def _fig3(task: str, dataset: str, trained_for: str | None = None) -> float:
    ref = paper_reference("fig3_unconstrained")
    row = ref[(ref.dataset == PAPER_ANALOGUE.get(dataset)) & (ref.metric_model_task == task)
              & (ref.trained_for == (trained_for or task))]
    return float(row["mean"].iloc[0]) if len(row) else math.nan


_CELL = r"(?P<dataset>mini-[a-z]+)/(?P<task>[a-z]+)"
_PAIR = r"(?P<dataset>mini-[a-z]+)/(?P<src>[a-z]+)->(?P<dst>[a-z]+)"
CLAIMS = {
    "control": Claim("i", rf"control/{_CELL}/vs_name",
                     "an unconstrained {task} word works on {dataset}: δ = ∞ ≥ 0.9 × the concept's own name",
                     "an unconstrained word works in-domain, as well as the concept's own name",
                     lambda f: _fig3(f["task"], f["dataset"])),
    "near_anchor": Claim("i", rf"delta/{_CELL}/unrelated_at_0\.1",
                         "at δ = 0.1 a {task} word from an unrelated anchor still reads as that anchor ({dataset})",
                         "at δ = 0.1 a word from an unrelated anchor still reads as that anchor",
                         lambda f: _fig6(f["task"], f["dataset"], 0.1)),
    "saturation": Claim("i", rf"delta/{_CELL}/saturation_at_0\.5",
                        "by δ = 0.5 a {task} word from any anchor does its job: ≥ 0.75 × δ = ∞ ({dataset})",
                        "by δ = 0.5 a word from any anchor does its job",
                        lambda f: _fig6(f["task"], f["dataset"], 0.5)),
    "transfer": Claim("ii", rf"transfer/{_PAIR}/unrelated_at_most_0\.5",
                      "a {src} word (δ ≤ 0.5, unrelated anchor) mapped into the {dst} model scores what its anchor "
                      "does there ({dataset})",
                      "a constrained word mapped into another model scores only what its anchor does there",
                      lambda f: _fig6(f["dst"], f["dataset"], 0.5, f["src"])),
    "readback": Claim("ii", r"transfer/readback_anchor",
                      "mapped words at δ ≤ 0.5 land back on their anchor: it is their nearest word in the other model",
                      "mapped constrained words land back on their anchor"),
    "vocabulary": Claim("ii", r"vocabulary/(?P<src>[a-z]+)->(?P<dst>[a-z]+)/r2",
                        "the least-squares map {src} → {dst} carries the shared vocabulary (held-out R²)",
                        "the least-squares maps carry the shared vocabulary"),
    "first_by_anchor": Claim("iii", r"layers/(?P<dataset>mini-[a-z]+)/in_domain/first_by_anchor",
                             "in the generator's first layer, in-domain δ = 0.5 words group by anchor ({dataset})",
                             "early layers group the words by anchor", lambda f: "yes (Fig. 7)"),
    "last_by_concept": Claim("iii", r"layers/(?P<dataset>mini-[a-z]+)/in_domain/last_by_concept",
                             "in its last layer they group by concept ({dataset})",
                             "the last layer groups them by concept", lambda f: "yes (Fig. 7)"),
    "gain_by_concept": Claim("iii", r"layers/(?P<dataset>mini-[a-z]+)/in_domain/gain_by_concept",
                             "grouping by concept grows from the first layer to the last ({dataset})",
                             "grouping by concept grows with depth", lambda f: "yes (Fig. 7)"),
    "mapped_not_by_concept": Claim(
        "iii", r"layers/(?P<dataset>mini-[a-z]+)/(?P<src>[a-z]+)->generation/last_by_concept",
        "{src} words mapped into the generator do not group by concept in its last layer ({dataset})",
        "words mapped in from another model do not group by concept", lambda f: "no grouping (Fig. 7)"),
}

# The claims each figure is about (the figures' names are those vw.save writes, without profile and dataset).
FIGURES = {
    "tour": ("control", "near_anchor", "saturation"),
    "tour_curves": (),
    "tour_transfer": ("transfer", "readback"),
    "tour_truncation": ("gain_by_concept", "mapped_not_by_concept"),
    "fig6_delta": ("near_anchor", "saturation"),
    "fig3_unconstrained": ("control",),
    "fig4_transfer_gallery": ("transfer", "readback"),
    "fig5_grid": ("saturation", "readback"),
    "fig7_truncation": ("gain_by_concept",),
    "fig7_layers": ("first_by_anchor", "last_by_concept", "gain_by_concept", "mapped_not_by_concept"),
    "cones_spaces": ("transfer", "vocabulary", "readback"),
    "cones_modality_gap": (),
}
# What a figure without a claim of the paper shows instead
NOTES = {"tour_curves": "How a word trains: its loss and its distance from its anchor in units of d_nn. The paper "
                        "makes no claim about it to judge; the δ-ball is kept by construction (every word ends "
                        "within δ·d_nn of its anchor).",
         "cones_modality_gap": "Beyond the paper (ConES, Liu et al.): no claim of the paper is judged on this figure."}


@dataclass
class Reading:
    """A figure's reading: `rows` (one per judged check: finding, claim, check, value, ci_low, ci_high, n, bar,
    paper, verdict) and `summary` (one per claim: how many of its cells reproduce it, and its verdict)."""

    figure: str
    rows: list[dict]
    summary: list[dict]
    grid: str = ""
    notes: list[str] = field(default_factory=list)

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows)

    def _repr_html_(self) -> str:
        head = (f"<p><b>Reading</b> — what this figure shows, measured by <code>vw fidelity</code>{self.grid}; "
                f"why the mini world differs: <a href='{RESULTS_DOC}{FIDELITY_SECTION}'>docs/results.md</a> "
                f"(<a href='{RESULTS_DOC}{CANNOT_SHOW_SECTION}'>what it cannot show, and why</a>)</p>")
        if not self.rows:
            return head + "".join(f"<p>{html.escape(n)}</p>" for n in self.notes)
        summary = "".join(f"<li><b>{html.escape(s['verdict'])}</b>: {html.escape(s['claim'])} "
                          f"({s['reproduced']} of {s['cells']})</li>" for s in self.summary)
        cells = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(v))}</td>" for v in (
                FINDINGS[r["finding"]].split(" ")[0], r["claim"], _measured(r), r["bar"], _number(r["paper"]),
                r["verdict"])) + "</tr>" for r in self.rows)
        heads = ("finding", "claim", "measured (95% CI, n)", "bar", "paper", "verdict")
        return (head + f"<ul>{summary}</ul><table><thead><tr>"
                + "".join(f"<th style='text-align:left'>{h}</th>" for h in heads) + "</tr></thead>"
                f"<tbody>{cells}</tbody></table>" + "".join(f"<p>{html.escape(n)}</p>" for n in self.notes))

    def __repr__(self) -> str:
        lines = [f"Reading of {self.figure}{self.grid}:"]
        lines += [f"  {s['verdict']}: {s['claim']} ({s['reproduced']} of {s['cells']})" for s in self.summary]
        lines += [f"  - {r['claim']}: {_measured(r)} (bar {r['bar']}; paper {_number(r['paper'])}) -> {r['verdict']}"
                  for r in self.rows]
        return "\n".join(lines + [f"  {n}" for n in self.notes])

    def _repr_mimebundle_(self, include=None, exclude=None):
        # the rows travel with the rendering, so that a test (or a reader's script) can read the executed notebook
        return {"text/html": self._repr_html_(), "text/plain": repr(self),
                "application/vnd.vwlib.reading+json": {"figure": self.figure, "rows": self.rows,
                                                       "summary": self.summary}}


def _number(v) -> str:
    if isinstance(v, str):
        return v
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def _measured(row: dict) -> str:
    if row["n"] == 0 or (isinstance(row["ci_low"], float) and math.isnan(row["ci_low"])):
        return _number(row["value"])
    return f"{row['value']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}], n = {row['n']}"


def verdict(passed: list[bool]) -> str:
    """reproduced (every check passed), partly (some), not reproduced (none)."""
    if passed and all(passed):
        return VERDICTS[0]
    return VERDICTS[1] if any(passed) else VERDICTS[2]


def reading(figure: str, result: dict, datasets: tuple | None = None, tasks: tuple | None = None) -> Reading:
    """The reading of `figure` (a key of FIGURES) from a fidelity report `result` (vw.fidelity's return), over the
    checks of `datasets` and of words trained for `tasks` (None: all the report holds)."""
    if figure not in FIGURES:
        raise VWError(f"no reading for figure {figure!r}; figures with readings: {', '.join(sorted(FIGURES))}")
    rows, summary = [], []
    for key in FIGURES[figure]:
        claim = CLAIMS[key]
        mine = []
        for check in result["checks"]:
            fields = claim.match(check["check"])
            if fields is None or check["passed"] is None:
                continue
            if datasets and fields.get("dataset", datasets[0]) not in datasets:
                continue
            if tasks and fields.get("task", fields.get("src", tasks[0])) not in tasks:
                continue
            paper = claim.paper(fields) if claim.paper else math.nan
            mine.append({"finding": claim.finding, "claim": claim.sentence.format(**fields), "check": check["check"],
                         "value": check["value"], "ci_low": check["ci_low"], "ci_high": check["ci_high"],
                         "n": check["n"], "bar": f"{_OPS[check['op']]} {check['threshold']:.2f}", "paper": paper,
                         "verdict": VERDICTS[0] if check["passed"] else VERDICTS[2]})
        if mine:
            passed = [r["verdict"] == VERDICTS[0] for r in mine]
            summary.append({"finding": claim.finding, "claim": claim.general, "cells": len(mine),
                            "reproduced": sum(passed), "verdict": verdict(passed)})
        rows += mine
    notes = [] if FIGURES[figure] else [NOTES[figure]]
    if FIGURES[figure] and not rows:
        notes.append("No check of this figure's claims was measured on this grid (see notebook 09).")
    return Reading(figure, rows, summary, _grid(result), notes)


def _grid(result: dict) -> str:
    grid = result.get("grid")
    return f" on the {grid}" if grid else ""
