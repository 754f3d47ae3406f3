"""The package's shape: data flows one way (no import cycle), one module owns the cache's files, functions
stay small enough to read and to call without a manual, a ranking is one class in the module named after it,
the lab stays out of the house, and listing the options is quick."""
import ast
import os
import re
import subprocess
import sys

import numpy as np

from helpers import read_csv, softmax_regression_project, subset_csv
from nnc_plugin.options import ScoreOptions
from nnc_plugin.pipeline import score
from nnc_plugin.scores import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "nnc_plugin")
PLUGINS = os.path.join(PACKAGE, "plugins", "_Post_Process", "_XAI")
MAX_FUNCTION_LINES = 60
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


def _python_files(folder):
    for base, _, files in os.walk(folder):
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(base, name)


def test_no_function_is_longer_than_a_screen():
    for path in _python_files(PACKAGE):
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                assert lines <= MAX_FUNCTION_LINES, f"{path}:{node.lineno} {node.name} has {lines} lines"


def test_each_ranking_is_defined_in_the_module_named_after_it():
    """A newcomer finds where `--ranking X` is computed from the file names alone: scores/X.py."""
    for name in registry.names():
        module = registry.ranking_class(name).__module__
        assert module == f"nnc_plugin.scores.{name.replace('-', '_')}", (name, module)


def test_nothing_outside_the_package_registers_a_ranking():
    """Research candidates and tests try a ranking through `registry.trying`, never the global `register`, and
    nothing outside the package replaces a package function."""
    for folder in ("tests", "benchmarks", "research", "sample_projects"):
        for path in _python_files(os.path.join(ROOT, folder)):
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                named = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
                assert named not in ("register", "_RANKINGS"), f"{path}:{node.lineno} uses the ranking registry's {named}"
                if isinstance(node, ast.Assign):
                    for target in node.targets:  # no `package_module.function = replacement`
                        assert not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                                    and target.value.id in _package_module_names(tree)), f"{path}:{node.lineno}"


def _package_module_names(tree):
    """The local names that `tree` binds to modules of the package (import nnc_plugin.x as y, from nnc_plugin import x)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nnc_plugin"):
            names.update(alias.asname or alias.name for alias in node.names
                         if os.path.exists(os.path.join(ROOT, *(node.module.split(".") + [alias.name])) + ".py"))
        elif isinstance(node, ast.Import):
            names.update(alias.asname or alias.name for alias in node.names if alias.name.startswith("nnc_plugin"))
    return names


HELP_CHECK = """
import runpy, sys
sys.argv = {argv!r}
try:
    runpy.run_{kind}({target!r}, run_name="__main__")
except SystemExit:
    pass
print("NNABLA LOADED" if any(m == "nnabla" or m.startswith("nnabla.") for m in sys.modules) else "NNABLA NOT LOADED")
"""


def _help_loads_nnabla(kind, target, argv):
    code = HELP_CHECK.format(kind=kind, target=target, argv=argv)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "usage:" in result.stdout, result.stdout + result.stderr
    return result.stdout.strip().splitlines()[-1] == "NNABLA LOADED"


def test_the_help_of_every_command_and_plugin_does_not_load_nnabla():
    """NNC runs every plugin script with -h to build its menu: that, and nnc-cleanse --help, answer at once."""
    for argv in (["nnc-cleanse", "--help"], ["nnc-cleanse", "score", "--help"], ["nnc-cleanse", "evaluate", "--help"]):
        assert not _help_loads_nnabla("module", "nnc_plugin.cli", argv), argv
    for script in sorted(os.listdir(PLUGINS)):
        if script.endswith(".py"):
            assert not _help_loads_nnabla("path", os.path.join(PLUGINS, script), [script, "-h"]), script


def test_a_new_ranking_is_one_class_tried_in_a_block(tmp_path, digits):
    """A ranking defined here, in one class, is scored, written and reported like the built-in ones while it is
    being tried, and is gone after."""
    class RowNumber(registry.Ranking):
        name = "row-number"
        help = "the row's position, last row first"

        def score(self, trial):
            return -np.arange(len(trial.train_data), dtype=np.float64)

    train_csv = subset_csv(digits["train"], tmp_path / "train.csv", 24)
    model = softmax_regression_project(str(tmp_path), epochs=1)
    output = tmp_path / "influence.csv"
    with registry.trying(RowNumber):
        run = score(ScoreOptions(model=model, input_train=str(train_csv), output=str(output), ranking="row-number"))
        assert registry.report_text("row-number") is registry.GENERIC_TEXT
    np.testing.assert_array_equal(run.scores, -np.arange(24))
    assert [int(row[-1]) for row in read_csv(output)[1:]] == list(range(23, -1, -1))
    assert run.summary["ranking"] == "row-number"
    assert "row-number" not in registry.names()


def test_the_readme_layout_names_every_module_and_script():
    """A newcomer finds every file of the package, the benchmarks and the research scripts in the README's layout
    (and `--ranking X` in scores/X.py, checked above), so the drawing cannot drift from the tree."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    layout = text[text.index("## Layout"):]
    missing = []
    for folder in ("nnc_plugin", "benchmarks", "research"):
        for path, _, files in os.walk(os.path.join(ROOT, folder)):
            if "plugins" in path or "__pycache__" in path:
                continue
            missing += [os.path.join(path, n) for n in files if n.endswith(".py") and n != "__init__.py"
                        and not re.search(rf"\b{n[:-3]}(\.py)?\b", layout)]  # scores/ lists the stems
    assert not missing, f"README's layout does not name {missing}"
