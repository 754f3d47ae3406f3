"""Small real projects for tests: subsets of the sample data and variants of the sample networks."""
import csv
import os
import string
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def subset_csv(source, target, rows, absolute_paths=True):
    """Write the first `rows` rows of an NNC CSV to `target` (paths made absolute so they resolve anywhere)."""
    with open(source, newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    folder = os.path.dirname(os.path.abspath(source))
    body = []
    for row in table[1:rows + 1]:
        if absolute_paths:
            row = [os.path.join(folder, c) if c.endswith(".png") else c for c in row]
        body.append(row)
    with open(target, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows([table[0]] + body)
    return target


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def softmax_regression_project(folder, train_csv="", val_csv="", lr=0.1, epochs=2, batch_size=8,
                               weight_decay=0.0, solver="Sgd"):
    """Write an NNC project with a single Affine layer + Softmax + CategoricalCrossEntropy on 8x8 digits."""
    return _from_template("softmax_regression.nntxt", folder, lr=lr, epochs=epochs, batch_size=batch_size,
                          weight_decay=weight_decay, train_csv=train_csv, val_csv=val_csv, solver=solver,
                          solver_param=_solver_param(solver, lr))


def conv_batch_norm_project(folder, train_csv="", val_csv="", lr=0.01, epochs=2, solver="Momentum"):
    """Write an NNC project on 8x8 digits: Convolution (with bias) -> BatchNormalization -> Affine ->
    Softmax -> CategoricalCrossEntropy, batch size 32, with a MainValidation network as NNC makes it."""
    return _from_template("conv_batch_norm.nntxt", folder, epochs=epochs, train_csv=train_csv, val_csv=val_csv,
                          solver=solver, solver_param=_solver_param(solver, lr))


def binary_logistic_project(folder, train_csv="", val_csv=""):
    """Write an NNC project on 8x8 digits: Affine (1 output) -> Sigmoid -> BinaryCrossEntropy, labels 0 or 1."""
    return _from_template("binary_logistic.nntxt", folder, train_csv=train_csv, val_csv=val_csv)


def _from_template(name, folder, **values):
    with open(os.path.join(HERE, "data", name), encoding="utf-8") as f:
        template = string.Template(f.read())
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(template.substitute(**values))
    return path


def _solver_param(solver, lr):
    if solver == "Sgd":
        return f"sgd_param {{ lr: {lr} }}"
    if solver == "Momentum":
        return f"momentum_param {{ lr: {lr} momentum: 0.9 }}"
    if solver == "Adam":
        return f"adam_param {{ alpha: {lr} beta1: 0.9 beta2: 0.999 eps: 1e-08 }}"
    raise ValueError(solver)


def variant(source, target, replacements):
    """Copy a model file with text replacements (for example another learning rate)."""
    with open(source, encoding="utf-8") as f:
        text = f.read()
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    with open(target, "w", encoding="utf-8") as f:
        f.write(text)
    return target


_TANH_FUNCTION = '''  function {
    name: "Tanh"
    type: "Tanh"
    input: "Affine"
    output: "Tanh"
  }'''
_TANH_VARIABLE = '''  variable {
    name: "Tanh"'''


def layer_after_tanh(layer_type, parameters="", name=None):
    """Replacements for `variant` that put one more layer (same shape) after the digits MLP's hidden Tanh."""
    function = _TANH_FUNCTION.replace('output: "Tanh"', 'output: "TanhOut"') + f'''
  function {{
    name: "{name or layer_type}"
    type: "{layer_type}"
    input: "TanhOut"
    output: "Tanh"
    {parameters}
  }}'''
    variable = '''  variable {
    name: "TanhOut"
    type: "Buffer"
    shape: { dim:-1 dim: 32 }
  }
''' + _TANH_VARIABLE
    return {_TANH_FUNCTION: function, _TANH_VARIABLE: variable}


def tool(name):
    """The path of a command installed in this virtual environment (nnc-cleanse, nnabla_cli, mpiexec)."""
    return os.path.join(os.path.dirname(sys.executable), name)


def run_command(*command, check=False, **options):
    """Run a command as a user would (text output captured); with `check`, fail the test on a non-zero exit."""
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, **options)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def nnc_cleanse(*arguments, check=True, **options):
    """Run the installed `nnc-cleanse` command; return the CompletedProcess."""
    return run_command(tool("nnc-cleanse"), *arguments, check=check, **options)


def train_with_nnabla_cli(config, results_folder, **options):
    """Train a project with `nnabla_cli train`, as NNC does; return the results.nnp it writes."""
    os.makedirs(results_folder, exist_ok=True)
    run_command(tool("nnabla_cli"), "train", "-c", config, "-o", results_folder, check=True, **options)
    return os.path.join(results_folder, "results.nnp")


def trial_of(options, number=0):
    """The `Trial` `number` of a run with `options`, as `score` opens it: reopened from the cache when the run has
    been scored already (its model at the final parameters), else trained now (its solver state in memory too)."""
    from nnc_plugin.pipeline import prepare
    from nnc_plugin.training.trial import open_trial
    return open_trial(prepare(options).setup, number)


def with_dropout(source, target):
    """Copy the digits MLP with a Dropout layer (p = 0.3) between its Tanh and its second Affine layer in the
    training network, as NNC users add one; the scoring network stays without."""
    with open(source, encoding="utf-8") as f:
        text = f.read()
    main = text.index('network {\n  name: "Main"')
    end = text.index("\n}\n", main) + 3  # the network's closing brace
    network = text[main:end]
    tanh_shape = network[network.index('name: "Tanh"'):]
    tanh_shape = tanh_shape[tanh_shape.index("shape:"):]
    tanh_shape = tanh_shape[:tanh_shape.index("\n")]
    network = network.replace('  variable {\n    name: "Tanh"',
                              f'  variable {{\n    name: "Dropout"\n    type: "Buffer"\n    {tanh_shape}\n  }}\n'
                              '  variable {\n    name: "Tanh"', 1)
    network = network.replace('    input: "Tanh"\n    input: "Affine_2/affine/W"', '    input: "Dropout"\n'
                              '    input: "Affine_2/affine/W"', 1)
    network = network.replace('  function {\n    name: "Affine_2"',
                              '  function {\n    name: "Dropout"\n    type: "Dropout"\n    input: "Tanh"\n'
                              '    output: "Dropout"\n    dropout_param {\n      p: 0.3\n      seed: -1\n    }\n  }\n'
                              '  function {\n    name: "Affine_2"', 1)
    assert network.count('"Dropout"') == 5  # the variable, its layer's name, type and output, the next input
    with open(target, "w", encoding="utf-8") as f:
        f.write(text[:main] + network + text[end:])
    return target


def noisy_dropout_adam(digits, folder):
    """The digits model with what draws random numbers: a Gaussian noise generator on the input,
    dropout in training, and Adam (whose state is cached beside the parameters)."""
    data = os.path.join(digits["folder"], "data")
    return variant(digits["model"], folder / "noisy.nntxt", {
        'uri: "data/train.csv"': f'uri: "{data}/train.csv"',
        'uri: "data/val.csv"': f'uri: "{data}/val.csv"',
        '''  function {
    name: "Affine"
    type: "Affine"
    input: "Input"''': '''  function {
    name: "Add2"
    type: "Add2"
    input: "Input"
    input: "Noise"
    output: "Noisy"
  }
  function {
    name: "Affine"
    type: "Affine"
    input: "Noisy"''',
        '''  function {
    name: "Tanh"
    type: "Tanh"
    input: "Affine"
    output: "Tanh"
  }''': '''  function {
    name: "Tanh"
    type: "Tanh"
    input: "Affine"
    output: "TanhOut"
  }
  function {
    name: "Dropout"
    type: "Dropout"
    input: "TanhOut"
    output: "Tanh"
    dropout_param { p: 0.3 seed: -1 }
  }''',
        '''  variable {
    name: "Tanh"''': '''  variable {
    name: "Noise"
    type: "Buffer"
    shape: { dim:-1 dim: 1 dim: 8 dim: 8 }
  }
  variable {
    name: "Noisy"
    type: "Buffer"
    shape: { dim:-1 dim: 1 dim: 8 dim: 8 }
  }
  variable {
    name: "TanhOut"
    type: "Buffer"
    shape: { dim:-1 dim: 32 }
  }
  variable {
    name: "Tanh"''',
        '''  loss_variable {''': '''  generator_variable {
    variable_name: "Noise"
    type: "Normal"
    multiplier: 0.05
  }
  loss_variable {''',
        'type: "Sgd"': 'type: "Adam"',
        "sgd_param {\n      lr: 0.1\n    }": "adam_param { alpha: 0.01 beta1: 0.9 beta2: 0.999 eps: 1e-08 }",
    })
