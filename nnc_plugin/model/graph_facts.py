"""What the training network's graph says beyond its layers: the biases training never moves, the labels of
its classification loss and their number of classes, the parameters without an initializer, the shape of each
input."""
import re

import numpy as np

from .derived_networks import SHAPE_CHANGING_RANDOM_LAYERS, TRAINING_ONLY_LAYERS, batch_statistics

# Layers whose output is drawn at random on every call (nnabla's random functions among them).
RANDOM_LAYERS = TRAINING_ONLY_LAYERS + SHAPE_CHANGING_RANDOM_LAYERS + (
    "Rand", "Randn", "RandInt", "RandomChoice", "RandBinomial", "RandBeta", "RandGamma")

# Layers that add a bias (their third input) along one axis, base_axis (channel-first layouts).
_BIASED_LAYERS = {"Convolution": "convolution_param", "Deconvolution": "deconvolution_param",
                  "DepthwiseConvolution": "depthwise_convolution_param",
                  "DepthwiseDeconvolution": "depthwise_deconvolution_param", "Affine": "affine_param"}


def cancelled_biases(network_proto, trainable):
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
    normalization = batch_statistics(function)
    if normalization is not None:
        return normalization.batch_stat and list(normalization.axes) == [channel_axis]
    if function.type == "InstanceNormalization":
        return function.instance_normalization_param.channel_axis == channel_axis
    return False


def label_ranges(network_proto, data_variables):
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


def uninitialized_parameters(network_proto, trainable):
    """The trainable parameters of a network that have no initializer (nnabla then starts them at zero)."""
    return [v.name for v in network_proto.variable
            if v.type == "Parameter" and v.name in trainable and not v.initializer.type]


def input_shapes(network_proto, data_variables):
    shapes = {}
    for variable in network_proto.variable:
        if variable.name in data_variables:
            dims = list(variable.shape.dim)
            shapes[data_variables[variable.name]] = tuple(d for d in dims[1:]) if dims and dims[0] < 1 else tuple(dims[1:])
    return shapes


def loss_targets(network_proto, loss_names, data_variables):
    """The dataset columns that the layers producing the losses compare the network's output with (a
    classifier's labels), in the order of the losses."""
    producers = {name: function for function in network_proto.function for name in function.output}
    targets = []
    for loss in loss_names:
        function = producers.get(loss)
        for name in (function.input[1:] if function is not None else ()):
            column = data_variables.get(name)
            if column and column not in targets:
                targets.append(column)
    return targets


def random_layers(network_proto):
    """The names of the layers of a network that draw random values on every call (dropout, augmentation)."""
    return [function.name for function in network_proto.function if function.type in RANDOM_LAYERS]


# Layers whose arithmetic is a product with their weight (its first input after the data): multiply-adds per row.
_WEIGHTED_LAYERS = ("Affine", "Convolution", "Deconvolution", "DepthwiseConvolution", "DepthwiseDeconvolution")


def multiply_adds(network_proto):
    """About how many multiply-adds one row's forward pass through the network takes: for every Affine and
    Convolution layer, its output's size per row times the weights each output element reads."""
    shapes = {v.name: [d for d in v.shape.dim] for v in network_proto.variable}
    total = 0
    for function in network_proto.function:
        if function.type not in _WEIGHTED_LAYERS or len(function.input) < 2:
            continue
        weight = shapes.get(function.input[1], [])
        output = [d for d in shapes.get(function.output[0], []) if d > 0]
        if not weight or not output:
            continue
        weights = int(np.prod(weight))
        if function.type == "Affine":
            total += weights  # (inputs x outputs) per row
        else:  # each output element reads one output channel's (or group's) weights
            total += int(np.prod(output)) * weights // max(weight[0], 1)
    return total
