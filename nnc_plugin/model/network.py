"""One trial's network: parameters initialised from a seed, a solver, and per-sample loss graphs.

The graphs are built by nnabla's `ProtoGraph` from the project's own proto, so every layer
NNC can save is supported without re-implementing it here. Two flavours of graph exist:
the training network exactly as NNC trains it (dropout, augmentation, batch statistics),
and the scoring network (NNC's validation network, or a copy of the training network with
those layers switched to their evaluation behaviour), whose per-sample losses do not
depend on the other samples of a minibatch.
"""
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import nnabla as nn
import nnabla.functions as F
import nnabla.solvers as S
from nnabla.core.graph_def import ProtoGraph
from nnabla.ext_utils import get_extension_context

from ..errors import UserError, first_line
from ..parallel import SingleProcess

def extension_context(name):
    """Return nnabla's extension context for "cpu" or "cudnn" (options.CONTEXTS), with a clear error if
    unavailable."""
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
    # The scores before the output link: the input of the Softmax or Sigmoid layer that makes the prediction
    # (the logits), or the prediction itself; `link` names that layer's type ("" without one) and `loss_type` the
    # loss layer's.
    logits: Optional[nn.Variable] = None
    link: str = ""
    loss_type: str = ""
    # The input of the Affine layer that makes the logits (the last layer's features), when one does.
    features: Optional[nn.Variable] = None


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


# NNC's loop control layers (project.RECURRENT_LAYERS) and their number of inputs: nnabla's loader unrolls
# them (expand_loop_control) before it builds a graph, into Identity, Split and Stack layers and copies of
# the layers between.
_LOOP_INPUTS = {"RepeatStart": 2, "RepeatEnd": 1, "RecurrentOutput": 1, "Delay": 2}


def unrolled_graph(proto, path, param_scope=None, rng=None):
    """nnabla's `ProtoGraph` of `proto` with every network's loops unrolled, as nnabla's own loader does.

    NNC saves residual blocks (RepeatStart/RepeatEnd) and recurrent networks (RecurrentInput,
    RecurrentOutput, Delay) as loop control, which nnabla's graph builder cannot walk: its walk
    would wait forever for a Delay's input. `ProtoGraph.expand_loop_control` (what
    `nnabla.utils.load` calls) copies the layers of each loop as many times as it runs. Before
    that, the loop layers are checked, and after it, every network must be a graph whose layers can
    all run in order: anything else is refused in one sentence naming the layer, never left to spin.
    """
    for network in proto.network:
        _check_loop_control(network, path)
    try:
        graph = ProtoGraph.from_proto(proto, param_scope=param_scope, rng=rng)
        graph.expand_loop_control()
    except UserError:
        raise
    except Exception as error:  # nnabla's asserts and lookups of names the unrolled network lacks
        raise UserError(f"nnabla could not unroll the loops (Repeat or Recurrent layers) of the model file {path} "
                        f"({first_line(error)}); check their settings in Neural Network Console and export it again.")
    loops = {n.name: [r.id for r in n.repeat_info] for n in proto.network}
    for name, network in graph.networks.items():
        check_runnable(network, path, loops.get(name, ()))
    return graph


def _check_loop_control(network, path):
    """Refuse loop layers that nnabla's unrolling cannot expand: a wrong number of inputs or an unknown loop."""
    where = f"the network '{network.name}' in {path}"
    loops = {r.id: r.times for r in network.repeat_info}
    for loop, times in loops.items():
        if times < 1:
            raise UserError(f"The loop '{loop}' in {where} repeats {times} times; set at least 1 in "
                            "Neural Network Console and export the project again.")
    for function in network.function:
        unknown = [r for r in function.repeat_id if r not in loops]
        if function.type in ("RepeatStart", "RepeatEnd"):
            unknown += [] if function.repeat_param.repeat_id in loops else [function.repeat_param.repeat_id]
        elif function.type in ("RecurrentInput", "RecurrentOutput", "Delay"):
            unknown += [] if function.recurrent_param.repeat_id in loops else [function.recurrent_param.repeat_id]
        if unknown:
            raise UserError(f"The layer '{function.name}' ({function.type}) in {where} belongs to the loop "
                            f"'{unknown[0]}', which the network does not define; export the project again "
                            "from Neural Network Console.")
        expected = _LOOP_INPUTS.get(function.type)
        if expected is not None and len(function.input) != expected:
            raise UserError(f"The {function.type} layer '{function.name}' in {where} has {len(function.input)} "
                            f"inputs instead of {expected}; connect it again in Neural Network Console and "
                            "export the project again.")
    for variable in network.variable:
        unknown = [r for r in variable.repeat_id if r not in loops]
        if unknown:
            raise UserError(f"The variable '{variable.name}' in {where} belongs to the loop '{unknown[0]}', which "
                            "the network does not define; export the project again from Neural Network Console.")


