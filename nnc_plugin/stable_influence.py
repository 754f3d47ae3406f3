"""SGD-influence through the solver's own state, and stabilised forms of the backward recursion.

`influence.sgd_influence` folds Momentum and Adam into a step size P (lr / (1 - momentum), or
alpha / (sqrt(v) + eps)). This module linearises the solver's real update instead, carrying the
first moment as state (Adam's second moment v held fixed, as Terashita et al., ICLR 2021), and
offers stabilised variants of the Hessian term (see docs/influence_regimes.md).

The solver updates (nnabla's definitions; g_t = mean minibatch gradient + wd * theta_t):

    Sgd:       theta_{t+1} = theta_t - eta_t g_t
    Momentum:  b_t = gamma b_{t-1} + eta_t g_t;            theta_{t+1} = theta_t - b_t
    Adam:      m_t = beta1 m_{t-1} + (1 - beta1) g_t;       theta_{t+1} = theta_t - D_t m_t,
               D_t = alpha_t sqrt(1 - beta2^k) / (1 - beta1^k) / (sqrt(v) + eps)   (k = t's iteration, 1-based)

All three have the form  s_t = beta s_{t-1} + B_t g_t,  theta_{t+1} = theta_t - A_t s_t  with
(beta, A, B) = (0, 1, eta) for Sgd, (gamma, 1, eta) for Momentum and (beta1, D_t, 1 - beta1) for Adam.
Its adjoint (u = dL/dtheta, mbar = minus dL/ds, mbar = 0 at the end), going back over traced steps t:

    q      = A_t u + mbar
    v      = B_t q                                    (= -dL/dg_t)
    infl_j += v . grad l_j(theta_t) / |B_t|           for every j in the minibatch
    u      <- u - s_t (sum_i hess l_i(theta_t)) v / |B_t| - wd v
    mbar   <- beta q

s_t = 1 is the exact linearisation; s_t < 1 is the clipped (stabilised) step: the Hessian term is
scaled so that the largest eigenvalue rho of the step operator (BA)^{1/2} H (BA)^{1/2} stays below
kappa (1 + beta), half the linear stability limit 2 (1 + beta) of the (heavy-ball) recursion.
With the Hessian term left out (`hessian=False`) u stays at the validation gradient: the first-order
limit (TracIn-CP with the one checkpoint theta_T, Pruthi et al., NeurIPS 2020).
For Sgd every variant with s_t = 1 is `influence.sgd_influence` itself.

`FisherDirectional` replaces the Hessian by the empirical Fisher (the Gauss-Newton matrix at the
Softmax output of a CategoricalCrossEntropy), positive semi-definite.

`checkpoint_influence` is TracIn-CP (Pruthi et al., NeurIPS 2020) on the validation loss, with no
backward recursion at all: infl_j = sum_k eta_k c . (grad L_val(theta_k) * grad l_j(theta_k)) over
parameters saved at a few epoch ends (`epoch_end_checkpoints` + trainer.train(checkpoint_path=...)),
the directional derivatives taken by a central finite difference (two forward passes per row).
docs/influence_regimes.md measures all of them against flipped labels in four training regimes.
"""
import os
import time
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import nnabla as nn
import nnabla.functions as F

from .influence import BatchedDirectional, validation_gradient
from .log import Progress
from .network import padded


@dataclass
class SolverLinearisation:
    """The linear form s_t = beta s_{t-1} + B_t g_t, theta_{t+1} = theta_t - A_t s_t of one solver.

    kind: "sgd", "momentum" or "adam". beta: the momentum (gamma or beta1; 0 for Sgd).
    inverse_root_v: Adam only, per parameter 1 / (sqrt(v) + eps) with v the second moment held fixed.
    beta2: Adam only. last_iteration: Adam only, the 1-based iteration number of the last traced step.
    masks: per parameter 0/1 arrays (or 1.0) of the values training moves (see step_size.reached_masks).
    """
    kind: str
    beta: float = 0.0
    inverse_root_v: Optional[List[np.ndarray]] = None
    beta2: float = 0.999
    last_iteration: int = 1
    masks: Optional[list] = None

    def factors(self, t, last_t, learning_rate):
        """(A_t, B_t): per-parameter lists (scalars or arrays) for traced step t of 0..last_t."""
        count = len(self.masks)
        if self.kind == "adam":
            k = self.last_iteration - (last_t - t)  # this step's 1-based iteration number
            correction = np.sqrt(1.0 - self.beta2 ** k) / (1.0 - self.beta ** k)
            a = [learning_rate * correction * r * m for r, m in zip(self.inverse_root_v, self.masks)]
            return a, [(1.0 - self.beta) * m for m in self.masks]
        return [1.0] * count, [learning_rate * m for m in self.masks]

    @property
    def stability_limit(self):
        """Largest stable eigenvalue of the step operator: 2 (1 + beta) for the heavy-ball recursion."""
        return 2.0 * (1.0 + self.beta)


