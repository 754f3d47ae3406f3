"""Can nnabla differentiate the network as a ranking needs? Checked once, before any training."""
import re

import nnabla as nn
from nnabla import backward_functions

from ..errors import UserError, first_line
from ..model.network import Model
from .gradients import BatchedDirectional


def check_differentiable(project, context="cpu", second_order=True):
    """Raise a UserError naming the layer if the network cannot be differentiated as the ranking needs.

    Training needs one backward pass; SGD-influence and its expectation (`second_order`) also need the gradient of
    each sample's loss and a Hessian-vector product, i.e. `nnabla.grad` of the loss and a backward
    pass through that gradient, and nnabla lacks the second derivative of some layers. This
    builds the graphs for a throwaway copy of the network at batch size 2 and runs them once on
    zeros, so an unsupported layer is reported in one sentence before any training.
    """
    try:
        model = Model(project, seed=0, context=context)
        with nn.context_scope(model.context):
            training = model.loss_graph(2, train=True)
            training.mean_loss.forward(clear_no_need_grad=True)
            training.mean_loss.backward(clear_buffer=True)
    except UserError:
        raise
    except Exception as error:
        layer = _layer_named_by(project, error)
        what = f"the {layer[1]} layer '{layer[0]}'" if layer else "the training network"
        raise UserError(f"nnabla cannot train {what} in {project.path} ({first_line(error)}); "
                        "replace that layer, or check that the project trains in Neural Network Console.")
    if not second_order:
        return
    try:
        _, weights, directions, total = BatchedDirectional(model).graph(2)  # the graph scoring will use
        weights.d = 1.0
        for direction in directions:
            direction.d = 0.0
        with nn.context_scope(model.context):
            total.forward(clear_no_need_grad=True)
            total.backward(clear_buffer=True)
    except UserError:
        raise
    except Exception as error:
        layer = _layer_named_by(project, error)
        if layer:
            raise UserError(f"The {layer[1]} layer '{layer[0]}' in {project.path} is not supported by this ranking: "
                            "nnabla cannot take the second derivative through it, which sgd-influence and influence "
                            "need; use --ranking tracin-cp (first derivatives only), or replace or remove the "
                            f"{layer[1]} layers in Neural Network Console and export the project again.")
        raise UserError(f"nnabla cannot take the second derivative of the network in {project.path} "
                        f"({first_line(error)}), which sgd-influence and influence need; use --ranking tracin-cp "
                        "(first derivatives only), or replace the layer it names.")


def _layer_named_by(project, error):
    """(layer name, layer type) of the layer an nnabla error is about, or None when it names none."""
    message = str(error)
    found = re.search(r"(\w+) is not in the backward function registry", message)
    layer_type = found.group(1) if found else None
    if layer_type is None:  # a registered rule nnabla has not implemented: "flip_backward is not implemented."
        for name, rule in backward_functions.registry.items():
            if re.search(rf"\b{re.escape(getattr(rule, '__name__', '?'))}\b", message):
                layer_type = name
                break
    layers = project.layers()
    if layer_type is None:  # an error from nnabla's C++ core names the function type itself
        types = sorted({kind for _, kind in layers}, key=len, reverse=True)
        layer_type = next((t for t in types if re.search(rf"\b{re.escape(t)}(Backward)?\b", message)), None)
    named = [name for name, kind in layers if kind == layer_type]
    return (named[0], layer_type) if named else None