def check_runnable(network, path, loop_ids=()):
    """Refuse an (unrolled) nnabla `ProtoNetwork` whose layers cannot all run in order.

    nnabla's `execute_on_proto` walks back from the outputs and never ends when a layer waits for
    itself; this walks forward (Kahn's algorithm) and names the first layer that can never run.
    """
    where = f"the network '{network.name}' in {path}"
    waiting, consumers = {}, {}
    for function in network.functions.values():
        for name in function.inputs:
            if name not in network.variables and name not in network.parameters:
                raise UserError(f"The layer '{_layer_label(function.name, loop_ids)}' in {where} reads the variable "
                                f"'{name}', which the unrolled network does not define; export the project again "
                                "from Neural Network Console.")
        parents = {network.variables[n].parent for n in function.inputs
                   if n in network.variables and network.variables[n].parent}
        waiting[function.name] = len(parents)
        for parent in parents:
            consumers.setdefault(parent, []).append(function.name)
    ready = [name for name, count in waiting.items() if count == 0]
    while ready:
        name = ready.pop()
        for child in consumers.get(name, []):
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    stuck = [name for name, count in waiting.items() if count > 0]
    if stuck:
        raise UserError(f"The layer '{_layer_label(stuck[0], loop_ids)}' in {where} needs its own output (a loop without "
                        "a Delay or Repeat layer), so the network cannot be computed; connect the loop through "
                        "a Delay layer in Neural Network Console and export the project again.")


def _layer_label(name, loop_ids=()):
    """The NNC layer name of an unrolled layer ("$EC$/Delay_RecurrentInput[3]" -> "Delay")."""
    name = name[len("$EC$/"):] if name.startswith("$EC$/") else name
    for loop in sorted(loop_ids, key=len, reverse=True):
        name = re.sub(rf"(_{re.escape(loop)}\[\d+\])+$", "", name)
    return name


