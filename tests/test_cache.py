"""The trial cache: reused only when finished and made from the same inputs, and it says why not."""
import json
import os

import numpy as np
import pytest

from nnc_plugin.cache import FORMAT_VERSION, TrialCache, cache_folder, check_cache_folder, trial_key
from nnc_plugin.errors import UserError

SETTINGS = {"epochs": 2, "batch_size": 32}


def _finished(folder, key):
    cache = TrialCache(str(folder))
    cache.start()
    with open(cache.final_parameters, "wb") as f:
        f.write(b"parameters")
    cache.finish(key, {"final_loss": 0.5})
    return cache


def test_a_finished_cache_is_reused_only_for_the_same_inputs(tmp_path):
    key = trial_key(b"model", np.arange(3), 0, SETTINGS)
    cache = _finished(tmp_path / "trial_0", key)
    assert cache.reusable(key) == (True, "")
    assert cache.reusable(trial_key(b"other model", np.arange(3), 0, SETTINGS)) == (False, "the model changed")
    assert cache.reusable(trial_key(b"model", np.arange(4), 0, SETTINGS)) == (False, "the training data changed")
    assert cache.reusable(trial_key(b"model", np.arange(3), 1, SETTINGS)) == (False, "the seed changed (0 -> 1)")
    assert cache.reusable(trial_key(b"model", np.arange(3), 0, dict(SETTINGS, epochs=3))) == (
        False, "the settings changed (epochs 2 -> 3)")
    both = cache.reusable(trial_key(b"other", np.arange(4), 0, SETTINGS))[1]
    assert both == "the model changed and the training data changed"


def test_an_unfinished_or_damaged_cache_is_not_reused(tmp_path):
    key = trial_key(b"model", b"data", 0, SETTINGS)
    cache = TrialCache(str(tmp_path / "trial_0"))
    assert cache.reusable(key) == (False, "")  # nothing there: nothing to say
    cache.start()
    with open(cache.final_parameters, "wb") as f:
        f.write(b"half")
    assert cache.reusable(key) == (False, "the training cached there did not finish")
    cache.finish(key, {})
    os.remove(cache.final_parameters)
    assert cache.reusable(key) == (False, "its file final.h5 is missing")
    with open(cache.manifest_path, "w") as f:
        json.dump({"format": FORMAT_VERSION - 1, "fingerprint": "x"}, f)
    assert cache.reusable(key) == (False, "it was written by another version of nnc-cleanse")


def test_the_manifest_is_written_last_and_whole(tmp_path):
    key = trial_key(b"model", b"data", 0, SETTINGS)
    cache = _finished(tmp_path / "trial_0", key)
    assert sorted(os.listdir(cache.folder)) == ["final.h5", "manifest.json", "steps"]
    with open(cache.manifest_path) as f:
        manifest = json.load(f)
    assert manifest["files"] == ["final.h5"] and manifest["inputs"] == key and manifest["final_loss"] == 0.5


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


def test_an_unfinished_run_is_discarded_and_a_finished_one_kept(tmp_path):
    key = trial_key(b"model", b"data", 0, SETTINGS)
    unfinished = TrialCache(str(tmp_path / "trial_0"))
    unfinished.start()
    unfinished.discard()
    assert not os.path.exists(unfinished.folder)
    finished = _finished(tmp_path / "trial_1", key)
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
