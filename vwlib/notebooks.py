"""Run the study's notebooks headlessly with papermill, and check that they stay runnable.

`make figures` calls `vw notebooks`, which executes every notebook in `notebooks/` in name order into
`build/notebooks/` (executed copies are build artefacts, also exported to HTML); the notebooks write the figures.

Usage:
    from vwlib.notebooks import run_notebooks
    run_notebooks(profile="mini")                  # -> [build/notebooks/00_models.ipynb, ...]
    check_parameters_cell(nbformat.read(path, 4))  # raises VWError if the cell holds anything but literals
"""

from __future__ import annotations

import ast
import os
import time
from pathlib import Path

from .errors import VWError
from .paths import BUILD_DIR, NOTEBOOKS_DIR
# `make figures` runs the study on the first 5 concepts of each mini dataset (a 5 x 5 concept x anchor grid) to fit
# about 15 minutes on 2 cores; `make figures FULL=1` runs the notebooks' own defaults: the full 10 x 10 grid.
QUICK = {"concepts": 5}
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


def run_notebooks(profile: str = "mini", notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR,
                  out_dir: str | os.PathLike = BUILD_DIR, parameters: dict | None = None, full: bool = False
                  ) -> list[Path]:
    """Run every notebook of `notebooks_dir` in name order, passing `profile` (and `parameters`) to each; without
    `full`, the QUICK grid."""
    parameters = {**({} if full else QUICK), **(parameters or {})}
    paths = sorted(Path(notebooks_dir).glob("*.ipynb"))
    if not paths:
        raise VWError(f"no notebooks in {notebooks_dir}")
    done = []
    for path in paths:
        t0 = time.time()
        print(f"[vw] running {path.name} (profile={profile}) ...", flush=True)
        done.append(run_notebook(path, out_dir, {"profile": profile, **(parameters or {})}))
        print(f"[vw] {path.name} done in {time.time() - t0:.0f} s -> {done[-1]}", flush=True)
    return done