class Model:
    """The network of one trial: parameters, solver, and loss graphs by batch size.

    Parameters are created from the initialisers in the model file with a random state
    seeded by `seed`, as NNC does when it starts training (`set_trained_parameters` puts the
    model file's trained ones in). `comm` (parallel.py) shares every minibatch out over the
    processes of a data-parallel run.
    """

    def __init__(self, project, seed, context="cpu", comm=None):
        self.project = project
        self.context = extension_context(context)
        self.comm = comm or SingleProcess()  # data-parallel: the processes every minibatch is shared out over
        nn.set_default_context(self.context)
        self.scope = OrderedDict()
        self.graph = unrolled_graph(project.proto, project.path, param_scope=self.scope,
                                    rng=np.random.RandomState(seed))
        self.seed_generators(seed + 1)
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

    @property
    def training_comm(self):
        """The processes a training step's minibatch is shared out over: all of `comm`, or, when the training
        network has random layers, this process alone, which then trains on whole minibatches and draws the
        same random values one process would (every process of the run does the same)."""
        return SingleProcess() if self.project.random_training_layers else self.comm

    def seed_generators(self, seed):
        """Draw the values of the optimizer's generator variables (noise inputs) from a generator seeded here."""
        self.generator_rng = np.random.RandomState(seed)

    def seed_random_layers(self, seed):
        """Seed nnabla's random layers (dropout, augmentation) of the training network."""
        nn.seed(seed)

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
            losses, factors = [], []
            for loss_name in project.loss_variables:
                if loss_name not in network.variables:
                    raise UserError(f"The network '{name}' has no variable '{loss_name}' (the loss); "
                                    "export the project again.")
                loss = network.variables[loss_name].variable_instance
                factor = 1.0
                if loss.ndim == 0 or loss.shape[0] != batch_size:
                    loss, factor = self._before_batch_reduction(network, loss_name, batch_size)
                losses.append(loss)
                factors.append(factor)
            # NNC trains on the mean of all elements of the first loss (nnabla_cli divides by its size);
            # scaling the per-sample sums by batch/size keeps mean(per_sample) equal to that objective.
            scale = batch_size / losses[0].size
            per_sample = None
            for loss, factor in zip(losses, factors):
                summed = F.sum(F.reshape(loss, (batch_size, -1)), axis=1)
                if factor != 1.0:
                    summed = summed * factor
                per_sample = summed if per_sample is None else per_sample + summed
            if scale != 1.0:
                per_sample = per_sample * scale
            per_sample.persistent = True  # kept after forward: the trainer records each sample's loss
            sample_weights = nn.Variable((batch_size,))
            sample_weights.d = 1.0
            mean_loss = F.mean(per_sample * sample_weights)
        return LossGraph(batch_size, inputs, generators, per_sample, sample_weights, mean_loss,
                         **self._prediction(network))

    def _before_batch_reduction(self, network, loss_name, batch_size):
        """(per-sample loss, factor) of a scalar loss that a Mean or Sum over the batch makes of one.

        Models written by nnabla scripts end in F.mean(per-sample loss); the per-sample loss before
        that reduction serves, scaled so that the training objective stays the same. A Sum adds up
        what a mean would divide: its per-sample losses are multiplied by the model's batch size in
        graphs of every batch size (so they mean the same in scoring graphs), which is exactly the
        summed objective at that batch size. A batch mixed before that point is refused, naming the layer.
        """
        path = self.project.path
        reduction = network.functions.get(network.variables[loss_name].parent)
        if reduction is not None and reduction.type in BATCH_REDUCTIONS and len(reduction.inputs) == 1:
            source = network.variables.get(reduction.inputs[0])
            values = source.variable_instance if source is not None else None
            if values is not None and values.ndim > 0 and values.shape[0] == batch_size \
                    and 0 in self._reduced_axes(network.name, reduction.name, values.ndim):
                mixing = _batch_mixing_layer(network, source.name, batch_size)
                if mixing is None:
                    loss = network.variables[loss_name].variable_instance
                    factor = 1.0
                    if reduction.type in ("Sum", "ReduceSum"):  # the objective is (rows x row size / outputs) x mean
                        factor = self.project.batch_size * (values.size / batch_size) / loss.size
                    return values, factor
                loss_name = source.name
        mixing = _batch_mixing_layer(network, loss_name, batch_size)
        where = f"the {mixing.type} layer '{mixing.name}'" if mixing else "a layer"
        raise UserError(f"The loss '{loss_name}' of the network '{network.name}' in {path} mixes the samples of a "
                        f"minibatch at {where}, before there is one loss value per sample, which influence needs; "
                        "end the network with a per-sample loss layer (or a Mean or Sum over the batch of one) and "
                        "export it again.")

    def _reduced_axes(self, network_name, function_name, ndim):
        """The axes a Mean/Sum layer of the model file reduces (all of them when it names none)."""
        for network in self.project.proto.network:
            if network.name != network_name:
                continue
            for function in network.function:
                if function.name == function_name:
                    if function.type in ("ReduceMean", "ReduceSum"):
                        return set(range(ndim))
                    param = function.mean_param if function.type == "Mean" else function.sum_param
                    axes = [a % ndim for a in param.axes]
                    return set(axes) if axes else set(range(ndim))
        return set()

    def _prediction(self, network):
        """{prediction, target_column, logits, link, loss_type} of the first loss layer (`LossGraph`), empty when
        it compares no prediction with a target."""
        loss_layer = network.functions.get(network.variables[self.project.loss_variables[0]].parent)
        if loss_layer is not None and loss_layer.type in BATCH_REDUCTIONS and len(loss_layer.inputs) == 1:
            source = network.variables.get(loss_layer.inputs[0])  # a script's mean of a per-sample loss
            loss_layer = network.functions.get(source.parent) if source is not None else None
        if loss_layer is None or len(loss_layer.inputs) < 2:
            return {}
        predicted = network.variables[loss_layer.inputs[0]]
        producer = network.functions.get(predicted.parent) if predicted.parent else None
        linked = producer is not None and producer.type in ("Softmax", "Sigmoid") and len(producer.inputs) == 1
        logits = network.variables[producer.inputs[0]] if linked else predicted
        last = network.functions.get(logits.parent) if logits.parent else None
        features = network.variables[last.inputs[0]].variable_instance if last is not None and last.type == "Affine" \
            else None
        return {"prediction": predicted.variable_instance, "target_column": self.project.data_variables.get(
            loss_layer.inputs[1]), "logits": logits.variable_instance, "link": producer.type if linked else "",
            "loss_type": loss_layer.type, "features": features}

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

    def loss_gradient(self, dataset, batch_size=64):
        """Return (gradient of the mean loss over the rows of `dataset` under the scoring network at the current
        parameters: one array per trainable parameter, that mean loss). In a data-parallel run each process takes
        its share of the rows and the sums are combined."""
        parameters = list(self.parameters.values())
        for p in parameters:
            p.grad.zero()
        rows = self.comm.share(np.arange(len(dataset)))
        loss_sum = 0.0
        if len(rows):
            size = min(batch_size, len(rows))
            graph = self.loss_graph(size, train=False)
            with nn.context_scope(self.context):
                summed = F.sum(graph.per_sample_loss * graph.sample_weights)
            for start in range(0, len(rows), size):
                indices, weights = padded(rows[start:start + size], size)
                self.feed(graph, dataset, indices, weights)
                summed.forward(clear_no_need_grad=True)
                summed.backward(clear_buffer=True)  # parameter gradients accumulate over batches
                loss_sum += float(summed.d)
        totals = self.comm.sum_arrays([p.g.copy() for p in parameters] + [np.array([loss_sum])])
        return [g / len(dataset) for g in totals[:-1]], float(totals[-1][0]) / len(dataset)

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


