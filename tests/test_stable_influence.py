"""The solver-state adjoint (stable_influence.py) against an explicit numpy computation.

Softmax regression has closed-form per-sample gradients and Hessians, so the adjoint recursion of
stable_influence's docstring (Momentum with its buffer, Adam with its first moment as state and
the second moment held fixed) can be run with explicit matrices at the final parameters and
compared with the batched nnabla path. The linear form it differentiates is checked against
nnabla's own solvers first.
"""
import numpy as np
import pytest

import nnabla as nn
import nnabla.solvers as S
from helpers import softmax_regression_project, subset_csv
from test_influence import gradient, hessian, load_numpy
from nnc_plugin.cache import TrialCache
from nnc_plugin.dataset import read_dataset
from nnc_plugin.influence import BatchedDirectional, sgd_influence, validation_gradient
from nnc_plugin.network import Model
from nnc_plugin.project import load_project
from nnc_plugin.stable_influence import largest_eigenvalue, linearisation, state_influence
from nnc_plugin.trainer import train


@pytest.mark.parametrize("solver", ["Momentum", "Adam"])
def test_linear_form_is_nnablas_update(solver):
    """s_t = beta s_{t-1} + B_t g_t, theta_{t+1} = theta_t - A_t s_t reproduces nnabla's solver step by step."""
    rng = np.random.RandomState(0)
    theta = nn.Variable((5,), need_grad=True)
    theta.d = rng.randn(5)
    if solver == "Momentum":
        lr, beta, optimiser = 0.05, 0.9, S.Momentum(lr=0.05, momentum=0.9)
    else:
        lr, beta, optimiser = 0.01, 0.9, S.Adam(alpha=0.01, beta1=0.9, beta2=0.999, eps=1e-8)
    optimiser.set_parameters({"theta": theta})
    x, s, v = theta.d.astype(np.float64), np.zeros(5), np.zeros(5)
    for k in range(1, 6):
        g = rng.randn(5)
        theta.g = g
        optimiser.update()
        if solver == "Momentum":
            s = beta * s + lr * g
            x = x - s
        else:
            v = 0.999 * v + 0.001 * g * g
            s = beta * s + (1 - beta) * g
            x = x - lr * np.sqrt(1 - 0.999 ** k) / (1 - beta ** k) / (np.sqrt(v) + 1e-8) * s
        np.testing.assert_allclose(theta.d, x, rtol=1e-5, atol=1e-6)


def to_theta(arrays):
    """nnabla's (W (64, 10), b (10,)) as the (65, 10) matrix of test_influence."""
    return np.vstack([arrays[0], np.reshape(arrays[1], (1, -1))]).astype(np.float64)


def numpy_state_influence(theta, schedule, x_train, y_train, x_val, y_val, solver, weight_decay, last_iteration,
                          inverse_root_v=None, played_out=False, clip=1.0):
    """The adjoint recursion written out with explicit gradients and Hessians at the final parameters."""
    u = np.mean([gradient(theta, x, y) for x, y in zip(x_val, y_val)], axis=0)
    beta = 0.9
    last = len(schedule) - 1

    def factors(t, eta):
        if solver == "Momentum":
            return 1.0, eta
        k = last_iteration - (last - t)
        return eta * np.sqrt(1 - 0.999 ** k) / (1 - beta ** k) * inverse_root_v, 1 - beta

    a, _ = factors(last, schedule.step(last)[1])
    mbar = beta / (1 - beta) * a * u if played_out else np.zeros_like(u)
    influence = np.zeros(len(x_train))
    for t in reversed(range(len(schedule))):
        batch, eta = schedule.step(t)
        a, b = factors(t, eta)
        q = a * u + mbar
        v = b * q
        for j in batch:
            influence[j] += v @ gradient(theta, x_train[j], y_train[j]) / len(batch)
        if t > 0:
            h = sum(hessian(theta, x_train[j]) for j in batch) / len(batch)
            u = u - clip * (h @ v) - weight_decay * v
        mbar = beta * q
    return influence


def _trained(tmp_path, digits, solver, lr, weight_decay):
    train_csv = subset_csv(digits["train"], tmp_path / "train.csv", 40)
    val_csv = subset_csv(digits["val"], tmp_path / "val.csv", 20)
    project = load_project(softmax_regression_project(str(tmp_path), lr=lr, epochs=3, batch_size=8,
                                                      weight_decay=weight_decay, solver=solver))
    model = Model(project, seed=3)
    cache = TrialCache(str(tmp_path / "cache"))
    cache.start()
    data = read_dataset(str(train_csv))
    record = train(model, data, cache, 3, 8, seed=3, trace_epochs=2)
    return project, model, record, data, train_csv, val_csv


