"""Run the study's notebooks headlessly with papermill, and check that they stay runnable.

`make figures` calls `vw notebooks`, which executes every notebook in `notebooks/` in name order into
`build/notebooks/` (executed copies are build artefacts, also exported to HTML); the notebooks write the figures.

Usage:
    from vwlib.study.notebooks import run_notebooks
    run_notebooks(profile="mini")                  # -> [build/notebooks/00_models.ipynb, ...]
    check_parameters_cell(nbformat.read(path, 4))  # raises VWError if the cell holds anything but literals
"""

from __future__ import annotations

import ast
import os
import time
from pathlib import Path

from ..errors import VWError
from ..paths import BUILD_DIR, NOTEBOOKS_DIR

# The notebooks' own defaults are the quick grid (the first 5 concepts of each mini dataset, a 5 x 5 concept x anchor
# grid), so that Run All in JupyterLab does what `make figures` does; `make figures FULL=1` passes the full grid.
FULL = {"concepts": 10}
KERNEL_NAME = "vwlib"  # registered by `make install` (python -m ipykernel install --sys-prefix --name vwlib)


def parameters_cell(nb):
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise VWError(f"a notebook needs exactly one cell tagged 'parameters', found {len(cells)}")
    return cells[0]


def notebook_parameters(nb) -> dict[str, object]:
    """The parameter names and default values of a notebook's `parameters` cell (checked to be literals)."""
    check_parameters_cell(nb)
    tree = ast.parse(parameters_cell(nb).source)
    return {node.target.id: ast.literal_eval(node.value) for node in tree.body}


def check_parameters_cell(nb) -> None:
    """Every statement of the parameters cell must be `name: type = <literal>  # comment`.

    Why: papermill overrides these lines by name; a value derived here would go stale when a parameter is
    overridden, and `papermill --help-notebook` shows the comments as the documentation.
    """
    source = parameters_cell(nb).source
    lines = source.splitlines()
    for node in ast.parse(source).body:
        where = f"parameters cell line {node.lineno}"
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name) or node.value is None:
            raise VWError(f"{where}: only `name: type = literal  # comment` lines belong in the parameters cell")
        try:
            ast.literal_eval(node.value)
        except ValueError:
            raise VWError(f"{where}: {node.target.id} is not a literal; derive it in the next cell") from None
        line = lines[node.end_lineno - 1]
        if "#" not in line:
            raise VWError(f"{where}: {node.target.id} needs a comment saying what it is")
        if node.lineno != node.end_lineno or line.count("=") != 1:
            raise VWError(f"{where}: {node.target.id} must fit one line with one '=' (papermill skips other lines)")


def _kernel_name() -> str:
    from jupyter_client.kernelspec import find_kernel_specs

    # The registered vwlib kernel when `make install` ran; else this interpreter's own python3 kernel.
    return KERNEL_NAME if KERNEL_NAME in find_kernel_specs() else "python3"


def run_notebook(src: str | os.PathLike, out_dir: str | os.PathLike = BUILD_DIR, parameters: dict | None = None,
                 html: bool = True, log_output: bool = False) -> Path:
    """Execute one notebook with papermill (cwd = its own folder) and return the executed copy's path."""
    import nbformat
    import papermill as pm

    src, out_dir = Path(src), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(src, as_version=4)
    known = notebook_parameters(nb)
    parameters = {k: v for k, v in (parameters or {}).items() if k in known}  # each notebook takes what it knows
    out = out_dir / src.name
    pm.execute_notebook(str(src), str(out), parameters=parameters, kernel_name=_kernel_name(), cwd=str(src.parent),
                        progress_bar=False, log_output=log_output)
    if html:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_filename(str(out))
        out.with_suffix(".html").write_text(body, encoding="utf-8")
    return out


def profile_parameters(profile: str) -> dict:
    """Notebook parameters a profile implies beyond its name: its datasets (`paper`: the paper's four), and a tour
    concept of the first. Every dataset must be on this machine: else one VWError, before any notebook runs."""
    from ..data.datasets import MINI_DATASETS, PROFILE_DATASETS, concept_names, require

    datasets = PROFILE_DATASETS[profile]
    for name in datasets:
        require(name)
    if datasets == MINI_DATASETS:
        return {}
    concepts, anchors = concept_names(datasets[0])
    return {"datasets": list(datasets), "dataset": datasets[0], "concept": concepts[0], "unrelated": anchors[1]}


