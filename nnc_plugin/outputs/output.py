"""The scored CSV: the training CSV's rows with their score, most harmful first, and the CSV conventions
every output shares (atomic writes, paths rewritten so they still resolve from the new CSV's folder,
which is how NNC resolves them; the output checked before any work is done)."""
import contextlib
import csv
import io
import os
import signal
import threading

import numpy as np

from ..data.dataset import FILE_EXTENSIONS
from ..errors import InterruptedAfterWriting, UserError
from ..files import can_create_in, existing_ancestor, write_atomically_with

SCORE_COLUMN = "influence"
INDEX_COLUMN = "datasource_index"


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


def _is_path_cell(cell):
    try:
        float(cell)
        return False
    except ValueError:
        return os.path.splitext(cell)[1].lower() in FILE_EXTENSIONS


def relocate_path(cell, source_folder, target_folder):
    """Rewrite a path cell of a CSV in `source_folder` so it resolves from `target_folder`."""
    if not _is_path_cell(cell) or os.path.isabs(cell.replace("\\", "/")):
        return cell
    absolute = os.path.normpath(os.path.join(source_folder, cell.replace("\\", "/")))
    try:
        relative = os.path.relpath(absolute, target_folder)
    except ValueError:  # another drive on Windows
        return absolute
    if "\\" in cell:
        relative = relative.replace("/", "\\")
    return relative


def format_score(value):
    return f"{value:.9g}"


def harmful_order(scores, indices=None):
    """Positions of `scores`, most harmful (lowest score) first; ties by `indices` (default: position)."""
    return np.lexsort((np.arange(len(scores)) if indices is None else indices, scores))


def ranked_rows(dataset, scores, target_folder):
    """The rows of `dataset` with score and index appended, most harmful (lowest score) first (a generator)."""
    source_folder = os.path.dirname(dataset.path)
    order = harmful_order(scores)
    for index in order:
        cells = [relocate_path(c, source_folder, target_folder) for c in dataset.rows[index]]
        yield cells + [format_score(scores[index]), str(int(index))]


def write_scored_csv(path, dataset, scores):
    """Write the training CSV plus `influence` and `datasource_index`, sorted ascending by score."""
    target_folder = os.path.dirname(os.path.abspath(path))
    header = list(dataset.header) + [SCORE_COLUMN, INDEX_COLUMN]
    write_csv_atomically(path, header, ranked_rows(dataset, scores, target_folder), dataset.newline)


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
