"""Committed notebooks: no outputs, one parameters cell of commented literals."""

from pathlib import Path

import nbformat
import pytest

from vwlib import VWError
from vwlib.study.notebooks import check_parameters_cell, notebook_parameters

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_has_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_is_commented_literals_with_profile(path):
    params = notebook_parameters(nbformat.read(path, as_version=4))
    assert params["profile"] in ("paper", "mini", "tiny")


def _nb(source):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    return nb


@pytest.mark.parametrize("source,message", [
    ('steps: int = 2 * 50  # derived', "not a literal"),
    ('steps: int = 100', "needs a comment"),
    ('steps = 100  # untyped', "only `name: type = literal"),
    ('import os  # no', "only `name: type = literal"),
])
def test_parameters_cell_checker_rejects(source, message):
    with pytest.raises(VWError, match=message):
        check_parameters_cell(_nb(source))


def test_parameters_cell_checker_accepts_and_reads_literals():
    nb = _nb('deltas: list = [0.1, 0.5, float("inf")]  # no\n')
    with pytest.raises(VWError):
        check_parameters_cell(nb)  # float("inf") is a call, not a literal
    nb = _nb('deltas: list = [0.1, 0.5]  # constraint radii\nname: str = "x"  # a name\n')
    assert notebook_parameters(nb) == {"deltas": [0.1, 0.5], "name": "x"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_reads_every_parameter_with_its_help(path):
    import papermill

    inferred = papermill.inspect_notebook(str(path))
    declared = notebook_parameters(nbformat.read(path, as_version=4))
    assert set(inferred) == set(declared)
    assert all(p["help"] for p in inferred.values())


def test_parameters_cell_checker_rejects_a_second_equals_sign():
    with pytest.raises(VWError, match="one '='"):
        check_parameters_cell(_nb('steps: int = 0  # 0 = the default'))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_reach_vwlib_only_through_its_public_api(path):
    import re

    import vwlib

    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.findall(r"^\s*(?:from vwlib\S*|import vwlib\.\S+)", code, re.M), "import vwlib as vw, nothing else"
    used = set(re.findall(r"\bvw\.(\w+)", code))
    assert used and used <= set(vwlib.__all__), sorted(used - set(vwlib.__all__))
