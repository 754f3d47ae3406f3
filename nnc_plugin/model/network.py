"""One trial's network: parameters initialised from a seed, a solver, and per-sample loss graphs.

The graphs are built by nnabla's `ProtoGraph` from the project's own proto, so every layer
NNC can save is supported without re-implementing it here. Two flavours of graph exist:
the training network exactly as NNC trains it (dropout, augmentation, batch statistics),
and the scoring network (NNC's validation network, or a copy of the training network with
those layers switched to their evaluation behaviour), whose per-sample losses do not
depend on the other samples of a minibatch.
"""
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import nnabla as nn
import nnabla.functions as F
import nnabla.solvers as S
from nnabla.core.graph_def import ProtoGraph
from nnabla.ext_utils import get_extension_context

from ..errors import UserError
from ..parallel import SingleProcess

CONTEXTS = ("cpu", "cudnn")


def extension_context(name):
    """Return nnabla's extension context for "cpu" or "cudnn", with a clear error if unavailable."""
    if name not in CONTEXTS:
        raise UserError(f"Unknown context '{name}'; use one of {', '.join(CONTEXTS)}.")
    try:
        return get_extension_context(name)
    except Exception:
        raise UserError(f"The '{name}' context needs nnabla's CUDA extension (pip install nnabla-ext-cuda...), "
                        "which is not installed; use --context cpu.")


@dataclass
class LossGraph:
    """A computation graph of one network at one batch size."""
    batch_size: int
    inputs: Dict[str, nn.Variable]  # dataset column -> input variable
    generators: List[tuple]  # (variable, generator type, multiplier)
    per_sample_loss: nn.Variable  # shape (batch_size,): loss of each sample
    sample_weights: nn.Variable  # shape (batch_size,): 1 normally; 0 leaves a sample out of the objective
    mean_loss: nn.Variable  # the training objective: mean of sample_weights * per_sample_loss
    prediction: Optional[nn.Variable] = None  # first input of the (first) loss layer, e.g. the softmax output
    target_column: Optional[str] = None  # the dataset column the loss layer compares it with


def padded(indices, size):
    """`indices` filled up to `size` rows with copies of its first row, and their weights (1 real, 0 copy).

    Scoring networks give each row its own loss, so a smaller batch (the last of an epoch or of a
    dataset) can run in the graph built for the full batch size, and one graph serves all batches.
    """
    count = len(indices)
    weights = (np.arange(size) < count).astype(np.float32)
    return np.concatenate([indices, np.repeat(indices[:1], size - count)]), weights


def _generator_values(kind, multiplier, shape, rng):
    if kind == "Normal":
        return rng.randn(*shape) * multiplier
    if kind == "Uniform":
        return rng.uniform(-multiplier, multiplier, shape)
    if kind == "Constant":
        return np.full(shape, multiplier)
    raise UserError(f"The generator type '{kind}' in the optimizer is not supported; use Normal, Uniform or Constant.")


