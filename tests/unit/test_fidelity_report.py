"""The fidelity report's arithmetic, on a small synthetic store whose every number is known."""

import math

import pandas as pd
import pytest

from vwlib.study.fidelity import report


def _row(task, evaluated_on, concept, anchor, delta, score, nearest_is_anchor=None):
    metric = "map" if evaluated_on == "detection" else "accuracy"
    return {"status": "ok", "task": task, "evaluated_on": evaluated_on, "dataset": "mini-objects",
            "concept": concept, "anchor": anchor, "delta": delta, "seed": 0, "space": "input", metric: score,
            "nearest_is_anchor": nearest_is_anchor, "trial_dir": f"runs/{task}-{concept}-{anchor}-{delta}"}


def _measured():
    rows = []
    words = [("star", "star"), ("star", "heart"), ("heart", "heart"), ("heart", "star")]  # own, unrelated, ...
    for concept, anchor in words:
        own = concept == anchor
        # classification words: 0.9 free, 0.8 at δ = 0.5, at δ = 0.1 own 0.8 and unrelated 0.1 / 0.2
        rows.append(_row("classification", "classification", concept, anchor, "inf", 0.9))
        rows.append(_row("classification", "classification", concept, anchor, 0.5, 0.8))
        rows.append(_row("classification", "classification", concept, anchor, 0.1,
                         0.8 if own else (0.1 if concept == "star" else 0.2)))
        # detection words: 0.6 free but only 0.2 at δ = 0.5 (no saturation)
        rows.append(_row("detection", "detection", concept, anchor, "inf", 0.6))
        rows.append(_row("detection", "detection", concept, anchor, 0.5, 0.2))
        rows.append(_row("detection", "detection", concept, anchor, 0.1, 0.05))
        # classification words scored by the detector: 3 of 4 read back as their anchor at δ = 0.5
        rows.append(_row("classification", "detection", concept, anchor, 0.5, 0.3,
                         nearest_is_anchor=(concept, anchor) != ("heart", "star")))
        rows.append(_row("classification", "detection", concept, anchor, "inf", 0.4, nearest_is_anchor=False))
    return {
        "table": pd.DataFrame(rows),
        "floors": {"mini-objects/classification": [0.1] * 10, "mini-objects/detection": [0.05] * 10},
        "names": {"mini-objects/classification": [1.0, 1.0], "mini-objects/detection": [0.8, 0.6]},
        "vocabulary": {"classification->detection": {"r2": 0.8, "n_test": 100, "words": list("abcdefghij"),
                                                     "self_nearest": [True] * 9 + [False]}},
        "blocks": {"classification": 6, "detection": 3},
        "layers": {"mini-objects/generation": {"1": {"concept": [0.2] * 4, "anchor": [0.6] * 4},
                                               "6": {"concept": [0.7] * 4, "anchor": [0.3] * 4}},
                   "mini-objects/classification": {"1": {"concept": [0.1] * 4, "anchor": [0.9] * 4},
                                                   "6": {"concept": [0.4] * 4, "anchor": [0.8] * 4}}},
        # the δ = 0 control: the anchor words themselves (own, unrelated, own, unrelated), in their model and mapped
        "delta0": {"mini-objects/classification->classification": {"scores": [1.0, 0.1, 1.0, 0.1],
                                                                   "own": [True, False, True, False]},
                   "mini-objects/detection->detection": {"scores": [0.5, 0.0, 0.5, 0.0],
                                                         "own": [True, False, True, False]},
                   "mini-objects/classification->detection": {"scores": [0.05, 0.15, 0.25, 0.05],
                                                              "own": [True, False, True, False]}},
        "seconds": 1.0,
    }


@pytest.fixture(scope="module")
def checks():
    result = report(_measured())
    return {c["check"]: c for c in result["checks"]} | {"_result": result}


def _is(check, value, threshold, passed, n=None):
    assert check["value"] == pytest.approx(value), check
    assert (check["threshold"] is None) if threshold is None else check["threshold"] == pytest.approx(threshold)
    assert check["passed"] is passed, check
    if n is not None:
        assert check["n"] == n


def test_control_is_judged_against_the_name_control_and_the_floor(checks):
    _is(checks["control/mini-objects/classification/vs_name"], 0.9, 0.9, True, n=4)  # 0.9 x mean(1.0, 1.0)
    _is(checks["control/mini-objects/detection/vs_name"], 0.6, 0.63, False, n=4)  # 0.9 x mean(0.8, 0.6)
    above = checks["control/mini-objects/classification/above_floor"]  # the cell's CI low vs the floor's CI high
    _is(above, 0.9, 0.1, True)
    _is(checks["control/mini-objects/classification/absolute"], 0.9, 0.85, True)
    _is(checks["control/mini-objects/detection/absolute"], 0.6, 0.50, True)
    assert checks["floor/mini-objects/classification"]["ci_low"] == checks["floor/mini-objects/classification"][
        "ci_high"] == pytest.approx(0.1)


def test_delta_curve_checks_unrelated_anchors_and_saturation(checks):
    # only the unrelated words, against their anchor words themselves (δ = 0: 0.1 over the unrelated ones) + 0.10
    _is(checks["delta/mini-objects/classification/unrelated_at_0.1"], 0.15, 0.2, True, n=2)
    _is(checks["delta/mini-objects/detection/unrelated_at_0.1"], 0.05, 0.10, True, n=2)
    _is(checks["delta/mini-objects/classification/saturation_at_0.5"], 0.8, 0.675, True)
    _is(checks["delta/mini-objects/detection/saturation_at_0.5"], 0.2, 0.45, False)
    _is(checks["floor/mini-objects/classification/at_most_0.25"], 0.1, 0.25, True, n=10)


