"""Real NNC layer families: each small network, written as NNC writes it, trains and scores end to end.

NNC saves residual blocks as RepeatStart/RepeatEnd and recurrent networks as RecurrentInput,
RecurrentOutput and Delay: loop control that nnabla unrolls before it builds a graph. Before the
plugin did the same, those projects hung in nnabla's graph walk. Each family below is scored by
`nnc-cleanse score --epochs 1` on a few real 8x8 digits with the loss rankings and with
SGD-influence (every layer here has second derivatives in nnabla); every run must end with exit 0
and a complete scored CSV, within a timeout that a hang would exceed.
"""
import os
import subprocess

import numpy as np
import pytest

from helpers import nnc_cleanse
from nnc_style import FAMILIES, Network, _classifier, project_text, scored_rows, write_family

TIMEOUT = 240  # seconds: each run takes a few; a hang in graph building would never end
TRAIN_ROWS = 48


def _score(cli_run, model, train, val, output, ranking, *extra):
    return cli_run("score", "-m", model, "-t", train, "-v", val, "-o", output, "--epochs", "1", "-r", ranking,
                   *extra, timeout=TIMEOUT)


@pytest.fixture
def run():
    """`nnc-cleanse` as a user runs it, with a timeout; returns the CompletedProcess."""
    def call(*args, timeout=TIMEOUT):
        return nnc_cleanse(*args, check=False, timeout=timeout)
    return call


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_layer_family_scores_with_every_ranking(tmp_path, sample_data, run, family):
    model, train, val = write_family(family, str(tmp_path), os.path.join(sample_data, "digits"),
                                     train_rows=TRAIN_ROWS)
    for ranking in ("loss-history", "loss", "sgd-influence"):
        output = tmp_path / f"{ranking}.csv"
        result = _score(run, model, train, val, output, ranking)
        assert result.returncode == 0, f"{family} {ranking}: {result.stderr}"
        assert "Traceback" not in result.stderr
        rows = scored_rows(output)
        assert len(rows) == TRAIN_ROWS
        scores = np.array([float(r[-2]) for r in rows])
        assert np.all(np.diff(scores) >= 0), "most harmful first"
        assert np.ptp(scores) > 0, f"{family} {ranking}: every row got the same score"


def _edited_recurrent(tmp_path, sample_data, run, old, new):
    """Score (loss-history) the recurrent family with one edit of its model file; return (model, result)."""
    model, train, val = write_family("recurrent", str(tmp_path), os.path.join(sample_data, "digits"), train_rows=8)
    text = open(model, encoding="utf-8").read()
    assert old in text
    open(model, "w", encoding="utf-8").write(text.replace(old, new))
    return model, _score(run, model, train, val, tmp_path / "out.csv", "loss-history")


def test_loop_without_delay_is_refused_by_name_not_hung(tmp_path, sample_data, run):
    """A recurrent network whose step reads its own output (no Delay between) cannot be computed:
    one sentence naming a layer of the loop, quickly, instead of nnabla's endless walk."""
    model, result = _edited_recurrent(tmp_path, sample_data, run, 'input: "RecurrentInput"\n    input: "Delay"',
                                      'input: "RecurrentInput"\n    input: "Tanh"')
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("nnc-cleanse: error: The layer '")
    assert "needs its own output" in message and model in message and "Delay" in message
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.csv").exists()


def test_loop_layer_with_unknown_loop_is_refused(tmp_path, sample_data, run):
    model, result = _edited_recurrent(tmp_path, sample_data, run, 'recurrent_param { repeat_id: "RecurrentInput" }',
                                      'recurrent_param { repeat_id: "Elsewhere" }')
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert "The layer 'Delay' (Delay)" in message and "'Elsewhere'" in message and model in message


# Models written by nnabla scripts: the loss is the mean (or sum) over the batch of a per-sample loss --------

