"""Messages and progress, in the look of nnabla's own command line.

Neural Network Console shows lines logged through nnabla's logger at level 99 in its
console, so every user-facing message goes there. In a terminal, long loops also draw a
one-line progress bar; elsewhere (NNC's console, CI logs) they log a plain line every
tenth of the way instead, at most one every few seconds, so fast loops stay quiet, and a
closing line when the loop took long enough to have logged at all.
"""
import logging
import sys
import time

USER_LEVEL = 99  # the level NNC shows
LOG_INTERVAL_SECONDS = 5.0  # without a terminal, at most one progress line this often
DRAW_INTERVAL_SECONDS = 0.1  # in a terminal, redraw the bar at most this often
BAR_WIDTH = 30


def _logger():
    """nnabla's logger (imported on first use: listing the commands' options does not load nnabla)."""
    from nnabla.logger import logger
    return logger


def info(message):
    """Log a message for the user (in a run of several processes, process 0 speaks for all)."""
    if _rank() == 0:
        _logger().log(USER_LEVEL, message)


def _rank():
    from .parallel import current_rank
    return current_rank()


def quiet_nnabla():
    """Hide nnabla's own INFO chatter (extension initialisation and the like)."""
    _logger().setLevel(logging.WARNING)


def duration(seconds):
    """`seconds` in words a user reads at a glance: '4.2 s', '3 min 20 s', '1 h 05 min'."""
    seconds = max(float(seconds), 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Progress of a loop of known length: a bar on a terminal, log lines elsewhere.

    Use as ``with Progress("Training", total) as p: ... p.advance(n, note="loss=0.1")``.

    Parameters
    ----------
    title : str
        What the loop does, as the user should read it ("Training epoch 2/10").
    total : int
        How many steps the loop has.
    stream : file, optional
        Where the bar goes (default: standard error). A bar is drawn only when it is a terminal.
    unit : str, optional
        The word for a step in log lines ("steps", "rows").
    log_interval : float, optional
        Without a terminal, the fewest seconds between two progress lines.
    """

    def __init__(self, title, total, stream=None, unit="", log_interval=None):
        self.title = title
        self.total = max(int(total), 1)
        self.stream = stream or sys.stderr
        self.unit = f" {unit}" if unit else ""
        self.log_interval = LOG_INTERVAL_SECONDS if log_interval is None else float(log_interval)
        self.done = 0
        self.note = ""
        self.start = time.perf_counter()
        self.is_terminal = bool(getattr(self.stream, "isatty", lambda: False)()) and _rank() == 0
        self._next_log_tenth = 1  # log when done reaches this many tenths of total (integers: no rounding drift)
        self._last_log = self.start
        self._logged = False
        self._last_draw = None
        self._drawn = None  # (done, note) the bar last showed

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.is_terminal:
            if exc_type is None and self._drawn != (self.done, self.note):
                self._draw_bar()  # the bar's final state, when the last redraw was skipped
            if self._last_draw is not None:
                self.stream.write("\n")
                self.stream.flush()
        elif exc_type is None and self._logged:
            info(f"{self.title}: done ({self.done} of {self.total}{self.unit} in {duration(self._elapsed())}).")
        return False

    def advance(self, steps=1, note=None):
        self.done = min(self.done + steps, self.total)
        if note is not None:
            self.note = note
        if self.is_terminal:
            now = time.perf_counter()
            if self._last_draw is None or now - self._last_draw >= DRAW_INTERVAL_SECONDS or self.done == self.total:
                self._draw_bar()
        elif 10 * self.done >= self._next_log_tenth * self.total and self.done < self.total:
            if time.perf_counter() - self._last_log >= self.log_interval:
                self._log_line()
                self._last_log = time.perf_counter()
            while self._next_log_tenth * self.total <= 10 * self.done:
                self._next_log_tenth += 1

    def _elapsed(self):
        return time.perf_counter() - self.start

    def _remaining(self):
        """Estimated seconds left, from the pace so far (None before the first step)."""
        if self.done == 0:
            return None
        return self._elapsed() * (self.total - self.done) / self.done

    def _log_line(self):
        percent = 100.0 * self.done / self.total
        left = self._remaining()
        left = f", about {duration(left)} left" if left is not None else ""
        note = f", {self.note}" if self.note else ""
        info(f"{self.title}: {percent:.0f}% done ({self.done} of {self.total}{self.unit}, "
             f"{duration(self._elapsed())} so far{left}){note}")
        self._logged = True

    def _draw_bar(self):
        self._last_draw = time.perf_counter()
        self._drawn = (self.done, self.note)
        filled = int(BAR_WIDTH * self.done / self.total)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        left = self._remaining()
        timing = duration(self._elapsed())
        if left is not None and self.done < self.total:
            timing += f", ~{duration(left)} left"
        note = f"  {self.note}" if self.note else ""
        self.stream.write(f"\r{self.title} [{bar}] {self.done}/{self.total}  {timing}{note}   ")
        self.stream.flush()
