"""The package's shape: data flows one way (no import cycle), one module owns the cache's files, functions
stay small enough to call without a manual, and a new ranking is one class in one place."""
import ast
import os

import numpy as np

from helpers import read_csv, softmax_regression_project, subset_csv
from nnc_plugin.options import ScoreOptions
from nnc_plugin.pipeline import score
from nnc_plugin.scores import registry

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "nnc_plugin")
CACHE_FILES = ("final.h5", "schedule.npz", "loss_history.npy", "untrained.npz", "final_factors.npz", "manifest.json",
               "params_", "factors_")


def _modules():
    """{dotted module name: parsed source} for every module of the package (plugin scripts stand alone)."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        if "plugins" in os.path.relpath(folder, PACKAGE).split(os.sep):
            continue
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = ["nnc_plugin"] + os.path.relpath(path, PACKAGE)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts.pop()
                with open(path, encoding="utf-8") as f:
                    found[".".join(parts)] = (path, ast.parse(f.read()))
    return found


def _imports(module, tree, modules):
    """The package modules `module` imports (relative imports resolved)."""
    package = module if any(m.startswith(module + ".") for m in modules) else module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                names.add(candidate if candidate in modules else base)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n in modules and n != module}


def test_no_import_cycle():
    modules = _modules()
    graph = {m: _imports(m, tree, modules) for m, (_, tree) in modules.items()}
    # a package's __init__ importing its own modules is how registration works; not a cycle of stages
    graph = {m: {d for d in deps if not m == d.rsplit(".", 1)[0]} for m, deps in graph.items()}
    state = {}

    def visit(module, path):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", "import cycle: " + " -> ".join(path + [module])
        state[module] = "open"
        for dependency in sorted(graph[module]):
            visit(dependency, path + [module])
        state[module] = "done"

    for module in sorted(graph):
        visit(module, [])


def test_only_the_cache_module_names_cache_files():
    for module, (path, tree) in _modules().items():
        if module == "nnc_plugin.training.cache":
            continue
        strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        named = [s for s in strings for f in CACHE_FILES if f in s and not s.lstrip().startswith(("\n", "A ", "The "))]
        assert not named, f"{path} names a cache file: {named[0]!r}"


def test_no_function_takes_more_than_six_parameters():
    for module, (path, tree) in _modules().items():
        for node in ast.walk(tree):
            if module.endswith("fast_rules") and node.__class__ is ast.FunctionDef and node.name.endswith("_backward"):
                continue  # gradient rules take the arguments nnabla's backward-function registry passes
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                arguments = node.args
                count = len(arguments.posonlyargs + arguments.args + arguments.kwonlyargs)
                count -= 1 if arguments.args and arguments.args[0].arg in ("self", "cls") else 0
                assert count <= 6, f"{path}:{node.lineno} {node.name} takes {count} parameters"


def test_a_new_ranking_is_one_registered_class(tmp_path, digits, monkeypatch):
    """A ranking defined here, in one class, is scored, written and reported like the built-in ones."""
    monkeypatch.setattr(registry, "_RANKINGS", dict(registry._RANKINGS))  # registered for this test only

    @registry.register
    class RowNumber(registry.Ranking):
        name = "row-number"
        help = "the row's position, last row first"

        def score(self, trial):
            return -np.arange(len(trial.train_data), dtype=np.float64)

    train_csv = subset_csv(digits["train"], tmp_path / "train.csv", 24)
    model = softmax_regression_project(str(tmp_path), epochs=1)
    output = tmp_path / "influence.csv"
    run = score(ScoreOptions(model=model, input_train=str(train_csv), output=str(output), ranking="row-number"))
    np.testing.assert_array_equal(run.scores, -np.arange(24))
    assert [int(row[-1]) for row in read_csv(output)[1:]] == list(range(23, -1, -1))
    assert run.summary["ranking"] == "row-number"
    assert registry.report_text("row-number") is registry.GENERIC_TEXT
