"""Several processes with mpiexec (the `mpi` extra: mpi4py and the MPICH wheel), on CPU."""
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from helpers import read_csv, run_command, subset_csv, tool

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


@pytest.mark.parametrize("ranking", ["sgd-influence", "influence", "tracin-cp", "loss-history", "self-influence"])
def test_data_parallel_scores_equal_one_process(tmp_path, small_digits, ranking):
    """Each of 2 processes takes half of every minibatch; only the order of the sums differs."""
    outputs = {}
    for processes in (1, 2):
        outputs[processes] = tmp_path / f"p{processes}" / "influence.csv"
        result = _score(processes, *small_digits, "-r", ranking, "-o", outputs[processes])
        assert result.returncode == 0, result.stderr
    single, parallel = _scores(outputs[1]), _scores(outputs[2])
    # influence's and tracin-cp's finite differences divide the float32 rounding of two losses by a small step:
    # 1e-5 of the largest score there, against 1e-7 for the others
    tolerance = 5e-5 if ranking in ("influence", "tracin-cp") else 1e-5
    np.testing.assert_allclose(parallel, single, rtol=tolerance, atol=tolerance * np.abs(single).max())
    with open(str(outputs[2]) + ".summary.json", encoding="utf-8") as f:
        assert json.load(f)["processes"] == 2


def test_trials_spread_over_processes_give_the_same_csv(tmp_path, small_digits):
    outputs = {}
    for processes in (1, 2):
        outputs[processes] = tmp_path / f"p{processes}" / "influence.csv"
        result = _score(processes, *small_digits, "-r", "sgd-influence", "-nt", "3", "-o", outputs[processes])
        assert result.returncode == 0, result.stderr
        # each trial is trained once, by one process, into its own cache folder
        assert sorted(os.listdir(str(outputs[processes])[:-4] + "_cache")) == ["trial_0", "trial_1", "trial_2"]
    assert outputs[1].read_bytes() == outputs[2].read_bytes()


def test_bad_input_stops_every_process_with_one_sentence(tmp_path, small_digits):
    arguments = [a if a != "2" else "0" for a in small_digits]  # --epochs 0
    result = _score(2, *arguments, "-o", tmp_path / "out.csv")
    assert result.returncode != 0
    sentences = [line for line in result.stderr.splitlines() if line.startswith("nnc-cleanse: error:")]
    assert sentences == ["nnc-cleanse: error: --epochs must be 1 or more, not 0."], result.stderr
    assert not (tmp_path / "out.csv").exists()


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
