"""The model file: what a Neural Network Console project says about training.

This is the one module that knows nnabla's NNP/nntxt schema. It reads the file through
nnabla's own loader (`nnabla.utils.load.load`) and returns a plain `Project`: which network
trains, which network evaluates, what the loss is, which dataset columns feed which
variables, the solver and its schedule, the epochs and the batch size.
"""
import contextlib
import copy
import os
import re
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import nnabla as nn
from google.protobuf import text_format
from nnabla.utils import nnabla_pb2

from ..training import step_size
from ..errors import UserError, first_line

MODEL_EXTENSIONS = (".nnp", ".nntxt", ".prototxt")
# What Neural Network Console and `nnabla_cli train` leave in a results folder, best first.
RESULT_FOLDER_FILES = ("results.nnp", "network.nntxt", "net.nntxt")

# Layers that only make sense while training: the network used to score samples
# replaces them with Identity (their input and output shapes are equal).
TRAINING_ONLY_LAYERS = ("Dropout", "RandomFlip", "RandomShift", "RandomErase", "ImageAugmentation")
# Random layers that change the shape of their input cannot be replaced that way.
SHAPE_CHANGING_RANDOM_LAYERS = ("RandomCrop",)
# Layers of recurrent networks, which nnabla unrolls before building the graph.
RECURRENT_LAYERS = ("Delay", "RecurrentInput", "RecurrentOutput", "RepeatStart", "RepeatEnd")


@dataclass
class DatasetSpec:
    """One `dataset` entry of the model file."""
    name: str
    uri: str  # absolute path, or "" when the model file names none
    batch_size: int
    shuffle: bool
    normalize: bool  # divide image pixels by 255, as NNC does unless told otherwise


@dataclass
class Project:
    """Everything the model file says about training, as plain data."""
    path: str
    proto: nnabla_pb2.NNablaProtoBuf  # with `eval_network` present (added if derived)
    train_network: str
    eval_network: str
    eval_network_derived: bool
    data_variables: Dict[str, str]  # network variable -> dataset column (data name)
    generator_variables: Dict[str, tuple]  # network variable -> (generator type, multiplier)
    loss_variables: List[str]
    trainable_parameters: List[str]  # names the optimizer updates (learning-rate multiplier > 0)
    solver_name: str
    solver_hyperparameters: dict
    weight_decay: float
    scheduler: object  # nnabla.utils.learning_rate_scheduler object: get_learning_rate(iter)
    max_epoch: int
    batch_size: int
    train_dataset: Optional[DatasetSpec]
    val_dataset: Optional[DatasetSpec]
    has_trained_parameters: bool
    input_shapes: Dict[str, tuple] = field(default_factory=dict)  # per-sample shape of each data variable
    # The network SGD-influence differentiates at the traced steps (see _choose_influence_network), and
    # whether it normalises with minibatch statistics (then its rows depend on each other).
    influence_network: str = ""
    influence_batch_statistics: bool = False
    # Biases that training never moves: a normalisation right after their layer subtracts them out again.
    cancelled_biases: List[str] = field(default_factory=list)
    # Dataset columns fed to a classification loss as its target: the number of classes, or None for a
    # binary loss whose targets are numbers from 0 to 1.
    label_ranges: Dict[str, Optional[int]] = field(default_factory=dict)
    # Trainable parameters the model file gives no initializer: nnabla starts them at zero.
    uninitialized_parameters: List[str] = field(default_factory=list)

    @property
    def classes(self):
        """The number of classes of the network's one softmax classification loss (None: no such loss, or
        several)."""
        counts = [c for c in self.label_ranges.values() if c]
        return counts[0] if len(counts) == 1 and len(self.label_ranges) == 1 else None

    def trained_parameters(self, context="cpu"):
        """{parameter name: array} stored in the model file (what NNC trained), read by nnabla's own loader."""
        if not self.has_trained_parameters:
            raise UserError(f"The model file {self.path} holds no trained parameters; use the results.nnp that "
                            "Neural Network Console wrote after training, or --start-from initial.")
        scope = OrderedDict()
        with nn.parameter_scope("", scope), _nnabla_quiet():
            from nnabla.utils.load import load
            load([self.path], prepare_data_iterator=False, exclude_parameter=False, batch_size=1, context=context)
            return OrderedDict((name, v.d.copy()) for name, v in nn.get_parameters(grad_only=False).items())

    def layers(self):
        """(layer name, layer type) of every layer of the networks the plugin runs (training, scoring, influence)."""
        used = (self.train_network, self.eval_network, self.influence_network)
        return [(f.name, f.type) for n in self.proto.network if n.name in used for f in n.function]


