"""Small projects written the way Neural Network Console writes its result files (network.nntxt).

`Network` collects variables and layers as NNC names and saves them (loop layers and their
`repeat_id`s, `Name{RepeatStart}/conv/W` parameters inside a Repeat block, `Delay_Initial` fed by a
generator, a `MainValidation` copy of the training network); `project_text` adds the datasets, the
optimizer and the monitors. `FAMILIES` holds one small network per layer family the plugin must
train and score: residual (RepeatStart/RepeatEnd), recurrent (RecurrentInput/RecurrentOutput/Delay),
auto-encoder, BinaryCrossEntropy and Deconvolution, each on 8x8 digits.
"""
import csv
import os

import numpy as np


def _dims(shape):
    return " ".join(f"dim: {d}" for d in shape)


class Network:
    """One `network { ... }` of an nntxt, built layer by layer."""

    def __init__(self, name="Main", batch_size=16, repeats=None):
        self.name, self.batch_size = name, batch_size
        self.repeats = dict(repeats or {})  # loop id -> times
        self.variables, self.functions, self.parameters = [], [], []

    def variable(self, name, shape, repeat=(), parameter=False, initializer=None, batch=True):
        kind = "Parameter" if parameter else "Buffer"
        lines = [f'    name: "{name}"', f'    type: "{kind}"']
        lines += [f'    repeat_id: "{r}"' for r in repeat]
        lines.append(f"    shape: {{ {_dims((-1,) + tuple(shape) if batch and not parameter else shape)} }}")
        if parameter:
            kind, multiplier = initializer or ("Constant", 0)
            lines.append(f'    initializer {{\n      type: "{kind}"\n      multiplier: {multiplier}\n    }}')
            self.parameters.append(name)
        self.variables.append("  variable {\n" + "\n".join(lines) + "\n  }")
        return name

    def layer(self, name, kind, inputs, shape, repeat=(), param="", output=None, batch=True):
        """Add a layer and its output variable (named after the layer, as NNC does); return the output's name.

        `batch`=False: `shape` is the whole shape, without NNC's batch axis (-1) in front.
        """
        output = output or name
        if shape is not None:
            self.variable(output, shape, repeat, batch=batch)
        lines = [f'    name: "{name}"', f'    type: "{kind}"']
        lines += [f'    repeat_id: "{r}"' for r in repeat]
        lines += [f'    input: "{i}"' for i in inputs]
        lines.append(f'    output: "{output}"')
        if param:
            lines.append("    " + param)
        self.functions.append("  function {\n" + "\n".join(lines) + "\n  }")
        return output

    def affine(self, name, source, in_size, out_shape, repeat=()):
        tag = "".join("{" + r + "}" for r in repeat)
        w = self.variable(f"{name}{tag}/affine/W", (in_size,) + tuple(out_shape), repeat, True,
                          ("NormalAffineGlorot", 1))
        b = self.variable(f"{name}{tag}/affine/b", tuple(out_shape), repeat, True)
        return self.layer(name, "Affine", [source, w, b], out_shape, repeat, "affine_param { base_axis: 1 }")

    def convolution(self, name, source, channels_in, shape, kernel, pad, stride=1, repeat=(), kind="Convolution"):
        tag = "".join("{" + r + "}" for r in repeat)
        prefix = "conv" if kind == "Convolution" else "deconv"
        weight = (shape[0], channels_in) if kind == "Convolution" else (channels_in, shape[0])
        w = self.variable(f"{name}{tag}/{prefix}/W", weight + (kernel, kernel), repeat, True,
                          ("NormalConvolutionGlorot", 1))
        b = self.variable(f"{name}{tag}/{prefix}/b", (shape[0],), repeat, True)
        param = (f"{kind.lower()}_param {{ pad: {{ dim: {pad} dim: {pad} }} stride: {{ dim: {stride} dim: {stride} }} "
                 f"dilation: {{ dim: 1 dim: 1 }} group: 1 base_axis: 1 }}")
        return self.layer(name, kind, [source, w, b], shape, repeat, param)

    def text(self):
        loops = "".join(f'  repeat_info {{\n    id: "{k}"\n    times: {v}\n  }}\n' for k, v in self.repeats.items())
        return (f'network {{\n  name: "{self.name}"\n  batch_size: {self.batch_size}\n{loops}'
                + "\n".join(self.variables + self.functions) + "\n}\n")


