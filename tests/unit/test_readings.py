"""Readings (vwlib.study.readings) on a synthetic fidelity report: the verdicts are fidelity's own checks read back,
so a failed check reads "not reproduced", a passing one "reproduced", and a claim over cells "partly" when split."""


import re
from pathlib import Path

import pytest

from vwlib.errors import VWError
from vwlib.study.fidelity import report
from vwlib.study.readings import CANNOT_SHOW_SECTION, FIDELITY_SECTION, FIGURES, NOTES, reading, verdict

from .test_fidelity_report import _measured


@pytest.fixture(scope="module")
def result():
    return report(_measured())


def _checks(result):
    return {c["check"]: c for c in result["checks"]}


def test_a_reading_carries_fidelitys_numbers_and_verdicts(result):
    r = reading("fig6_delta", result)
    checks = _checks(result)
    assert {row["check"] for row in r.rows} == {"delta/mini-objects/classification/unrelated_at_0.1",
                                               "delta/mini-objects/detection/unrelated_at_0.1",
                                               "delta/mini-objects/classification/saturation_at_0.5",
                                               "delta/mini-objects/detection/saturation_at_0.5"}
    for row in r.rows:
        check = checks[row["check"]]
        assert (row["value"], row["ci_low"], row["ci_high"], row["n"]) == \
            (check["value"], check["ci_low"], check["ci_high"], check["n"])
        assert row["verdict"] == ("reproduced" if check["passed"] else "not reproduced")
    by_check = {row["check"]: row for row in r.rows}
    # detection words reach 0.2 at δ = 0.5 against 0.6 free: the check fails, and the reading says so
    assert by_check["delta/mini-objects/detection/saturation_at_0.5"]["verdict"] == "not reproduced"
    assert by_check["delta/mini-objects/classification/saturation_at_0.5"]["verdict"] == "reproduced"
    summary = {s["claim"]: s for s in r.summary}
    assert summary["by δ = 0.5 a word from any anchor does its job"]["verdict"] == "partly"
    assert summary["at δ = 0.1 a word from an unrelated anchor still reads as that anchor"]["verdict"] == "reproduced"
    # the paper's value for the same quantity: Fig. 6, ImageNet (mini-objects' analogue), in-domain at δ = 0.5
    assert by_check["delta/mini-objects/classification/saturation_at_0.5"]["paper"] == pytest.approx(0.94, abs=0.05)


def test_a_reading_is_scoped_and_renders(result):
    tour = reading("tour", result, datasets=("mini-objects",), tasks=("classification",))
    assert tour.rows and all("/classification/" in row["check"] for row in tour.rows)
    html = tour._repr_html_()
    assert "<table>" in html and "not reproduced" not in html and "docs/results.md" in html
    bundle = tour._repr_mimebundle_()
    assert bundle["application/vnd.vwlib.reading+json"]["rows"] == tour.rows
    assert "reproduced" in bundle["text/plain"]
    transfer = reading("tour_transfer", result, tasks=("classification",))
    assert [row["verdict"] for row in transfer.rows if row["check"] == "transfer/readback_anchor"] == ["not reproduced"]
    assert reading("fig3_unconstrained", result, datasets=("mini-scenes",)).notes  # nothing measured there: said so
    assert "Beyond the paper" in reading("cones_modality_gap", result)._repr_html_()
    assert set(FIGURES) - {f for f, claims in FIGURES.items() if claims} == set(NOTES)


def test_verdicts_and_unknown_figures():
    assert verdict([True, True]) == "reproduced" and verdict([True, False]) == "partly"
    assert verdict([False]) == "not reproduced" and verdict([]) == "not reproduced"
    with pytest.raises(VWError, match="no reading for figure 'fig9'.*fig6_delta"):
        reading("fig9", {"checks": []})
    assert all(isinstance(v, tuple) for v in FIGURES.values())


def test_the_readings_link_to_sections_that_exist_in_results_md():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "results.md").read_text()
    # GitHub's heading anchors: lower case, punctuation but hyphens dropped, spaces to hyphens
    slugs = {"#" + re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
             for h in re.findall(r"^#+ (.*)$", doc, re.M)}
    assert FIDELITY_SECTION in slugs and CANNOT_SHOW_SECTION in slugs