def _script_style(reduction):
    """The digits classifier ending, as an nnabla script saves F.mean(F.categorical_cross_entropy(...)),
    in a Mean/Sum layer over the batch (`reduction`: (layer type, parameter text, output shape))."""
    n = Network()
    n.variable("Input", (1, 8, 8))
    network, data, loss, _, _ = _classifier(n, "Input", 64)
    kind, param, shape = reduction
    scalar = n.layer(kind, kind, [loss], shape, param=param, batch=False)
    return network, data, scalar


def _write(tmp_path, sample_data, network, data, loss, name):
    from nnc_style import digits_csv
    digits = os.path.join(sample_data, "digits", "data")
    train = digits_csv(os.path.join(digits, "train.csv"), tmp_path / "train.csv", TRAIN_ROWS)
    val = digits_csv(os.path.join(digits, "val.csv"), tmp_path / "val.csv", 16)
    model = tmp_path / f"{name}.nntxt"
    model.write_text(project_text(network, train, val, data, loss), encoding="utf-8")
    return str(model), train, val


MEAN_ALL = ("Mean", "mean_param { axes: 0 axes: 1 keep_dims: false }", ())


def test_scalar_mean_loss_of_a_script_scores_as_its_per_sample_loss(tmp_path, sample_data, run):
    """The same network with and without the final mean trains the same objective: identical scores."""
    scores = {}
    for name in ("per_sample", "scalar"):
        folder = tmp_path / name
        folder.mkdir()
        if name == "scalar":
            network, data, loss = _script_style(MEAN_ALL)
        else:
            network, data, loss, _, _ = _classifier(_input_network(), "Input", 64)
        model, train, val = _write(folder, sample_data, network, data, loss, name)
        for ranking in ("loss-history", "sgd-influence"):
            result = _score(run, model, train, val, folder / f"{ranking}.csv", ranking)
            assert result.returncode == 0, result.stderr
            rows = scored_rows(folder / f"{ranking}.csv")
            scores[name, ranking] = {int(r[-1]): float(r[-2]) for r in rows}
    for ranking in ("loss-history", "sgd-influence"):
        a, b = scores["per_sample", ranking], scores["scalar", ranking]
        assert len(a) == TRAIN_ROWS
        np.testing.assert_allclose([b[i] for i in sorted(a)], [a[i] for i in sorted(a)], rtol=1e-4, atol=1e-7)


def test_scalar_sum_loss_trains_the_summed_objective(tmp_path, sample_data, run):
    """A Sum over the batch (batch size 16) with learning rate lr/16 takes the same SGD steps as the per-sample
    network with lr, and its per-sample losses are the summed objective's: 16 times the loss."""
    scores = {}
    for name, lr in (("per_sample", 0.05), ("summed", 0.05 / 16)):
        folder = tmp_path / name
        folder.mkdir()
        if name == "summed":
            network, data, loss = _script_style(("Sum", "sum_param { axes: 0 axes: 1 keep_dims: false }", ()))
        else:
            network, data, loss, _, _ = _classifier(_input_network(), "Input", 64)
        from nnc_style import digits_csv
        digits = os.path.join(sample_data, "digits", "data")
        train = digits_csv(os.path.join(digits, "train.csv"), folder / "train.csv", TRAIN_ROWS)
        val = digits_csv(os.path.join(digits, "val.csv"), folder / "val.csv", 16)
        model = folder / f"{name}.nntxt"
        model.write_text(project_text(network, train, val, data, loss, lr=lr), encoding="utf-8")
        result = _score(run, model, train, val, folder / "out.csv", "loss-history")
        assert result.returncode == 0, result.stderr
        scores[name] = {int(r[-1]): float(r[-2]) for r in scored_rows(folder / "out.csv")}
    rows = sorted(scores["per_sample"])
    assert len(rows) == TRAIN_ROWS
    np.testing.assert_allclose([scores["summed"][i] for i in rows], [16 * scores["per_sample"][i] for i in rows],
                               rtol=1e-4)


