"""Networks that no rule of the package was tuned on, for the benchmarks' --network option.

`relu_mlp(project, folder)` writes, into `folder`, a one-hidden-layer ReLU network (64 units) for the
project's images, made from the digits sample's model file with its layers resized and its Tanh replaced
by ReLU, reading the project's own data CSVs at the project's batch size (digits 32, MNIST 64). The two
sample networks are a Tanh MLP (digits) and a ReLU CNN (MNIST); these add a ReLU MLP on each dataset.
"""
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

IMAGE_SIDE = {"digits": 8, "mnist": 28}
BATCH_SIZE = {"digits": 32, "mnist": 64}
TRAINING_ROWS = {"digits": 1000, "mnist": 4000}
HIDDEN = 64


def relu_mlp(project, folder):
    """Write `<project>_relu_mlp.nntxt` into `folder` and return its path."""
    from google.protobuf import text_format
    from nnc_plugin.model.project import load_project
    proto = load_project(os.path.join(ROOT, "sample_projects", "digits", "digits_mlp.nntxt")).proto
    side, batch = IMAGE_SIDE[project], BATCH_SIZE[project]
    steps = math.ceil(TRAINING_ROWS[project] / batch)
    shapes = {"Input": [-1, 1, side, side], "Affine/affine/W": [side * side, HIDDEN], "Affine/affine/b": [HIDDEN],
              "Affine": [-1, HIDDEN], "Tanh": [-1, HIDDEN], "Affine_2/affine/W": [HIDDEN, 10]}
    for network in proto.network:
        network.batch_size = batch
        for variable in network.variable:
            if variable.name in shapes:
                del variable.shape.dim[:]
                variable.shape.dim.extend(shapes[variable.name])
        for function in network.function:
            if function.type == "Tanh":
                function.type = "ReLU"
    data = os.path.join(ROOT, "sample_projects", project, "data")
    for dataset in proto.dataset:
        dataset.uri = os.path.join(data, os.path.basename(dataset.uri))
        dataset.batch_size = batch
    proto.training_config.iter_per_epoch = steps
    for optimizer in proto.optimizer:
        optimizer.solver.exponential_scheduler_param.iter_interval = steps
    path = os.path.join(folder, f"{project}_relu_mlp.nntxt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text_format.MessageToString(proto))
    return path


NETWORKS = ("sample", "relu-mlp")


def network_file(project, network, folder):
    """The model file of `network` for `project`: the sample's own, or a held-out one written into `folder`."""
    if network == "relu-mlp":
        return relu_mlp(project, folder)
    from mislabel import MODELS
    return os.path.join(ROOT, "sample_projects", project, MODELS[project])
