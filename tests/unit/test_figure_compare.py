"""Figures that check themselves: the numbers a figure draws are written beside it, and a run's numbers are
compared with the committed ones: equal, within tolerance (half the row's own CI), or different."""

import math
import subprocess

import matplotlib
import pandas as pd
import pytest

from vwlib.plots.compare import DEFAULT_TOLERANCE, committed_tables, compare_figures, compare_table

matplotlib.use("Agg")

REF = pd.DataFrame({"dataset": ["a", "a", "b", "b"], "delta": [0.5, math.inf, 0.5, math.inf],
                    "mean": [0.5, 0.9, 0.3, 0.0], "ci_low": [0.4, 0.85, 0.1, 0.0],
                    "ci_high": [0.6, 0.95, 0.5, 0.0]})  # row tolerances 0.05, 0.05, 0.2; the zero-width row 0.05


def test_equal_within_tolerance_and_different():
    assert compare_table("f", REF.copy(), REF).verdict == "equal"  # inf included
    c = compare_table("f", REF.assign(mean=[0.51, 0.9, 0.46, 0.0]), REF)
    # the row that used most of its tolerance speaks: 0.16 of row b's 0.2 (row a: 0.01 of 0.05)
    assert c.verdict == "within tolerance" and c.largest == pytest.approx(0.16) and c.tolerance == pytest.approx(0.2)
    assert "half that row's 95% CI" in c.text and "0.16" in c.text
    far = compare_table("f", REF.assign(mean=[0.5, 0.96, 0.3, 0.0]), REF)  # 0.06: more than row a's CI allows
    assert far.verdict == "different" and "largest difference 0.06 > 0.05" in far.text
    flat = compare_table("f", REF.assign(mean=[0.5, 0.9, 0.3, 0.06]), REF)  # a row without width: the narrowest
    assert flat.verdict == "different" and flat.tolerance == pytest.approx(0.05)
    assert compare_table("f", REF.assign(mean=[0.5, 0.9, 0.3, 0.04]), REF).verdict == "within tolerance"
    # the CI bounds set the tolerance and are not compared: one flipped vote can collapse a CI of a sample of zeros
    collapsed = REF.assign(mean=[0.5, 0.9, 0.3, 0.04], ci_high=[0.6, 0.95, 0.5, 0.12])
    assert compare_table("f", collapsed, REF).verdict == "within tolerance"
    only_ci = compare_table("f", REF.assign(ci_high=[0.6, 0.95, 0.5, 0.12]), REF)
    assert only_ci.verdict == "within tolerance" and only_ci.largest == 0  # not "equal": a number did change


def test_changed_labels_rows_or_missing_numbers_are_different():
    assert "labels changed in column(s) dataset" in compare_table("f", REF.assign(dataset=["a", "b", "b", "b"]), REF).text
    assert "rows or columns changed" in compare_table("f", REF.iloc[:2], REF).text
    assert "missing on one side" in compare_table("f", REF.assign(mean=[0.5, float("nan"), 0.3, 0.0]), REF).text


def test_without_cis_the_default_tolerance_applies():
    ref = pd.DataFrame({"row": ["x"], "purity": [0.5]})
    c = compare_table("f", ref.assign(purity=0.5 + DEFAULT_TOLERANCE / 2), ref)
    assert c.verdict == "within tolerance" and "no CI: the last digits" in c.text


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
