"""Every notebook runs headlessly under papermill with small parameters and writes its figures."""


import nbformat
import pytest

from vwlib.study.notebooks import NOTEBOOKS_DIR, is_lab_only, run_notebook

NOTEBOOKS = [p for p in sorted(NOTEBOOKS_DIR.glob("*.ipynb")) if not is_lab_only(p)]
# Small parameters: tiny random models, one dataset, 2 concepts. Each notebook takes the parameters it declares.
SMALL = {"profile": "tiny", "datasets": ["mini-objects"], "concepts": 2, "anchors": "own", "deltas": [0.5, "inf"]}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_writes_figures(path, tmp_path, monkeypatch):
    figures = tmp_path / "figures"
    monkeypatch.setenv("VWLIB_FIGURES_DIR", str(figures))  # the kernel inherits it: nothing lands in figures/
    out = run_notebook(path, tmp_path / "build", SMALL | {"out": str(tmp_path / "runs")})
    executed = nbformat.read(out, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert out.with_suffix(".html").is_file()
    pngs = list(figures.glob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)
    assert {p.stem for p in pngs} == {p.stem for p in figures.glob("*.pdf")}


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
