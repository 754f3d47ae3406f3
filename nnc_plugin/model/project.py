"""The model file as a plain `Project`: what a Neural Network Console project says about training.

`load_project` reads the model file (model_file.py), refuses what cannot be trained (structure.py), adds
the networks the plugin scores and differentiates with (derived_networks.py), and records what the graph
says (graph_facts.py): which network trains, which evaluates, what the loss is, which dataset columns feed
which variables, the solver and its schedule, the epochs and the batch size. The model/ package is the one
place that knows nnabla's NNP/nntxt schema.
"""
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from nnabla.utils import nnabla_pb2

from ..errors import UserError
from .derived_networks import choose_eval_network, choose_influence_network
from .graph_facts import (cancelled_biases, input_shapes, label_ranges, loss_targets, multiply_adds,
                          random_layers, uninitialized_parameters)
from .model_file import (has_stored_parameters, network_proto, nnabla_load, read_proto, read_trained_parameters,
                         resolve_model_path, resolve_uri)
from .structure import check_structure


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
    # The network SGD-influence differentiates at the traced steps (see choose_influence_network), and
    # whether it normalises with minibatch statistics (then its rows depend on each other).
    influence_network: str = ""
    influence_batch_statistics: bool = False
    # Biases that training never moves: a normalisation right after their layer subtracts them out again.
    cancelled_biases: List[str] = field(default_factory=list)
    # Dataset columns fed to a classification loss as its target: the number of classes, or None for a
    # binary loss whose targets are numbers from 0 to 1.
    label_ranges: Dict[str, Optional[int]] = field(default_factory=dict)
    # Dataset columns a loss layer compares the network's output with (the labels, for a classifier).
    target_columns: List[str] = field(default_factory=list)
    # Trainable parameters the model file gives no initializer: nnabla starts them at zero.
    uninitialized_parameters: List[str] = field(default_factory=list)
    # Layers of the training network that draw random values at every step (dropout, augmentation).
    random_training_layers: List[str] = field(default_factory=list)
    # About how many multiply-adds one row's forward pass through the training network takes.
    row_multiply_adds: int = 0

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
        return read_trained_parameters(self.path, context)

    def layers(self):
        """(layer name, layer type) of every layer of the networks the plugin runs (training, scoring, influence)."""
        used = (self.train_network, self.eval_network, self.influence_network)
        return [(f.name, f.type) for n in self.proto.network if n.name in used for f in n.function]


def _datasets(proto, optimizer_proto, path):
    """(training, validation) `DatasetSpec`s: the optimizer's dataset, and the first other one (None if none)."""
    datasets = OrderedDict()
    for d in proto.dataset:
        datasets[d.name] = DatasetSpec(d.name, resolve_uri(d.uri, path), int(d.batch_size),
                                       bool(d.shuffle), not d.no_image_normalization)
    train_dataset = datasets.get(optimizer_proto.dataset_name[0]) if optimizer_proto.dataset_name else None
    val_dataset = next((spec for name, spec in datasets.items()
                        if train_dataset is None or name != train_dataset.name), None)
    return train_dataset, val_dataset


def _optimizer_variables(optimizer_proto, path):
    """(data variables: {network variable: dataset column}, generator variables: {variable: (type, multiplier)})."""
    data_variables = OrderedDict((d.variable_name, d.data_name) for d in optimizer_proto.data_variable)
    if not data_variables:
        raise UserError(f"The optimizer in {path} reads no dataset variables; the training data cannot be fed.")
    generators = OrderedDict((g.variable_name, (g.type, g.multiplier)) for g in optimizer_proto.generator_variable)
    return data_variables, generators


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
    check_structure(path, read_proto(path))  # it refuses files without a network, a single optimizer or a loss
    info = nnabla_load(path, context)
    proto, optimizer_proto = info.proto, info.proto.optimizer[0]
    train_network = network_proto(proto, optimizer_proto.network_name)
    loss_names = [v.variable_name for v in optimizer_proto.loss_variable]
    data_variables, generator_variables = _optimizer_variables(optimizer_proto, path)
    train_dataset, val_dataset = _datasets(proto, optimizer_proto, path)
    optimizer = info.optimizers[optimizer_proto.name]
    trainable = list(optimizer.parameters)
    if not trainable:
        raise UserError(f"The optimizer in {path} updates no parameters; there is nothing to trace.")
    eval_name, derived = choose_eval_network(proto, optimizer_proto, loss_names, list(data_variables),
                                             val_dataset.name if val_dataset else "Validation")
    influence_name, batch_statistics = choose_influence_network(proto, train_network.name, eval_name)
    return Project(
        path=os.path.abspath(path), proto=proto, train_network=train_network.name, eval_network=eval_name,
        eval_network_derived=derived, data_variables=data_variables, generator_variables=generator_variables,
        loss_variables=loss_names, trainable_parameters=trainable, solver_name=optimizer.solver.name,
        solver_hyperparameters=dict(optimizer.solver.info), weight_decay=float(optimizer.weight_decay),
        scheduler=optimizer.scheduler,
        # 0 when the file sets no Max Epoch: the caller asks for --epochs then
        max_epoch=int(info.training_config.max_epoch) if hasattr(info, "training_config") else 0,
        batch_size=(train_dataset.batch_size if train_dataset and train_dataset.batch_size > 0
                    else int(train_network.batch_size) or 64),
        train_dataset=train_dataset, val_dataset=val_dataset, has_trained_parameters=has_stored_parameters(path, proto),
        input_shapes=input_shapes(train_network, data_variables), influence_network=influence_name,
        influence_batch_statistics=batch_statistics, cancelled_biases=cancelled_biases(train_network, trainable),
        label_ranges=label_ranges(train_network, data_variables),
        target_columns=loss_targets(train_network, loss_names, data_variables),
        uninitialized_parameters=uninitialized_parameters(train_network, trainable),
        random_training_layers=random_layers(train_network), row_multiply_adds=multiply_adds(train_network))