def resolve_model_path(path):
    """Return the model file to read: `path` itself, or the model file inside a results folder."""
    if os.path.isdir(path):
        for name in RESULT_FOLDER_FILES:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        raise UserError(
            f"The folder {path} holds no model file ({', '.join(RESULT_FOLDER_FILES)}); "
            "pass the results.nnp that Neural Network Console wrote, or its folder.")
    if not os.path.isfile(path):
        raise UserError(f"The model file {path} does not exist; pass the path of a .nnp or .nntxt file.")
    if os.path.splitext(path)[1].lower() not in MODEL_EXTENSIONS:
        raise UserError(
            f"The model file {path} is not a .nnp or .nntxt file; "
            "pass the results.nnp that Neural Network Console wrote.")
    return path


def _check_container(path):
    """Return the model file's proto, parsed in memory; refuse files nnabla's loader would choke on.

    An NNP is read as nnabla reads it: its .nntxt/.prototxt members are parsed from the zip in
    memory (nothing is extracted, so no member name can write outside a temporary folder).
    """
    proto = nnabla_pb2.NNablaProtoBuf()
    if path.lower().endswith(".nnp"):
        if not zipfile.is_zipfile(path):
            raise UserError(f"The model file {path} is not an NNP file (not a zip archive); "
                            "pass the results.nnp that Neural Network Console wrote.")
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                bad = archive.testzip()
                texts = [(n, archive.read(n)) for n in names if n.lower().endswith((".nntxt", ".prototxt"))]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, RuntimeError, EOFError, NotImplementedError,
                ValueError, zlib.error) as error:
            raise UserError(f"The model file {path} is a damaged zip archive ({first_line(error)}); "
                            "export it again from Neural Network Console.")
        if bad is not None:
            raise UserError(f"The model file {path} is a damaged zip archive (member {bad} is corrupt); export it again.")
        if not texts:
            raise UserError(f"The model file {path} is a zip archive without a network definition (.nntxt); "
                            "it is not an NNP file, so pass the results.nnp that Neural Network Console wrote.")
        for name, data in texts:
            _parse_text(proto, data, f"The network definition {name} inside the model file {path}")
    else:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as error:
            raise UserError(f"The model file {path} cannot be read ({error.strerror}); check the path and its permissions.")
        _parse_text(proto, data, f"The model file {path}")
    return proto


def _parse_text(proto, data, what):
    try:
        text_format.Merge(data.decode("utf-8-sig"), proto)
    except UnicodeDecodeError:
        raise UserError(f"{what} is not UTF-8 text, so it is not an nntxt network definition; "
                        "export the project again from Neural Network Console.")
    except Exception as error:  # text_format.ParseError and protobuf's other complaints about bad text
        raise UserError(f"{what} could not be parsed as nntxt ({first_line(error)}); "
                        "export it again from Neural Network Console.")


