"""Shared fixtures: the sample datasets (written once per session) and small projects built from them."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "sample_projects")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import nnc_cleanse  # noqa: E402  (after the tests folder is on the path)


@pytest.fixture(scope="session")
def sample_data():
    """Make sure both sample projects' datasets exist; return the sample_projects folder."""
    needed = [os.path.join(SAMPLES, p, "data", "train_noisy_s0_flips.csv") for p in ("digits", "mnist")]
    if not all(os.path.exists(n) for n in needed):
        subprocess.run([sys.executable, os.path.join(SAMPLES, "make_datasets.py")], check=True)
    return SAMPLES


@pytest.fixture
def digits(sample_data):
    folder = os.path.join(sample_data, "digits")
    return {"model": os.path.join(folder, "digits_mlp.nntxt"),
            "train": os.path.join(folder, "data", "train.csv"),
            "val": os.path.join(folder, "data", "val.csv"),
            "test": os.path.join(folder, "data", "test.csv"),
            "folder": folder}


@pytest.fixture
def mnist(sample_data):
    folder = os.path.join(sample_data, "mnist")
    return {"model": os.path.join(folder, "mnist_cnn.nntxt"),
            "train": os.path.join(folder, "data", "train.csv"),
            "noisy": os.path.join(folder, "data", "train_noisy_s0.csv"),
            "flips": os.path.join(folder, "data", "train_noisy_s0_flips.csv"),
            "val": os.path.join(folder, "data", "val.csv"),
            "folder": folder}


@pytest.fixture
def cli():
    """Run the installed `nnc-cleanse` command as a user would (helpers.nnc_cleanse); return the CompletedProcess."""
    return nnc_cleanse


@pytest.fixture(scope="session")
def scored_digits(tmp_path_factory, sample_data):
    """The digits training set scored once by SGD-influence (2 epochs), shared by the cleanse and report tests."""
    folder = tmp_path_factory.mktemp("scored")
    digits = os.path.join(sample_data, "digits")
    output = folder / "influence.csv"
    nnc_cleanse("score", "-m", os.path.join(digits, "digits_mlp.nntxt"), "-o", output, "--epochs", "2",
                "--ranking", "sgd-influence")
    return {"csv": str(output), "train": os.path.join(digits, "data", "train.csv"),
            "val": os.path.join(digits, "data", "val.csv"), "model": os.path.join(digits, "digits_mlp.nntxt")}


# The subprocesses the tests start (nnc-cleanse, the plugin scripts, the benchmarks) import the
# package of this checkout, not another copy that an editable install may point at.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)
