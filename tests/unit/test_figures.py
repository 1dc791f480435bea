import math

import matplotlib

matplotlib.use("Agg")  # tests only: notebooks use %matplotlib inline

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from vwlib.plots.figures import delta_curves, unconstrained_bars  # noqa: E402
from vwlib.stats import bootstrap_ci, headline, paper_reference, summary  # noqa: E402


def _table():
    rng = np.random.default_rng(0)
    rows = []
    for task in ("generation", "detection", "classification"):
        for evaluated in ("generation", "detection", "classification"):
            for delta in ("0.1", 0.5, "inf"):
                for k in range(10):
                    score = float(rng.random() * (0.9 if task == evaluated else 0.2))
                    metric = {"map": score} if evaluated == "detection" else {"accuracy": score}
                    rows.append({"status": "ok", "task": task, "evaluated_on": evaluated, "dataset": "mini-objects",
                                 "concept": f"c{k}", "anchor": "a", "delta": delta, "seed": 0, "trial_dir": "x",
                                 **metric})
    rows.append({"status": "failed", "task": "generation", "evaluated_on": None, "dataset": "mini-objects"})
    return pd.DataFrame(rows)


def test_headline_scores_pick_each_models_metric():
    s = headline(_table())
    assert len(s) == 3 * 3 * 3 * 10
    assert s["delta"].map(math.isinf).sum() == 90 and s["score"].between(0, 1).all()
    assert s["in_domain"].sum() == 90


def test_bootstrap_ci_brackets_the_mean():
    mean, lo, hi = bootstrap_ci([0.0] * 50 + [1.0] * 50)
    assert mean == 0.5 and lo < 0.5 < hi and hi - lo == pytest.approx(0.2, abs=0.06)
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0, 1.0)


def test_figures_draw_every_panel():
    s = headline(_table())
    fig = delta_curves(s, reference=paper_reference())
    assert len(fig.axes) == 3
    lines = [l for ax in fig.axes for l in ax.get_lines()]
    assert len(lines) >= 9
    fig = unconstrained_bars(s)
    assert sum(len(ax.patches) for ax in fig.axes) == 9
    stats = summary(s)
    assert set(stats["n"]) == {10}


def test_input_and_output_space_bars_come_in_pairs_and_paper_figures_see_input_words_only():
    both = pd.concat([_table(), _table().assign(space="output")], ignore_index=True)
    assert set(headline(both)["space"]) == {"input"} and len(headline(both)) == 270
    s = headline(both, space=None)
    assert len(s) == 540
    fig = unconstrained_bars(s, spaces=("input", "output"))
    bars = [p for ax in fig.axes for p in ax.patches]
    assert len(bars) == 18  # 3 evaluating x 3 trained-for x 2 spaces
    assert sorted({round(p.get_alpha() or 1.0, 2) for p in bars}) == [0.45, 1.0]


def test_the_papers_numbers_ship_inside_the_package():
    from vwlib.paths import PACKAGE_DIR

    fig6 = paper_reference("fig6_delta")
    row = fig6[(fig6.dataset == "imagenet") & (fig6.trained_for == "generation") & (fig6.metric_model == "sd21")
               & (fig6.delta == 0.5)]
    assert row["mean"].tolist() == [0.97] and set(row["metric_model_task"]) == {"generation"}  # docs/spec.md §9
    fig3 = paper_reference("fig3_unconstrained")
    assert len(fig3) == 36 and fig3[["ci_low", "ci_high"]].notna().all().all()
    assert (PACKAGE_DIR / "reference" / "fig6_delta.csv").is_file()
    with pytest.raises(ValueError, match="choose one of fig3_unconstrained, fig6_delta"):
        paper_reference("fig9")


def test_delta_curves_overlay_the_paper_on_the_analogue_dataset():
    s = headline(_table())
    fig = delta_curves(s, reference=paper_reference())
    labels = {l.get_label() for ax in fig.axes for l in ax.get_lines()}
    assert "paper (in-domain, mean)" in labels
