"""Messages and progress, in the look of nnabla's own command line.

Neural Network Console shows lines logged through nnabla's logger at level 99 in its
console, so every user-facing message goes there. In a terminal, long loops also draw a
one-line progress bar; elsewhere (NNC's console, CI logs) they log a plain line every
tenth of the way instead, at most one every few seconds, so fast loops stay quiet.
"""
import logging
import sys
import time

from nnabla.logger import logger

USER_LEVEL = 99  # the level NNC shows
LOG_INTERVAL_SECONDS = 5.0  # without a terminal, at most one progress line this often


def info(message):
    """Log a message for the user."""
    logger.log(USER_LEVEL, message)


def quiet_nnabla():
    """Hide nnabla's own INFO chatter (extension initialisation and the like)."""
    logger.setLevel(logging.WARNING)


class Progress:
    """Progress of a loop of known length: a bar on a terminal, log lines elsewhere.

    Use as ``with Progress("Training", total) as p: ... p.advance(n, note="loss=0.1")``.
    """

    def __init__(self, title, total, stream=None):
        self.title = title
        self.total = max(int(total), 1)
        self.stream = stream or sys.stderr
        self.done = 0
        self.note = ""
        self.start = time.perf_counter()
        self.is_terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self._next_log_fraction = 0.1
        self._last_log = self.start

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.is_terminal:
            self.stream.write("\n")
            self.stream.flush()
        return False

    def advance(self, steps=1, note=None):
        self.done = min(self.done + steps, self.total)
        if note is not None:
            self.note = note
        if self.is_terminal:
            self._draw_bar()
        elif self.done / self.total >= self._next_log_fraction and self.done < self.total:
            if time.perf_counter() - self._last_log >= LOG_INTERVAL_SECONDS:
                self._log_line()
                self._last_log = time.perf_counter()
            while self._next_log_fraction <= self.done / self.total:
                self._next_log_fraction += 0.1

    def _elapsed(self):
        return time.perf_counter() - self.start

    def _log_line(self):
        percent = 100.0 * self.done / self.total
        note = f" {self.note}" if self.note else ""
        info(f"{self.title}: {percent:3.0f}% ({self.done}/{self.total}, {self._elapsed():.1f} s){note}")

    def _draw_bar(self):
        width = 30
        filled = int(width * self.done / self.total)
        bar = "#" * filled + "-" * (width - filled)
        note = f" {self.note}" if self.note else ""
        self.stream.write(f"\r{self.title} [{bar}] {self.done}/{self.total} {self._elapsed():.1f}s{note}   ")
        self.stream.flush()
