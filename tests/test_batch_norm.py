"""Networks with BatchNormalization: SGD-influence follows the network as it was trained.

Training normalises with minibatch statistics, scoring with the running averages. The traced
steps are differentiated with a copy of the training network (minibatch statistics on, running
averages frozen), and parameter values no training gradient reached (the bias of a convolution
right before BatchNormalization) are left out of the propagation.
"""
import os

import numpy as np
import pytest

from helpers import conv_batch_norm_project, read_csv, subset_csv
from nnc_plugin.training import step_size
from nnc_plugin.data.dataset import read_dataset
from nnc_plugin.scores.gradients import BatchedDirectional
from nnc_plugin.model.network import Model
from nnc_plugin.options import ScoreOptions
from nnc_plugin.pipeline import score
from nnc_plugin.model.project import load_project


def _bn_layer(project, network_name):
    network = next(n for n in project.proto.network if n.name == network_name)
    return next(f for f in network.function if f.type == "BatchNormalization").batch_normalization_param


def test_influence_network_keeps_minibatch_statistics_and_freezes_running_averages(tmp_path, digits):
    project = load_project(conv_batch_norm_project(str(tmp_path)))
    assert project.eval_network == "MainValidation" and project.influence_batch_statistics
    assert _bn_layer(project, project.eval_network).batch_stat is False
    influence = _bn_layer(project, project.influence_network)
    assert influence.batch_stat is True and influence.decay_rate == 1.0
    assert _bn_layer(project, project.train_network).decay_rate == pytest.approx(0.9)  # the file is as it was
    assert project.cancelled_biases == ["Convolution/conv/b"]
    assert load_project(digits["model"]).cancelled_biases == []
    sample = load_project(os.path.join(os.path.dirname(digits["model"]), "digits_conv_bn.nntxt"))
    assert sample.influence_batch_statistics and sample.cancelled_biases == ["Convolution/conv/b"]

    model = Model(project, seed=0)
    running = {n: model.all_parameters[n].d.copy() for n in model.all_parameters if n.endswith(("mean", "var"))}
    for name in running:  # as after training: averages away from their initial values
        model.all_parameters[name].d = np.random.RandomState(1).uniform(0.5, 1.5, running[name].shape).astype(np.float32)
        running[name] = model.all_parameters[name].d.copy()
    data = read_dataset(digits["train"])
    direction = [np.ones(p.shape, dtype=np.float32) for p in model.parameters.values()]
    scores, _ = BatchedDirectional(model, batch_size=32)(data, np.arange(20), direction)
    assert np.all(np.isfinite(scores))
    for name, values in running.items():
        assert np.array_equal(model.all_parameters[name].d, values), name


def test_batched_path_equals_per_sample_reference_with_minibatch_statistics(tmp_path, digits):
    """100 rows, batch size 32: three full minibatches and one of 4 rows, each differentiated as trained."""
    train_csv = subset_csv(digits["train"], tmp_path / "train.csv", 100)
    val_csv = subset_csv(digits["val"], tmp_path / "val.csv", 64)
    model = conv_batch_norm_project(str(tmp_path), str(train_csv), str(val_csv), lr=0.05)
    results = {}
    for reference in (False, True):
        results[reference] = score(ScoreOptions(
            model=model, input_train=str(train_csv), input_val=str(val_csv), epochs=2, ranking="sgd-influence",
            output=str(tmp_path / f"ref{reference}" / "influence.csv"), cache_dir=str(tmp_path / "cache"),
            reference=reference)).scores
    fast, slow = results[False], results[True]
    assert np.abs(slow).max() > 0
    assert np.abs(fast - slow).max() / np.abs(slow).max() < 1e-4