@pytest.mark.parametrize("solver,lr", [("Momentum", 0.05), ("Adam", 0.01)])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("played_out", [False, True])
def test_state_adjoint_equals_explicit_recursion(tmp_path, digits, solver, lr, weight_decay, played_out):
    project, model, record, data, train_csv, val_csv = _trained(tmp_path, digits, solver, lr, weight_decay)
    schedule = record.schedule
    assert len(schedule) == 10
    state = linearisation(project, model)
    u, _ = validation_gradient(model, read_dataset(str(val_csv)), 64)
    scores = state_influence(model, data, schedule, u, state, weight_decay=weight_decay, played_out=played_out)

    theta = to_theta([model.parameters["Affine/affine/W"].d, model.parameters["Affine/affine/b"].d])
    inverse_root_v = None
    if solver == "Adam":  # read the solver state independently of linearisation()
        states = model.solver.get_states()
        inverse_root_v = to_theta([1 / (np.sqrt(states[n].pstate["var"].d.astype(np.float64)) + 1e-8)
                                   for n in ("Affine/affine/W", "Affine/affine/b")]).ravel()
        assert states["Affine/affine/W"].t == 15  # 3 epochs of 5 steps
    x_train, y_train = load_numpy(train_csv)
    x_val, y_val = load_numpy(val_csv)
    expected = numpy_state_influence(theta, schedule, x_train, y_train, x_val, y_val, solver, weight_decay, 15,
                                     inverse_root_v, played_out)
    scale = np.abs(expected).max()
    assert scale > 1e-5
    np.testing.assert_allclose(scores, expected, rtol=0, atol=2e-4 * scale)


def test_sgd_state_adjoint_is_sgd_influence(tmp_path, digits):
    project, model, record, data, _, val_csv = _trained(tmp_path, digits, "Sgd", 0.5, 0.01)
    u, _ = validation_gradient(model, read_dataset(str(val_csv)), 64)
    state = linearisation(project, model)
    ours = state_influence(model, data, record.schedule, u, state, weight_decay=0.01)
    theirs = sgd_influence(model, data, record.schedule, u, lambda t: [1.0, 1.0], weight_decay=0.01)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * np.abs(theirs).max())


def test_power_iteration_finds_largest_eigenvalue(tmp_path, digits):
    project, model, record, data, train_csv, _ = _trained(tmp_path, digits, "Sgd", 0.5, 0.0)
    indices, _ = record.schedule.step(len(record.schedule) - 1)
    scale = [np.full((64, 10), 0.5, np.float32), np.full((10,), 0.5, np.float32)]
    rho = largest_eigenvalue(BatchedDirectional(model, batch_size=8), data, indices, scale, iterations=200)
    theta = to_theta([model.parameters["Affine/affine/W"].d, model.parameters["Affine/affine/b"].d])
    x_train, _ = load_numpy(train_csv)
    h = sum(hessian(theta, x_train[j]) for j in indices) / len(indices)
    exact = np.max(np.abs(np.linalg.eigvalsh(0.5 * h)))
    assert abs(rho - exact) < 0.02 * exact, (rho, exact)


def test_clipped_step_equals_explicit_recursion_with_the_clip(tmp_path, digits):
    """kappa small enough to clip: the recursion uses s = kappa (1 + beta) / rho in the Hessian term."""
    project, model, record, data, train_csv, val_csv = _trained(tmp_path, digits, "Momentum", 0.05, 0.0)
    u, _ = validation_gradient(model, read_dataset(str(val_csv)), 64)
    state = linearisation(project, model)
    diagnostics = {}
    scores = state_influence(model, data, record.schedule, u, state, kappa=1e-3, played_out=True,
                             diagnostics=diagnostics)
    assert diagnostics["clip"] < 1.0
    theta = to_theta([model.parameters["Affine/affine/W"].d, model.parameters["Affine/affine/b"].d])
    x_train, y_train = load_numpy(train_csv)
    x_val, y_val = load_numpy(val_csv)
    expected = numpy_state_influence(theta, record.schedule, x_train, y_train, x_val, y_val, "Momentum", 0.0, 15,
                                     played_out=True, clip=diagnostics["clip"])
    np.testing.assert_allclose(scores, expected, rtol=0, atol=2e-4 * np.abs(expected).max())