def _check_structure(path, proto):
    """Refuse a model file that lacks what training needs, naming the missing part, before nnabla loads it."""
    if not proto.network:
        raise UserError(f"The model file {path} defines no network; export the whole project from Neural Network Console.")
    if not proto.optimizer:
        raise UserError(f"The model file {path} has no optimizer, so there is no training to replay; "
                        "use the results.nnp of a training run (it holds the training configuration).")
    if len(proto.optimizer) > 1:
        names = ", ".join(o.name for o in proto.optimizer)
        raise UserError(f"The model file {path} has {len(proto.optimizer)} optimizers ({names}); "
                        "only projects trained by a single optimizer are supported.")
    optimizer = proto.optimizer[0]
    network = _network_proto(proto, optimizer.network_name)
    if network is None:
        raise UserError(f"The model file {path} has no training network: its optimizer trains the network "
                        f"'{optimizer.network_name}', which the file does not define; export the project again.")
    if not optimizer.loss_variable:
        raise UserError(f"The optimizer in {path} has no loss variable; set a loss layer at the end of the "
                        "training network in Neural Network Console and export the project again.")
    outputs = {name for function in network.function for name in function.output}
    for loss in optimizer.loss_variable:
        if loss.variable_name not in _variable_names(network):
            raise UserError(f"The loss variable '{loss.variable_name}' named by the optimizer in {path} is not in the "
                            f"network '{network.name}'; export the project again.")
        if loss.variable_name not in outputs:
            raise UserError(f"The loss variable '{loss.variable_name}' named by the optimizer in {path} is the output "
                            f"of no layer of the network '{network.name}'; set a loss layer and export the project again.")
    in_loops = {v.name for v in network.variable if v.repeat_id}
    for name in [d.variable_name for d in optimizer.data_variable] + [v.variable_name for v in optimizer.loss_variable]:
        if name in in_loops:  # unrolled, it becomes one variable per repetition, which nothing feeds or reads
            raise UserError(f"The optimizer in {path} feeds or reads the variable '{name}', which is inside a loop "
                            f"(Repeat or Recurrent layers) of the network '{network.name}'; move that input or loss "
                            "layer outside the loop in Neural Network Console and export the project again.")
    used = {name for function in network.function for name in function.input}
    for parameter in optimizer.parameter_variable:
        # nnabla's loader hands the solver an unused parameter as None, and nnabla crashes (a segfault) on it.
        if parameter.variable_name in _variable_names(network) and parameter.variable_name not in used:
            raise UserError(f"The optimizer in {path} updates the parameter '{parameter.variable_name}', which no layer "
                            f"of the network '{network.name}' uses; connect or delete that layer in Neural Network "
                            "Console and export the project again.")
    datasets = {d.name for d in proto.dataset}
    for name in optimizer.dataset_name:
        if name not in datasets:
            raise UserError(f"The model file {path} has no dataset '{name}', which its optimizer trains on; "
                            "set the training dataset in Neural Network Console's DATASET tab and export the project again.")
    solver = optimizer.solver.type
    step_size.check_supported("Sgd" if solver == "SGD" else solver, path)
    for network in proto.network:
        _check_graph(path, network)
    if any(network.repeat_info or any(f.type in RECURRENT_LAYERS for f in network.function) for network in proto.network):
        # Unrolled here first: nnabla's loader unrolls them too, and a loop it cannot unroll must be
        # refused by name before that loader (or the graph builder) can wait on it forever.
        from .network import unrolled_graph
        with _nnabla_quiet():
            unrolled_graph(proto, path, param_scope=OrderedDict())


def _check_graph(path, network):
    """Refuse a network whose layers do not form a graph nnabla can run (nnabla's own walk never ends on a cycle)."""
    where = f"the network '{network.name}' in {path}"
    again = "; export the project again from Neural Network Console."
    variables = set()
    for variable in network.variable:
        if variable.name in variables:
            raise UserError(f"The variable '{variable.name}' is defined twice in {where}{again}")
        variables.add(variable.name)
        if any(d == 0 or d < -1 for d in variable.shape.dim):
            dims = ", ".join(str(d) for d in variable.shape.dim)
            raise UserError(f"The variable '{variable.name}' in {where} has the shape ({dims}), which holds no data{again}")
    names, producer = set(), {}
    for function in network.function:
        if function.name in names:
            raise UserError(f"The layer name '{function.name}' is used twice in {where}{again}")
        names.add(function.name)
        if not function.output:
            raise UserError(f"The layer '{function.name}' in {where} has no output{again}")
        for name in list(function.input) + list(function.output):
            if name not in variables:
                raise UserError(f"The layer '{function.name}' in {where} uses the variable '{name}', "
                                f"which the network does not define{again}")
        for name in function.output:
            if name in producer:
                raise UserError(f"The variable '{name}' is the output of both '{producer[name]}' and "
                                f"'{function.name}' in {where}{again}")
            producer[name] = function.name
    if network.repeat_info or any(f.type in RECURRENT_LAYERS for f in network.function):
        return  # nnabla unrolls these first; a Delay's input loops back by design
    # Kahn's algorithm: every layer must become ready once the layers before it have run.
    consumers = {}
    waiting = {}
    for function in network.function:
        parents = {producer[name] for name in function.input if name in producer}
        waiting[function.name] = len(parents)
        for parent in parents:
            consumers.setdefault(parent, []).append(function.name)
    ready = [name for name, count in waiting.items() if count == 0]
    done = 0
    while ready:
        name = ready.pop()
        done += 1
        for child in consumers.get(name, []):
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if done < len(waiting):
        stuck = next(name for name, count in waiting.items() if count > 0)
        raise UserError(f"The layers of {where} form a cycle (through '{stuck}'), so it cannot be computed{again}")