@pytest.mark.parametrize("solver", ["Adam", "Momentum"])
def test_bias_before_batch_norm_is_left_out_and_scores_stay_bounded(tmp_path, digits, cli, solver):
    """The bias before BatchNormalization gets no training gradient; with Adam its step factor,
    1/sqrt(mean squared gradient), was about 1e7 and the scores overflowed. Both modes must now
    give finite scores of the order of the validation loss's change, and agree with each other."""
    lr = 0.001 if solver == "Adam" else 0.05
    model = conv_batch_norm_project(str(tmp_path), digits["train"], digits["val"], lr=lr, epochs=3, solver=solver)
    scores = {}
    for mode in ("final", "all"):
        output = tmp_path / mode / "influence.csv"
        result = cli("score", "-m", model, "-t", digits["train"], "-v", digits["val"], "-o", str(output),
                     "--ranking", "sgd-influence", "--mode", mode, "--cache-dir", str(tmp_path / mode / "cache"))
        assert result.returncode == 0, result.stderr
        assert "leave out Convolution/conv/b" in result.stderr
        assert "grew" not in result.stderr  # no unstable propagation
        rows = read_csv(output)
        column, index = rows[0].index("influence"), rows[0].index("datasource_index")
        scores[mode] = dict((int(r[index]), float(r[column])) for r in rows[1:])
    final = np.array([scores["final"][k] for k in sorted(scores["final"])])
    exact = np.array([scores["all"][k] for k in sorted(scores["final"])])
    assert np.all(np.isfinite(final)) and np.abs(final).max() < 1.0
    assert np.corrcoef(final, exact)[0, 1] > 0.5


def test_untrained_elements_are_those_far_below_the_network_gradient_scale():
    mean_squares = {"w": np.full((3, 4), 1e-4), "b_before_bn": np.full(4, 1e-20), "mixed": np.array([1e-4, 0.0, 1e-6])}
    unreached = step_size.untrained_elements(mean_squares)
    assert sorted(unreached) == ["b_before_bn", "mixed"]
    assert unreached["b_before_bn"].tolist() == [0, 1, 2, 3] and unreached["mixed"].tolist() == [1]
    masks = step_size.reached_masks(unreached, {"b_before_bn": (4,), "mixed": (3,)})
    assert masks["mixed"].tolist() == [1.0, 0.0, 1.0] and not masks["b_before_bn"].any()


def _layer_then(normalization, **parameters):
    """A network proto: Convolution (bias b) -> `normalization`."""
    from nnabla.utils import nnabla_pb2
    network = nnabla_pb2.Network()
    conv = network.function.add(name="conv", type="Convolution", input=["x", "W", "b"], output=["y"])
    conv.convolution_param.base_axis = 1
    norm = network.function.add(name="norm", type=normalization, input=["y"], output=["z"])
    for field, values in parameters.items():
        for key, value in values.items():
            if isinstance(value, list):
                getattr(getattr(norm, field), key).extend(value)
            else:
                setattr(getattr(norm, field), key, value)
    return network


@pytest.mark.parametrize("normalization, parameters, cancelled", [
    ("BatchNormalization", {"batch_normalization_param": {"axes": [1], "batch_stat": True}}, True),
    ("BatchNormalization", {"batch_normalization_param": {"axes": [1], "batch_stat": False}}, False),
    ("BatchNormalization", {"batch_normalization_param": {"axes": [2], "batch_stat": True}}, False),
    ("InstanceNormalization", {"instance_normalization_param": {"channel_axis": 1}}, True),
    ("LayerNormalization", {}, False),
    ("ReLU", {}, False),
])
def test_biases_a_normalisation_cancels_are_found_from_the_network(normalization, parameters, cancelled):
    from nnc_plugin.model.graph_facts import cancelled_biases
    network = _layer_then(normalization, **parameters)
    assert cancelled_biases(network, ["W", "b"]) == (["b"] if cancelled else [])
    network.function.add(name="skip", type="Identity", input=["y"], output=["y2"])  # a second consumer
    assert cancelled_biases(network, ["W", "b"]) == []
