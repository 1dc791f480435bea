"""vwlib's layering holds on the import graph (module-level and function-level imports alike): the rules are the
layer table of docs/guide.md ("## Layout"), read here, so the guide and the check cannot drift apart. Every module
belongs to exactly one layer, imports only from its own layer and the layers its row names, and the graph has no
cycle; `import vwlib` loads neither matplotlib nor papermill."""

import ast
import fnmatch
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "vwlib"
GUIDE = Path(__file__).parents[2] / "docs" / "guide.md"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """{module: the vwlib modules it imports anywhere in its body}, e.g. {"vwlib.engine": {"vwlib.tasks", ...}}."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # `from . import x` may name a submodule
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith("vwlib"):
                    graph[name].add(t)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's components with more than one module (each is an import cycle)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def reachable(graph, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen



def layer_table(text: str | None = None) -> dict[str, dict]:
    """{layer: {"modules": [patterns], "may_import": {layers}}} from the guide's `| layer | modules | may import |`
    table; a pattern is a dotted module name, or `pkg.*` for a package and everything in it."""
    lines = (text if text is not None else GUIDE.read_text()).splitlines()
    start = next(i for i, l in enumerate(lines) if re.match(r"\|\s*layer\s*\|\s*modules\s*\|\s*may import\s*\|", l))
    table = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        layer, modules, may = (c.strip() for c in line.strip().strip("|").split("|"))
        table[layer] = {"modules": re.findall(r"`([\w.*]+)`", modules),
                        "may_import": {m.strip() for m in may.split(",") if m.strip()}}
    return table


def layer_of(module: str, table: dict) -> list[str]:
    """The layers whose patterns name `module` (exactly one, when the table is right)."""
    return [layer for layer, row in table.items()
            if any(module == p or (p.endswith(".*") and (module == p[:-2] or fnmatch.fnmatch(module, p)))
                   for p in row["modules"])]


def violations(graph: dict[str, set[str]], table: dict) -> list[str]:
    """Each import that goes where its layer's row does not allow: 'a (layer) imports b (layer)'."""
    out = []
    for module, targets in sorted(graph.items()):
        (mine,) = layer_of(module, table)
        for target in sorted(targets):
            (theirs,) = layer_of(target, table)
            if theirs != mine and theirs not in table[mine]["may_import"]:
                out.append(f"{module} ({mine}) imports {target} ({theirs})")
    return out


def test_the_graph_reader_sees_relative_and_function_level_imports():
    graph = import_graph()
    assert "vwlib.models.tokenizer" in graph["vwlib.models.text"]  # from .tokenizer import ...
    assert "vwlib.data.world" in graph["vwlib.mini.data"]  # from ..data.world import ...
    assert "vwlib.study.bill" in graph["vwlib.cli"]  # imported inside a function
    # a cycle is found when one is there
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_the_guide_has_the_layer_table_and_every_named_layer_exists():
    table = layer_table()
    assert {"face", "study", "runner", "method", "models", "data", "leaves"} <= set(table)
    for layer, row in table.items():
        assert row["modules"], layer
        assert row["may_import"] <= set(table), (layer, row["may_import"] - set(table))


def test_every_module_is_in_exactly_one_layer():
    table = layer_table()
    placed = {m: layer_of(m, table) for m in import_graph()}
    assert {m: ls for m, ls in placed.items() if len(ls) != 1} == {}


def test_every_import_follows_the_layer_table():
    assert violations(import_graph(), layer_table()) == []


def test_a_forbidden_import_is_caught():
    """The check can fail: a model adapter that reached up to the runner, or a plot that loaded a model."""
    table = layer_table()
    graph = import_graph()
    bad = {m: set(t) for m, t in graph.items()}
    bad["vwlib.models.families.owl"].add("vwlib.runner")
    bad["vwlib.plots.figures"].add("vwlib.models.profiles")
    assert violations(bad, table) == ["vwlib.models.families.owl (models) imports vwlib.runner (runner)",
                                      "vwlib.plots.figures (plots) imports vwlib.models.profiles (models)"]
    table_text = "| layer | modules | may import |\n|---|---|---|\n| a | `x.*` | b |\n| b | `y` | |\n"
    assert layer_table(table_text) == {"a": {"modules": ["x.*"], "may_import": {"b"}},
                                       "b": {"modules": ["y"], "may_import": set()}}


def test_vwlib_has_no_import_cycle():
    assert strongly_connected(import_graph()) == []


def test_import_vwlib_loads_neither_matplotlib_nor_papermill():
    code = "import sys, vwlib; print(sorted(m for m in ('matplotlib', 'papermill') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