def project_text(network, train_csv, val_csv, data, loss, generators=(), lr=0.05, epochs=1, solver="Sgd"):
    """The whole nntxt: `network` as Main and MainValidation, two datasets, one optimizer, two monitors.

    data: [(variable, dataset column)]; generators: [(variable, multiplier)], Constant generators.
    """
    main = network.text()
    validation = main.replace(f'name: "{network.name}"', f'name: "{network.name}Validation"', 1)
    solver_param = (f"sgd_param {{ lr: {lr} }}" if solver == "Sgd"
                    else f"adam_param {{ alpha: {lr} beta1: 0.9 beta2: 0.999 eps: 1e-08 }}")
    feeds = "".join(f'  data_variable {{\n    variable_name: "{v}"\n    data_name: "{d}"\n  }}\n' for v, d in data)
    gens = "".join(f'  generator_variable {{\n    variable_name: "{v}"\n    type: "Constant"\n    multiplier: {m}\n  }}\n'
                   for v, m in generators)
    params = "".join(f'  parameter_variable {{\n    variable_name: "{p}"\n    learning_rate_multiplier: 1\n  }}\n'
                     for p in network.parameters)
    datasets = "".join(
        f'dataset {{\n  name: "{name}"\n  type: "Cache"\n  uri: "{uri}"\n  batch_size: {network.batch_size}\n'
        f'  shuffle: {"true" if name == "Training" else "false"}\n  no_image_normalization: false\n}}\n'
        for name, uri in (("Training", train_csv), ("Validation", val_csv)))
    monitors = "".join(
        f'monitor {{\n  name: "{name}"\n  network_name: "{net}"\n  dataset_name: "{ds}"\n{feeds}{gens}'
        f'  monitor_variable {{\n    type: "Error"\n    variable_name: "{loss}"\n  }}\n}}\n'
        for name, net, ds in (("train_error", f"{network.name}Validation", "Training"),
                              ("valid_error", f"{network.name}Validation", "Validation")))
    return (
        'global_config {\n  default_context {\n    backends: "cpu:float"\n    array_class: "CpuCachedArray"\n  }\n}\n'
        f"training_config {{\n  max_epoch: {epochs}\n  iter_per_epoch: 4\n  save_best: true\n  monitor_interval: 1\n}}\n"
        + main + validation + datasets
        + f'optimizer {{\n  name: "Optimizer"\n  update_interval: 1\n  network_name: "{network.name}"\n'
        f'  dataset_name: "Training"\n  solver {{\n    type: "{solver}"\n    weight_decay: 0\n    {solver_param}\n'
        f'    lr_scheduler_type: "Exponential"\n    exponential_scheduler_param {{ gamma: 1.0 iter_interval: 4 }}\n'
        f'    lr_warmup_scheduler_type: "None"\n  }}\n{feeds}{gens}  loss_variable {{\n    variable_name: "{loss}"\n  }}\n'
        f"{params}}}\n" + monitors)


# One network per layer family ------------------------------------------------------------------
# Each returns (network, data feeds, loss variable, generators, target kind): target kind "label"
# (the digit), "binary" (digit is 0 or not) or "image" (the loss compares the output with the input).

def residual():
    """Convolution, then a Repeat block (x2) of Convolution + ReLU added to its input, Affine, Softmax, CCE."""
    n = Network(repeats={"RepeatStart": 2})
    n.variable("Input", (1, 8, 8))
    h = n.convolution("Convolution", "Input", 1, (4, 8, 8), 3, 1)
    h = n.layer("ReLU", "ReLU", [h], (4, 8, 8))
    start = n.layer("RepeatStart", "RepeatStart", [h, "ReLU_3"], (4, 8, 8), ("RepeatStart",),
                    'repeat_param { repeat_id: "RepeatStart" }')
    r = n.convolution("Convolution_2", start, 4, (4, 8, 8), 3, 1, repeat=("RepeatStart",))
    r = n.layer("ReLU_2", "ReLU", [r], (4, 8, 8), ("RepeatStart",))
    r = n.layer("Add2", "Add2", [r, start], (4, 8, 8), ("RepeatStart",), "add2_param { inplace: false }")
    n.layer("ReLU_3", "ReLU", [r], (4, 8, 8), ("RepeatStart",))
    end = n.layer("RepeatEnd", "RepeatEnd", ["ReLU_3"], (4, 8, 8), (),
                  'repeat_param { repeat_id: "RepeatStart" times: 2 }')
    return _classifier(n, end, 4 * 8 * 8)


def recurrent():
    """An Elman network over the 8 rows of the image: RecurrentInput, Delay, Concatenate, Affine, Tanh, RecurrentOutput."""
    loop = ("RecurrentInput",)
    n = Network(repeats={"RecurrentInput": 8})
    n.variable("Input", (1, 8, 8))
    n.variable("Delay_Initial", (1, 8))
    step = n.layer("RecurrentInput", "RecurrentInput", ["Input"], (1, 8), loop,
                   'recurrent_param { axis: 2 repeat_id: "RecurrentInput" }')
    state = n.layer("Delay", "Delay", ["Tanh", "Delay_Initial"], (1, 8), loop,
                    'recurrent_param { repeat_id: "RecurrentInput" }')
    h = n.layer("Concatenate", "Concatenate", [step, state], (2, 8), loop, "concatenate_param { axis: 1 }")
    h = n.affine("Affine", h, 16, (1, 8), repeat=loop)
    n.layer("Tanh", "Tanh", [h], (1, 8), loop)
    out = n.layer("RecurrentOutput", "RecurrentOutput", ["Tanh"], (1, 8, 8), (),
                  'recurrent_param { axis: 2 repeat_id: "RecurrentInput" length: 8 }')
    last = n.layer("Slice", "Slice", [out], (1, 1, 8), (),
                   "slice_param { start: 0 start: 7 start: 0 stop: 1 stop: 8 stop: 8 step: 1 step: 1 step: 1 }")
    network, data, loss, _, target = _classifier(n, last, 8)
    return network, data, loss, [("Delay_Initial", 0)], target