def test_loss_mixing_the_batch_before_the_per_sample_loss_is_refused(tmp_path, sample_data, run):
    """A Sum over the batch before the final Mean: no per-sample loss exists, refused naming the Sum layer."""
    n = Network()
    n.variable("Input", (1, 8, 8))
    network, data, loss, _, _ = _classifier(n, "Input", 64)
    summed = n.layer("BatchSum", "Sum", [loss], (1, 1), param="sum_param { axes: 0 keep_dims: true }", batch=False)
    scalar = n.layer("Mean", "Mean", [summed], (), param="mean_param { axes: 0 axes: 1 keep_dims: false }",
                     batch=False)
    model, train, val = _write(tmp_path, sample_data, network, data, scalar, "mixed")
    result = _score(run, model, train, val, tmp_path / "out.csv", "loss-history")
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("nnc-cleanse: error: The loss ")
    assert "the Sum layer 'BatchSum'" in message and model in message
    assert not (tmp_path / "out.csv").exists()


def _input_network():
    n = Network()
    n.variable("Input", (1, 8, 8))
    return n


def test_benchmark_script_reports_each_network(tmp_path, sample_data):
    """benchmarks/nnc_networks.py writes its own datasets from the model files alone and tells OK from refused."""
    import sys
    from conftest import ROOT
    models = tmp_path / "models"
    models.mkdir()
    for family in ("recurrent", "auto_encoder", "binary"):
        folder = tmp_path / family
        folder.mkdir()
        model, _, _ = write_family(family, str(folder), os.path.join(sample_data, "digits"), train_rows=4)
        text = open(model, encoding="utf-8").read()
        (models / f"{family}.nntxt").write_text(text, encoding="utf-8")
    broken = text.replace('input: "Affine"\n', 'input: "Sigmoid"\n', 1)  # the binary network, in a cycle
    assert broken != text
    (models / "cycle.nntxt").write_text(broken, encoding="utf-8")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "nnc_networks.py"), str(models),
                             "--rankings", "loss-history,sgd-influence", "--timeout", "120", "--name", "test_run"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    table = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]]
             for line in result.stdout.splitlines() if line.startswith("| ") and "network" not in line}
    assert set(table) == {"recurrent", "auto_encoder", "binary", "cycle"}
    for family in ("recurrent", "auto_encoder", "binary"):
        assert all(cell.startswith("OK") for cell in table[family]), table[family]
    assert all(cell.startswith("refused (R") for cell in table["cycle"]), table["cycle"]
    assert "form a cycle" in result.stdout


def test_biases_cancelled_inside_a_repeat_block_are_found_once_unrolled(tmp_path, sample_data):
    """A Convolution bias followed by BatchNormalization inside a Repeat block: one bias per repetition."""
    from nnc_plugin.model.project import load_project
    from nnc_style import digits_csv
    loop = ("RepeatStart",)
    n = Network(repeats={"RepeatStart": 2})
    n.variable("Input", (1, 8, 8))
    start = n.layer("RepeatStart", "RepeatStart", ["Input", "ReLU"], (1, 8, 8), loop,
                    'repeat_param { repeat_id: "RepeatStart" }')
    h = n.convolution("Convolution", start, 1, (1, 8, 8), 3, 1, repeat=loop)
    statistics = [n.variable(f"BatchNormalization{{RepeatStart}}/bn/{name}", (1, 1, 1, 1), loop, True,
                             ("Constant", value)) for name, value in (("beta", 0), ("gamma", 1), ("mean", 0),
                                                                      ("var", 1))]
    h = n.layer("BatchNormalization", "BatchNormalization", [h] + statistics, (1, 8, 8), loop,
                "batch_normalization_param { axes: 1 decay_rate: 0.9 eps: 0.0001 batch_stat: true }")
    n.layer("ReLU", "ReLU", [h], (1, 8, 8), loop)
    end = n.layer("RepeatEnd", "RepeatEnd", ["ReLU"], (1, 8, 8), (), 'repeat_param { repeat_id: "RepeatStart" times: 2 }')
    network, data, loss, _, _ = _classifier(n, end, 64)
    digits = os.path.join(sample_data, "digits", "data")
    train = digits_csv(os.path.join(digits, "train.csv"), tmp_path / "train.csv", 8)
    model = tmp_path / "repeat_bn.nntxt"
    model.write_text(project_text(network, train, train, data, loss), encoding="utf-8")
    project = load_project(str(model))
    assert sorted(project.cancelled_biases) == ["Convolution[0]/conv/b", "Convolution[1]/conv/b"]
    assert "Convolution[0]/conv/b" in project.trainable_parameters