def is_lab_only(path: str | os.PathLike) -> bool:
    """A notebook for a live JupyterLab kernel (the results browser): metadata {"vwlib": {"lab_only": true}}."""
    import nbformat

    return bool(nbformat.read(path, as_version=4).metadata.get("vwlib", {}).get("lab_only"))


def run_notebooks(profile: str = "mini", notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR,
                  out_dir: str | os.PathLike = BUILD_DIR, parameters: dict | None = None, full: bool = False,
                  only: list[str] | None = None, log_output: bool = False) -> list[Path]:
    """Run the notebooks of `notebooks_dir` in name order but the lab-only ones (`only`: those whose names start
    with one of these prefixes, e.g. ["04", "07"], lab-only ones included), passing `profile` (and `parameters`) to
    each; `full`: the FULL grid instead of the notebooks' own quick one.
    `log_output` streams each cell's output while it runs. Writes `index.html` beside the executed copies."""
    parameters = {**profile_parameters(profile), **(FULL if full else {}), **(parameters or {})}
    paths = sorted(Path(notebooks_dir).glob("*.ipynb"))
    if not paths:
        raise VWError(f"no notebooks in {notebooks_dir}")
    if only:
        unknown = [p for p in only if not any(path.name.startswith(p) for path in paths)]
        if unknown:
            raise VWError(f"no notebook starts with {', '.join(map(repr, unknown))}; choose from "
                          f"{', '.join(path.stem for path in paths)}")
        paths = [path for path in paths if any(path.name.startswith(p) for p in only)]
    else:
        paths = [path for path in paths if not is_lab_only(path)]  # widgets want a live kernel: asked for by name only
    done = []
    for path in paths:
        t0 = time.time()
        print(f"[vw] running {path.name} (profile={profile}) ...", flush=True)
        done.append(run_notebook(path, out_dir, {"profile": profile, **(parameters or {})}, log_output=log_output))
        print(f"[vw] {path.name} done in {time.time() - t0:.0f} s -> {done[-1]}", flush=True)
    index = write_index(out_dir)
    print(f"[vw] index of the executed notebooks and figures: {index}", flush=True)
    from ..paths import figures_dir
    from ..plots.compare import compare_figures

    print("[vw] the figures' numbers against the committed ones (vwlib.plots.compare):", flush=True)
    for comparison in compare_figures(figures_dir()):
        print(f"[vw]   {comparison.text}", flush=True)
    return done


def write_index(out_dir: str | os.PathLike = BUILD_DIR, figures: str | os.PathLike | None = None) -> Path:
    """`out_dir/index.html`: a link to every executed notebook (its HTML copy) in `out_dir` and every PNG figure
    in `figures` (default: the figures folder), written atomically."""
    from html import escape

    from ..paths import figures_dir

    out_dir = Path(out_dir)
    figures = Path(figures) if figures is not None else figures_dir()
    pages = sorted(out_dir.glob("*.html"))
    pngs = sorted(figures.glob("*.png")) if figures.is_dir() else []
    rel = lambda p: Path(os.path.relpath(p, out_dir)).as_posix()  # noqa: E731
    rows = ["<!doctype html><meta charset='utf-8'><title>vwlib: executed notebooks and figures</title>",
            "<h1>vwlib: executed notebooks and figures</h1>", "<h2>Notebooks</h2><ul>"]
    rows += [f"<li><a href='{escape(rel(p))}'>{escape(p.stem)}</a></li>" for p in pages if p.name != "index.html"]
    rows += ["</ul>", "<h2>Figures</h2>"]
    rows += [f"<figure><a href='{escape(rel(p))}'><img src='{escape(rel(p))}' width='480'></a>"
             f"<figcaption>{escape(p.name)}</figcaption></figure>" for p in pngs]
    index = out_dir / "index.html"
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = index.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text("\n".join(rows) + "\n", encoding="utf-8")
    os.replace(tmp, index)
    return index
