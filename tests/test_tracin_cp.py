"""--ranking tracin-cp (TracIn-CP over the last epochs' checkpoints) against an explicit numpy computation."""
import numpy as np

from helpers import softmax_regression_project, subset_csv, train_with_nnabla_cli, trial_of
from nnc_plugin.options import ScoreOptions
from nnc_plugin.pipeline import score
from oracle import gradient, load_numpy, theta_of


def _project(tmp_path, digits, epochs=4):
    train_csv = subset_csv(digits["train"], tmp_path / "train.csv", 40)
    val_csv = subset_csv(digits["val"], tmp_path / "val.csv", 20)
    model = softmax_regression_project(str(tmp_path), str(train_csv), str(val_csv), lr=0.5, epochs=epochs, batch_size=8)
    return model, str(train_csv), str(val_csv)


def _expected(trial, train_csv, val_csv):
    """sum over checkpoints k of eta_k * grad L_val(theta_k) . grad l_j(theta_k), with numpy gradients."""
    (x, y), (x_val, y_val) = load_numpy(train_csv), load_numpy(val_csv)
    final = trial.model.parameter_arrays()
    expected = np.zeros(len(x))
    for epoch, eta in trial.record.checkpoints:
        if epoch != trial.record.checkpoints[-1][0]:
            trial.cache.load_checkpoint(epoch, trial.model)
        theta = theta_of(trial.model)
        u = np.mean([gradient(theta, a, b) for a, b in zip(x_val, y_val)], axis=0)
        expected += eta * np.array([u @ gradient(theta, a, b) for a, b in zip(x, y)])
        trial.model.set_parameter_arrays(final)
    return expected


def test_tracin_cp_equals_the_checkpoint_formula_and_the_reference_path(tmp_path, digits):
    model, train_csv, val_csv = _project(tmp_path, digits)
    runs, options = {}, {}
    for reference in (False, True):
        options[reference] = ScoreOptions(model=model, input_train=train_csv, input_val=val_csv, ranking="tracin-cp",
                                          reference=reference, output=str(tmp_path / f"r{reference}" / "i.csv"))
        runs[reference] = score(options[reference])
    trial = trial_of(options[False])
    assert [epoch for epoch, _ in trial.record.checkpoints] == [1, 2, 3]  # the ends of the last 3 of 4 epochs
    expected = _expected(trial, train_csv, val_csv)
    scale = np.abs(expected).max()
    assert scale > 1e-4
    np.testing.assert_allclose(runs[False].scores, expected, rtol=0, atol=1e-3 * scale)  # finite differences
    np.testing.assert_allclose(runs[True].scores, expected, rtol=0, atol=1e-4 * scale)  # exact double backward


def test_tracin_cp_from_a_trained_start_uses_the_start_as_a_checkpoint(tmp_path, digits):
    model, train_csv, val_csv = _project(tmp_path, digits)
    nnp = train_with_nnabla_cli(model, tmp_path / "results")
    options = ScoreOptions(model=nnp, input_train=train_csv, input_val=val_csv, ranking="tracin-cp",
                           output=str(tmp_path / "out" / "i.csv"))
    run = score(options)
    trial = trial_of(options)
    assert run.summary["start_from"] == "trained" and run.summary["epochs_trained"] == 1
    assert [epoch for epoch, _ in trial.record.checkpoints] == [2, 3]  # the trained start ended epoch 3 of 4
    np.testing.assert_allclose(run.scores, _expected(trial, train_csv, val_csv), rtol=0,
                               atol=1e-3 * np.abs(run.scores).max())
    again = score(ScoreOptions(model=nnp, input_train=train_csv, input_val=val_csv, ranking="tracin-cp",
                               output=str(tmp_path / "out" / "i.csv")))
    assert again.summary["reused_cache"] == [True]
    np.testing.assert_array_equal(again.scores, run.scores)