def linearisation(project, model, masks=None, total_iterations=None, final_factors=None):
    """The `SolverLinearisation` of the project's solver at the end of training.

    Adam needs v and the iteration count T. By default both come from the model's solver state
    (`get_states()`: key 'var' and t), which only holds them right after training. From a reused
    cache pass `final_factors` (per parameter, the cached step_size factor c = sqrt(1 - beta2^T) /
    (sqrt(v) + eps), cache.final_factors) and `total_iterations` = T: inverse_root_v = c / sqrt(1 - beta2^T).
    Unsupported solvers return None (use the step-size fold of influence.sgd_influence for them).
    """
    name, hyper = project.solver_name, project.solver_hyperparameters
    names = list(model.parameters)
    masks = masks or [1.0] * len(names)
    if name == "Sgd":
        return SolverLinearisation("sgd", 0.0, masks=masks)
    if name == "Momentum":
        return SolverLinearisation("momentum", float(hyper["momentum"]), masks=masks)
    if name == "Adam":
        beta2 = float(hyper["beta2"])
        if final_factors is not None:
            t = int(total_iterations)
            inverse = [(np.asarray(c) / np.sqrt(1.0 - beta2 ** t)).astype(np.float32) for c in final_factors]
        else:
            states = model.solver.get_states()
            eps = float(hyper["eps"])
            inverse = [(1.0 / (np.sqrt(states[n].pstate["var"].d) + eps)).astype(np.float32) for n in names]
            t = int(states[names[0]].t) if total_iterations is None else int(total_iterations)
        return SolverLinearisation("adam", float(hyper["beta1"]), inverse, beta2, t, masks)
    return None


class FisherDirectional:
    """Per-sample inner products v . grad l_j and the empirical-Fisher product sum_j (v . grad l_j) grad l_j.

    For a CategoricalCrossEntropy on a Softmax, l = -log p_y depends on the network's output only
    through p_y, so the Gauss-Newton matrix taken at the loss layer's input, J^T (d2 l / dp2) J, is
    grad l grad l^T: the empirical Fisher, positive semi-definite. Replacing the Hessian-vector product
    with it keeps the recursion from growing along negative-curvature directions. Cost: the
    double-backward of `BatchedDirectional` plus one weighted backward pass per step.
    """

    def __init__(self, model, batch_size=None):
        self.model = model
        self.inner = BatchedDirectional(model, batch_size=batch_size)
        self._graphs = {}

    def _graph(self, size):
        if size not in self._graphs:
            loss = self.model.loss_graph(size, influence=True)
            with nn.context_scope(self.model.context):
                weights = nn.Variable((size,))
                total = F.sum(weights * loss.per_sample_loss)
            self._graphs[size] = (loss, weights, total)
        return self._graphs[size]

    def __call__(self, dataset, indices, direction):
        scores, _ = self.inner(dataset, indices, direction)
        size = max(self.inner.batch_size or len(indices), len(indices), 2)
        rows, padding = padded(indices, size)
        loss, weights, total = self._graph(size)
        self.model.feed(loss, dataset, rows)
        weights.d = np.concatenate([scores, np.zeros(size - len(indices))]) * padding
        parameters = list(self.model.parameters.values())
        for p in parameters:
            p.grad.zero()
        total.forward(clear_no_need_grad=True)
        total.backward(clear_buffer=True)
        return scores, [p.g.copy() for p in parameters]