class Model:
    """The network of one trial: parameters, solver, and loss graphs by batch size.

    Parameters are created from the initialisers in the model file with a random state
    seeded by `seed`, as NNC does when it starts training; trained parameters stored in the
    model file are not used.
    """

    comm = SingleProcess()  # data-parallel runs set the communicator that shares every minibatch out

    def __init__(self, project, seed, context="cpu"):
        self.project = project
        self.context = extension_context(context)
        nn.set_default_context(self.context)
        self.scope = OrderedDict()
        self.graph = ProtoGraph.from_proto(project.proto, param_scope=self.scope,
                                           rng=np.random.RandomState(seed))
        self.generator_rng = np.random.RandomState(seed + 1)
        self._graphs = {}
        # Building the training graph once creates every parameter.
        self.loss_graph(project.batch_size, train=True)
        with nn.parameter_scope("", self.scope):
            everything = nn.get_parameters(grad_only=False)
        missing = [n for n in project.trainable_parameters if n not in everything]
        if missing:
            raise UserError(f"The optimizer updates the parameter '{missing[0]}', which the training network "
                            "does not use; export the project again.")
        self.all_parameters = OrderedDict(everything)
        self.parameters = OrderedDict((n, everything[n]) for n in project.trainable_parameters)
        self.solver = self._make_solver()

    def _make_solver(self):
        factory = getattr(S, self.project.solver_name, None)
        if factory is None:
            raise UserError(f"The solver '{self.project.solver_name}' is not available in this nnabla.")
        with nn.context_scope(self.context):
            solver = factory(**self.project.solver_hyperparameters)
        solver.set_parameters(self.parameters)
        return solver

    def loss_graph(self, batch_size, train=False, influence=False):
        """Return the `LossGraph` of a network at a batch size: the training network (train=True), the
        network SGD-influence differentiates (influence=True, see project.py), else the scoring network."""
        project = self.project
        if train:
            name = project.train_network
        elif influence and project.influence_network:
            name = project.influence_network
        else:
            name = project.eval_network
        key = (int(batch_size), name, bool(train))  # the training graph is never shared with scoring
        if key not in self._graphs:
            self._graphs[key] = self._build(int(batch_size), name)
        return self._graphs[key]

    def _build(self, batch_size, name):
        project = self.project
        network = self.graph.networks[name]
        inputs, generators, args = {}, [], []
        for variable_name in network.inputs:
            proto_variable = network.variables[variable_name]
            shape = (batch_size,) + tuple(d for d in proto_variable.shape[1:])
            variable = nn.Variable(shape)
            if variable_name in project.data_variables:
                inputs[project.data_variables[variable_name]] = variable
            elif variable_name in project.generator_variables:
                kind, multiplier = project.generator_variables[variable_name]
                generators.append((variable, kind, multiplier))
            else:
                raise UserError(f"The network '{name}' reads the variable '{variable_name}', which the optimizer "
                                "feeds from no dataset column; connect it in Neural Network Console.")
            args.append(variable)
        # ProtoGraph keeps one function object per layer and reuses it on the next call, which
        # would tie this graph to the first one's batch size: make fresh ones for every graph.
        for proto_function in network.functions.values():
            proto_function.function_instance = None
        with nn.context_scope(self.context):
            network(*args, batch_size=batch_size, ctx=self.context)
            losses = []
            for loss_name in project.loss_variables:
                if loss_name not in network.variables:
                    raise UserError(f"The network '{name}' has no variable '{loss_name}' (the loss); "
                                    "export the project again.")
                loss = network.variables[loss_name].variable_instance
                if loss.ndim == 0 or loss.shape[0] != batch_size:
                    raise UserError(f"The loss '{loss_name}' has no per-sample axis (shape {loss.shape}); "
                                    "influence needs one loss value per sample, so do not average the loss over the batch.")
                losses.append(loss)
            # NNC trains on the mean of all elements of the first loss (nnabla_cli divides by its size);
            # scaling the per-sample sums by batch/size keeps mean(per_sample) equal to that objective.
            scale = batch_size / losses[0].size
            per_sample = None
            for loss in losses:
                summed = F.sum(F.reshape(loss, (batch_size, -1)), axis=1)
                per_sample = summed if per_sample is None else per_sample + summed
            if scale != 1.0:
                per_sample = per_sample * scale
            per_sample.persistent = True  # kept after forward: the trainer records each sample's loss
            sample_weights = nn.Variable((batch_size,))
            sample_weights.d = 1.0
            mean_loss = F.mean(per_sample * sample_weights)
        prediction, target = self._prediction(network)
        return LossGraph(batch_size, inputs, generators, per_sample, sample_weights, mean_loss, prediction, target)

    def _prediction(self, network):
        """The variable the first loss layer scores and the dataset column of its target (for accuracy)."""
        loss_layer = network.functions.get(network.variables[self.project.loss_variables[0]].parent)
        if loss_layer is None or len(loss_layer.inputs) < 2:
            return None, None
        prediction = network.variables[loss_layer.inputs[0]].variable_instance
        return prediction, self.project.data_variables.get(loss_layer.inputs[1])

    def feed(self, graph, dataset, indices, weights=None):
        """Put the samples `indices` of `dataset` into the inputs of `graph` (and their objective weights)."""
        shapes = {name: variable.shape[1:] for name, variable in graph.inputs.items()}
        for name, values in dataset.batch(indices, shapes).items():
            graph.inputs[name].d = values
        graph.sample_weights.d = 1.0 if weights is None else weights
        for variable, kind, multiplier in graph.generators:
            variable.d = _generator_values(kind, multiplier, variable.shape, self.generator_rng)

    def evaluate_batches(self, dataset, batch_size, rows=None):
        """Run the scoring network over the `rows` of `dataset` (default: all) in order; yield (row indices, graph)
        after each forward.

        Every batch uses one graph (the last is padded, see `padded`); the graph's outputs hold
        the batch's values in their first len(row indices) rows.
        """
        rows = np.arange(len(dataset)) if rows is None else np.asarray(rows)
        if not len(rows):
            return
        size = min(batch_size, len(rows))
        graph = self.loss_graph(size, train=False)
        for start in range(0, len(rows), size):
            batch = rows[start:start + size]
            self.feed(graph, dataset, padded(batch, size)[0])
            graph.per_sample_loss.forward()  # buffers kept: callers may read the prediction too
            yield batch, graph

    def per_sample_losses(self, dataset, batch_size=64):
        """Loss of every row of `dataset` under the scoring network at the current parameters (float64).

        In a data-parallel run each process computes its share of the rows."""
        losses = np.zeros(len(dataset), dtype=np.float64)
        for rows, graph in self.evaluate_batches(dataset, batch_size, self.comm.share(np.arange(len(dataset)))):
            losses[rows] = graph.per_sample_loss.d[:len(rows)]
        return self.comm.sum_arrays([losses])[0]

    # Parameter state -------------------------------------------------------------------
    def parameter_arrays(self, trainable_only=False):
        """Return a copy of the parameter values as {name: numpy array}."""
        source = self.parameters if trainable_only else self.all_parameters
        return OrderedDict((name, variable.d.copy()) for name, variable in source.items())

    def set_parameter_arrays(self, arrays):
        for name, values in arrays.items():
            self.all_parameters[name].d = values

    def set_trained_parameters(self, arrays, source):
        """Start from the parameters `arrays` (read from the model file `source`), checked against the network."""
        for name, variable in self.all_parameters.items():
            if name not in arrays:
                raise UserError(f"The model file {source} holds no trained values for the parameter '{name}'; "
                                "use the results.nnp of a finished training, or --start-from initial.")
            if tuple(arrays[name].shape) != tuple(variable.shape):
                raise UserError(f"The trained parameter '{name}' in {source} has the shape {tuple(arrays[name].shape)}, "
                                f"but the network needs {tuple(variable.shape)}; use the results.nnp of this network, "
                                "or --start-from initial.")
        self.set_parameter_arrays({name: arrays[name] for name in self.all_parameters})

    def save_parameters(self, path):
        """Write every parameter (trainable or not) to an nnabla .h5 parameter file."""
        nn.parameter.save_parameters(path, params=self.all_parameters)

    def load_parameters(self, path):
        """Read parameters written by `save_parameters` into this model."""
        with nn.parameter_scope("", self.scope):
            nn.parameter.load_parameters(path)

    def parameter_shapes(self):
        """{name: shape} of the trainable parameters."""
        return {name: tuple(variable.shape) for name, variable in self.parameters.items()}

    def parameter_count(self, trainable_only=False):
        source = self.parameters if trainable_only else self.all_parameters
        return int(sum(v.size for v in source.values()))
