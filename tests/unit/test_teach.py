"""docs/teach.md cites only numbers the committed CSVs hold, each in a CSV its own section names (figures/,
docs/data/, the paper's vwlib/reference/), so a lesson cannot drift from the figures it teaches with: a regenerated
figure that changes a number fails here."""

import re
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
# Definitions, not measurements: δ values, the checks' factors and bars, and the 5-NN chance of 5 concepts (4 of 24)
DEFINED = {"0.1", "0.2", "0.5", "1.0", "0.75", "0.9", "0.17", "0.30", "0.50", "0.70"}
NUMBER = r"(?<![\w.])[01]\.\d{1,3}(?![\w.])"


def _numbers(path: Path) -> set[str]:
    frame = pd.read_csv(path, comment="#")
    return {f"{v:.{k}f}" for column in frame.select_dtypes("number") for v in frame[column].dropna() for k in (2, 3)}


def _sections(text: str) -> list[str]:
    return re.split(r"\n(?=## )", text)


def test_every_number_the_lesson_cites_is_in_a_csv_its_section_names():
    text = (ROOT / "docs" / "teach.md").read_text()
    assert len(set(re.findall(NUMBER, text))) > 30
    missing = {}
    for section in _sections(text):
        named = set(re.findall(r"(?:figures|docs/data|vwlib/reference)/[\w*.-]+\.csv", section))
        held = set().union(*[_numbers(p) for pattern in named for p in ROOT.glob(pattern)])
        cited = set(re.findall(NUMBER, section)) - DEFINED
        if cited - held:
            missing[section.splitlines()[0]] = sorted(cited - held)
    assert not missing, f"docs/teach.md cites numbers the CSVs its sections name do not hold: {missing}"


def test_the_check_fails_on_a_number_no_named_csv_holds(tmp_path):
    section = "## x\n`figures/fig7_layers_mini_mini-objects.csv`: 0.72–0.75 and 0.123"
    named = set(re.findall(r"(?:figures|docs/data|vwlib/reference)/[\w*.-]+\.csv", section))
    held = set().union(*[_numbers(p) for pattern in named for p in ROOT.glob(pattern)])
    assert set(re.findall(NUMBER, section)) - held == {"0.123"}
