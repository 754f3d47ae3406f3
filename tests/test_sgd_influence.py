"""SGD-influence against an independent computation, and the fast path against the reference path.

The independent computation uses only numpy and PIL: softmax regression has closed-form
per-sample gradients and Hessians, so the recursion in research/method.md can be run with
explicit matrices and compared with what the plugin wrote.
"""
import numpy as np
import pytest

from helpers import read_csv, softmax_regression_project, subset_csv, trial_of
from nnc_plugin.data.dataset import read_dataset
from nnc_plugin.scores.gradients import BatchedDirectional, PerSampleDirectional, validation_gradient
from nnc_plugin.scores.recursion import sgd_influence
from nnc_plugin.model.network import Model
from nnc_plugin.options import ScoreOptions
from nnc_plugin.pipeline import score
from nnc_plugin.model.project import load_project
from nnc_plugin.training.step_size import linearisation
from nnc_plugin.training.trainer import Schedule
from oracle import gradient, hessian, load_numpy, theta_of


def numpy_influence(theta_at, schedule, x_train, y_train, x_val, y_val, weight_decay):
    """The recursion in research/method.md, with explicit per-sample gradients and Hessians; theta_at(t) gives theta_t."""
    final = theta_at(None)
    u = np.mean([gradient(final, x, y) for x, y in zip(x_val, y_val)], axis=0)
    influence = np.zeros(len(x_train))
    for t in reversed(range(len(schedule))):
        batch, eta = schedule.step(t)
        theta = theta_at(t)
        for j in batch:
            influence[j] += eta / len(batch) * u @ gradient(theta, x_train[j], y_train[j])
        h = sum(hessian(theta, x_train[j]) for j in batch)
        u = u - eta / len(batch) * (h @ u) - eta * weight_decay * u
    return influence


