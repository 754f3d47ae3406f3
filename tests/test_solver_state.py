"""SGD-influence through Momentum's and Adam's own update (step_size.linearisation), against numpy.

The linear form of each solver is first checked against nnabla's solver step by step; then the
adjoint recursion (scores/influence.py) on softmax regression is checked against the same recursion
written out with explicit per-sample gradients and Hessians (tests/oracle.py).
"""
import numpy as np
import pytest

import nnabla as nn
import nnabla.solvers as S
from helpers import softmax_regression_project, subset_csv, trial_of
from nnc_plugin.options import ScoreOptions
from nnc_plugin.pipeline import score
from oracle import gradient, hessian, load_numpy, theta_of

BETA, BETA2, EPS = 0.9, 0.999, 1e-8


@pytest.mark.parametrize("solver", ["Momentum", "Adam"])
def test_the_linear_form_is_nnablas_update(solver):
    """s_t = beta s_{t-1} + B_t g_t, theta_{t+1} = theta_t - A_t s_t reproduces nnabla's solver, step by step."""
    rng = np.random.RandomState(0)
    theta = nn.Variable((5,), need_grad=True)
    theta.d = rng.randn(5)
    lr = 0.05 if solver == "Momentum" else 0.01
    optimiser = S.Momentum(lr=lr, momentum=BETA) if solver == "Momentum" else S.Adam(lr, BETA, BETA2, EPS)
    optimiser.set_parameters({"theta": theta})
    x, s, v = theta.d.astype(np.float64), np.zeros(5), np.zeros(5)
    for k in range(1, 6):
        g = rng.randn(5)
        theta.g = g
        optimiser.update()
        if solver == "Momentum":
            s = BETA * s + lr * g
            x = x - s
        else:
            v = BETA2 * v + (1 - BETA2) * g * g
            s = BETA * s + (1 - BETA) * g
            x = x - lr * np.sqrt(1 - BETA2 ** k) / (1 - BETA ** k) / (np.sqrt(v) + EPS) * s
        np.testing.assert_allclose(theta.d, x, rtol=1e-5, atol=1e-6)


def numpy_influence(theta, schedule, train, val, solver, weight_decay, inverse_root_v=None):
    """The adjoint recursion at the final parameters, written out (module docstring of scores/influence.py)."""
    (x_train, y_train), (x_val, y_val) = train, val
    u = np.mean([gradient(theta, x, y) for x, y in zip(x_val, y_val)], axis=0)
    mbar, influence, last = np.zeros_like(u), np.zeros(len(x_train)), len(schedule) - 1
    for t in reversed(range(len(schedule))):
        batch, eta = schedule.step(t)
        if solver == "Momentum":
            a, b = 1.0, eta
        else:
            k = 15 - (last - t)  # 3 epochs of 5 steps: the last traced step is the solver's 15th
            a, b = eta * np.sqrt(1 - BETA2 ** k) / (1 - BETA ** k) * inverse_root_v, 1 - BETA
        q = a * u + mbar
        v = b * q
        for j in batch:
            influence[j] += v @ gradient(theta, x_train[j], y_train[j]) / len(batch)
        h = sum(hessian(theta, x_train[j]) for j in batch) / len(batch)
        u = u - h @ v - weight_decay * v
        mbar = BETA * q
    return influence


@pytest.mark.parametrize("solver, lr", [("Momentum", 0.05), ("Adam", 0.01)])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_sgd_influence_follows_the_solvers_state(tmp_path, digits, solver, lr, weight_decay):
    train_csv = subset_csv(digits["train"], tmp_path / "train.csv", 40)
    val_csv = subset_csv(digits["val"], tmp_path / "val.csv", 20)
    model = softmax_regression_project(str(tmp_path), lr=lr, epochs=3, batch_size=8, weight_decay=weight_decay,
                                       solver=solver)
    options = ScoreOptions(model=model, input_train=str(train_csv), input_val=str(val_csv), ranking="sgd-influence",
                           trace_epochs=2, seed=3, output=str(tmp_path / "out" / "influence.csv"))
    trial = trial_of(options)  # trained here: the solver's state is in memory
    run = score(options)  # reuses that training
    assert len(trial.record.schedule) == 10 and trial.record.solver_steps == 15
    inverse_root_v = None
    if solver == "Adam":  # read from nnabla's solver state, independently of step_size.linearisation
        states = trial.model.solver.get_states()
        assert states["Affine/affine/W"].t == 15
        inverse_root_v = np.vstack([1 / (np.sqrt(states[n].pstate["var"].d.astype(np.float64)) + EPS).reshape(-1, 10)
                                    for n in ("Affine/affine/W", "Affine/affine/b")]).ravel()
    expected = numpy_influence(theta_of(trial.model), trial.record.schedule, load_numpy(train_csv),
                               load_numpy(val_csv), solver, weight_decay, inverse_root_v)
    scale = np.abs(expected).max()
    assert scale > 1e-5
    np.testing.assert_allclose(run.scores, expected, rtol=0, atol=2e-4 * scale)
