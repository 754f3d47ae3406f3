"""Same inputs and seed, same output CSV, byte for byte: from scratch twice, and from a reused cache."""
import pytest

from helpers import noisy_dropout_adam


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
    model = noisy_dropout_adam(digits, tmp_path)
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