def test_loss_inside_a_loop_is_refused(tmp_path, sample_data, run):
    """Unrolled, a variable inside a loop is one per repetition: a loss there is named and refused."""
    model, result = _edited_recurrent(tmp_path, sample_data, run, 'loss_variable {\n    variable_name: "CategoricalCrossEntropy"',
                                      'loss_variable {\n    variable_name: "Tanh"')
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert "'Tanh', which is inside a loop" in message and model in message


SCRIPT = """
import sys
import nnabla as nn, nnabla.functions as F, nnabla.parametric_functions as PF, nnabla.solvers as S
from nnabla.utils.save import save
model, train, val = sys.argv[1:4]
x, t = nn.Variable((16, 1, 8, 8)), nn.Variable((16, 1))
loss = F.mean(F.softmax_cross_entropy(PF.affine(x, 10, name="fc"), t))
solver = S.Sgd(0.05)
solver.set_parameters(nn.get_parameters())
feeds = {"x": "x", "t": "y"}
save(model, {
    "global_config": {"default_context": nn.get_current_context()},
    "training_config": {"max_epoch": 1, "iter_per_epoch": 3, "save_best": True},
    "networks": [{"name": "training", "batch_size": 16, "outputs": {"loss": loss}, "names": {"x": x, "t": t}}],
    "datasets": [{"name": name, "uri": uri, "batch_size": 16, "shuffle": name == "train",
                  "no_image_normalization": False, "variables": ["x", "t"]}
                 for name, uri in (("train", train), ("valid", val))],
    "optimizers": [{"name": "optimizer", "solver": solver, "network": "training", "dataset": "train",
                    "weight_decay": 0, "lr_decay": 1, "lr_decay_interval": 1, "update_interval": 1,
                    "data_variables": feeds}],
    "monitors": [{"name": "valid_error", "network": "training", "dataset": "valid", "data_variables": feeds}],
    "executors": [{"name": "runtime", "network": "training", "data": ["x"], "output": ["loss"]}]})
"""


def test_model_saved_by_an_nnabla_script_scores(tmp_path, sample_data, run):
    """nnabla.utils.save of F.mean(F.softmax_cross_entropy(...)): the loss is a scalar; its per-sample loss serves."""
    import sys
    from nnc_style import digits_csv
    digits = os.path.join(sample_data, "digits", "data")
    train = digits_csv(os.path.join(digits, "train.csv"), tmp_path / "train.csv", TRAIN_ROWS)
    val = digits_csv(os.path.join(digits, "val.csv"), tmp_path / "val.csv", 16)
    model = tmp_path / "script.nnp"
    made = subprocess.run([sys.executable, "-c", SCRIPT, str(model), train, val], capture_output=True, text=True,
                          cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    for ranking in ("loss-history", "sgd-influence"):
        result = _score(run, model, train, val, tmp_path / f"{ranking}.csv", ranking)
        assert result.returncode == 0, result.stderr
        scores = [float(r[-2]) for r in scored_rows(tmp_path / f"{ranking}.csv")]
        assert len(scores) == TRAIN_ROWS and np.ptp(scores) > 0