@contextlib.contextmanager
def _nnabla_quiet():
    """Silence nnabla's logger (it logs the context, and CRITICAL lines before it raises) while it loads."""
    from nnabla.logger import logger
    level = logger.level
    logger.setLevel(100)  # above every level nnabla uses, 99 included
    try:
        yield
    finally:
        logger.setLevel(level)


def _nnabla_load(path, context):
    """Run nnabla's own loader in a private parameter scope; return its `info` object."""
    from nnabla.utils.load import load
    scope = OrderedDict()
    try:
        with nn.parameter_scope("", scope), _nnabla_quiet():
            return load([path], prepare_data_iterator=False, exclude_parameter=True,
                        batch_size=1, context=context)
    except UserError:
        raise
    except Exception as error:  # nnabla raises many types; all mean "this model cannot be used"
        reason = first_line(error)
        raise UserError(f"nnabla could not load the model file {path} ({reason}); "
                        "check that it was written by Neural Network Console or nnabla.")


def _has_stored_parameters(path, proto):
    if proto.parameter:
        return True
    if path.lower().endswith(".nnp"):
        with zipfile.ZipFile(path) as archive:
            return any(os.path.basename(n).startswith("parameter") for n in archive.namelist())
    return False


def _resolve_uri(uri, model_path):
    if not uri:
        return ""
    if "://" in uri:
        return uri
    if os.path.isabs(uri):
        return uri
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(model_path)), uri))


def _network_proto(proto, name):
    for network in proto.network:
        if network.name == name:
            return network
    return None


def _variable_names(network_proto):
    return {v.name for v in network_proto.variable}


def _choose_eval_network(proto, optimizer_proto, loss_names, data_names, val_dataset_name):
    """Pick the network NNC made for evaluation (same loss and inputs, no training-only layers).

    Returns (name, derived). When the project has no such network, a copy of the training
    network is added to `proto` with batch statistics off and training-only layers replaced
    by Identity; `derived` is then True.
    """
    train_name = optimizer_proto.network_name
    needed = set(loss_names) | set(data_names)
    monitor_networks = [m.network_name for m in proto.monitor if val_dataset_name in m.dataset_name]
    candidates = [n.name for n in proto.network
                  if n.name != train_name and needed <= _variable_names(n)]
    for name in monitor_networks + candidates:
        if name in candidates and not _training_only_functions(_network_proto(proto, name)):
            return name, False

    train = _network_proto(proto, train_name)
    if not _training_only_functions(train):
        return train_name, False
    for function in train.function:
        if function.type in SHAPE_CHANGING_RANDOM_LAYERS:
            raise UserError(
                f"The layer {function.name} ({function.type}) changes the shape of its input at random and the model file "
                "has no validation network to score with; add one in Neural Network Console (it makes MainValidation "
                "when you add a Validation dataset) or remove the layer.")
    derived = copy.deepcopy(train)
    derived.name = train_name + "__scoring"
    for function in derived.function:
        if _batch_statistics(function):
            _batch_statistics(function).batch_stat = False
        elif function.type in TRAINING_ONLY_LAYERS:
            _to_identity(function)
    proto.network.append(derived)
    return derived.name, True


def _choose_influence_network(proto, train_name, eval_name):
    """Pick the network SGD-influence differentiates at the traced steps; return (name, batch statistics).

    The steps were taken with the training network, so its gradients and curvature are the ones that
    moved the parameters. When it normalises with minibatch statistics, a copy of it is used with those
    statistics kept (and the running averages frozen) and random training-only layers off: scoring
    with the running statistics instead changes the curvature, and the propagation back through the
    steps can then grow without bound. Otherwise the scoring network serves.
    """
    train = _network_proto(proto, train_name)
    if not any(_batch_statistics(f) and _batch_statistics(f).batch_stat for f in train.function) \
            or any(f.type in SHAPE_CHANGING_RANDOM_LAYERS for f in train.function):
        return eval_name, False
    derived = copy.deepcopy(train)
    derived.name = train_name + "__influence"
    for function in derived.function:
        if _batch_statistics(function):
            _batch_statistics(function).decay_rate = 1.0  # the running statistics stay as trained
        elif function.type in TRAINING_ONLY_LAYERS:
            _to_identity(function)
    proto.network.append(derived)
    return derived.name, True