def auto_encoder():
    """Affine (16), Tanh, Affine back to 1x8x8, Sigmoid; SquaredError against the input image itself."""
    n = Network()
    n.variable("Input", (1, 8, 8))
    h = n.affine("Affine", "Input", 64, (16,))
    h = n.layer("Tanh", "Tanh", [h], (16,))
    h = n.affine("Affine_2", h, 16, (1, 8, 8))
    h = n.layer("Sigmoid", "Sigmoid", [h], (1, 8, 8))
    n.variable("SquaredError_T", (1, 8, 8))
    loss = n.layer("SquaredError", "SquaredError", [h, "SquaredError_T"], (1, 8, 8))
    return n, [("Input", "x"), ("SquaredError_T", "x")], loss, [], "image"


def binary():
    """Affine (1), Sigmoid, BinaryCrossEntropy: is the digit a zero?"""
    n = Network()
    n.variable("Input", (1, 8, 8))
    h = n.affine("Affine", "Input", 64, (1,))
    h = n.layer("Sigmoid", "Sigmoid", [h], (1,))
    n.variable("BinaryCrossEntropy_T", (1,))
    loss = n.layer("BinaryCrossEntropy", "BinaryCrossEntropy", [h, "BinaryCrossEntropy_T"], (1,))
    return n, [("Input", "x"), ("BinaryCrossEntropy_T", "y")], loss, [], "binary"


def deconvolution():
    """Convolution (stride 2) to 4x4x4, ReLU, Deconvolution (stride 2) back to 1x8x8, Sigmoid; SquaredError to the input."""
    n = Network()
    n.variable("Input", (1, 8, 8))
    h = n.convolution("Convolution", "Input", 1, (4, 4, 4), 4, 1, stride=2)
    h = n.layer("ReLU", "ReLU", [h], (4, 4, 4))
    h = n.convolution("Deconvolution", h, 4, (1, 8, 8), 4, 1, stride=2, kind="Deconvolution")
    h = n.layer("Sigmoid", "Sigmoid", [h], (1, 8, 8))
    n.variable("SquaredError_T", (1, 8, 8))
    loss = n.layer("SquaredError", "SquaredError", [h, "SquaredError_T"], (1, 8, 8))
    return n, [("Input", "x"), ("SquaredError_T", "x")], loss, [], "image"


def _classifier(n, source, size):
    h = n.affine("Affine_9", source, size, (10,))
    h = n.layer("Softmax", "Softmax", [h], (10,), param="softmax_param { axis: 1 }")
    n.variable("CategoricalCrossEntropy_T", (1,))
    loss = n.layer("CategoricalCrossEntropy", "CategoricalCrossEntropy", [h, "CategoricalCrossEntropy_T"], (1,),
                   param="categorical_cross_entropy_param { axis: 1 }")
    return n, [("Input", "x"), ("CategoricalCrossEntropy_T", "y")], loss, [], "label"


FAMILIES = {"residual": residual, "recurrent": recurrent, "auto_encoder": auto_encoder, "binary": binary,
            "deconvolution": deconvolution}


def digits_csv(source, target, rows, binary_labels=False):
    """The first `rows` rows of a digits CSV with absolute image paths; labels 1 (zero) / 0 (other) if binary."""
    with open(source, newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    folder = os.path.dirname(os.path.abspath(source))
    body = [[os.path.join(folder, x), str(int(y == "0")) if binary_labels else y] for x, y in table[1:rows + 1]]
    with open(target, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows([table[0]] + body)
    return str(target)


def write_family(name, folder, digits_folder, train_rows=48, val_rows=16, **options):
    """Write the family's project and its datasets into `folder`; return (model, train csv, val csv)."""
    network, data, loss, generators, target = FAMILIES[name]()
    train = digits_csv(os.path.join(digits_folder, "data", "train.csv"), os.path.join(folder, "train.csv"),
                       train_rows, target == "binary")
    val = digits_csv(os.path.join(digits_folder, "data", "val.csv"), os.path.join(folder, "val.csv"),
                     val_rows, target == "binary")
    model = os.path.join(folder, f"{name}.nntxt")
    with open(model, "w", encoding="utf-8") as f:
        f.write(project_text(network, train, val, data, loss, generators, **options))
    return model, train, val


def scored_rows(path):
    """The rows of a scored CSV; asserts its header ends in influence, datasource_index and every score is finite."""
    with open(path, newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0][-2:] == ["influence", "datasource_index"], table[0]
    scores = np.array([float(row[-2]) for row in table[1:]])
    assert np.all(np.isfinite(scores)), scores
    assert sorted(int(row[-1]) for row in table[1:]) == list(range(len(table) - 1))
    return table[1:]
