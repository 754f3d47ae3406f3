"""The class directions (scores/class_directions.py): Lanczos against numpy's eigensolver, the gap rule, the
recursion kept out of the directions against an explicit numpy computation, and the group a trained
classifier shows on real data."""
import numpy as np

from helpers import binary_logistic_project, softmax_regression_project, subset_csv, trial_of
from nnc_plugin.model.project import load_project
from nnc_plugin.options import ScoreOptions
from nnc_plugin.pipeline import score
from nnc_plugin.scores import class_directions
from nnc_plugin.scores.class_directions import (GAP, ClassDirections, Search, find_class_directions, lanczos,
                                                mean_hessian, stands_apart)
from nnc_plugin.scores.gradients import validation_gradient
from nnc_plugin.scores.recursion import PROJECTED_STEPS, PropagationSettings, expected_influence
from oracle import gradient, hessian, load_numpy, theta_of


def test_lanczos_finds_the_top_of_a_known_spectrum():
    rng = np.random.RandomState(0)
    basis, _ = np.linalg.qr(rng.standard_normal((60, 60)))
    spectrum = np.concatenate([[9.0, 7.0, 5.0], np.linspace(1.0, 0.0, 57)])  # three directions over a bulk
    matrix = basis @ np.diag(spectrum) @ basis.T
    values, vectors = lanczos(lambda v: matrix @ v, 60, 30, np.random.RandomState(1))
    np.testing.assert_allclose(values[:3], [9.0, 7.0, 5.0], rtol=1e-6)
    for k in range(3):  # each found vector is the eigenvector (up to sign)
        assert abs(vectors[:, k] @ basis[:, k]) > 1 - 1e-5


def test_lanczos_gives_up_early_only_where_the_test_says_so():
    rng = np.random.RandomState(0)
    basis, _ = np.linalg.qr(rng.standard_normal((60, 60)))
    no_gap = basis @ np.diag(np.linspace(9.0, 0.0, 60)) @ basis.T
    gap = basis @ np.diag(np.concatenate([[9.0, 7.0, 5.0], np.linspace(1.0, 0.0, 57)])) @ basis.T
    give_up = (8, lambda values: not stands_apart(values, 3))
    for matrix, products in ((no_gap, 8), (gap, 30)):
        calls = []
        values, vectors = lanczos(lambda v: calls.append(1) or matrix @ v, 60, 30, np.random.RandomState(1),
                                  give_up)
        assert len(calls) == products and vectors.shape == (60, products)
    np.testing.assert_allclose(values[:3], [9.0, 7.0, 5.0], rtol=1e-6)  # the full search where it went on


def test_the_group_stands_apart_only_with_a_gap_after_it():
    assert stands_apart(np.array([10.0, 9.0, 8.0, 1.0, 0.9]), 3)
    assert not stands_apart(np.array([10.0, 9.0, 8.0, 1.0, 0.9]), 2)  # the gap is after the third, not the second
    assert not stands_apart(np.array([10.0, 9.0, 8.0, 8.0 / (0.99 * GAP)]), 3)  # a ratio just below GAP
    assert not stands_apart(np.array([10.0, 9.0]), 2)  # nothing after the group to compare with


def test_the_class_count_comes_from_the_softmax_loss(tmp_path):
    assert load_project(softmax_regression_project(str(tmp_path))).classes == 10
    assert load_project(binary_logistic_project(str(tmp_path))).classes is None  # a 0-to-1 target: no classes


def lanczos_on(operator, steps):
    """(eigenvalues, eigenvectors) of a `mean_hessian` operator by `steps` Lanczos iterations."""
    hvp, dimension, rng = operator
    return lanczos(hvp, dimension, steps, rng)


def _tiny_trial(tmp_path, digits):
    train_csv = subset_csv(digits["train"], tmp_path / "train.csv", 40)
    val_csv = subset_csv(digits["val"], tmp_path / "val.csv", 20)
    model = softmax_regression_project(str(tmp_path), lr=0.5, epochs=3, batch_size=8)
    options = ScoreOptions(model=model, input_train=str(train_csv), input_val=str(val_csv),
                           output=str(tmp_path / "out.csv"), ranking="loss", seed=3)
    score(options)
    return trial_of(options), train_csv, val_csv


def test_hessian_spectrum_equals_numpy_eigenvalues(tmp_path, digits):
    """Softmax regression on 40 rows (fewer than OUTLIER_ROWS: all of them): the largest eigenvalues found by
    Lanczos through nnabla's double backward equal those of the explicit mean Hessian."""
    trial, train_csv, _ = _tiny_trial(tmp_path, digits)
    x_train, _ = load_numpy(train_csv)
    theta = theta_of(trial.model)
    explicit = np.mean([hessian(theta, x) for x in x_train], axis=0)
    expected = np.sort(np.linalg.eigvalsh(explicit))[::-1]
    # without a softmax loss of 3 classes or more there is no class structure to look for
    for classes in (None, 2):
        assert find_class_directions(trial.model, trial.train_data, 8, Search(classes, seed=0)) is None
    for reference in (False, True):
        values, vectors = lanczos_on(mean_hessian(trial.model, trial.train_data, 8, Search(10, 0, reference=reference)), 30)
        np.testing.assert_allclose(values[:4], expected[:4], rtol=1e-3)
        residual = explicit @ vectors[:, 0] - values[0] * vectors[:, 0]
        assert np.linalg.norm(residual) < 1e-3 * values[0]