# Layers that add a bias (their third input) along one axis, base_axis (channel-first layouts).
_BIASED_LAYERS = {"Convolution": "convolution_param", "Deconvolution": "deconvolution_param",
                  "DepthwiseConvolution": "depthwise_convolution_param",
                  "DepthwiseDeconvolution": "depthwise_deconvolution_param", "Affine": "affine_param"}


def _cancelled_biases(network_proto, trainable):
    """The trainable biases that a normalisation right after their layer subtracts out again.

    A per-channel bias followed only by a layer that subtracts, channel by channel, a mean taken over
    everything else (BatchNormalization with minibatch statistics, InstanceNormalization) shifts that
    mean by exactly itself, so training never gives it a gradient (only round-off). With running
    averages, the scoring network does give it one.
    """
    consumers = {}
    for function in network_proto.function:
        for name in function.input:
            consumers.setdefault(name, []).append(function)
    producers = {name: function for function in network_proto.function for name in function.output}
    cancelled = []
    for function in network_proto.function:
        if not function.input:
            continue
        source = producers.get(function.input[0])
        if source is None or source.type not in _BIASED_LAYERS or len(source.input) < 3:
            continue
        layer = getattr(source, _BIASED_LAYERS[source.type])
        if getattr(layer, "channel_last", False) or len(consumers.get(function.input[0], [])) != 1:
            continue
        if _subtracts_channel_means(function, layer.base_axis or 1):
            cancelled += _unrolled_names(source.input[2], trainable)
    return cancelled


def _unrolled_names(name, names):
    """The names in `names` that the parameter `name` becomes once its loops are unrolled (itself outside loops).

    Inside a Repeat block NNC names a parameter 'Convolution_2{RepeatStart}/conv/b'; unrolled, it is one
    parameter per repetition, 'Convolution_2[0]/conv/b', 'Convolution_2[1]/conv/b', ... (as nnabla's loader names them).
    """
    if name in names:
        return [name]
    if "{" not in name:
        return []
    pattern = re.compile("".join(r"\[\d+\]" if part.startswith("{") else re.escape(part)
                                 for part in re.split(r"(\{[^}]*\})", name)))
    return [n for n in names if pattern.fullmatch(n)]


def _subtracts_channel_means(function, channel_axis):
    """True when `function` normalises each channel on `channel_axis` by a mean over all other axes."""
    normalization = _batch_statistics(function)
    if normalization is not None:
        return normalization.batch_stat and list(normalization.axes) == [channel_axis]
    if function.type == "InstanceNormalization":
        return function.instance_normalization_param.channel_axis == channel_axis
    return False


def _batch_statistics(function):
    """The parameters of a batch-normalization layer (batch_stat, decay_rate), else None."""
    if function.type == "BatchNormalization":
        return function.batch_normalization_param
    if function.type == "FusedBatchNormalization":
        return function.fused_batch_normalization_param
    return None


def _to_identity(function):
    function.ClearField("parameter")
    function.type = "Identity"


def _training_only_functions(network_proto):
    found = []
    for function in network_proto.function:
        if function.type in TRAINING_ONLY_LAYERS + SHAPE_CHANGING_RANDOM_LAYERS:
            found.append(function.name)
        elif _batch_statistics(function) and _batch_statistics(function).batch_stat:
            found.append(function.name)
    return found


def _label_ranges(network_proto, data_variables):
    """{data name: number of classes, or None for a 0-to-1 target} for labels fed to a classification loss."""
    ranges = {}
    shapes = {v.name: list(v.shape.dim) for v in network_proto.variable}
    for function in network_proto.function:
        if len(function.input) != 2:
            continue
        data_name = data_variables.get(function.input[1])
        if not data_name:
            continue
        if function.type in ("CategoricalCrossEntropy", "SoftmaxCrossEntropy"):
            prediction_shape = shapes.get(function.input[0], [])
            if len(prediction_shape) >= 2:
                ranges[data_name] = int(prediction_shape[1])
        elif function.type in ("BinaryCrossEntropy", "SigmoidCrossEntropy"):
            ranges[data_name] = None
    return ranges


