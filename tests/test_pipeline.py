"""End to end: `nnc-cleanse score` on the sample projects, as a user runs it."""
import json
import os

import numpy as np
import pytest

from helpers import read_csv, subset_csv, variant


def _summary(output):
    with open(str(output) + ".summary.json", encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("mode", ["final", "all"])
def test_score_writes_nnc_csv_in_both_modes(tmp_path, digits, cli, mode):
    output = tmp_path / "result" / "influence.csv"
    cli("score", "-m", digits["model"], "-t", digits["train"], "-v", digits["val"], "-o", output,
        "--ranking", "sgd-influence", "--mode", mode, "--epochs", "3")
    table = read_csv(output)
    source = read_csv(digits["train"])
    assert table[0] == source[0] + ["influence", "datasource_index"]
    assert len(table) == len(source)
    scores = np.array([float(r[2]) for r in table[1:]])
    assert np.all(np.diff(scores) >= 0), "rows must be sorted ascending (most harmful first)"
    indices = [int(r[3]) for r in table[1:]]
    assert sorted(indices) == list(range(len(source) - 1))
    for row in table[1:]:  # every row keeps its own cells, and its image path resolves from the output folder
        original = source[int(row[3]) + 1]
        assert row[1] == original[1]
        assert os.path.samefile(os.path.join(output.parent, row[0]), os.path.join(digits["folder"], "data", original[0]))
    summary = _summary(output)
    for key in ("n_train", "n_val", "epochs", "traced_steps", "mode", "n_trials", "seed", "cache_bytes",
                "parameter_bytes", "train_seconds", "score_seconds", "epoch_seconds"):
        assert key in summary, key
    assert summary["n_train"] == 1000 and summary["n_val"] == 300 and summary["mode"] == mode
    assert summary["traced_steps"] == 32 and summary["epochs"] == 3


def test_cache_holds_one_parameter_set_in_final_mode_and_one_per_step_in_all(tmp_path, digits, cli):
    sizes = {}
    for mode in ("final", "all"):
        output = tmp_path / mode / "influence.csv"
        cli("score", "-m", digits["model"], "-o", output, "--ranking", "sgd-influence", "--mode", mode, "--epochs", "2")
        sizes[mode] = _summary(output)
    final, exact = sizes["final"], sizes["all"]
    n, steps, params = final["n_train"], final["traced_steps"], final["parameter_bytes"]
    # final: one parameter set + the schedule (4 bytes per sample) + small files
    assert params <= final["cache_bytes"] <= params + 16 * n + 64 * 1024
    # all: one parameter set per traced step on top
    assert steps * params <= exact["cache_bytes"] - final["cache_bytes"] <= steps * (params + 8 * 1024)


def test_modes_agree_on_a_single_traced_step(tmp_path, digits, cli):
    """One traced step with a small learning rate: the final parameters are almost those of the step."""
    model = variant(digits["model"], tmp_path / "small_lr.nntxt", {"lr: 0.1": "lr: 0.001"})
    train = subset_csv(digits["train"], tmp_path / "train.csv", 200)
    val = subset_csv(digits["val"], tmp_path / "val.csv", 100)
    scores = {}
    for mode in ("final", "all"):
        output = tmp_path / mode / "influence.csv"
        cli("score", "-m", model, "-t", train, "-v", val, "-o", output, "--ranking", "sgd-influence",
            "--mode", mode, "--epochs", "1", "--batch-size", "200")
        assert _summary(output)["traced_steps"] == 1
        table = read_csv(output)
        scores[mode] = np.array([float(r[2]) for r in sorted(table[1:], key=lambda r: int(r[3]))])
    difference = np.abs(scores["final"] - scores["all"]).max() / np.abs(scores["all"]).max()
    assert difference < 1e-2, difference
    assert np.corrcoef(scores["final"], scores["all"])[0, 1] > 0.9999


def test_trials_are_averaged(tmp_path, digits, cli):
    outputs = {}
    for trials in (1, 2):
        output = tmp_path / f"t{trials}" / "influence.csv"
        cli("score", "-m", digits["model"], "-o", output, "--epochs", "2", "-nt", trials, "-r", "sgd-influence",
            "--cache-dir", tmp_path / "cache")
        table = read_csv(output)
        outputs[trials] = np.array([float(r[2]) for r in sorted(table[1:], key=lambda r: int(r[3]))])
        assert _summary(output)["n_trials"] == trials
    # trial 0 is shared (same seed, reused from the cache); the second trial moves the average
    assert not np.allclose(outputs[1], outputs[2])


def test_sample_project_readme_command(tmp_path, mnist, cli):
    """The README's first command on the MNIST sample (shortened to one epoch to keep the suite fast)."""
    output = tmp_path / "influence.csv"
    result = cli("score", "--model", mnist["model"], "--input-train", mnist["noisy"], "--input-val", mnist["val"],
                 "--output", output, "--epochs", "1")
    assert "Wrote" in result.stderr
    table = read_csv(output)
    assert len(table) == 4001 and table[0] == ["x:image", "y:label", "influence", "datasource_index"]
    summary = _summary(output)
    # the cache: the final parameters and the validation gradient gathered over the last epoch (a parameter set
    # each), the traced minibatches and each row's loss history (12 bytes a row), the files' own headers
    assert summary["ranking"] == "influence"
    assert 2 * summary["parameter_bytes"] < summary["cache_bytes"] < 2 * summary["parameter_bytes"] + 16 * 4000 + 65536


def test_the_default_ranking_is_influence_and_gives_way_without_validation_data(tmp_path, digits, cli):
    """The default ranks by influence on the validation loss; a project with no validation data is ranked by
    loss-history instead, and the log says why; asking for influence there is refused in one sentence."""
    train = subset_csv(digits["train"], tmp_path / "train.csv", 120)
    with_val = tmp_path / "with" / "influence.csv"
    cli("score", "-m", digits["model"], "-t", train, "-v", digits["val"], "-e", "2", "-o", with_val)
    assert _summary(with_val)["ranking"] == "influence"
    model = variant(digits["model"], tmp_path / "no_val.nntxt", {'uri: "data/val.csv"': 'uri: ""'})
    without = tmp_path / "without" / "influence.csv"
    result = cli("score", "-m", model, "-t", train, "-e", "2", "-o", without)
    assert _summary(without)["ranking"] == "loss-history"
    assert "No validation data" in result.stderr and "instead of the default influence" in result.stderr
    refused = cli("score", "-m", model, "-t", train, "-e", "2", "-r", "influence", "-o", tmp_path / "r.csv",
                  check=False)
    assert refused.returncode == 2 and "validation" in refused.stderr and "Traceback" not in refused.stderr
