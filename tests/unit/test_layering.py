"""vwlib's layering holds on the import graph (module-level and function-level imports alike): no cycles, model
adapters never reach the engine, runner, store or CLI, the engine never reaches plotting, the CLI or sweeps, figure
code never imports models, and `import vwlib` loads neither matplotlib nor papermill."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "vwlib"


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


def test_the_graph_reader_sees_relative_and_function_level_imports():
    graph = import_graph()
    assert "vwlib.tokenizer" in graph["vwlib.text"]  # from .tokenizer import ...
    assert "vwlib.world" in graph["vwlib.mini.data"]  # from ..world import ...
    # a cycle is found when one is there
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_vwlib_has_no_import_cycle():
    assert strongly_connected(import_graph()) == []


def test_model_adapters_never_reach_the_engine_runner_store_or_cli():
    graph = import_graph()
    forbidden = {"vwlib.engine", "vwlib.runner", "vwlib.store", "vwlib.cli", "vwlib.cones", "vwlib.transfer",
                 "vwlib.study", "vwlib.sweep"}
    for module in [m for m in graph if m.startswith("vwlib.families")]:
        assert not reachable(graph, module) & forbidden, module


def test_the_engine_never_reaches_plotting_cli_or_sweeps():
    graph = import_graph()
    bad = reachable(graph, "vwlib.engine") & {"vwlib.figures", "vwlib.plotting", "vwlib.cli", "vwlib.sweep",
                                               "vwlib.notebooks", "vwlib.study", "vwlib.runner"}
    assert not bad


def test_figure_code_never_imports_models_or_the_notebook_runner():
    graph = import_graph()
    models = {"vwlib.profiles", "vwlib.loaders", "vwlib.text", "vwlib.vision", "vwlib.probes", "vwlib.accel",
              "vwlib.hooks", "vwlib.notebooks", "vwlib.engine", "vwlib.runner"} | {m for m in graph if
                                                                                    m.startswith("vwlib.families")}
    for module in ("vwlib.figures", "vwlib.plotting"):
        assert not reachable(graph, module) & models, module


def test_import_vwlib_loads_neither_matplotlib_nor_papermill():
    code = "import sys, vwlib; print(sorted(m for m in ('matplotlib', 'papermill') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