def test_transfer_checks_the_vocabulary_and_the_readback(checks):
    _is(checks["vocabulary/classification->detection/self_nearest"], 0.9, 0.9, True, n=10)
    _is(checks["vocabulary/classification->detection/r2"], 0.8, 0.7, True)
    _is(checks["transfer/readback_anchor"], 0.75, 0.8, False, n=4)  # δ = ∞ rows are not counted
    # unrelated anchors only (2 of 4 words), against their anchor words mapped (δ = 0, unrelated: 0.15, 0.05) + 0.10
    _is(checks["transfer/mini-objects/classification->detection/unrelated_at_most_0.5"], 0.3, 0.20, False, n=2)
    _is(checks["transfer/mini-objects/classification->detection/delta_inf"], 0.4, None, None, n=4)
    _is(checks["transfer/mini-objects/classification->detection/delta_0"], 0.125, None, None, n=4)


def test_an_unmeasured_control_fails_the_check_rather_than_passing_it():
    measured = _measured()
    del measured["delta0"]["mini-objects/detection->detection"]
    check = {c["check"]: c for c in report(measured)["checks"]}["delta/mini-objects/detection/unrelated_at_0.1"]
    assert math.isnan(check["threshold"]) and check["passed"] is False


def test_layer_checks(checks):
    _is(checks["layers/classification/blocks"], 6, 6, True)
    _is(checks["layers/detection/blocks"], 3, 6, False)
    _is(checks["layers/mini-objects/in_domain/last_by_concept"], 0.7, 0.5, True)
    _is(checks["layers/mini-objects/in_domain/gain_by_concept"], 0.5, 0.3, True)
    _is(checks["layers/mini-objects/in_domain/first_by_anchor"], 0.6, 0.5, True)
    _is(checks["layers/mini-objects/classification->generation/last_by_concept"], 0.4, 0.3, False)


def test_totals_and_the_matrix_beside_the_paper(checks):
    result = checks["_result"]
    judged = [c for c in result["checks"] if c["passed"] is not None]
    assert result["passed"] + result["failed"] == len(judged)
    assert sorted(c["check"] for c in judged if not c["passed"]) == [
        "control/mini-objects/detection/vs_name", "delta/mini-objects/detection/saturation_at_0.5",
        "layers/detection/blocks", "layers/mini-objects/classification->generation/last_by_concept",
        "transfer/mini-objects/classification->detection/unrelated_at_most_0.5", "transfer/readback_anchor"]
    assert result["info"] == len(result["checks"]) - len(judged)
    cell = next(r for r in result["matrix"] if (r["trained_for"], r["evaluated_on"]) == ("classification",
                                                                                          "classification"))
    assert cell["mean"] == pytest.approx(0.9) and cell["paper"] == pytest.approx(0.995)  # ImageNet, DFN
    assert all(math.isfinite(c["ci_low"]) for c in judged if c["n"])


def test_the_fidelity_figure_draws_the_curves_the_matrices_and_the_verdicts(checks):
    import matplotlib

    matplotlib.use("Agg")
    from vwlib.plots.figures import fidelity_figure

    fig = fidelity_figure(checks["_result"])
    assert len(fig.axes) == 6
    curves = fig.axes[2]  # classifier accuracy: all words, unrelated anchors, the paper's curve, the name's star
    assert [round(y, 3) for y in curves.get_lines()[0].get_ydata()] == [0.475, 0.8, 0.9]
    assert any(l.get_marker() == "*" and l.get_ydata()[0] == 1.0 for l in curves.get_lines())
    assert "15 passed, 6 failed" in fig.axes[5].get_title()


def test_fidelity_steps_trains_its_words_at_that_budget_as_other_trials(monkeypatch):
    """`vw fidelity --steps N`: every trial of the grid carries N (so words of another budget never overwrite the
    default's in a shared store), the records' stamp says N, and the report names the budget."""
    from vwlib.study import fidelity as fid

    seen = {}

    def fake_measure(cfg, progress, device):
        seen["trials"], seen["stamp"] = cfg.trials(), fid._stamp(cfg, "mini-objects", ("generation",))
        return _measured()

    monkeypatch.setattr(fid, "measure", fake_measure)
    monkeypatch.setattr(fid, "evaluator_fingerprint", lambda profile, task: task)
    monkeypatch.setattr(fid, "fingerprint", lambda profile, task: task)
    result = fid.fidelity("unused", concepts=2, tasks=("generation",), steps=1000)
    assert {t.steps for t in seen["trials"]} == {1000} and {t.task for t in seen["trials"]} == {"generation"}
    assert seen["stamp"]["grid"]["steps"] == 1000
    assert result["steps"] == 1000 and "1000 steps a word" in result["grid"]
    default = fid.fidelity("unused", concepts=2, tasks=("generation",))
    assert {t.steps for t in seen["trials"]} == {0} and "the profile's steps" in default["grid"]
    assert {t.key() for t in seen["trials"]}.isdisjoint(
        t.key() for t in fid.replace(fid.FIDELITY_GRID, concepts=2, tasks=("generation",), steps=1000).trials())
