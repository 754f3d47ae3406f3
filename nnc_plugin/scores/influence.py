"""SGD-influence of every training sample on the mean validation loss.

Hara, Nitanda and Maehara (NeurIPS 2019) trace the effect of leaving sample j out of the
minibatches back through the SGD steps; Suzuki, Kobayashi and Narihira (arXiv 2103.11807)
make it storage-efficient by taking every gradient at the final parameters. The solver's
update is s_t = beta s_{t-1} + B_t g_t, theta_{t+1} = theta_t - A_t s_t (step_size.py: for SGD
beta = 0, A_t = 1, B_t = eta_t). With u = grad of the validation loss at the end of training and
mbar = 0 (minus the loss's gradient with respect to the solver's state), going back over traced steps t:

    q      = A_t u + mbar
    v      = B_t q                                   (for SGD: eta_t u)
    infl_j += v . grad l_j(theta_t) / |B_t|          for every j in the minibatch B_t
    u      <- u - (sum_{i in B_t} hess l_i(theta_t)) v / |B_t| - weight_decay * v
    mbar   <- beta q

This is the adjoint of the update with the solver's state (Momentum's buffer, Adam's first moment;
Adam's second moment held fixed, as Terashita et al., ICLR 2021).
infl_j < 0: leaving j out would have lowered the validation loss (harmful).
By default the final parameters stand in for every theta_t; the exact method loads the
parameters cached before each step (`PropagationSettings.load_parameters_before_step`).

Two interchangeable ways compute the inner products and the Hessian-vector product of a
minibatch: `BatchedDirectional` (one double-backward through the whole minibatch: with
per-sample weights c, s = v . grad(sum_j c_j l_j) gives ds/dc_j = v . grad l_j and
ds/dtheta = H v), and `PerSampleDirectional` (one backward per sample, the slow reference).
"""
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import nnabla as nn
import nnabla.functions as F

from ..model.fast_rules import faster_double_backward, skip_failing_relative_imports
from ..errors import UserError
from ..log import Progress
from ..model.network import padded


@dataclass
class PropagationSettings:
    """How `sgd_influence` goes back through the traced steps (the defaults: storage-efficient, batched)."""
    weight_decay: float = 0.0  # the coupled weight decay the solver applied
    load_parameters_before_step: Optional[Callable[[int], None]] = None  # exact mode: put theta_t into the model
    reference: bool = False  # the per-sample reference path instead of the batched one
    title: str = "Scoring"
    u_growth: float = 1.0  # set by sgd_influence: the largest |u_t| / |u_T| met going back
    keep_out: Optional[object] = None  # hessian_outliers.Outliers: directions u and the solver state are kept out of