def _uninitialized(network_proto, trainable):
    """The trainable parameters of a network that have no initializer (nnabla then starts them at zero)."""
    return [v.name for v in network_proto.variable
            if v.type == "Parameter" and v.name in trainable and not v.initializer.type]


def _input_shapes(network_proto, data_variables):
    shapes = {}
    for variable in network_proto.variable:
        if variable.name in data_variables:
            dims = list(variable.shape.dim)
            shapes[data_variables[variable.name]] = tuple(d for d in dims[1:]) if dims and dims[0] < 1 else tuple(dims[1:])
    return shapes


def load_project(path, context="cpu"):
    """Return the `Project` described by a .nnp, .nntxt or NNC results folder.

    Parameters
    ----------
    path : str
        The model file (or a results folder holding results.nnp / network.nntxt).
    context : str
        nnabla extension context: "cpu" or "cudnn" (a GPU with nnabla-ext-cuda).
    """
    path = resolve_model_path(path)
    _check_structure(path, _check_container(path))
    info = _nnabla_load(path, context)
    proto = info.proto
    # _check_structure has already refused files without a network, a single optimizer or a loss.
    if not proto.optimizer or not proto.network:
        raise UserError(f"nnabla found no network or optimizer in the model file {path}; "
                        "export it again from Neural Network Console as an NNP with network.nntxt.")
    optimizer_proto = proto.optimizer[0]
    train_network = _network_proto(proto, optimizer_proto.network_name)
    loss_names = [v.variable_name for v in optimizer_proto.loss_variable]
    data_variables = OrderedDict((d.variable_name, d.data_name) for d in optimizer_proto.data_variable)
    if not data_variables:
        raise UserError(f"The optimizer in {path} reads no dataset variables; the training data cannot be fed.")
    generator_variables = OrderedDict(
        (g.variable_name, (g.type, g.multiplier)) for g in optimizer_proto.generator_variable)

    datasets = OrderedDict()
    for d in proto.dataset:
        datasets[d.name] = DatasetSpec(d.name, _resolve_uri(d.uri, path), int(d.batch_size),
                                       bool(d.shuffle), not d.no_image_normalization)
    train_dataset = datasets.get(optimizer_proto.dataset_name[0]) if optimizer_proto.dataset_name else None
    val_dataset = None
    for name, spec in datasets.items():
        if train_dataset is None or name != train_dataset.name:
            val_dataset = spec
            break

    optimizer = info.optimizers[optimizer_proto.name]
    trainable = [name for name in optimizer.parameters]
    if not trainable:
        raise UserError(f"The optimizer in {path} updates no parameters; there is nothing to trace.")

    eval_name, derived = _choose_eval_network(
        proto, optimizer_proto, loss_names, list(data_variables),
        val_dataset.name if val_dataset else "Validation")
    influence_name, batch_statistics = _choose_influence_network(proto, train_network.name, eval_name)

    batch_size = (train_dataset.batch_size if train_dataset and train_dataset.batch_size > 0
                  else int(train_network.batch_size) or 64)
    # 0 when the file sets no Max Epoch: the caller asks for --epochs then.
    max_epoch = int(info.training_config.max_epoch) if hasattr(info, "training_config") else 0

    return Project(
        path=os.path.abspath(path),
        proto=proto,
        train_network=train_network.name,
        eval_network=eval_name,
        eval_network_derived=derived,
        data_variables=data_variables,
        generator_variables=generator_variables,
        loss_variables=loss_names,
        trainable_parameters=trainable,
        solver_name=optimizer.solver.name,
        solver_hyperparameters=dict(optimizer.solver.info),
        weight_decay=float(optimizer.weight_decay),
        scheduler=optimizer.scheduler,
        max_epoch=max_epoch,
        batch_size=batch_size,
        train_dataset=train_dataset,
        val_dataset=val_dataset,
        has_trained_parameters=_has_stored_parameters(path, proto),
        input_shapes=_input_shapes(train_network, data_variables),
        influence_network=influence_name,
        influence_batch_statistics=batch_statistics,
        cancelled_biases=_cancelled_biases(train_network, trainable),
        label_ranges=_label_ranges(train_network, data_variables),
        uninitialized_parameters=_uninitialized(train_network, trainable),
    )
