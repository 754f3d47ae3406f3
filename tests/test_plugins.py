"""The NNC plugin scripts, run as Neural Network Console runs them, on a results folder of `nnabla_cli train`.

NNC starts a post-process plugin as a Python subprocess in the folder of the training result selected
in its Evaluation tab (which holds results.nnp), with the arguments of the plugin's dialog.
"""
import os
import re
import shutil
import sys

import numpy as np
import pytest

from conftest import ROOT
from helpers import read_csv, run_command, train_with_nnabla_cli

PLUGINS = os.path.join(ROOT, "nnc_plugin", "plugins", "_Post_Process", "_XAI")
SCORE_PLUGIN = os.path.join(PLUGINS, "Data_cleansing_score.py")
CLEANSE_PLUGIN = os.path.join(PLUGINS, "Data_cleansing_cleansed_dataset.py")


def plugin(script, *args, cwd, env=None, python_options=()):
    return run_command(sys.executable, *python_options, script, *args, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def nnc_results(tmp_path_factory, sample_data):
    """A results folder written by `nnabla_cli train` for the digits sample project (2 epochs)."""
    folder = tmp_path_factory.mktemp("project")
    digits = os.path.join(sample_data, "digits")
    with open(os.path.join(digits, "digits_mlp.nntxt"), encoding="utf-8") as f:
        config = f.read()
    for old, new in {'uri: "data/': f'uri: "{digits}/data/', "max_epoch: 10": "max_epoch: 2"}.items():
        assert old in config
        config = config.replace(old, new)
    (folder / "digits.nntxt").write_text(config, encoding="utf-8")
    results = folder / "digits.files" / "20240101_000000"
    assert os.path.isfile(train_with_nnabla_cli(folder / "digits.nntxt", results, cwd=folder))
    return {"results": results, "train": os.path.join(digits, "data", "train.csv"),
            "val": os.path.join(digits, "data", "val.csv")}


@pytest.fixture(scope="module")
def scored_by_plugin(nnc_results):
    """The scoring plugin run with the arguments of NNC's dialog, in the results folder."""
    run = plugin(SCORE_PLUGIN, "-m", "results.nnp", "-t", nnc_results["train"], "-v", nnc_results["val"],
                 "-o", "influence.csv", "-nt", "1", "-bs", "32", "-s", "0", "-r", "sgd-influence",
                 cwd=nnc_results["results"])
    return run


def test_scoring_plugin_runs_as_nnc_runs_it(nnc_results, scored_by_plugin):
    run, results = scored_by_plugin, nnc_results["results"]
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "[nnabla][Level 99]: Data cleansing scores completed successfully." in run.stderr
    table = read_csv(results / "influence.csv")
    assert table[0] == ["x:image", "y:label", "influence", "datasource_index"]
    assert len(table) == 1001
    scores = [float(r[2]) for r in table[1:]]
    assert scores == sorted(scores)
    assert (results / "influence.csv.summary.json").is_file()
    assert (results / "influence_report.html").stat().st_size > 10000


def test_cleansed_dataset_plugin_runs_as_nnc_runs_it(nnc_results, scored_by_plugin):
    results = nnc_results["results"]
    assert scored_by_plugin.returncode == 0
    run = plugin(CLEANSE_PLUGIN, "-i", "influence.csv", "-o", "train_cleansed.csv", "-k", "5%", cwd=results)
    assert run.returncode == 0, run.stderr
    cleansed = read_csv(results / "train_cleansed.csv")
    assert cleansed[0] == ["x:image", "y:label"] and len(cleansed) == 951

    # NNC passes the prefilled --remove too; a threshold replaces it
    scores = [float(r[2]) for r in read_csv(results / "influence.csv")[1:]]
    threshold = scores[100]
    run = plugin(CLEANSE_PLUGIN, "-i", "influence.csv", "-o", "below.csv", "-k", "5%", "-th", repr(threshold),
                 cwd=results)
    assert run.returncode == 0, run.stderr
    assert len(read_csv(results / "below.csv")) == 1001 - sum(s < threshold for s in scores)


def test_results_folder_of_nnabla_cli_train_works_as_model(tmp_path, nnc_results, cli):
    """`--model` takes the folder itself; its results.nnp names the datasets, so -t/-v can be left out."""
    output = tmp_path / "influence.csv"
    cli("score", "-m", nnc_results["results"], "-o", output)
    table = read_csv(output)
    assert len(table) == 1001 and table[0][-2:] == ["influence", "datasource_index"]
    summary = (tmp_path / "influence.csv.summary.json").read_text(encoding="utf-8")
    assert "results.nnp" in summary and '"epochs": 2' in summary


@pytest.mark.parametrize("script, shown, hidden", [
    (SCORE_PLUGIN, ["-m MODEL, --model MODEL", "-t INPUT_TRAIN", "-v INPUT_VAL", "-o OUTPUT", "-bs BATCH_SIZE",
                    "-nt N_TRIALS", "-s SEED", "-r {", "-rp REPORT", "(model) default=results.nnp",
                    "(csv) default=influence.csv", "(html) default=influence_report.html",
                    "Satoshi Hara", "Kenji Suzuki"],
     ["--mode", "--cache-dir", "--epochs", "--context", "--trace-epochs", "--reference"]),
    (CLEANSE_PLUGIN, ["-i INPUT", "-o OUTPUT", "-k REMOVE", "-th THRESHOLD", "default=5%", "Satoshi Hara"], []),
])
def test_plugin_dialogs_follow_nnc_conventions(tmp_path, script, shown, hidden):
    run = plugin(script, "-h", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    for text in shown:
        assert text in run.stdout, text
    for option in hidden:
        assert not re.search(re.escape(option) + r"(?![\w-])", run.stdout), option
    for line in run.stdout.splitlines():  # NNC reads the default from the end of a help text: one word
        if "default=" in line:
            assert re.search(r"default=\S+$", line), line


def test_plugin_finds_the_package_without_installation(nnc_results, scored_by_plugin, tmp_path):
    """Copied into NNC's plugins folder and run by a Python that has nnabla but not the package (as NNC's own
    Python), the script finds the package through NNC_CLEANSE_HOME, and says so in one line when it cannot."""
    copied = tmp_path / "libs" / "plugins" / "_Post_Process" / "_XAI"
    copied.mkdir(parents=True)
    shutil.copy(CLEANSE_PLUGIN, copied)
    script = copied / os.path.basename(CLEANSE_PLUGIN)
    site_packages = os.path.dirname(os.path.dirname(np.__file__))
    # -S skips site processing, so the editable install of nnc_plugin (a .pth file) is not seen; nnabla still is
    bare = {**{k: v for k, v in os.environ.items() if k != "NNC_CLEANSE_HOME"}, "PYTHONPATH": site_packages}
    arguments = ("-i", "influence.csv", "-o", tmp_path / "cleansed.csv", "-k", "10")
    run = plugin(script, *arguments, cwd=nnc_results["results"], env=bare, python_options=("-S",))
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "NNC_CLEANSE_HOME" in run.stderr and "docs/plugin.md" in run.stderr
    run = plugin(script, *arguments, cwd=nnc_results["results"], env={**bare, "NNC_CLEANSE_HOME": ROOT},
                 python_options=("-S",))
    assert run.returncode == 0, run.stderr
    assert len(read_csv(tmp_path / "cleansed.csv")) == 991


def test_plugin_errors_are_one_sentence(nnc_results, tmp_path):
    run = plugin(SCORE_PLUGIN, "-m", "missing.nnp", "-o", "influence.csv", cwd=tmp_path)
    assert run.returncode == 2
    assert "nnc-cleanse: error: The model file missing.nnp does not exist" in run.stderr
    assert "Traceback" not in run.stderr
    run = plugin(SCORE_PLUGIN, "-m", "results.nnp", "-t", nnc_results["train"], "-o", nnc_results["train"],
                 cwd=nnc_results["results"])
    assert run.returncode == 2 and "choose another output name" in run.stderr


# NNC's plugin menu: it runs every script with -h and shows the first line of the description --------------

MENU = {SCORE_PLUGIN: "Data Cleansing: score the training data by influence, most harmful first (SGD Influence)",
        CLEANSE_PLUGIN: "Data Cleansing: write the training data without its most harmful rows"}


def _menu_line(help_text):
    """The first line of the description in argparse's -h output (after the usage lines and a blank line)."""
    lines = help_text.splitlines()
    return lines[lines.index("") + 1]


@pytest.mark.parametrize("script", [SCORE_PLUGIN, CLEANSE_PLUGIN], ids=["score", "cleanse"])
def test_plugin_menu_line(tmp_path, script):
    run = plugin(script, "-h", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    line = _menu_line(run.stdout)
    assert line == MENU[script]
    assert line.startswith("Data Cleansing") and len(line) <= 90  # found by who looks for data cleansing
    assert ("SGD Influence" in line) == (script == SCORE_PLUGIN)  # ... or for NNC's "SGD Influence"


@pytest.mark.parametrize("script", [SCORE_PLUGIN, CLEANSE_PLUGIN], ids=["score", "cleanse"])
def test_plugin_help_answers_without_the_package(tmp_path, script):
    """NNC's own Python, before the set-up: -h still gives the whole dialog (the same text as with the package);
    running it stops with the one-line set-up message."""
    copied = tmp_path / "plugins" / "_Post_Process" / "_XAI"
    copied.mkdir(parents=True)
    shutil.copy(script, copied)
    alone = str(copied / os.path.basename(script))
    bare = {k: v for k, v in os.environ.items() if k not in ("NNC_CLEANSE_HOME", "PYTHONPATH")}
    # -S: no site-packages (no editable install of the package), -I: not even the script's own folder's parents
    without = plugin(alone, "-h", cwd=tmp_path, env=bare, python_options=("-S", "-I"))
    assert without.returncode == 0, without.stderr
    assert _menu_line(without.stdout) == MENU[script]
    with_package = plugin(alone, "-h", cwd=tmp_path, env={**bare, "PYTHONPATH": ROOT})
    assert with_package.returncode == 0, with_package.stderr
    assert without.stdout == with_package.stdout

    run = plugin(alone, cwd=tmp_path, env=bare, python_options=("-S", "-I"))
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and run.stderr.startswith("nnc-cleanse: error: the nnc_plugin package is not")
    assert "Traceback" not in run.stderr


def test_scoring_plugin_default_path_as_nnc_runs_it(nnc_results, tmp_path):
    """The dialog left as NNC fills it: no ranking chosen (the default one), the model's own datasets."""
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(nnc_results["results"] / "results.nnp", results)
    run = plugin(SCORE_PLUGIN, "-m", "results.nnp", "-o", "influence.csv", "-s", "0", "-rp", "influence_report.html",
                 cwd=results)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "[nnabla][Level 99]: Data cleansing scores completed successfully." in run.stderr
    table = read_csv(results / "influence.csv")
    assert table[0] == ["x:image", "y:label", "influence", "datasource_index"] and len(table) == 1001
    scores = [float(r[2]) for r in table[1:]]
    assert scores == sorted(scores) and len(set(scores)) > 100
    summary = (results / "influence.csv.summary.json").read_text(encoding="utf-8")
    assert '"ranking": "influence"' in summary
    assert (results / "influence_report.html").stat().st_size > 10000