def hessian_vector(directional, dataset, indices, direction):
    """(1/|B|) sum_{i in B} hess l_i v at the model's current parameters."""
    _, hvp = directional(dataset, indices, direction)
    return [h / len(indices) for h in hvp]


def largest_eigenvalue(directional, dataset, indices, scale, iterations=8, seed=0):
    """Power iteration for rho, the largest |eigenvalue| of S^{1/2} H_B S^{1/2} (S = `scale`, per parameter).

    H_B is the mean Hessian of the minibatch `indices` at the current parameters. Costs `iterations`
    Hessian-vector products; the estimate is a lower bound that tightens with the iterations.
    """
    rng = np.random.RandomState(seed)
    roots = [np.sqrt(np.asarray(s, dtype=np.float64)) for s in scale]
    x = [rng.randn(*shape).astype(np.float32) for shape in directional.model.parameter_shapes().values()]
    rho = 0.0
    for _ in range(iterations):
        norm = _norm(x)
        if norm == 0:
            return 0.0
        x = [a / norm for a in x]
        hx = hessian_vector(directional, dataset, indices, [(r * a).astype(np.float32) for r, a in zip(roots, x)])
        y = [r * h for r, h in zip(roots, hx)]
        rho = abs(sum(float(np.vdot(a, b)) for a, b in zip(x, y)))
        x = [b.astype(np.float32) for b in y]
    return rho


def state_influence(model, dataset, schedule, u, solver, weight_decay=0.0, hessian=True, kappa=None,
                    played_out=False, power_iterations=8, title="Scoring", diagnostics=None, directional=None,
                    parameters_before_step=None):
    """Influence of every row through the solver's linearised update (module docstring); float64 array.

    Parameters
    ----------
    model : network.Model holding the final parameters (every gradient is taken there).
    schedule : trainer.Schedule of the traced steps.
    u : list of arrays, the validation-loss gradient at the final parameters.
    solver : SolverLinearisation.
    hessian : False leaves the Hessian term out (first-order limit, TracIn-CP at theta_T).
    played_out : start from mbar = beta / (1 - beta) A_T u instead of 0: the momentum left in the solver
        at the end is let play out (later steps with no gradient move theta by A_T beta / (1 - beta) s_T),
        so a sample of the last steps counts in full. The last step then equals the step-size fold.
    kappa : None for the exact step; a number clips the Hessian term so that its largest eigenvalue,
        estimated once at theta_T on the last traced minibatch, stays below kappa * (1 + beta).
    diagnostics : dict receiving u_growth (largest |u_t| / |u_T|), rho, clip and eigen_seconds.
    parameters_before_step : t -> parameter file, to take step t's gradients at theta_t (the exact mode,
        `--mode all`); None takes every gradient at the final parameters.
    """
    largest = int(np.max(np.diff(schedule.offsets))) if len(schedule) else 1
    directional = directional or BatchedDirectional(model, batch_size=largest)
    last = len(schedule) - 1
    scale_factor, rho, eigen_seconds = 1.0, float("nan"), 0.0
    if hessian and kappa is not None and last >= 0:
        started = time.perf_counter()
        indices, learning_rate = schedule.step(last)
        a, b = solver.factors(last, last, learning_rate)
        rho = largest_eigenvalue(directional, dataset, indices, [x * y for x, y in zip(a, b)], power_iterations)
        scale_factor = min(1.0, kappa * (1.0 + solver.beta) / rho) if rho > 0 else 1.0
        eigen_seconds = time.perf_counter() - started
    final = model.parameter_arrays() if parameters_before_step else None
    influence = np.zeros(len(dataset), dtype=np.float64)
    u = [np.asarray(x, dtype=np.float32) for x in u]
    mbar = [np.zeros_like(x) for x in u]
    if played_out and last >= 0 and solver.beta > 0:
        a, _ = solver.factors(last, last, schedule.step(last)[1])
        mbar = [(solver.beta / (1.0 - solver.beta) * x * ui).astype(np.float32) for x, ui in zip(a, u)]
    start_norm, growth = _norm(u), 1.0
    with Progress(title, len(schedule)) as progress:
        for t in reversed(range(len(schedule))):
            indices, learning_rate = schedule.step(t)
            a, b = solver.factors(t, last, learning_rate)
            q = [x * ui + mi for x, ui, mi in zip(a, u, mbar)]
            v = [(y * qi).astype(np.float32) for y, qi in zip(b, q)]
            if parameters_before_step:
                model.load_parameters(parameters_before_step(t))
            scores, hvp = directional(dataset, indices, v)
            np.add.at(influence, indices, scores / len(indices))
            if hessian and t > 0:
                u = [ui - scale_factor * h / len(indices) - weight_decay * vi for ui, h, vi in zip(u, hvp, v)]
                growth = max(growth, _norm(u) / start_norm if start_norm > 0 else 1.0)
            mbar = [(solver.beta * qi).astype(np.float32) for qi in q]
            progress.advance(1)
    if final is not None:
        model.set_parameter_arrays(final)
    if diagnostics is not None:
        diagnostics.update(u_growth=float(growth), rho=float(rho), clip=float(scale_factor),
                           eigen_seconds=float(eigen_seconds))
    return influence


