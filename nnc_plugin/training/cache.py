"""The on-disk cache of one training run (a trial), under a stable name.

Layout of `<cache-dir>/trial_<k>/`:

    manifest.json          what was trained, from which inputs (a fingerprint), and timings
    final.h5               the final parameters (nnabla's parameter file format)
    schedule.npz           the traced epochs' minibatches: sample indices and learning rate per step
    loss_history.npy       each sample's training loss, averaged over the second half of the epochs
    final_factors.npz      adaptive solvers only: the solver's per-parameter step factors at the end
    untrained.npz          the parameter values the traced steps' gradients never reached (step_size.py)
    steps/params_<t>.h5    --mode all only: the parameters before each traced step
    steps/checkpoint_<e>.h5  --ranking tracin-cp: the parameters at the end of epoch e (the last epochs)
    snapshot_gradient.npz  --ranking influence: the validation loss's gradient gathered at points of the last epoch
                           (snapshots.py)
    steps/factors_<t>.npz  --mode all with an adaptive solver: step factors after each traced step

`manifest.json` is written last, so a run killed half-way leaves a cache that is not reused
(and a run that fails or is interrupted while training removes its unfinished folder). The
manifest records what the run was made from, part by part (the model, the training data, the
seed and the settings), so a rerun can say which of them changed when it trains again.
"""
import contextlib
import functools
import hashlib
import json
import os
import shutil

import numpy as np

from ..errors import UserError
from ..files import can_create_in, existing_ancestor

FORMAT_VERSION = 6
# What a trial folder may hold; anything else means the folder is not ours to delete.
CACHE_ENTRIES = ("manifest.json", "manifest.json.tmp", "final.h5", "schedule.npz", "final_factors.npz",
                 "untrained.npz", "loss_history.npy", "snapshot_gradient.npz", "steps")


