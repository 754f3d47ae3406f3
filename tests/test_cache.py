"""The trial cache: reused only when finished and made from the same inputs, and it says why not."""
import json
import os

import numpy as np
import pytest

from helpers import softmax_regression_project, subset_csv
from nnc_plugin.data.dataset import read_dataset
from nnc_plugin.errors import UserError
from nnc_plugin.model.network import Model
from nnc_plugin.model.project import load_project
from nnc_plugin.training.cache import FORMAT_VERSION, TrialCache, cache_folder, check_cache_folder, trial_key
from nnc_plugin.training.trainer import TrainingPlan, train

SETTINGS = {"epochs": 2, "batch_size": 32}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sample_data):
    """A real (tiny) training run: softmax regression on 16 digits, one epoch."""
    folder = tmp_path_factory.mktemp("trained")
    data = read_dataset(subset_csv(os.path.join(sample_data, "digits", "data", "train.csv"), folder / "train.csv", 16))
    project = load_project(softmax_regression_project(str(folder), solver="Adam", lr=0.01))
    model = Model(project, seed=0)
    return project, model, train(model, data, TrainingPlan(epochs=1, batch_size=8, seed=0))


def _finished(folder, key, trained):
    _, model, record = trained
    cache = TrialCache(str(folder))
    cache.start()
    cache.save_training(model, record, key, {"seed": 0})
    return cache


def test_saved_training_loads_back_the_same(tmp_path, trained):
    project, model, record = trained
    key = trial_key(b"model", np.arange(3), 0, SETTINGS)
    cache = _finished(tmp_path / "trial_0", key, trained)
    fresh = Model(project, seed=1)
    loaded = cache.load_training(fresh)
    for name, values in model.parameter_arrays().items():
        np.testing.assert_array_equal(fresh.parameter_arrays()[name], values)
    np.testing.assert_array_equal(loaded.schedule.indices, record.schedule.indices)
    np.testing.assert_array_equal(loaded.schedule.learning_rates, record.schedule.learning_rates)
    np.testing.assert_array_equal(loaded.loss_history, record.loss_history)
    assert loaded.final_loss == record.final_loss and loaded.epoch_seconds == record.epoch_seconds
    assert sorted(loaded.final_factors) == sorted(record.final_factors)  # Adam: the step factors at the end
    for name, values in record.final_factors.items():
        np.testing.assert_array_equal(loaded.final_factors[name], values)


def test_a_finished_cache_is_reused_only_for_the_same_inputs(tmp_path, trained):
    key = trial_key(b"model", np.arange(3), 0, SETTINGS)
    cache = _finished(tmp_path / "trial_0", key, trained)
    assert cache.reusable(key) == (True, "")
    assert cache.reusable(trial_key(b"other model", np.arange(3), 0, SETTINGS)) == (False, "the model changed")
    assert cache.reusable(trial_key(b"model", np.arange(4), 0, SETTINGS)) == (False, "the training data changed")
    assert cache.reusable(trial_key(b"model", np.arange(3), 1, SETTINGS)) == (False, "the seed changed (0 -> 1)")
    assert cache.reusable(trial_key(b"model", np.arange(3), 0, dict(SETTINGS, epochs=3))) == (
        False, "the settings changed (epochs 2 -> 3)")
    both = cache.reusable(trial_key(b"other", np.arange(4), 0, SETTINGS))[1]
    assert both == "the model changed and the training data changed"


def test_an_unfinished_or_damaged_cache_is_not_reused(tmp_path, trained):
    key = trial_key(b"model", b"data", 0, SETTINGS)
    cache = TrialCache(str(tmp_path / "trial_0"))
    assert cache.reusable(key) == (False, "")  # nothing there: nothing to say
    _finished(cache.folder, key, trained)
    os.remove(cache.manifest_path)  # as if the run had stopped before its last write
    assert cache.reusable(key) == (False, "the training cached there did not finish")
    cache.finish(key, {})
    os.remove(os.path.join(cache.folder, "final.h5"))
    assert cache.reusable(key) == (False, "its file final.h5 is missing")
    with open(cache.manifest_path, "w") as f:
        json.dump({"format": FORMAT_VERSION - 1, "fingerprint": "x"}, f)
    assert cache.reusable(key) == (False, "it was written by another version of nnc-cleanse")


def test_the_manifest_is_written_last_and_whole(tmp_path, trained):
    key = trial_key(b"model", b"data", 0, SETTINGS)
    cache = _finished(tmp_path / "trial_0", key, trained)
    stored = ["final.h5", "final_factors.npz", "loss_history.npy", "schedule.npz", "untrained.npz"]
    assert sorted(os.listdir(cache.folder)) == sorted(stored + ["manifest.json", "steps"])
    with open(cache.manifest_path) as f:
        manifest = json.load(f)
    assert manifest["files"] == stored and manifest["inputs"] == key
    assert manifest["final_loss"] == trained[2].final_loss and manifest["seed"] == 0


def test_a_folder_holding_other_files_is_never_emptied(tmp_path):
    folder = tmp_path / "cache" / "trial_0"
    folder.mkdir(parents=True)
    (folder / "thesis.docx").write_text("years of work")
    with pytest.raises(UserError, match="holds 'thesis.docx', which nnc-cleanse did not write"):
        check_cache_folder(str(tmp_path / "cache"), 1)
    with pytest.raises(UserError, match="thesis.docx"):
        TrialCache(str(folder)).start()
    TrialCache(str(folder)).discard()
    assert (folder / "thesis.docx").read_text() == "years of work"


def test_an_unfinished_run_is_discarded_and_a_finished_one_kept(tmp_path, trained):
    key = trial_key(b"model", b"data", 0, SETTINGS)
    unfinished = TrialCache(str(tmp_path / "trial_0"))
    unfinished.start()
    unfinished.discard()
    assert not os.path.exists(unfinished.folder)
    finished = _finished(tmp_path / "trial_1", key, trained)
    finished.discard()
    assert finished.reusable(key) == (True, "")


def test_cache_folder_made_for_a_failed_run_is_removed(tmp_path):
    root = tmp_path / "new" / "deeper" / "cache"
    with pytest.raises(RuntimeError):
        with cache_folder(str(root)):
            assert root.is_dir()
            raise RuntimeError("training failed")
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(RuntimeError):
        with cache_folder(str(existing)):
            raise RuntimeError("training failed")
    assert existing.is_dir()  # not made by the run: left alone


def test_cache_folder_that_cannot_be_made_is_refused(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(UserError, match="cannot be made because .* is a file"):
        check_cache_folder(str(a_file / "cache"), 1)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "trial_1").write_text("")
    with pytest.raises(UserError, match="holds a file named trial_1"):
        check_cache_folder(str(tmp_path / "cache"), 2)
