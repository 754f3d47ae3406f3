"""Directional derivatives of every row's loss and Hessian-vector products of a minibatch: the calculus the
influence rankings are made of.

Two interchangeable ways compute, for a direction v, the inner products v . grad l_j of a minibatch's rows
and the Hessian-vector product sum_j hess l_j v: `BatchedDirectional` (one double-backward through the whole
minibatch: with per-sample weights c, s = v . grad(sum_j c_j l_j) gives ds/dc_j = v . grad l_j and
ds/dtheta = H v), and `PerSampleDirectional` (one backward per sample, the slow reference the tests compare
it with). `directional_losses` gives v . grad l_j for every row of a dataset by a finite difference of two
forward passes, and `validation_gradient` the gradient of the mean validation loss.

In a data-parallel run (parallel.py) each process takes its share of the rows and the sums are combined.
"""
import numpy as np
import nnabla as nn
import nnabla.functions as F

from ..errors import UserError
from ..model.fast_rules import faster_double_backward, skip_failing_relative_imports
from ..model.network import padded


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
    double-backward passes (for minibatch statistics it is taken through the whole minibatch).
    Both use nnabla's own gradient rules only.
    """

    def __init__(self, model):
        self.model = model
        self.coupled = model.project.influence_batch_statistics
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
            if not self.coupled:
                _, single_hvp = self._double_backward(dataset, np.array([index]), direction)
                for total, part in zip(hvp, single_hvp):
                    total += part
        if self.coupled:
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
    """Return (u, mean loss): the gradient of the mean validation loss at the current parameters (Model.loss_gradient:
    in a data-parallel run each process takes its share of the rows and the sums are combined)."""
    return model.loss_gradient(dataset, batch_size)


def norm(arrays):
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
    plus, minus, step = _both_sides(model, dataset, direction, batch_size, epsilon, _losses)
    return (plus - minus) / (2.0 * step)


def logit_motion(model, dataset, direction, batch_size=64, epsilon=1e-3):
    """(z, zdot): every row's logits (LossGraph.logits, float64 rows of the logits' size) at the model's parameters
    and their derivative along `direction`, from the same two forward passes as `directional_losses` (z is the
    mean of the two sides, exact to O(h^2))."""
    plus, minus, step = _both_sides(model, dataset, direction, batch_size, epsilon, _logits)
    return (plus + minus) / 2.0, (plus - minus) / (2.0 * step)


def _losses(graph, count):
    return graph.per_sample_loss.d[:count]


def _logits(graph, count):
    return graph.logits.d[:count].reshape(count, -1)


def _both_sides(model, dataset, direction, batch_size, epsilon, read):
    """(what `read(graph, rows)` gives for every row at theta + h v, the same at theta - h v, h): the scoring
    network run twice over the rows (in a data-parallel run each process its share), parameters restored."""
    parameters = list(model.parameters.values())
    original = [p.d.copy() for p in parameters]
    step = epsilon * norm(original) / max(norm(direction), 1e-30)
    rows = model.comm.share(np.arange(len(dataset)))
    sides = []
    for sign in (1.0, -1.0):
        for p, x, d in zip(parameters, original, direction):
            p.d = x + sign * step * d
        values = None
        for batch, graph in model.evaluate_batches(dataset, batch_size, rows):
            part = np.asarray(read(graph, len(batch)), dtype=np.float64)
            if values is None:
                values = np.zeros((len(dataset),) + part.shape[1:])
            values[batch] = part
        if values is None:  # this process has no rows: the others' sums still need its zeros
            values = np.zeros((len(dataset),) + _width(model, read))
        sides.append(model.comm.sum_arrays([values])[0])
    for p, x in zip(parameters, original):
        p.d = x
    return sides[0], sides[1], step


def _width(model, read):
    """The shape per row of what `read` gives (for a process with no rows of its own)."""
    return np.asarray(read(model.loss_graph(2), 1)).shape[1:]


def _exact_directional_losses(model, dataset, direction, batch_size):
    """`directional_losses` by one double-backward pass per minibatch of rows."""
    directional = BatchedDirectional(model, batch_size=batch_size)
    values = np.zeros(len(dataset), dtype=np.float64)
    rows = model.comm.share(np.arange(len(dataset)))
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        values[batch] = directional(dataset, batch, direction)[0]
    return model.comm.sum_arrays([values])[0]


# (link layer, loss layer) pairs whose error in the logits is known in closed form: softmax and sigmoid
# cross-entropies, after their Softmax or Sigmoid layer or on the logits themselves.
_SOFTMAX_LOSSES = {("Softmax", "CategoricalCrossEntropy"), ("", "SoftmaxCrossEntropy")}
_SIGMOID_LOSSES = {("Sigmoid", "BinaryCrossEntropy"), ("", "SigmoidCrossEntropy")}


def output_errors(model, dataset, logits, batch_size=64):
    """e_j = d l_j / d z_j: every row's error in the logits `logits` (from `logit_motion`), float64 rows: in closed
    form for softmax and sigmoid cross-entropies (p - y, exact even where the network fits a row to within the
    float32 rounding of its loss), else by nnabla's backward pass at the model's parameters."""
    graph = model.loss_graph(2)
    kind = (graph.link, graph.loss_type)
    if (kind in _SOFTMAX_LOSSES or kind in _SIGMOID_LOSSES) and graph.target_column in dataset.arrays:
        targets = dataset.arrays[graph.target_column].reshape(len(dataset), -1).astype(np.float64)
        if kind in _SIGMOID_LOSSES:
            return 1.0 / (1.0 + np.exp(-logits)) - targets
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        errors = shifted / shifted.sum(axis=1, keepdims=True)
        errors[np.arange(len(dataset)), targets[:, 0].astype(int)] -= 1.0
        return errors
    return _backward_errors(model, dataset, batch_size)


def _backward_errors(model, dataset, batch_size):
    """`output_errors` by one backward pass per minibatch, through the gradient of each row's loss in its logits."""
    rows = model.comm.share(np.arange(len(dataset)))
    errors = np.zeros((len(dataset),) + _width(model, _logits))
    if len(rows):
        size = min(batch_size, len(rows))
        graph = model.loss_graph(size, train=False)
        with nn.context_scope(model.context):
            (gradient,) = nn.grad([F.sum(graph.per_sample_loss * graph.sample_weights)], [graph.logits])
        for start in range(0, len(rows), size):
            batch = rows[start:start + size]
            indices, weights = padded(batch, size)
            model.feed(graph, dataset, indices, weights)
            gradient.forward(clear_no_need_grad=True)
            errors[batch] = gradient.d[:len(batch)].reshape(len(batch), -1)
    return model.comm.sum_arrays([errors])[0]


def normalised_directional(model, dataset, direction, batch_size=64, exact=False):
    """(normalised, plain): (e_j / |e_j|) . zdot_j = (direction . grad l_j) / |e_j| for every row (float64), and
    direction . grad l_j itself. The first is the directional derivative
    of the row's loss with the size of its error in the logits divided out, so that a row the network fits already
    counts by the direction it pulls the network in rather than by how wrong it still is. Computed in the logits
    (`logit_motion`, `output_errors`), where the rounding of a fitted row's tiny loss does not enter; `exact`: the
    directional derivative by `BatchedDirectional`'s double backward instead (the reference, slower)."""
    if exact:
        logits = _both_sides(model, dataset, [np.zeros_like(d) for d in direction], batch_size, 0.0, _logits)[0]
        errors = output_errors(model, dataset, logits, batch_size)
        values = _exact_directional_losses(model, dataset, direction, batch_size)
    else:
        logits, motion = logit_motion(model, dataset, direction, batch_size)
        errors = output_errors(model, dataset, logits, batch_size)
        values = np.einsum("ij,ij->i", errors, motion)
    return values / np.maximum(np.linalg.norm(errors, axis=1), 1e-300), values
