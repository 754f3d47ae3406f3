"""Progress and messages: a bar in a terminal, plain nnabla log lines elsewhere (NNC's console)."""
import io
import logging
import os
import pty
import subprocess

from helpers import run_command, tool
from nnc_plugin.log import USER_LEVEL, Progress, duration


class Terminal(io.StringIO):
    """A text stream that says it is a terminal, as sys.stderr does in a shell."""

    def isatty(self):
        return True


def _user_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == USER_LEVEL]


def test_without_a_terminal_progress_is_logged_in_plain_lines(caplog):
    stream = io.StringIO()
    with caplog.at_level(logging.DEBUG, logger="nnabla"):
        with Progress("Scoring", 20, stream=stream, unit="steps", log_interval=0) as progress:
            for step in range(20):
                progress.advance(1, note="loss=0.5")
    lines = _user_lines(caplog)
    assert stream.getvalue() == "", "nothing is drawn where there is no terminal"
    assert lines[0].startswith("Scoring: 10% done (2 of 20 steps, ")
    assert "left), loss=0.5" in lines[0]
    assert [line.split(":")[1].split("%")[0].strip() for line in lines[:-1]] == [str(p) for p in range(10, 100, 10)]
    assert lines[-1].startswith("Scoring: done (20 of 20 steps in ")
    assert all("\r" not in line for line in lines)


def test_fast_loops_stay_quiet_without_a_terminal(caplog):
    with caplog.at_level(logging.DEBUG, logger="nnabla"):
        with Progress("Reading train.csv", 1000, stream=io.StringIO()) as progress:
            for _ in range(1000):
                progress.advance(1)
    assert _user_lines(caplog) == []


def test_a_terminal_gets_one_redrawn_bar(caplog):
    stream = Terminal()
    with caplog.at_level(logging.DEBUG, logger="nnabla"):
        with Progress("Training epoch 1/2", 4, stream=stream) as progress:
            for _ in range(4):
                progress.advance(1, note="loss=0.25")
    text = stream.getvalue()
    assert text.startswith("\rTraining epoch 1/2 [") and text.endswith("\n")
    assert text.count("\n") == 1
    assert "[" + "#" * 30 + "] 4/4" in text and "loss=0.25" in text
    assert _user_lines(caplog) == []


def test_durations_read_at_a_glance():
    assert duration(4.23) == "4.2 s"
    assert duration(200) == "3 min 20 s"
    assert duration(3 * 3600 + 5 * 60) == "3 h 05 min"


def _score_command(tmp_path, digits):
    return [tool("nnc-cleanse"), "score", "-m", digits["model"],
            "-o", str(tmp_path / "influence.csv"), "--epochs", "2", "--ranking", "sgd-influence"]


def test_score_in_a_terminal_draws_bars(tmp_path, digits):
    main, secondary = pty.openpty()
    process = subprocess.Popen(_score_command(tmp_path, digits), stdin=subprocess.DEVNULL, stdout=secondary,
                               stderr=secondary, close_fds=True)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal closes when the command ends
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert process.wait(timeout=120) == 0
    text = b"".join(chunks).decode("utf-8", "replace")
    assert "\rTraining epoch 1/2 [" in text and "\rScoring (trial 1/1) [" in text
    assert "Wrote " in text


def test_score_without_a_terminal_logs_plain_lines(tmp_path, digits):
    result = run_command(*_score_command(tmp_path, digits))
    assert result.returncode == 0
    assert "\r" not in result.stderr and "[###" not in result.stderr
    assert "[nnabla][Level 99]: Epoch 2/2: training loss" in result.stderr
    assert "[nnabla][Level 99]: Wrote " in result.stderr
