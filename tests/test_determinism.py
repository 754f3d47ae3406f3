"""Same inputs and seed, same output CSV, byte for byte: from scratch twice, and from a reused cache."""
import os

import pytest

from helpers import variant


def _noisy_dropout_adam(digits, folder):
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


def _score(cli, model, output, *extra, ranking="sgd-influence"):
    result = cli("score", "-m", model, "-o", output, "--epochs", "2", "-r", ranking, *extra)
    return output.read_bytes(), result.stderr


@pytest.mark.parametrize("ranking", ["sgd-influence", "loss-history"])
def test_same_inputs_and_seed_give_identical_csv(tmp_path, digits, cli, ranking):
    first, _ = _score(cli, digits["model"], tmp_path / "a" / "influence.csv", "-nt", "2", ranking=ranking)
    second, _ = _score(cli, digits["model"], tmp_path / "b" / "influence.csv", "-nt", "2", ranking=ranking)
    assert first == second
    other_seed, _ = _score(cli, digits["model"], tmp_path / "c" / "influence.csv", "-nt", "2", "--seed", "1",
                           ranking=ranking)
    assert other_seed != first  # the seed does matter


def test_random_layers_and_generators_are_reproducible_and_survive_the_cache(tmp_path, digits, cli):
    model = _noisy_dropout_adam(digits, tmp_path)
    fresh, log = _score(cli, model, tmp_path / "a" / "influence.csv")
    assert "Scoring with a copy of the network 'Main' in evaluation mode" in log
    again, _ = _score(cli, model, tmp_path / "b" / "influence.csv")
    assert fresh == again
    reused, log = _score(cli, model, tmp_path / "a" / "influence.csv")
    assert "reusing the training cached" in log
    assert reused == fresh


def test_influence_from_a_reused_cache_equals_the_fresh_run(tmp_path, digits, cli):
    """The snapshots of the last epoch that `influence` averages over come back from the cache too."""
    fresh, _ = _score(cli, digits["model"], tmp_path / "a" / "influence.csv", ranking="influence")
    reused, log = _score(cli, digits["model"], tmp_path / "a" / "influence.csv", ranking="influence")
    assert "reusing the training cached" in log
    assert reused == fresh
