"""--start-from trained: continue from the parameters NNC trained instead of training every epoch again."""
import json
import logging

import numpy as np

from helpers import softmax_regression_project, subset_csv, train_with_nnabla_cli, trial_of
from nnc_plugin.model.project import load_project
from nnc_plugin.options import ScoreOptions
from nnc_plugin.pipeline import score
from oracle import gradient, load_numpy, theta_of


def _trained_project(tmp_path, digits, epochs=2):
    train_csv = subset_csv(digits["train"], tmp_path / "train.csv", 40)
    val_csv = subset_csv(digits["val"], tmp_path / "val.csv", 20)
    config = softmax_regression_project(str(tmp_path), str(train_csv), str(val_csv), lr=0.5, epochs=epochs,
                                        batch_size=40)
    return train_with_nnabla_cli(config, tmp_path / "results"), str(train_csv), str(val_csv)


def test_trained_start_takes_the_last_epoch_from_the_file_parameters(tmp_path, digits):
    """One full-batch SGD step from the trained parameters, checked against numpy: theta - eta * mean gradient."""
    nnp, train_csv, val_csv = _trained_project(tmp_path, digits)
    project = load_project(nnp)
    stored = project.trained_parameters()
    theta = np.vstack([stored["Affine/affine/W"], stored["Affine/affine/b"][None, :]]).astype(np.float64)
    options = ScoreOptions(model=nnp, input_train=train_csv, input_val=val_csv, ranking="loss",
                           output=str(tmp_path / "out" / "influence.csv"))
    run = score(options)  # auto: the file holds parameters
    x, y = load_numpy(train_csv)
    eta = project.scheduler.get_learning_rate(1)  # the last epoch's (its one step's) learning rate
    expected = theta - eta * np.mean([gradient(theta, xi, yi) for xi, yi in zip(x, y)], axis=0).reshape(theta.shape)
    np.testing.assert_allclose(theta_of(trial_of(options).model), expected, rtol=0, atol=1e-5)
    assert run.summary["start_from"] == "trained" and run.summary["epochs_trained"] == 1
    assert run.summary["epochs"] == 2 and len(trial_of(options).record.schedule) == 1


def test_initial_start_retrains_every_epoch_and_trained_needs_parameters(tmp_path, digits, cli):
    nnp, train_csv, val_csv = _trained_project(tmp_path, digits, epochs=3)
    output = tmp_path / "initial.csv"
    cli("score", "-m", nnp, "-t", train_csv, "-v", val_csv, "-o", output, "--start-from", "initial")
    with open(str(output) + ".summary.json", encoding="utf-8") as f:
        summary = json.load(f)
    assert summary["start_from"] == "initial" and summary["epochs_trained"] == 3

    (tmp_path / "plain").mkdir()
    untrained = softmax_regression_project(str(tmp_path / "plain"), train_csv, val_csv)  # an .nntxt: no parameters
    result = cli("score", "-m", untrained, "-o", tmp_path / "t.csv", "--start-from", "trained", check=False)
    assert result.returncode == 2
    assert "holds no trained parameters" in result.stderr and "--start-from initial" in result.stderr
    assert not (tmp_path / "t.csv").exists()


def test_each_trial_continues_from_the_trained_parameters_with_its_own_seed(tmp_path, digits):
    """-nt 3 from a trained model: three trials with seeds 0, 1 and 2, each training the last epoch only; -nt auto
    is one trial, the first of them."""
    nnp, train_csv, val_csv = _trained_project(tmp_path, digits)
    runs = {}
    for trials in ("auto", 3):
        runs[trials] = score(ScoreOptions(model=nnp, input_train=train_csv, input_val=val_csv, ranking="influence",
                                          n_trials=trials, output=str(tmp_path / f"out_{trials}.csv")))
    assert runs["auto"].summary["n_trials"] == 1 and runs[3].summary["n_trials"] == 3
    three = ScoreOptions(model=nnp, input_train=train_csv, input_val=val_csv, ranking="influence", n_trials=3,
                         output=str(tmp_path / "out_3.csv"))
    trials = [trial_of(three, number) for number in range(3)]
    assert [t.seed for t in trials] == [0, 1, 2]
    assert all(len(t.record.schedule) == 1 for t in trials)  # each trains the last epoch only
    assert not np.allclose(runs["auto"].scores, runs[3].scores)


