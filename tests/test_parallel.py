"""Several processes with mpiexec (the `mpi` extra: mpi4py and the MPICH wheel), on CPU."""
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from helpers import noisy_dropout_adam, read_csv, run_command, subset_csv, tool, with_dropout

MPIEXEC = tool("mpiexec")
pytestmark = pytest.mark.skipif(not os.path.exists(MPIEXEC), reason="the mpi extra is not installed")


def _score(processes, *args, wait=True):
    command = [MPIEXEC, "-n", str(processes)] if processes > 1 else []
    command += [tool("nnc-cleanse"), "score", *map(str, args)]
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return run_command(*command, timeout=600)


def _scores(path):
    rows = read_csv(path)[1:]
    by_row = {int(r[-1]): float(r[-2]) for r in rows}
    return np.array([by_row[i] for i in range(len(by_row))])


@pytest.fixture
def small_digits(tmp_path, digits):
    return ["-m", digits["model"], "-t", subset_csv(digits["train"], tmp_path / "train.csv", 300), "-v", digits["val"],
            "-e", "2"]


# influence's and tracin-cp's finite differences divide the float32 rounding of two losses by a small step:
# 1e-5 of the largest score there, against 1e-7 for the others
# influence's scores are in units of their median deviation (scores/loss_witness.py): a row's rounding, about 1e-5
# of the largest score, is up to 1e-4 of that unit, so the common scale itself differs by that much between runs
TOLERANCE = {"influence": 1e-3, "tracin-cp": 5e-5}
_SINGLE = {}  # (network, rows, ranking) -> one process's scores, computed once for the module


def _one_process(tmp_path_factory, digits, network, rows, ranking):
    key = (network, rows, ranking)
    if key not in _SINGLE:
        folder = tmp_path_factory.mktemp("single")
        arguments = _arguments(folder, digits, network, rows)
        result = _score(1, *arguments, "-r", ranking, "-o", folder / "influence.csv")
        assert result.returncode == 0, result.stderr
        _SINGLE[key] = _scores(folder / "influence.csv")
    return _SINGLE[key]


def _arguments(folder, digits, network, rows):
    model = digits["model"] if network == "mlp" else with_dropout(digits["model"], folder / "dropout.nntxt")
    return ["-m", model, "-t", subset_csv(digits["train"], folder / "train.csv", rows), "-v", digits["val"], "-e", "2"]


# Batch size 32: 301 rows leave a last minibatch of 13 rows, 250 rows one of 26, 97 rows one of 1; none of the sizes
# divides by 3 or 4 either, so the processes' shares of a minibatch differ in size.
@pytest.mark.parametrize("processes, network, rows, ranking", [
    *[(2, "mlp", 301, r) for r in ("sgd-influence", "influence", "tracin-cp", "loss-history", "loss", "self-influence")],
    (3, "mlp", 250, "sgd-influence"), (3, "mlp", 250, "influence"), (3, "mlp", 97, "loss-history"),
    (4, "mlp", 301, "sgd-influence"), (4, "mlp", 301, "influence"), (4, "mlp", 97, "tracin-cp"),
    (2, "dropout", 301, "loss-history"), (3, "dropout", 250, "sgd-influence"), (4, "dropout", 301, "influence"),
])
def test_data_parallel_scores_equal_one_process(tmp_path, tmp_path_factory, digits, processes, network, rows, ranking):
    """K processes share out every minibatch, the partial last one included, and give one process's scores: only
    the order of the sums differs. With a Dropout layer each process trains on whole minibatches (the same random
    draws as one process) and shares out the scoring."""
    single = _one_process(tmp_path_factory, digits, network, rows, ranking)
    output = tmp_path / "influence.csv"
    result = _score(processes, *_arguments(tmp_path, digits, network, rows), "-r", ranking, "-o", output)
    assert result.returncode == 0, result.stderr
    tolerance = TOLERANCE.get(ranking, 1e-5)
    np.testing.assert_allclose(_scores(output), single, rtol=tolerance, atol=tolerance * np.abs(single).max())
    with open(str(output) + ".summary.json", encoding="utf-8") as f:
        assert json.load(f)["processes"] == processes