class BatchedDirectional:
    """v . grad l_j for all j of a minibatch, and sum_j hess l_j v, from one double-backward pass.

    `fast_rules` builds the double-backward with fast_rules' cheaper gradient rules (default);
    off, it uses nnabla's own rules everywhere. `batch_size`, when given, is the size of every
    graph: smaller minibatches (the last of an epoch) are padded with copies of their first sample
    at weight 0, so one graph serves them all (the scoring network's per-sample losses do not
    depend on each other, so the padding changes nothing but memory and time).
    """

    def __init__(self, model, fast_rules=True, batch_size=None):
        self.model = model
        self.fast_rules = fast_rules
        self.batch_size = batch_size
        self._graphs = {}
        skip_failing_relative_imports()

    def graph(self, batch_size):
        """(loss graph, weights c, directions v, s) at `batch_size`, built once per size."""
        if batch_size not in self._graphs:
            model = self.model
            loss = model.loss_graph(batch_size, influence=True)
            weights = nn.Variable((batch_size,), need_grad=True)
            parameters = list(model.parameters.values())
            # The faster rules run part of the work in numpy: worth it on CPU only.
            on_cpu = model.context.backend[0].startswith("cpu")
            with nn.context_scope(model.context), faster_double_backward(self.fast_rules and on_cpu):
                gradients = nn.grad([F.sum(weights * loss.per_sample_loss)], parameters)
                directions = [nn.Variable(p.shape) for p in parameters]
                terms = [F.sum(g * v) for g, v in zip(gradients, directions) if g is not None]
                if not terms:
                    raise UserError("None of the parameters the optimizer trains affects the loss of the network "
                                    f"'{model.project.influence_network or model.project.eval_network}', so there is "
                                    "no influence to trace; "
                                    "check the project's networks in Neural Network Console.")
                total = terms[0] if len(terms) == 1 else F.add_n(*terms)
            self._graphs[batch_size] = (loss, weights, directions, total)
        return self._graphs[batch_size]

    def __call__(self, dataset, indices, direction):
        """Return (per-sample inner products, Hessian-vector product list) for `direction` (list of arrays)."""
        count = len(indices)
        # nnabla's double-backward of some losses (CategoricalCrossEntropy) fails at batch size 1,
        # so a graph has at least two rows. With minibatch statistics the rows depend on each other,
        # so padding (which would change those statistics) is left for that case only.
        fixed_size = None if self.model.project.influence_batch_statistics else self.batch_size
        size = max(fixed_size or count, count, 2)
        indices, padding_weights = padded(indices, size)
        loss, weights, directions, total = self.graph(size)
        self.model.feed(loss, dataset, indices)
        weights.d = padding_weights
        weights.grad.zero()
        for variable, values in zip(directions, direction):
            variable.d = values
        parameters = list(self.model.parameters.values())
        for p in parameters:
            p.grad.zero()
        total.forward(clear_no_need_grad=True)
        total.backward(clear_buffer=True)
        return weights.g[:count].copy(), [p.g.copy() for p in parameters]


class PerSampleDirectional:
    """The slow, obvious reference: one backward pass per sample for the inner products.

    Each pass is at batch size 1, or, when the network normalises with minibatch statistics (its
    rows then depend on each other), through the whole minibatch with that one sample's loss
    weighted 1 and the others 0. The Hessian-vector product is summed over batch-size-1
    double-backward passes (the default, the tests' oracle; for minibatch statistics it is taken
    through the whole minibatch), or taken from one double-backward through the whole minibatch
    (`minibatch_hessian=True`, how the published reference implementation does it). Both use
    nnabla's own gradient rules only.
    """

    def __init__(self, model, minibatch_hessian=False):
        self.model = model
        self.coupled = model.project.influence_batch_statistics
        self.minibatch_hessian = minibatch_hessian or self.coupled
        self._double_backward = BatchedDirectional(model, fast_rules=False)
        self._weighted = {}

    def __call__(self, dataset, indices, direction):
        model = self.model
        parameters = list(model.parameters.values())
        graph, objective = self._graph(1 if not self.coupled else max(len(indices), 2))
        scores = np.zeros(len(indices), dtype=np.float64)
        hvp = [np.zeros(p.shape, dtype=np.float64) for p in parameters]
        for position, index in enumerate(indices):
            if self.coupled:
                rows = padded(indices, graph.batch_size)[0]
                weights = (np.arange(graph.batch_size) == position).astype(np.float32)
            else:
                rows, weights = np.array([index]), np.ones(1, dtype=np.float32)
            model.feed(graph, dataset, rows, weights)
            for p in parameters:
                p.grad.zero()
            objective.forward(clear_no_need_grad=True)
            objective.backward(clear_buffer=True)
            scores[position] = sum(float(np.vdot(p.g, d)) for p, d in zip(parameters, direction))
            if not self.minibatch_hessian:
                _, single_hvp = self._double_backward(dataset, np.array([index]), direction)
                for total, part in zip(hvp, single_hvp):
                    total += part
        if self.minibatch_hessian:
            _, hvp = self._double_backward(dataset, indices, direction)
        return scores, [np.asarray(h, dtype=np.float32) for h in hvp]

    def _graph(self, size):
        """(loss graph, sum of weighted per-sample losses) at `size`, built once."""
        if size not in self._weighted:
            graph = self.model.loss_graph(size, influence=True)
            with nn.context_scope(self.model.context):
                self._weighted[size] = (graph, F.sum(graph.per_sample_loss * graph.sample_weights))
        return self._weighted[size]


