"""Figures that check themselves: the numbers a figure draws are written beside it, and a run's numbers are
compared with the committed ones: equal, within the figure's tolerance (half its narrowest CI), or different."""

import math
import subprocess

import matplotlib
import pandas as pd
import pytest

from vwlib.plots.compare import DEFAULT_TOLERANCE, committed_tables, compare_figures, compare_table

matplotlib.use("Agg")

REF = pd.DataFrame({"dataset": ["a", "a", "b"], "delta": [0.5, math.inf, 0.5], "mean": [0.5, 0.9, 0.3],
                    "ci_low": [0.4, 0.85, 0.1], "ci_high": [0.6, 0.95, 0.5]})  # narrowest CI 0.10: tolerance 0.05


def test_equal_within_tolerance_and_different():
    assert compare_table("f", REF.copy(), REF).verdict == "equal"  # inf included
    moved = REF.assign(mean=[0.53, 0.9, 0.3])
    c = compare_table("f", moved, REF)
    assert c.verdict == "within tolerance" and c.largest == pytest.approx(0.03) and c.tolerance == pytest.approx(0.05)
    assert "half the figure's narrowest 95% CI" in c.text and "0.03" in c.text
    far = compare_table("f", REF.assign(mean=[0.6, 0.9, 0.3]), REF)
    assert far.verdict == "different" and "largest difference 0.1 > 0.05" in far.text


def test_changed_labels_rows_or_missing_numbers_are_different():
    assert "labels changed in column(s) dataset" in compare_table("f", REF.assign(dataset=["a", "b", "b"]), REF).text
    assert "rows or columns changed" in compare_table("f", REF.iloc[:2], REF).text
    assert "missing on one side" in compare_table("f", REF.assign(mean=[0.5, float("nan"), 0.3]), REF).text


def test_without_cis_the_default_tolerance_applies():
    ref = pd.DataFrame({"row": ["x"], "purity": [0.5]})
    c = compare_table("f", ref.assign(purity=0.5 + DEFAULT_TOLERANCE / 2), ref)
    assert c.verdict == "within tolerance" and "no CI drawn" in c.text


def test_save_writes_the_numbers_a_vwlib_figure_draws_and_the_run_compares_them_with_git(tmp_path):
    import vwlib as vw

    scores = pd.DataFrame([{"dataset": "mini-objects", "evaluated_on": t, "trained_for": s, "delta": d,
                            "score": v, "in_domain": t == s}
                           for t in ("generation", "classification") for s in ("generation", "classification")
                           for d, v in ((0.5, 0.2), (math.inf, 0.8)) for _ in range(3)])
    vw.save(vw.delta_curves(scores), "fig6", out_dir=tmp_path)
    written = pd.read_csv(tmp_path / "fig6.csv")
    assert {"dataset", "evaluated_on", "trained_for", "delta", "mean", "ci_low", "ci_high"} <= set(written.columns)
    assert len(written) == 8 and written["mean"].isin([0.2, 0.8]).all()

    for cmd in (["git", "init", "-q"], ["git", "add", "fig6.csv"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "figures"]):
        subprocess.run(cmd, cwd=tmp_path, check=True)
    assert set(committed_tables(tmp_path)) == {"fig6.csv"}
    assert [c.verdict for c in compare_figures(tmp_path)] == ["equal"]
    written.loc[0, "mean"] += 0.5
    written.to_csv(tmp_path / "fig6.csv", index=False)
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "other.csv", index=False)
    assert [c.verdict for c in compare_figures(tmp_path)] == ["different", "new"]