@pytest.mark.parametrize("processes, trials", [(2, 3), (3, 4)])
def test_trials_spread_over_processes_give_the_same_csv(tmp_path, small_digits, processes, trials):
    """As many trials as processes or more: each process trains and scores whole trials (process 0 of 3 takes
    trials 1 and 4 of 4), and the averaged CSV is byte for byte one process's."""
    outputs = {}
    for count in (1, processes):
        outputs[count] = tmp_path / f"p{count}" / "influence.csv"
        result = _score(count, *small_digits, "-r", "sgd-influence", "-nt", str(trials), "-o", outputs[count])
        assert result.returncode == 0, result.stderr
        # each trial is trained once, by one process, into its own cache folder
        assert sorted(os.listdir(str(outputs[count])[:-4] + "_cache")) == [f"trial_{k}" for k in range(trials)]
    assert outputs[1].read_bytes() == outputs[processes].read_bytes()


def test_bad_input_stops_every_process_with_one_sentence(tmp_path, small_digits):
    arguments = [a if a != "2" else "0" for a in small_digits]  # --epochs 0
    result = _score(2, *arguments, "-o", tmp_path / "out.csv")
    assert result.returncode != 0
    sentences = [line for line in result.stderr.splitlines() if line.startswith("nnc-cleanse: error:")]
    assert sentences == ["nnc-cleanse: error: --epochs must be 1 or more, not 0."], result.stderr
    assert not (tmp_path / "out.csv").exists()


def test_random_inputs_are_not_shared_out_but_whole_trials_are(tmp_path, digits):
    """A generator variable (random noise on the input) would be drawn differently by each process's share of a
    minibatch: data-parallel is refused in one sentence with the way out, and that way out runs."""
    model = noisy_dropout_adam(digits, tmp_path)
    result = _score(2, "-m", model, "-e", "1", "-o", tmp_path / "out.csv")
    assert result.returncode != 0 and not (tmp_path / "out.csv").exists()
    sentences = [line for line in result.stderr.splitlines() if line.startswith("nnc-cleanse: error:")]
    assert len(sentences) == 1 and "generator variables Noise" in sentences[0] and "--n-trials 2" in sentences[0]
    result = _score(2, "-m", model, "-e", "1", "-nt", "2", "-o", tmp_path / "out.csv")
    assert result.returncode == 0, result.stderr


def _process_of_rank(rank, parent):
    """The pid of the nnc-cleanse process of `rank` under the mpiexec `parent` (Linux: read /proc)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environment = f.read().split(b"\0")
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read()
        except OSError:
            continue
        if f"PMI_RANK={rank}".encode() in environment and b"nnc-cleanse" in command and int(pid) != parent:
            return int(pid)
    return None


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the process through /proc")
def test_a_killed_process_ends_the_run_without_output_and_a_rerun_succeeds(tmp_path, mnist):
    arguments = ["-m", mnist["model"], "-t", mnist["train"], "-v", mnist["val"], "-e", "3", "-o", tmp_path / "out.csv"]
    run = _score(2, *arguments, wait=False)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "out_cache" / "trial_0").exists():
        time.sleep(0.2)  # training has started once process 0 has made its cache folder
    victim = _process_of_rank(1, run.pid)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = run.communicate(timeout=120)
    # mpiexec's own words vary with timing (BAD TERMINATION, or the survivor's failed read from the dead process)
    assert run.returncode != 0, stdout + stderr
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.csv.summary.json").exists()
    rerun = _score(2, *arguments)
    assert rerun.returncode == 0, rerun.stderr
    assert len(read_csv(tmp_path / "out.csv")) == 4001
