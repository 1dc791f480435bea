"""Every notebook runs headlessly under papermill with small parameters and writes its figures; the figure
notebooks follow every figure with its reading, whose numbers are those of `vw fidelity` on the same store."""

import shutil
from dataclasses import replace

import nbformat
import pytest

from vwlib.roles import TASKS
from vwlib.study.fidelity import FIDELITY_GRID, fidelity, measure
from vwlib.study.notebooks import NOTEBOOKS_DIR, is_lab_only, run_notebook

NOTEBOOKS = [p for p in sorted(NOTEBOOKS_DIR.glob("*.ipynb")) if not is_lab_only(p)]
# Small parameters: tiny random models, one dataset, 2 concepts. Each notebook takes the parameters it declares.
SMALL = {"profile": "tiny", "datasets": ["mini-objects"], "concepts": 2, "anchors": "own", "deltas": [0.5, "inf"]}
READING = "application/vnd.vwlib.reading+json"
# The notebooks with figures of the paper's claims, and the tasks whose words their readings judge
READS = {"02": ("classification",), "04": TASKS, "05": TASKS, "06": TASKS, "07": TASKS, "08": TASKS}


@pytest.fixture(scope="session")
def measured_store(tmp_path_factory):
    """A tiny store holding what `vw fidelity` measures on SMALL's grid, made once per test worker: the reading
    notebooks start from a copy, as they do in `make figures` (where notebook 03 has trained the grid)."""
    root = tmp_path_factory.mktemp("measured") / "runs"
    measure(replace(FIDELITY_GRID, profile="tiny", datasets=("mini-objects",), concepts=2, out=str(root)),
            progress=False)
    return root


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_writes_figures(path, tmp_path, monkeypatch, request):
    figures = tmp_path / "figures"
    monkeypatch.setenv("VWLIB_FIGURES_DIR", str(figures))  # the kernel inherits it: nothing lands in figures/
    store = tmp_path / "runs"
    reads = READS.get(path.name[:2])
    if reads:
        shutil.copytree(request.getfixturevalue("measured_store"), store)
    out = run_notebook(path, tmp_path / "build", SMALL | {"out": str(store)})
    executed = nbformat.read(out, as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert out.with_suffix(".html").is_file()
    pngs = list(figures.glob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)
    assert {p.stem for p in pngs} == {p.stem for p in figures.glob("*.pdf")}
    if reads:
        readings = [o["data"][READING] for o in outputs if READING in o.get("data", {})]
        assert len(readings) >= len(pngs)  # every figure is followed by its reading
        assert "Reading" in out.with_suffix(".html").read_text()
        checks = {c["check"]: c for c in fidelity(store, profile="tiny", concepts=2, progress=False,
                                                  datasets=("mini-objects",), tasks=reads)["checks"]}
        rows = [row for r in readings for row in r["rows"]]
        assert rows  # at least one claim judged
        for row in rows:
            check = checks[row["check"]]
            assert (row["value"], row["n"]) == (check["value"], check["n"])
            assert row["verdict"] == ("reproduced" if check["passed"] else "not reproduced")


def test_results_browser_notebook_shows_its_widget(tmp_path, monkeypatch):
    """The lab-only browser runs headlessly too: its widget is displayed and its `select` cell reads three views."""
    monkeypatch.setenv("VWLIB_FIGURES_DIR", str(tmp_path / "figures"))
    out = run_notebook(NOTEBOOKS_DIR / "10_browser.ipynb", tmp_path / "build",
                       {"profile": "tiny", "datasets": ["mini-objects"], "out": str(tmp_path / "runs")}, html=False)
    executed = nbformat.read(out, as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    views = next(o["data"]["text/plain"] for o in outputs if "'classification', 'in-domain'" in
                 o.get("data", {}).get("text/plain", ""))
    assert "'generation', 'mapped from classification'" in views and "'detection', 'mapped from classification'" in views
    assert not (tmp_path / "figures").exists()  # a browser draws into widgets, not into figures/