def test_difference_jvp_matches_double_backward(digits):
    """The two-forward-pass directional derivative against the exact one, on the digits MLP."""
    from nnc_plugin.stable_influence import directional_losses
    project = load_project(digits["model"])
    data = read_dataset(digits["train"]).subset(np.arange(100))
    model = Model(project, seed=0)
    u, _ = validation_gradient(model, read_dataset(digits["val"]), 64)
    exact = directional_losses(model, data, u, 32, directional=BatchedDirectional(model, batch_size=32))
    difference = directional_losses(model, data, u, 32)
    assert np.abs(exact).max() > 0
    np.testing.assert_allclose(difference, exact, rtol=0, atol=1e-2 * np.abs(exact).max())


def test_checkpoint_influence_equals_explicit_formula(tmp_path, digits):
    """TracIn-CP: sum over epoch-end checkpoints of eta_k u_k . grad l_j(theta_k), written out in numpy."""
    from nnc_plugin.stable_influence import checkpoint_influence, epoch_end_checkpoints
    train_csv = subset_csv(digits["train"], tmp_path / "train.csv", 40)
    val_csv = subset_csv(digits["val"], tmp_path / "val.csv", 20)
    project = load_project(softmax_regression_project(str(tmp_path), lr=0.5, epochs=3, batch_size=8))
    model = Model(project, seed=3)
    cache = TrialCache(str(tmp_path / "cache"))
    cache.start()
    data, val = read_dataset(str(train_csv)), read_dataset(str(val_csv))
    record = train(model, data, cache, 3, 8, seed=3, checkpoint_path=epoch_end_checkpoints(str(tmp_path), 3, 2))
    assert [lr for _, lr in record.checkpoints] == [0.5, 0.5] and len(record.checkpoints) == 2
    x_train, y_train = load_numpy(train_csv)
    x_val, y_val = load_numpy(val_csv)
    expected = np.zeros(len(x_train))
    for path, eta in record.checkpoints:
        model.load_parameters(path)
        theta = to_theta([model.parameters["Affine/affine/W"].d, model.parameters["Affine/affine/b"].d])
        u = np.mean([gradient(theta, x, y) for x, y in zip(x_val, y_val)], axis=0)
        expected += [eta * u @ gradient(theta, x, y) for x, y in zip(x_train, y_train)]
    model.load_parameters(record.checkpoints[-1][0])
    for exact, tolerance in ((True, 1e-4), (False, 1e-2)):
        scores = checkpoint_influence(model, data, val, record.checkpoints, [1.0, 1.0], 8, exact=exact)
        np.testing.assert_allclose(scores, expected, rtol=0, atol=tolerance * np.abs(expected).max())


def test_influence_ranking_through_score_and_its_cache(tmp_path, digits):
    """`score --ranking influence`: 3 epoch-end checkpoints cached, the same scores again from the cache."""
    from nnc_plugin.pipeline import ScoreOptions, score
    train_csv = subset_csv(digits["train"], tmp_path / "train.csv", 60)
    val_csv = subset_csv(digits["val"], tmp_path / "val.csv", 30)
    model = softmax_regression_project(str(tmp_path), lr=0.5, epochs=4, batch_size=8)
    options = dict(model=model, input_train=str(train_csv), input_val=str(val_csv), ranking="influence",
                   cache_dir=str(tmp_path / "cache"))
    first = score(ScoreOptions(output=str(tmp_path / "a.csv"), **options))
    manifest = TrialCache(str(tmp_path / "cache" / "trial_0")).read_manifest()
    assert [name for name, _ in manifest["checkpoints"]] == ["checkpoint_2.h5", "checkpoint_3.h5", "checkpoint_4.h5"]
    second = score(ScoreOptions(output=str(tmp_path / "b.csv"), **options))
    assert second.trials[0].reused
    np.testing.assert_allclose(second.scores, first.scores, rtol=1e-6, atol=1e-12)
    assert np.all(np.isfinite(first.scores)) and np.abs(first.scores).max() > 0


def test_adam_linearisation_from_the_cached_factors(tmp_path, digits):
    """From a reused cache (no solver state) the cached Adam factors give the same linearisation."""
    from nnc_plugin.cache import load_arrays
    project, model, record, data, _, _ = _trained(tmp_path, digits, "Adam", 0.01, 0.0)
    live = linearisation(project, model)
    cached = load_arrays(TrialCache(str(tmp_path / "cache")).final_factors)
    stored = linearisation(project, model, total_iterations=15, final_factors=[cached[n] for n in model.parameters])
    assert stored.last_iteration == live.last_iteration == 15
    for a, b in zip(stored.inverse_root_v, live.inverse_root_v):
        np.testing.assert_allclose(a, b, rtol=1e-4)