# Layers that reduce a per-sample loss over the batch into one scalar, as nnabla scripts write models.
BATCH_REDUCTIONS = ("Mean", "Sum", "ReduceMean", "ReduceSum")


def _batch_mixing_layer(network, variable_name, batch_size):
    """The layer before `variable_name` that turns inputs with a batch axis into an output without one, else None.

    Only layers that read the data count: one that reshapes a parameter has no batch axis to lose.
    """
    def batched(name):
        variable = network.variables.get(name)
        values = variable.variable_instance if variable is not None else None
        return values is not None and values.ndim > 0 and values.shape[0] == batch_size

    from_data, changed = set(network.inputs), True
    while changed:  # the variables computed from the data (the unrolled layers are not listed in order)
        changed = False
        for function in network.functions.values():
            if not set(function.outputs) <= from_data and any(n in from_data for n in function.inputs):
                from_data.update(function.outputs)
                changed = True
    ancestors, todo = [], [variable_name]
    while todo:
        variable = network.variables.get(todo.pop())
        if variable is None or not variable.parent or variable.parent in ancestors:
            continue
        ancestors.append(variable.parent)
        todo.extend(network.functions[variable.parent].inputs)
    for name in reversed(ancestors):  # the earliest found last
        function = network.functions[name]
        data_inputs = [n for n in function.inputs if n in from_data]
        if data_inputs and all(batched(n) for n in data_inputs) and not all(batched(n) for n in function.outputs):
            return function
    return None
