"""The on-disk cache of one training run (a trial), under a stable name.

Layout of `<cache-dir>/trial_<k>/`:

    manifest.json          what was trained, from which inputs (a fingerprint), and timings
    final.h5               the final parameters (nnabla's parameter file format)
    schedule.npz           the traced epochs' minibatches: sample indices and learning rate per step
    final_factors.npz      adaptive solvers only: the solver's per-parameter step factors at the end
    steps/params_<t>.h5    --mode all only: the parameters before each traced step
    steps/factors_<t>.npz  --mode all with an adaptive solver: step factors after each traced step

`manifest.json` is written last, so a run killed half-way leaves a cache that is not reused.
"""
import hashlib
import json
import os
import shutil

import numpy as np

FORMAT_VERSION = 1


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


class TrialCache:
    """Paths and bookkeeping of one trial's cache folder."""

    def __init__(self, folder):
        self.folder = folder

    @property
    def manifest_path(self):
        return os.path.join(self.folder, "manifest.json")

    @property
    def final_parameters(self):
        return os.path.join(self.folder, "final.h5")

    @property
    def schedule(self):
        return os.path.join(self.folder, "schedule.npz")

    @property
    def final_factors(self):
        return os.path.join(self.folder, "final_factors.npz")

    def step_parameters(self, t):
        return os.path.join(self.folder, "steps", f"params_{t:06d}.h5")

    def step_factors(self, t):
        return os.path.join(self.folder, "steps", f"factors_{t:06d}.npz")

    def read_manifest(self):
        try:
            with open(self.manifest_path, "r", encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def matches(self, key):
        """True when the folder holds a finished run made from the inputs summarised by `key`."""
        manifest = self.read_manifest()
        return bool(manifest) and manifest.get("fingerprint") == key

    def start(self):
        """Empty the folder for a new run (the old manifest goes first, so a crash leaves no stale cache)."""
        if os.path.exists(self.manifest_path):
            os.remove(self.manifest_path)
        if os.path.isdir(self.folder):
            shutil.rmtree(self.folder)
        os.makedirs(os.path.join(self.folder, "steps"), exist_ok=True)

    def finish(self, key, details):
        manifest = dict(details, fingerprint=key, format=FORMAT_VERSION)
        temporary = self.manifest_path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
        os.replace(temporary, self.manifest_path)

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
