"""Ctrl-C and kill during scoring: no partial output, the finished training stays cached, a rerun reuses it.

Each test starts `nnc-cleanse score` on the digits sample as a subprocess that stops itself
(SIGSTOP) at a fixed point of the real run: on entering the first function of a stage
(`validation_gradient`, the start of SGD-influence scoring, after the training cache is complete;
or the second training step). The test waits until the process is stopped, sends the signal,
and lets it continue, so the signal lands in that stage however fast or slow the machine is.
The rerun must say that it reuses the cache and must write the same CSV, byte for byte, as a
run that was never interrupted.
"""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import read_csv, run_command, subset_csv, tool, variant

RUN = ("-r", "sgd-influence", "--epochs", "6", "--trace-epochs", "6", "--seed", "3")
REUSED = "reusing the training cached in"
TRAINED = "training 6 epochs on"


def _command(digits, output, *extra, model=None, train=None):
    return [tool("nnc-cleanse"), "score", "-m", str(model or digits["model"]), "-t", str(train or digits["train"]),
            "-v", digits["val"], "-o", str(output), *RUN, *extra]


def _run(command):
    return run_command(*command, check=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, sample_data):
    """The CSV bytes of a run that nobody interrupted."""
    digits = {"model": os.path.join(sample_data, "digits", "digits_mlp.nntxt"),
              "train": os.path.join(sample_data, "digits", "data", "train.csv"),
              "val": os.path.join(sample_data, "digits", "data", "val.csv")}
    # At the same depth as the other tests' outputs, so the relocated image paths are the same text.
    output = tmp_path_factory.mktemp("uninterrupted") / "out" / "influence.csv"
    result = _run(_command(digits, output))
    assert TRAINED in result.stderr
    return output.read_bytes()


# The command line's own entry point, run with a profile hook that stops the process (as a debugger's
# breakpoint would) on entering the function `sys.argv[1]` of the module file `sys.argv[2]` for the
# `sys.argv[3]`-th time; nothing else of the run is changed.
STOPPING_RUN = """
import os, signal, sys
function, module, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
del sys.argv[1:4]
calls = [0]

def stop_there(frame, event, arg):
    code = frame.f_code
    if event == "call" and code.co_name == function and os.path.basename(code.co_filename) == module:
        calls[0] += 1
        if calls[0] == count:
            sys.setprofile(None)
            os.kill(os.getpid(), signal.SIGSTOP)

sys.setprofile(stop_there)
from nnc_plugin.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _stopped(pid):
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")


def _interrupt_at(command, stop_at, how):
    """Run `command` (an nnc-cleanse command line) until it enters `stop_at` = (function, module file, nth call),
    send it `how` there and let it go on; return (exit status, stderr)."""
    python = [sys.executable, "-c", STOPPING_RUN, stop_at[0], stop_at[1], str(stop_at[2])] + command[1:]
    # Ctrl-C as in a terminal even when the tests themselves run in the background (which ignores SIGINT,
    # and a Python started with SIGINT ignored never raises KeyboardInterrupt).
    process = subprocess.Popen(python, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not _stopped(process.pid):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"the run never reached {stop_at[0]} in {stop_at[1]}:\n{err}")
        time.sleep(0.01)
    process.send_signal(how)
    if how != signal.SIGKILL:
        process.send_signal(signal.SIGCONT)
    _, err = process.communicate(timeout=120)
    return process.returncode, err


SCORING = ("validation_gradient", "gradients.py", 1)  # SGD-influence starts: the training is cached
TRAINING = ("_update", "trainer.py", 2)  # the second training step


def _leftovers(folder):
    """Every file under `folder`, relative."""
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, _, names in os.walk(folder) for name in names)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_interrupted_scoring_leaves_no_output_and_the_rerun_reuses_the_training(tmp_path, digits, uninterrupted, how):
    output = tmp_path / "out" / "influence.csv"
    manifest = tmp_path / "out" / "influence_cache" / "trial_0" / "manifest.json"
    status, log = _interrupt_at(_command(digits, output), SCORING, how)

    if how == signal.SIGINT:
        assert status == 130, f"the run was not interrupted while scoring (exit {status}):\n{log}"
        assert "Traceback" not in log
        assert log.strip().splitlines()[-1].startswith("nnc-cleanse: interrupted; no output was written")
    else:
        assert status == -signal.SIGKILL, log
    # No output, no half-written temporary file; the finished training's cache is complete.
    with open(manifest, encoding="utf-8") as f:
        cached = json.load(f)["files"]
    assert _leftovers(tmp_path / "out") == sorted(f"influence_cache/trial_0/{name}"
                                                  for name in cached + ["manifest.json"])

    rerun = _run(_command(digits, output))
    assert REUSED in rerun.stderr and TRAINED not in rerun.stderr, rerun.stderr
    assert output.read_bytes() == uninterrupted
    assert not [name for name in os.listdir(output.parent) if name.endswith(".tmp")]


def test_interrupt_while_training_leaves_nothing(tmp_path, digits):
    """Ctrl-C before training has finished: the unfinished cache is removed with the folder it made."""
    output = tmp_path / "out" / "influence.csv"
    status, log = _interrupt_at(_command(digits, output), TRAINING, signal.SIGINT)
    assert status == 130, log
    assert "Traceback" not in log
    assert not (tmp_path / "out").exists(), _leftovers(tmp_path)


def test_cache_is_rejected_when_the_training_data_or_the_model_changed(tmp_path, digits):
    output = tmp_path / "out" / "influence.csv"
    train = subset_csv(digits["train"], tmp_path / "train.csv", 1000)  # the user's CSV, edited below
    first = _run(_command(digits, output, train=train))
    assert TRAINED in first.stderr

    # The user corrects one label in the training CSV (same file).
    table = read_csv(train)
    table[1][1] = str((int(table[1][1]) + 1) % 10)
    with open(train, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(table)
    rerun = _run(_command(digits, output, train=train))
    assert "not reusing the cache" in rerun.stderr and "the training data changed; training again" in rerun.stderr
    assert TRAINED in rerun.stderr

    # The user lowers the learning rate in the model.
    model = variant(digits["model"], tmp_path / "model.nntxt", {"lr: 0.1": "lr: 0.05"})
    rerun = _run(_command(digits, output, model=model, train=train))
    assert "the model changed; training again" in rerun.stderr and TRAINED in rerun.stderr

    # Another seed, and other settings, are named too.
    rerun = _run(_command(digits, output, "--seed", "4", "--batch-size", "64", model=model, train=train))
    assert "the seed changed (3 -> 4)" in rerun.stderr and "batch_size 32 -> 64" in rerun.stderr