def numpy_kept_out_influence(theta, schedule, x_train, y_train, x_val, y_val, q):
    """The recursion of influence.py with explicit matrices (SGD, final parameters), u kept orthogonal to the
    columns of q, v summed over the last PROJECTED_STEPS steps (all 15 here)."""
    keep_out = lambda a: a - q @ (q.T @ a)  # noqa: E731
    u = keep_out(np.mean([gradient(theta, x, y) for x, y in zip(x_val, y_val)], axis=0))
    total = np.zeros_like(u)
    for back in range(1, min(len(schedule), PROJECTED_STEPS) + 1):
        batch, eta = schedule.step(len(schedule) - back)
        total += eta * u
        u = keep_out(u - eta / len(batch) * sum(hessian(theta, x_train[j]) for j in batch) @ u)
    return np.array([total / len(x_train) @ gradient(theta, x, y) for x, y in zip(x_train, y_train)])


def test_recursion_kept_out_of_the_directions_equals_explicit_formula(tmp_path, digits):
    trial, train_csv, val_csv = _tiny_trial(tmp_path, digits)
    x_train, y_train = load_numpy(train_csv)
    x_val, y_val = load_numpy(val_csv)
    theta = theta_of(trial.model)
    explicit = np.mean([hessian(theta, x) for x in x_train], axis=0)
    values, vectors = np.linalg.eigh(explicit)
    q = vectors[:, ::-1][:, :3]  # the three sharpest directions
    schedule = trial.schedule_back(PROJECTED_STEPS)
    assert len(schedule) == 15  # all of training: 3 epochs of 5 steps
    expected = numpy_kept_out_influence(theta, schedule, x_train, y_train, x_val, y_val, q)
    u, _ = validation_gradient(trial.model, trial.val_data, 8)
    for reference, tolerance in ((False, 1e-3), (True, 1e-4)):
        settings = PropagationSettings(reference=reference, class_directions=ClassDirections(q, values[::-1]))
        scores, depth = expected_influence(trial.model, trial.train_data, schedule, u,
                                           trial.linearisation("final", schedule), settings)
        assert depth.best == 15
        scale = np.abs(expected).max()
        assert scale > 1e-6
        np.testing.assert_allclose(scores, expected, rtol=0, atol=tolerance * scale)
    # the projection changes the answer: without it the scores differ by more than the tolerance
    plain, _ = expected_influence(trial.model, trial.train_data, schedule, u, trial.linearisation("final", schedule))
    assert np.abs(plain / np.abs(plain).max() - scores / np.abs(scores).max()).max() > 1e-2


def test_a_trained_classifier_shows_one_direction_per_class_but_one(tmp_path, digits):
    """The digits sample (10 classes, SGD at 0.1) on its noisy-label training CSV: its 9 largest eigenvalues
    stand apart."""
    noisy = digits["train"].replace("train.csv", "train_noisy_s0.csv")
    options = ScoreOptions(model=digits["model"], input_train=noisy, output=str(tmp_path / "out.csv"),
                           ranking="loss")
    score(options)
    trial = trial_of(options)
    assert trial.project.classes == 10
    directions = find_class_directions(trial.model, trial.train_data, trial.batch_size, Search(trial.project.classes, 4))
    assert directions is not None and directions.count == 9
    assert len(directions.values) == 30  # it went on past 2 C steps: the full 2 C + 10
    assert directions.values[8] >= GAP * directions.values[9]
    assert directions.values[7] < GAP * directions.values[8]  # within the group no such gap
    # every direction is a unit vector, orthogonal to the others, and removing them removes them
    np.testing.assert_allclose(directions.vectors.T @ directions.vectors, np.eye(9), atol=1e-6)
    arrays = [np.random.RandomState(0).standard_normal(p.shape).astype(np.float32)
              for p in trial.model.parameters.values()]
    left = np.concatenate([a.ravel() for a in directions.remove(arrays)])
    assert np.abs(directions.vectors.T @ left).max() < 1e-4 * np.linalg.norm(left)


def test_without_the_group_the_search_stops_at_twice_the_classes(tmp_path, digits, monkeypatch):
    """The clean digits sample, whose 9th eigenvalue is not twice the 10th: the search stops after 2 C = 20
    of its 2 C + 10 steps, and going on would have decided the same."""
    options = ScoreOptions(model=digits["model"], input_train=digits["train"], output=str(tmp_path / "out.csv"),
                           ranking="loss")
    score(options)
    trial = trial_of(options)
    products = []
    counted = class_directions.lanczos
    monkeypatch.setattr(class_directions, "lanczos", lambda hvp, *args: counted(
        lambda v: products.append(1) or hvp(v), *args))
    assert find_class_directions(trial.model, trial.train_data, trial.batch_size, Search(10, 4)) is None
    assert len(products) == 20
    values, _ = lanczos_on(mean_hessian(trial.model, trial.train_data, trial.batch_size, Search(10, 4)), 30)
    assert len(values) == 30 and not stands_apart(values, 9)