def validation_gradient(model, dataset, batch_size=64):
    """Return (u, mean loss): the gradient of the mean validation loss at the current parameters.

    In a data-parallel run each process takes its share of the rows and the sums are combined."""
    parameters = list(model.parameters.values())
    for p in parameters:
        p.grad.zero()
    n = len(dataset)
    rows = model.comm.share(np.arange(n))
    loss_sum = 0.0
    if len(rows):
        size = min(batch_size, len(rows))
        graph = model.loss_graph(size, train=False)
        with nn.context_scope(model.context):
            summed = F.sum(graph.per_sample_loss * graph.sample_weights)
        for start in range(0, len(rows), size):
            indices, weights = padded(rows[start:start + size], size)
            model.feed(graph, dataset, indices, weights)
            summed.forward(clear_no_need_grad=True)
            summed.backward(clear_buffer=True)  # parameter gradients accumulate over batches
            loss_sum += float(summed.d)
    totals = model.comm.sum_arrays([p.g.copy() for p in parameters] + [np.array([loss_sum])])
    return [g / n for g in totals[:-1]], float(totals[-1][0]) / n


def sgd_influence(model, dataset, schedule, u, linearisation, settings=None):
    """Return the SGD-influence of every sample of `dataset` (float64 array, one value per row).

    Parameters
    ----------
    model : network.Model
        Holds the final parameters on entry (and on return).
    schedule : trainer.Schedule
        The traced steps.
    u : list of arrays
        Gradient of the validation loss at the final parameters (`validation_gradient`).
    linearisation : step_size.Linearisation
        The solver's update at every traced step (beta, A_t, B_t); `folded(step_factors)` for a plain
        step size P_t = eta_t * c.
    settings : PropagationSettings, optional
        Weight decay, the exact mode's parameters, the reference path, the progress title; it
        receives `u_growth`: the largest |u_t| / |u_T| met going back. Far above 1, the
        propagation is unstable (a learning rate above 2 / the largest Hessian eigenvalue, common at the
        end of deep-network training) and the earliest traced steps dominate the scores.
    """
    settings = settings or PropagationSettings()
    load_parameters_before_step = settings.load_parameters_before_step
    final = model.parameter_arrays() if load_parameters_before_step else None
    recursion = AdjointRecursion(model, schedule, u, linearisation, settings)
    influence = np.zeros(len(dataset), dtype=np.float64)
    with Progress(settings.title, len(schedule)) as progress:
        for t in reversed(range(len(schedule))):
            if load_parameters_before_step:
                load_parameters_before_step(t)
            mine, scores = recursion.step_back(dataset, t, last=t == 0)
            np.add.at(influence, mine, scores)
            progress.advance(1)
    if final is not None:
        model.set_parameter_arrays(final)
    settings.u_growth = recursion.growth
    return model.comm.sum_arrays([influence])[0]


