"""--ranking influence (the expected SGD-influence over the order of training) against an explicit numpy
computation of the same recursion and stopping rule, and the steps it goes back through."""

from dataclasses import replace

import numpy as np
import pytest

from helpers import softmax_regression_project, subset_csv, variant, trial_of
from nnc_plugin.options import ScoreOptions
from nnc_plugin.pipeline import score
from nnc_plugin.scores import registry
from nnc_plugin.model.network import Model
from nnc_plugin.scores.influence import Influence
from nnc_plugin.scores.loss_witness import influence_order
from nnc_plugin.training.snapshots import validation_parts
from nnc_plugin.training.trainer import train
from nnc_plugin.scores.recursion import KEEP_FALLING, MAX_STEPS, WINDOW, DepthRule
from oracle import gradient, hessian, load_numpy, logit_error_size, theta_of


def numpy_expected_influence(theta, schedule, data, points, parts, max_steps):
    """The recursion of influence.py with explicit matrices (SGD, final parameters): from the validation gradient
    averaged over the points (`points`: the final parameters, then the last epoch's snapshots) with the validation
    rows `parts[k]` taken at point k, v summed up to the step where |u| was smallest, at most `max_steps` steps
    back, each row's vbar . grad l_j divided by |p_j - y_j|; returns (scores, steps summed). `data`: (x_train,
    y_train, x_val, y_val)."""
    x_train, y_train, x_val, y_val = data
    u = sum(gradient(point, x_val[v], y_val[v]) for point, part in zip(points, parts) for v in part)
    u = u / sum(len(part) for part in parts)
    total, best = np.zeros_like(u), None
    for back in range(1, min(len(schedule), max_steps) + 1):
        batch, eta = schedule.step(len(schedule) - back)
        total += eta * u
        u = u - eta / len(batch) * sum(hessian(theta, x_train[j]) for j in batch) @ u
        if best is None or np.linalg.norm(u) < best[0]:
            best = (np.linalg.norm(u), total.copy(), back)
    direction = best[1] / len(x_train)
    return np.array([direction @ gradient(theta, x, y) / logit_error_size(theta, x, y)
                     for x, y in zip(x_train, y_train)]), best[2]


def snapshot_thetas(trial):
    """The parameters at the snapshot points of the last epoch of `trial`, as numpy matrices: its training run
    again (deterministic: the same seed, the same steps) with a hook that records them."""
    plan = replace(trial.setup.plan, seed=trial.seed)
    model = Model(trial.project, seed=plan.seed)
    thetas = []
    train(model, trial.train_data, plan, on_snapshot=lambda m: thetas.append(theta_of(m)))
    return thetas