@pytest.mark.parametrize("mode", ["final", "all"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_scores_equal_explicit_formula(tmp_path, digits, mode, weight_decay):
    train_csv = subset_csv(digits["train"], tmp_path / "train.csv", 40)
    val_csv = subset_csv(digits["val"], tmp_path / "val.csv", 20)
    model = softmax_regression_project(str(tmp_path), lr=0.5, epochs=3, batch_size=8, weight_decay=weight_decay)
    output = tmp_path / "out" / "influence.csv"
    options = ScoreOptions(model=model, input_train=str(train_csv), input_val=str(val_csv), output=str(output),
                           ranking="sgd-influence", mode=mode, trace_epochs=2, seed=3)
    run = score(options)

    trial = trial_of(options)
    schedule = trial.record.schedule
    assert len(schedule) == 2 * 5  # two traced epochs of 40/8 steps
    final = theta_of(trial.model)

    def theta_at(t):
        if mode == "final" or t is None:
            return final
        trial.cache.load_step_parameters(t, trial.model)  # the parameters cached before step t
        return theta_of(trial.model)
    x_train, y_train = load_numpy(train_csv)
    x_val, y_val = load_numpy(val_csv)
    expected = numpy_influence(theta_at, schedule, x_train, y_train, x_val, y_val, weight_decay)

    scale = np.abs(expected).max()
    assert scale > 1e-4  # the problem is not degenerate
    np.testing.assert_allclose(run.scores, expected, rtol=0, atol=2e-4 * scale)
    # and the CSV carries those scores, sorted ascending
    table = read_csv(output)
    written = {int(r[3]): float(r[2]) for r in table[1:]}
    np.testing.assert_allclose([written[i] for i in range(40)], run.scores, rtol=1e-6, atol=1e-12)


def test_final_mode_differs_from_exact_when_parameters_move(tmp_path, digits):
    """Sanity check of the comparison above: over many steps the approximation is not the exact value."""
    train_csv = subset_csv(digits["train"], tmp_path / "train.csv", 40)
    val_csv = subset_csv(digits["val"], tmp_path / "val.csv", 20)
    model = softmax_regression_project(str(tmp_path), lr=0.5, epochs=3, batch_size=8)
    results = {}
    for mode in ("final", "all"):
        results[mode] = score(ScoreOptions(model=model, input_train=str(train_csv), input_val=str(val_csv),
                                           output=str(tmp_path / mode / "influence.csv"), ranking="sgd-influence", mode=mode,
                                           trace_epochs=3)).scores
    assert np.abs(results["final"] - results["all"]).max() > 1e-3 * np.abs(results["all"]).max()


def _first_rows_project(tmp_path, mnist, rows):
    train_csv = subset_csv(mnist["train"], tmp_path / "train.csv", rows)
    val_csv = subset_csv(mnist["val"], tmp_path / "val.csv", 64)
    return str(train_csv), str(val_csv)


@pytest.mark.parametrize("mode", ["final", "all"])
def test_batched_path_equals_per_sample_reference(tmp_path, mnist, mode):
    """The default batched double-backward against one backward pass per sample (sample CNN, 256 rows)."""
    train_csv, val_csv = _first_rows_project(tmp_path, mnist, 256)
    results = {}
    for reference in (False, True):
        results[reference] = score(ScoreOptions(
            model=mnist["model"], input_train=train_csv, input_val=val_csv, epochs=2, ranking="sgd-influence", mode=mode,
            output=str(tmp_path / f"ref{reference}" / "influence.csv"), cache_dir=str(tmp_path / "cache"),
            reference=reference)).scores
    fast, slow = results[False], results[True]
    relative = np.abs(fast - slow).max() / np.abs(slow).max()
    assert relative < 1e-4, relative


def test_three_ways_to_differentiate_one_minibatch_agree(mnist):
    """Batched with the fast rules, per-sample, and batched with nnabla's own rules: the same inner products
    and Hessian-vector product on a minibatch of the sample CNN."""
    project = load_project(mnist["model"])
    data = read_dataset(mnist["train"])
    model = Model(project, seed=0)
    rng = np.random.RandomState(0)
    direction = [rng.standard_normal(p.shape).astype(np.float32) for p in model.parameters.values()]
    indices = np.arange(5, 29)
    results = [BatchedDirectional(model, batch_size=32)(data, indices, direction),
               PerSampleDirectional(model)(data, indices, direction),
               BatchedDirectional(model, fast_rules=False, batch_size=32)(data, indices, direction)]
    scores, hvp = results[1]
    assert np.abs(scores).max() > 0 and max(np.abs(h).max() for h in hvp) > 0
    for other_scores, other_hvp in (results[0], results[2]):
        assert np.abs(other_scores - scores).max() < 1e-4 * np.abs(scores).max()
        for a, b in zip(other_hvp, hvp):
            assert np.abs(a - b).max() < 1e-4 * max(np.abs(h).max() for h in hvp)


def test_validation_gradient_matches_finite_differences(digits):
    project = load_project(digits["model"])
    data = read_dataset(digits["val"])
    model = Model(project, seed=0)
    u, loss = validation_gradient(model, data, batch_size=64)
    name = project.trainable_parameters[0]
    position = list(model.parameters).index(name)
    direction = np.random.RandomState(0).randn(*u[position].shape).astype(np.float32)
    original = model.parameters[name].d.copy()
    losses = []
    for sign in (1, -1):
        model.parameters[name].d = original + sign * 1e-2 * direction
        losses.append(validation_gradient(model, data, batch_size=64)[1])
    model.parameters[name].d = original
    numeric = (losses[0] - losses[1]) / 2e-2
    analytic = float(np.vdot(u[position], direction))
    assert abs(numeric - analytic) < 1e-2 * abs(analytic) + 1e-4


def test_influence_is_zero_for_samples_outside_traced_steps(digits):
    project = load_project(digits["model"])
    data = read_dataset(digits["train"])
    model = Model(project, seed=0)
    u, _ = validation_gradient(model, read_dataset(digits["val"]), 64)
    schedule = Schedule(np.arange(10, dtype=np.int32), np.array([0, 10]), np.array([0.1]))
    scores = sgd_influence(model, data, schedule, u, linearisation("Sgd", {}, lambda t: 0.1, lambda t: [1.0] * len(u)))
    assert np.all(scores[10:] == 0) and np.any(scores[:10] != 0)


def test_norm_of_a_diverging_direction_does_not_overflow():
    """float32 squares overflow past 1.8e19: the growth of a diverging propagation must stay a finite number."""
    from nnc_plugin.scores.gradients import norm
    big = [np.full((3, 4), 3e19, dtype=np.float32), np.full(5, -4e19, dtype=np.float32)]
    expected = np.sqrt(12 * 9e38 + 5 * 16e38)
    assert np.isfinite(norm(big))
    assert norm(big) == pytest.approx(expected, rel=1e-6)
    assert norm([np.zeros(3, np.float32)]) == 0.0
