"""Files the plugin writes, and the folders it writes them in.

A file is written to a temporary file in its destination folder and renamed into place, so a
crash or Ctrl-C never leaves a half-written file and an existing file is replaced only by a
complete one. Every output is checked writable (and never an input) before any work is done, and
files that belong together are written with Ctrl-C held until all of them are.
"""
import contextlib
import csv
import io
import os
import signal
import tempfile
import threading

from .errors import InterruptedAfterWriting, UserError


def existing_ancestor(path):
    """`path` itself if it exists, else the nearest folder above it that does (where it would be made)."""
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def can_create_in(folder):
    """True when a file can be created in `folder` (tried, not guessed: root ignores permission bits)."""
    try:
        with tempfile.TemporaryFile(dir=folder):  # unnamed on Linux; removed at once elsewhere
            return True
    except OSError:
        return False


def write_atomically(path, data):
    """Write `data` (str or bytes) to `path` through a temporary file and a rename."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    write_atomically_with(path, lambda f: f.write(payload))


def write_atomically_with(path, fill):
    """Let `fill(binary_file)` write a temporary file beside `path`, then rename it into place."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(path):
            os.chmod(temporary, os.stat(path).st_mode & 0o777)
        else:
            os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def check_writable(path, inputs=()):
    """Refuse an output path that would overwrite an input or cannot be written, before any work is done.

    Nothing is created here: a missing output folder is made only when the output is written.
    """
    target = os.path.abspath(path)
    for source in inputs:
        if not source:
            continue
        same = os.path.realpath(source) == os.path.realpath(target)
        if not same and os.path.exists(source) and os.path.exists(target):
            same = os.path.samefile(source, target)
        if same:
            raise UserError(f"The output {path} is the input file {source}; choose another output name so your data is kept.")
    if os.path.isdir(target):
        raise UserError(f"The output {path} is a folder; give a file name such as influence.csv.")
    existing = existing_ancestor(os.path.dirname(target))
    if not os.path.isdir(existing):
        raise UserError(f"The output {path} cannot be written because {existing} is a file, not a folder; "
                        "choose another output path.")
    if not can_create_in(existing) or (os.path.exists(target) and not os.access(target, os.W_OK)):
        raise UserError(f"The output {path} cannot be written (no permission in {existing}); "
                        "choose a folder you can write to.")


def write_csv_atomically(path, header, rows, newline="\n"):
    """Write a CSV with NNC's conventions, row by row (`rows` may be a generator), atomically."""
    def fill(binary):
        text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
        writer = csv.writer(text, lineterminator=newline)
        writer.writerow(header)
        writer.writerows(rows)
        text.flush()
        text.detach()  # leave the binary file to write_atomically_with
    write_atomically_with(path, fill)


@contextlib.contextmanager
def interrupts_held():
    """Hold Ctrl-C (SIGINT) until the block ends, so files written together are all written or none.

    A Ctrl-C that arrives meanwhile is raised as InterruptedAfterWriting when the block ends. Outside
    the main thread (where Python delivers signals) the block runs unprotected.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise InterruptedAfterWriting