def _norm(arrays):
    return float(np.sqrt(sum(float(np.vdot(a, a)) for a in arrays)))


def directional_losses(model, dataset, direction, batch_size, epsilon=1e-3, directional=None):
    """v . grad l_j for every row j at the current parameters (float64 array).

    `directional=None`: a central finite difference (l_j(theta + h v) - l_j(theta - h v)) / 2h, two
    forward passes over the dataset (h = epsilon |theta| / |v|; the error is O(h^2)); otherwise the
    exact double-backward of a `BatchedDirectional` (about three times a training step per row).
    """
    values = np.zeros(len(dataset), dtype=np.float64)
    if directional is not None:
        for start in range(0, len(dataset), batch_size):
            rows = np.arange(start, min(len(dataset), start + batch_size))
            values[rows] = directional(dataset, rows, direction)[0]
        return values
    parameters = list(model.parameters.values())
    original = [p.d.copy() for p in parameters]
    step = epsilon * _norm(original) / max(_norm(direction), 1e-30)
    size = min(batch_size, len(dataset))
    graph = model.loss_graph(size, influence=True)
    for sign in (1.0, -1.0):
        for p, x, d in zip(parameters, original, direction):
            p.d = x + sign * step * d
        for start in range(0, len(dataset), size):
            rows = np.arange(start, min(len(dataset), start + size))
            model.feed(graph, dataset, padded(rows, size)[0])
            graph.per_sample_loss.forward(clear_no_need_grad=True)
            values[rows] += sign * graph.per_sample_loss.d[:len(rows)] / (2.0 * step)
    for p, x in zip(parameters, original):
        p.d = x
    return values


def checkpoint_influence(model, dataset, val_dataset, checkpoints, factors, batch_size, exact=False,
                         title="Scoring"):
    """TracIn-CP (Pruthi et al., NeurIPS 2020) on the validation loss, in the sign of SGD-influence.

        infl_j = sum_k eta_k c . (grad L_val(theta_k) * grad l_j(theta_k))

    over checkpoints k = (parameter file, eta_k) saved during training (for example at the end of each
    epoch of the second half); c: the solver's step factors (step_size). Lower = more harmful. Cost per
    checkpoint: one validation gradient and one directional derivative over the training set (two
    forward passes with the finite difference, or one double-backward with `exact`).
    """
    final = model.parameter_arrays()
    directional = BatchedDirectional(model, batch_size=batch_size) if exact else None
    influence = np.zeros(len(dataset), dtype=np.float64)
    with Progress(title, len(checkpoints)) as progress:
        for path, learning_rate in checkpoints:
            model.load_parameters(path)
            u, _ = validation_gradient(model, val_dataset, batch_size)
            v = [(learning_rate * c * a).astype(np.float32) for c, a in zip(factors, u)]
            influence += directional_losses(model, dataset, v, batch_size, directional=directional)
            progress.advance(1)
    model.set_parameter_arrays(final)
    return influence


def epoch_end_checkpoints(folder, epochs, count=3):
    """`checkpoint_path` for trainer.train: save the parameters at the end of the last `count` epochs
    (the last is theta_T) as folder/checkpoint_<epoch>.h5; the training record lists them."""
    first = max(epochs - count, 0)
    return lambda epoch: os.path.join(folder, f"checkpoint_{epoch + 1}.h5") if epoch >= first else None
