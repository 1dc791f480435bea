"""`vw notebooks` writes an index page that links every executed notebook and every figure."""

from vwlib.study.notebooks import write_index


def test_index_links_notebooks_and_figures(tmp_path):
    out, figures = tmp_path / "build", tmp_path / "figures"
    out.mkdir()
    figures.mkdir()
    for name in ("02_tour.html", "04_delta_curves.html"):
        (out / name).write_text("<html></html>")
    (figures / "fig6_delta_mini.png").write_bytes(b"\x89PNG")
    index = write_index(out, figures)
    html = index.read_text()
    assert index == out / "index.html"
    assert "href='02_tour.html'" in html and "href='04_delta_curves.html'" in html
    assert "src='../figures/fig6_delta_mini.png'" in html
    write_index(out, figures)  # a second call does not list the index itself
    assert "href='index.html'" not in (out / "index.html").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["02_tour.html", "04_delta_curves.html", "index.html"]


def test_notebook_defaults_are_the_quick_grid_and_full_passes_the_full_one(tmp_path, monkeypatch):
    """Run All in Lab = `make figures` (the notebooks' own 5 x 5 defaults); `make figures FULL=1` passes 10."""
    import nbformat

    from vwlib.paths import NOTEBOOKS_DIR
    from vwlib.study import notebooks

    for path in sorted(NOTEBOOKS_DIR.glob("*.ipynb")):
        params = notebooks.notebook_parameters(nbformat.read(path, as_version=4))
        assert params.get("concepts", 5) == 5, path.name
    seen = {}
    monkeypatch.setattr(notebooks, "run_notebook", lambda src, out, params, log_output: seen.setdefault(
        src.name, params) and tmp_path / src.name)
    notebooks.run_notebooks(out_dir=tmp_path, only=["03"])
    assert seen.pop("03_train.ipynb") == {"profile": "mini"}
    notebooks.run_notebooks(out_dir=tmp_path, only=["03"], full=True)
    assert seen["03_train.ipynb"] == {"profile": "mini", "concepts": 10}
    makefile = (NOTEBOOKS_DIR.parent / "Makefile").read_text()
    assert "$(if $(FULL),--full)" in makefile


def test_lab_only_notebooks_run_when_named_only(tmp_path, monkeypatch):
    """The results browser needs a live kernel: `make figures` leaves it out, `--only 10` runs it."""
    from vwlib.paths import NOTEBOOKS_DIR
    from vwlib.study import notebooks

    lab_only = [p.name for p in sorted(NOTEBOOKS_DIR.glob("*.ipynb")) if notebooks.is_lab_only(p)]
    assert lab_only == ["10_browser.ipynb"]
    ran = []
    monkeypatch.setattr(notebooks, "run_notebook", lambda src, out, params, log_output: ran.append(src.name) or
                        tmp_path / src.name)
    notebooks.run_notebooks(out_dir=tmp_path)
    assert "10_browser.ipynb" not in ran and "02_tour.ipynb" in ran and len(ran) == 10
    ran.clear()
    notebooks.run_notebooks(out_dir=tmp_path, only=["10"])
    assert ran == ["10_browser.ipynb"]