def test_snapshots_come_before_evenly_spaced_steps_and_gather_the_validation_gradient(tmp_path, digits):
    """8 snapshots of an epoch of 20 steps: before steps 0, 2, 5, 7, 10, 12, 15, 17; each, trained on with the
    recorded minibatches and learning rates from there (plain SGD in numpy), gives the final parameters; and the
    gradient the cache keeps is the explicit sum over the 8 points of each point's share of the validation rows."""
    train_csv = subset_csv(digits["train"], tmp_path / "train.csv", 160)
    val_csv = subset_csv(digits["val"], tmp_path / "val.csv", 45)
    model = softmax_regression_project(str(tmp_path), lr=0.5, epochs=2, batch_size=8)
    options = ScoreOptions(model=model, input_train=str(train_csv), input_val=str(val_csv),
                           output=str(tmp_path / "out.csv"), ranking="influence", n_trials=1)
    score(options)
    trial = trial_of(options)
    assert trial.record.snapshots == 8
    x, y = load_numpy(train_csv)
    x_val, y_val = load_numpy(val_csv)
    final = theta_of(trial.model)
    thetas = snapshot_thetas(trial)
    for start, theta in zip([0, 2, 5, 7, 10, 12, 15, 17], thetas):
        assert not np.allclose(theta, final)
        for t in range(start, 20):
            batch, eta = trial.record.schedule.step(t)
            theta = theta - eta * np.mean([gradient(theta, x[j], y[j]) for j in batch], axis=0).reshape(theta.shape)
        np.testing.assert_allclose(theta, final, rtol=0, atol=1e-5)
    parts = validation_parts(45, 9, trial.seed + 5)
    expected = sum(gradient(theta, x_val[v], y_val[v]) for theta, part in zip(thetas, parts[1:]) for v in part) / 45
    kept = np.vstack([trial.record.snapshot_gradient[0], trial.record.snapshot_gradient[1][None, :]]).ravel()
    np.testing.assert_allclose(kept, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_depth_rule_stops_once_the_recursion_stops_contracting():
    falling_then_rising = [1.0] + [0.9 ** k for k in range(1, 21)] + [0.9 ** 20 * 1.1 ** k for k in range(1, 100)]
    rule = DepthRule(falling_then_rising[0])
    stopped = next(back for back, norm in enumerate(falling_then_rising[1:], 1) if rule.stop_after(norm))
    assert rule.best == 20  # the smallest |u|
    # stops at the first step where |u| is above KEEP_FALLING times its value WINDOW steps earlier
    expected = next(k for k in range(WINDOW, len(falling_then_rising))
                    if falling_then_rising[k] > KEEP_FALLING * falling_then_rising[k - WINDOW])
    assert stopped == expected < 60

    slowly_falling = DepthRule(1.0)  # 1% per step: keeps going, to MAX_STEPS
    stopped = next(back for back in range(1, 10 * MAX_STEPS) if slowly_falling.stop_after(0.99 ** back))
    assert stopped == MAX_STEPS and slowly_falling.best == MAX_STEPS

    overflowing = DepthRule(1.0)  # the first step overflows: it still counts, and the rule stops there
    assert overflowing.stop_after(float("inf")) and overflowing.best == 1


class Unbounded(Influence):
    """influence without its cost bound (research/influence_budget.py)."""
    name, cost_bound = "influence-unbounded", None


class Tight(Influence):
    """influence whose cost bound counts even the smallest network's second derivatives."""
    name, free_multiply_adds = "influence-tight", 0


@pytest.mark.parametrize("ranking, lr, stops_early", [
    ("influence", 0.5, False), ("influence", 2.0, True), ("influence-tight", 0.5, False),
    ("influence-unbounded", 0.5, False), ("influence-unbounded", 2.0, True)])
@pytest.mark.parametrize("reference", [False, True])
def test_scores_equal_explicit_formula(tmp_path, digits, ranking, lr, stops_early, reference):
    """At lr 0.5 |u| falls over every step it may go back; at lr 2 it is smallest after 3 steps and the sum stops
    there. The package's influence shares the validation rows out over the points; softmax regression's second
    derivatives are too cheap for its cost bound to matter, so it may take all 15 steps of training, as without the
    bound; counted (influence-tight), the bound stops it after 4. The default path's finite differences agree to
    1e-3 of the largest score, the reference path's exact inner products to 1e-4 (both with the training loss as
    the order's second witness, loss_witness.py, applied to the formula's scores)."""
    train_csv = subset_csv(digits["train"], tmp_path / "train.csv", 40)
    val_csv = subset_csv(digits["val"], tmp_path / "val.csv", 20)
    model = softmax_regression_project(str(tmp_path), lr=lr, epochs=3, batch_size=8)
    options = ScoreOptions(model=model, input_train=str(train_csv), input_val=str(val_csv),
                           output=str(tmp_path / "out" / "influence.csv"), ranking=ranking, seed=3,
                           reference=reference, n_trials=1)
    with registry.trying(Unbounded, Tight):
        run = score(options)
        trial = trial_of(options)
    schedule = trial.schedule_back(MAX_STEPS)
    assert len(schedule) == 15  # the whole of training: 2 earlier epochs drawn again + the traced one
    # the tight bound, from ROW_COSTS: (min(1.5 (20 + 3 * 40), 4 * 40) - 20 - 2/3 * 40) / 3 = 37.8 rows, 4 steps of 8
    max_steps = 4 if ranking == "influence-tight" else MAX_STEPS
    x_train, y_train = load_numpy(train_csv)
    x_val, y_val = load_numpy(val_csv)
    points = [theta_of(trial.model)] + snapshot_thetas(trial)
    parts = validation_parts(20, len(points), trial.seed + 5)
    expected, steps = numpy_expected_influence(theta_of(trial.model), schedule, (x_train, y_train, x_val, y_val),
                                               points, parts, max_steps)
    assert (steps < min(15, max_steps)) == stops_early
    # the order's second witness (test_loss_witness), off where the most harmful rows form a group
    expected = influence_order(expected, trial.record.loss_history, np.array([f"{v:g}" for v in y_train.ravel()]))
    scale = np.abs(expected).max()
    assert scale > 1e-6  # the problem is not degenerate
    np.testing.assert_allclose(run.scores, expected, rtol=0, atol=(1e-4 if reference else 1e-3) * scale)


def test_the_cost_bound_sizes_the_search_and_the_depth_to_the_project(tmp_path, digits, mnist):
    """The class-direction search (20 Hessian-vector products over 128 rows) is left out where it does not fit in
    1.5 times sgd-influence's cost and 4 training epochs (from the initialisation, also twice the epochs trained),
    and the recursion takes what fits: the sample CNN on 300 and 1,000 rows (batch size 64, 500 validation rows)
    trained 2 epochs gets no search and 1 and 12 steps (the validation rows taken while training count too);
    trained one epoch, the scoring may cost 2 epochs, and 1,000 rows get 2 steps. On the digits MLP, whose second
    derivatives cost a few thousand multiply-adds a row, the whole search and a long recursion are below
    FREE_MULTIPLY_ADDS."""
    from nnc_plugin.scores.influence import FREE_MULTIPLY_ADDS, search_and_depth, second_order_rows
    for rows, epochs, expected_steps in ((300, 2, 1), (1000, 2, 12), (1000, 1, 2)):
        train_csv = subset_csv(mnist["train"], tmp_path / f"train{rows}.csv", rows)
        options = ScoreOptions(model=mnist["model"], input_train=str(train_csv), input_val=mnist["val"],
                               epochs=epochs, output=str(tmp_path / f"out{rows}_{epochs}" / "influence.csv"),
                               ranking="influence")
        trial = trial_of(options)
        epoch_bound = min(4, 2 * epochs)
        # the validation rows taken at the last epoch's snapshots while training (8, fewer in a 5-step epoch)
        snapshots = trial.record.snapshots
        assert snapshots == min(8, -(-rows // 64))
        at_snapshots = 500 * snapshots / (snapshots + 1)
        allowed = (min(1.5 * (500 + 3 * rows), epoch_bound * rows - at_snapshots) - 500 - 2 / 3 * rows) / 3
        free = FREE_MULTIPLY_ADDS / (9 * trial.project.row_multiply_adds)  # what is never bounded (below)
        allowed = max(allowed, free)
        assert second_order_rows(Influence(), trial, 1) == pytest.approx(allowed)
        search, steps = search_and_depth(Influence(), trial)
        assert search is None and steps == expected_steps == max(1, int(allowed // 64))
    train_csv = subset_csv(digits["train"], tmp_path / "digits.csv", 300)
    options = ScoreOptions(model=digits["model"], input_train=str(train_csv), input_val=digits["val"], epochs=2,
                           output=str(tmp_path / "digits" / "influence.csv"), ranking="influence")
    trial = trial_of(options)
    free = FREE_MULTIPLY_ADDS / (9 * trial.project.row_multiply_adds)  # a second-order row: 9 forward rows' work
    assert trial.project.row_multiply_adds == 64 * 32 + 32 * 10 and second_order_rows(Influence(), trial, 1) == free
    search, steps = search_and_depth(Influence(), trial)
    assert search is not None and steps == int((free - 20 * 128) // 32)


def test_steps_before_the_traced_epoch_are_fresh_epochs_at_the_scheduled_rates(tmp_path, digits):
    train_csv = subset_csv(digits["train"], tmp_path / "train.csv", 40)
    model = variant(softmax_regression_project(str(tmp_path), lr=0.5, epochs=4, batch_size=16),
                    str(tmp_path / "decaying.nntxt"), {"gamma: 1": "gamma: 0.9"})
    options = ScoreOptions(model=model, input_train=str(train_csv), input_val=digits["val"],
                           output=str(tmp_path / "out.csv"), ranking="influence", n_trials=1)
    score(options)
    trial = trial_of(options)
    traced = trial.record.schedule
    assert len(traced) == 3  # one epoch of 40 rows at batch size 16: 16, 16, 8
    for steps, epochs in ((2, 1), (4, 2), (9, 3), (1000, 4)):  # never more than the 4 epochs training ran
        schedule = trial.schedule_back(steps)
        assert len(schedule) == 3 * epochs
        np.testing.assert_allclose(schedule.learning_rates, 0.5 * 0.9 ** np.arange(12)[12 - 3 * epochs:], rtol=1e-6)
        for epoch in range(epochs):
            rows = np.concatenate([schedule.step(t)[0] for t in range(3 * epoch, 3 * epoch + 3)])
            assert sorted(rows) == list(range(40))  # each epoch takes every row once
        np.testing.assert_array_equal(schedule.indices[-40:], traced.indices)  # the traced epoch last, as it was
    earlier = trial.schedule_back(6).indices[:40]
    assert not np.array_equal(earlier, traced.indices)  # a new order, not the traced one again


def test_each_trial_draws_its_own_earlier_epochs(tmp_path, digits):
    """-nt averages over the order of training: the epochs drawn before the traced one differ between trials."""
    train_csv = subset_csv(digits["train"], tmp_path / "train.csv", 40)
    model = softmax_regression_project(str(tmp_path), lr=0.5, epochs=4, batch_size=16)
    options = ScoreOptions(model=model, input_train=str(train_csv), input_val=digits["val"],
                           output=str(tmp_path / "out.csv"), ranking="influence", n_trials=2)
    score(options)
    first, second = (trial_of(options, number).schedule_back(6).indices[:40] for number in (0, 1))
    assert sorted(first) == sorted(second) == list(range(40))
    assert not np.array_equal(first, second)
