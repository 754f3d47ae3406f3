"""The networks the plugin derives from the training network, added to the project's proto.

NNC makes a validation network beside the training network; when a project has none (or only
networks with training-only layers), a copy of the training network in evaluation mode scores the
rows. When the training network normalises with minibatch statistics, SGD-influence differentiates
a copy that keeps them, as the traced steps did.
"""
import copy

from ..errors import UserError
from .model_file import network_proto, variable_names

# Layers that only make sense while training: the network used to score samples
# replaces them with Identity (their input and output shapes are equal).
TRAINING_ONLY_LAYERS = ("Dropout", "RandomFlip", "RandomShift", "RandomErase", "ImageAugmentation")

# Random layers that change the shape of their input cannot be replaced that way.
SHAPE_CHANGING_RANDOM_LAYERS = ("RandomCrop",)


def choose_eval_network(proto, optimizer_proto, loss_names, data_names, val_dataset_name):
    """Pick the network NNC made for evaluation (same loss and inputs, no training-only layers).

    Returns (name, derived). When the project has no such network, a copy of the training
    network is added to `proto` with batch statistics off and training-only layers replaced
    by Identity; `derived` is then True.
    """
    train_name = optimizer_proto.network_name
    needed = set(loss_names) | set(data_names)
    monitor_networks = [m.network_name for m in proto.monitor if val_dataset_name in m.dataset_name]
    candidates = [n.name for n in proto.network
                  if n.name != train_name and needed <= variable_names(n)]
    for name in monitor_networks + candidates:
        if name in candidates and not _training_only_functions(network_proto(proto, name)):
            return name, False

    train = network_proto(proto, train_name)
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
        if batch_statistics(function):
            batch_statistics(function).batch_stat = False
        elif function.type in TRAINING_ONLY_LAYERS:
            _to_identity(function)
    proto.network.append(derived)
    return derived.name, True


def choose_influence_network(proto, train_name, eval_name):
    """Pick the network SGD-influence differentiates at the traced steps; return (name, batch statistics).

    The steps were taken with the training network, so its gradients and curvature are the ones that
    moved the parameters. When it normalises with minibatch statistics, a copy of it is used with those
    statistics kept (and the running averages frozen) and random training-only layers off: scoring
    with the running statistics instead changes the curvature, and the propagation back through the
    steps can then grow without bound. Otherwise the scoring network serves.
    """
    train = network_proto(proto, train_name)
    if not any(batch_statistics(f) and batch_statistics(f).batch_stat for f in train.function) \
            or any(f.type in SHAPE_CHANGING_RANDOM_LAYERS for f in train.function):
        return eval_name, False
    derived = copy.deepcopy(train)
    derived.name = train_name + "__influence"
    for function in derived.function:
        if batch_statistics(function):
            batch_statistics(function).decay_rate = 1.0  # the running statistics stay as trained
        elif function.type in TRAINING_ONLY_LAYERS:
            _to_identity(function)
    proto.network.append(derived)
    return derived.name, True


def batch_statistics(function):
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
        elif batch_statistics(function) and batch_statistics(function).batch_stat:
            found.append(function.name)
    return found