def fingerprint(*parts):
    """Return a hex digest of the inputs that determine a training run (bytes, arrays, or JSON-able values)."""
    digest = hashlib.sha256()
    digest.update(f"nnc-cleanse-cache-v{FORMAT_VERSION}".encode())
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(str((part.dtype.str, part.shape)).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, bytes):
            digest.update(part)
        else:
            digest.update(json.dumps(part, sort_keys=True).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def trial_key(model, training_data, seed, settings, validation_data=None):
    """Return what a training run is made from, as {part: digest or plain value}, for the manifest.

    `model`, `training_data` and `validation_data` (where the training keeps something of it: snapshots.py) are
    bytes, arrays or JSON-able values and are stored as digests; `seed` and `settings` (a dict of JSON-able
    values) are stored as they are, so a rerun can say which setting changed.
    """
    key = {"model": fingerprint(model), "training data": fingerprint(training_data),
           "seed": seed, "settings": json.loads(json.dumps(settings, sort_keys=True))}
    if validation_data is not None:
        key["validation data"] = fingerprint(validation_data)
    return key


def _differences(stored, key):
    """Plain words for the parts of `key` that differ from `stored` (both from `trial_key`)."""
    changed = []
    for part, value in key.items():
        old = stored.get(part)
        if isinstance(value, dict) and isinstance(old, dict):
            fields = [f"{name} {old.get(name)!r} -> {value[name]!r}" for name in sorted(value) if old.get(name) != value[name]]
            fields += [f"{name} removed" for name in sorted(old) if name not in value]
            if fields:
                changed.append(f"the settings changed ({', '.join(fields)})")
        elif old != value:
            changed.append(f"the {part} changed" if part != "seed" else f"the seed changed ({old} -> {value})")
    return changed


def check_cache_folder(root, n_trials):
    """Refuse a cache folder that cannot hold the cache, or whose trial folders hold files that are not ours.

    Called before any training, so a bad --cache-dir is reported at once and a user's own folder
    is never emptied.
    """
    existing = existing_ancestor(root)
    if not os.path.isdir(existing):
        raise UserError(f"The cache folder {root} cannot be made because {existing} is a file; "
                        "choose another --cache-dir (or output name).")
    if not can_create_in(existing):
        raise UserError(f"The cache folder {root} cannot be written (no permission in {existing}); "
                        "choose another --cache-dir in a folder you can write to.")
    for trial in range(n_trials):
        folder = os.path.join(root, f"trial_{trial}")
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise UserError(f"The cache folder {root} holds a file named trial_{trial}, where the cache of trial "
                            f"{trial + 1} goes; choose another --cache-dir so that file is kept.")
        foreign = TrialCache(folder).foreign_entries()
        if foreign:
            raise UserError(f"The cache folder {folder} holds '{foreign[0]}', which nnc-cleanse did not write; "
                            "choose another --cache-dir so that file is kept.")


@contextlib.contextmanager
def cache_folder(root):
    """Make the cache folder for a run; if the run fails and leaves it empty, remove it again (only if made here)."""
    made = []  # the folders made here, innermost first
    folder = os.path.abspath(root)
    while not os.path.exists(folder):
        made.append(folder)
        folder = os.path.dirname(folder)
    os.makedirs(root, exist_ok=True)
    try:
        yield root
    except BaseException:
        for folder in made:
            try:
                os.rmdir(folder)  # only succeeds when empty
            except OSError:
                break
        raise


def _writes(method):
    """A method that writes the cache does nothing in a process that only reads it (TrialCache.writable)."""
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        return method(self, *args, **kwargs) if self.writable else None
    return guarded


class TrialCache:
    """One trial's cache folder: the only code that names, writes and reads its files."""

    def __init__(self, folder, writable=True):
        self.folder = folder
        # In a data-parallel run every process reads the cache and process 0 alone writes it.
        self.writable = writable

    @property
    def manifest_path(self):
        return os.path.join(self.folder, "manifest.json")

    def _path(self, name):
        return os.path.join(self.folder, name)

    def _step_path(self, kind, t):
        return os.path.join(self.folder, "steps", f"{kind}_{t:06d}" + (".npz" if kind == "factors" else ".h5"))

    # What training writes and scoring reads -------------------------------------------
    @_writes
    def save_training(self, model, record, key, details):
        """Store a finished training run (the model's final parameters and its `record`), manifest last."""
        model.save_parameters(self._path("final.h5"))
        record.schedule.save(self._path("schedule.npz"))
        np.save(self._path("loss_history.npy"), record.loss_history)
        save_arrays(self._path("untrained.npz"), record.untrained)
        if record.final_factors is not None:
            save_arrays(self._path("final_factors.npz"), record.final_factors)
        if record.snapshot_gradient is not None:
            save_arrays(self._path("snapshot_gradient.npz"), dict(enumerate(record.snapshot_gradient)))
        self.finish(key, dict(details, epoch_seconds=record.epoch_seconds, final_loss=record.final_loss,
                              epoch_losses=record.epoch_losses, solver_steps=record.solver_steps,
                              checkpoints=record.checkpoints, snapshots=record.snapshots))

    def load_training(self, model):
        """Put the cached final parameters into `model`; return the cached `TrainingRecord`."""
        from .trainer import Schedule, TrainingRecord  # the trainer's types; it writes nothing itself

        manifest = self.read_manifest()
        record = TrainingRecord(schedule=Schedule.load(self._path("schedule.npz")),
                                epoch_seconds=manifest["epoch_seconds"], final_loss=manifest["final_loss"],
                                epoch_losses=manifest["epoch_losses"], solver_steps=manifest["solver_steps"],
                                checkpoints=[tuple(c) for c in manifest["checkpoints"]],
                                loss_history=np.load(self._path("loss_history.npy")),
                                untrained=load_arrays(self._path("untrained.npz")),
                                snapshots=manifest.get("snapshots", 0))
        if os.path.isfile(self._path("final_factors.npz")):
            record.final_factors = load_arrays(self._path("final_factors.npz"))
        if os.path.isfile(self._path("snapshot_gradient.npz")):
            record.snapshot_gradient = list(load_arrays(self._path("snapshot_gradient.npz")).values())
        model.load_parameters(self._path("final.h5"))
        return record

    @_writes
    def save_step_parameters(self, t, model):
        """--mode all: the parameters before traced step t."""
        model.save_parameters(self._step_path("params", t))

    def load_step_parameters(self, t, model):
        model.load_parameters(self._step_path("params", t))

    @_writes
    def save_step_factors(self, t, factors):
        """--mode all with an adaptive solver: the step factors of traced step t ({parameter: array})."""
        save_arrays(self._step_path("factors", t), factors)

    @_writes
    def save_checkpoint(self, epoch, model):
        """The parameters at the end of `epoch` (0-based), for rankings that revisit training (TracIn-CP)."""
        model.save_parameters(self._step_path("checkpoint", epoch))

    def load_checkpoint(self, epoch, model):
        model.load_parameters(self._step_path("checkpoint", epoch))

    def step_factors(self, t):
        return load_arrays(self._step_path("factors", t))

    def read_manifest(self):
        try:
            with open(self.manifest_path, "r", encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def reusable(self, key):
        """Return (True, "") when the folder holds a finished run made from `key`, else (False, why not).

        `why not` is "" when nothing was cached there, otherwise plain words such as
        "the training data changed", for the log.
        """
        if not os.path.isdir(self.folder):
            return False, ""
        manifest = self.read_manifest()
        if manifest is None:
            if os.listdir(self.folder):
                return False, "the training cached there did not finish"
            return False, ""
        if manifest.get("format") != FORMAT_VERSION or not isinstance(manifest.get("inputs"), dict):
            return False, "it was written by another version of nnc-cleanse"
        changed = _differences(manifest["inputs"], key)
        if changed:
            return False, " and ".join(changed)
        missing = [name for name in manifest.get("files", []) if not os.path.isfile(os.path.join(self.folder, name))]
        if missing:
            return False, f"its file {missing[0]} is missing"
        return True, ""

    def foreign_entries(self):
        """Names in the folder that a trial cache never holds (a sign the folder is not ours)."""
        if not os.path.isdir(self.folder):
            return []
        return sorted(name for name in os.listdir(self.folder) if name not in CACHE_ENTRIES)

    @_writes
    def start(self):
        """Empty the folder for a new run (the old manifest goes first, so a crash leaves no stale cache)."""
        foreign = self.foreign_entries()
        if foreign:
            raise UserError(f"The cache folder {self.folder} holds '{foreign[0]}', which nnc-cleanse did not write; "
                            "choose another --cache-dir so that file is kept.")
        if os.path.exists(self.manifest_path):
            os.remove(self.manifest_path)
        if os.path.isdir(self.folder):
            shutil.rmtree(self.folder)
        os.makedirs(os.path.join(self.folder, "steps"), exist_ok=True)

    @_writes
    def discard(self):
        """Remove an unfinished run's folder (a finished one, with its manifest, is kept)."""
        if os.path.isdir(self.folder) and self.read_manifest() is None and not self.foreign_entries():
            shutil.rmtree(self.folder, ignore_errors=True)

    @_writes
    def finish(self, key, details):
        """Write the manifest (last): the run in this folder is complete and made from `key`."""
        files = sorted(os.path.relpath(os.path.join(root, name), self.folder)
                       for root, _, names in os.walk(self.folder) for name in names)
        manifest = dict(details, inputs=key, fingerprint=fingerprint(key), format=FORMAT_VERSION, files=files)
        temporary = self.manifest_path + ".tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump(manifest, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.manifest_path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)

    def size_bytes(self):
        """Bytes on disk of everything the run cached (the manifest included)."""
        total = 0
        for root, _, files in os.walk(self.folder):
            total += sum(os.path.getsize(os.path.join(root, name)) for name in files)
        return total


def save_arrays(path, arrays):
    """Write {name: array} to an .npz file (names may contain '/')."""
    with open(path, "wb") as f:
        np.savez(f, **{f"a{i}": a for i, a in enumerate(arrays.values())}, names=np.array(list(arrays)))


def load_arrays(path):
    with np.load(path, allow_pickle=False) as data:
        names = [str(n) for n in data["names"]]
        return {name: data[f"a{i}"] for i, name in enumerate(names)}