class AdjointRecursion:
    """The backward recursion of `sgd_influence`, one traced step at a time (shared with the expected
    influence of expected_influence.py).

    It holds u and mbar; `step_back(dataset, t)` computes step t's v, each of this process's rows' term
    v . grad l_j / |B_t|, and moves u and mbar to before step t (without their components along
    `settings.keep_out`'s directions, when given). `v` is the last step's v, `norm` |u| now,
    `growth` the largest |u_t| / |u_T| so far."""

    def __init__(self, model, schedule, u, linearisation, settings):
        self.model, self.schedule, self.linearisation = model, schedule, linearisation
        self.weight_decay = settings.weight_decay
        comm = model.comm  # data-parallel: each process takes its share of every minibatch
        largest = int(np.max(np.diff(schedule.offsets))) if len(schedule) else 1
        largest = len(comm.share(np.arange(largest)))
        self.directional = PerSampleDirectional(model) if settings.reference else BatchedDirectional(
            model, batch_size=largest)
        self.keep_out = settings.keep_out
        self.u = [np.asarray(a, dtype=np.float32) for a in (self.keep_out.remove(u) if self.keep_out else u)]
        self.mbar = [np.zeros_like(a) for a in self.u]  # minus the validation loss's gradient w.r.t. the solver state
        self.start_norm = _norm(self.u)
        self.norm = self.start_norm
        self.growth = 1.0
        self.v = None

    def step_back(self, dataset, t, last=False):
        """Go back over step t; return (this process's rows of the step, their terms). `last`: u is not needed
        before this step (saves a little: no update)."""
        comm, linearisation = self.model.comm, self.linearisation
        indices, _ = self.schedule.step(t)
        a_t, b_t = linearisation.step(t)
        q = [a * ui + mi for a, ui, mi in zip(a_t, self.u, self.mbar)]
        v = [(b * qi).astype(np.float32) for b, qi in zip(b_t, q)]
        mine = comm.share(indices)
        if len(mine):
            scores, hvp = self.directional(dataset, mine, v)
        else:
            scores, hvp = np.zeros(0), [np.zeros_like(d) for d in v]
        hvp = comm.sum_arrays(hvp)
        if not last:
            self.u = [a - h / len(indices) - self.weight_decay * d for a, h, d in zip(self.u, hvp, v)]
            if self.keep_out:
                self.u = self.keep_out.remove(self.u)
            self.norm = _norm(self.u)
            self.growth = max(self.growth, self.norm / self.start_norm if self.start_norm > 0 else 1.0)
        if linearisation.beta:
            self.mbar = [(linearisation.beta * qi).astype(np.float32) for qi in q]
            if self.keep_out:
                self.mbar = self.keep_out.remove(self.mbar)
        self.v = v
        return mine, scores / len(indices)


def _norm(arrays):
    """The Euclidean norm of a list of arrays, summed in float64 (float32 squares overflow past 1.8e19)."""
    return float(np.sqrt(sum(float(np.vdot(a, a)) for a in (np.asarray(x, dtype=np.float64) for x in arrays))))


def directional_losses(model, dataset, direction, batch_size=64, epsilon=1e-3, exact=False):
    """v . grad l_j for every row j of `dataset` at the model's parameters (float64 array), by a central
    finite difference: (l_j(theta + h v) - l_j(theta - h v)) / 2h with h = epsilon |theta| / |v|, two forward
    passes over the rows (its error is O(h^2)); `exact`: by `BatchedDirectional`'s double backward instead
    (the reference, slower).

    In a data-parallel run each process takes its share of the rows."""
    if exact:
        return _exact_directional_losses(model, dataset, direction, batch_size)
    parameters = list(model.parameters.values())
    original = [p.d.copy() for p in parameters]
    step = epsilon * _norm(original) / max(_norm(direction), 1e-30)
    values = np.zeros(len(dataset), dtype=np.float64)
    rows = model.comm.share(np.arange(len(dataset)))
    for sign in (1.0, -1.0):
        for p, x, d in zip(parameters, original, direction):
            p.d = x + sign * step * d
        for batch, graph in model.evaluate_batches(dataset, batch_size, rows):
            values[batch] += sign * graph.per_sample_loss.d[:len(batch)] / (2.0 * step)
    for p, x in zip(parameters, original):
        p.d = x
    return model.comm.sum_arrays([values])[0]


def _exact_directional_losses(model, dataset, direction, batch_size):
    """`directional_losses` by one double-backward pass per minibatch of rows."""
    directional = BatchedDirectional(model, batch_size=batch_size)
    values = np.zeros(len(dataset), dtype=np.float64)
    rows = model.comm.share(np.arange(len(dataset)))
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        values[batch] = directional(dataset, batch, direction)[0]
    return model.comm.sum_arrays([values])[0]
