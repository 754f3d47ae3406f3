"""The scored CSV: the one module that writes and reads it.

`nnc-cleanse score` writes the training CSV's own header and rows, each row with two more cells: its score
(`influence`: lower = more harmful, NNC's column name) and its position in the training CSV counted from 0
(`datasource_index`), sorted so the most harmful rows come first, with every path rewritten so it still
resolves from the scored CSV's folder. NNC opens it as it is; `cleanse` and `report` read it back
(`read_scored_csv`), and so would they the CSV of NNC's own SGD influence plugin, which has the same columns.
"""
import math
import os
from dataclasses import dataclass
from typing import List

import numpy as np

from ..data.dataset import read_table, relocate_path
from ..errors import UserError
from ..files import write_csv_atomically

SCORE_COLUMN = "influence"
INDEX_COLUMN = "datasource_index"


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


@dataclass
class ScoredTable:
    """A scored CSV read into memory: its data columns, its rows, and each row's score and index."""
    path: str
    header: List[str]  # the training CSV's own columns
    rows: List[List[str]]  # data cells only, in the scored CSV's order
    scores: np.ndarray
    indices: np.ndarray  # datasource_index: the row's position in the original training CSV
    newline: str

    def __len__(self):
        return len(self.rows)


def read_scored_csv(path):
    """Return the `ScoredTable` in a CSV written by `nnc-cleanse score` (or NNC's SGD influence plugin)."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise UserError(f"The scored CSV {path} does not exist; run the scoring first (nnc-cleanse score) "
                        "and pass its output, for example influence.csv.")
    header, rows, newline = read_table(path)
    names = [cell.strip() for cell in header]
    missing = [c for c in (SCORE_COLUMN, INDEX_COLUMN) if c not in names]
    if missing:
        raise UserError(f"The CSV {path} has no '{missing[0]}' column, so it is not a scored CSV; pass the output "
                        "of nnc-cleanse score (its last columns are influence and datasource_index).")
    score_at, index_at = names.index(SCORE_COLUMN), names.index(INDEX_COLUMN)
    data_at = [i for i in range(len(header)) if i not in (score_at, index_at)]
    scores, indices, data_rows = [], [], []
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise UserError(f"Row {number} of {path} has {len(row)} cells but the header has {len(header)}; fix that row.")
        try:
            score = float(row[score_at])
        except ValueError:
            score = float("nan")
        if not math.isfinite(score):
            raise UserError(f"Row {number} of {path}: the influence '{row[score_at]}' is not a finite number; "
                            "score the dataset again.")
        try:
            index = int(row[index_at])
        except ValueError:
            index = -1
        if index < 0:
            raise UserError(f"Row {number} of {path}: the datasource_index '{row[index_at]}' is not a row number "
                            "(0 or more); score the dataset again.")
        scores.append(score)
        indices.append(index)
        data_rows.append([row[i] for i in data_at])
    if not data_rows:
        raise UserError(f"The scored CSV {path} has no rows; score a training CSV with at least one row.")
    indices = np.asarray(indices, dtype=np.int64)
    unique, counts = np.unique(indices, return_counts=True)
    if (counts > 1).any():
        raise UserError(f"The scored CSV {path} lists datasource_index {int(unique[counts > 1][0])} twice; "
                        "each row of the training CSV must appear once, so score the dataset again.")
    return ScoredTable(path=path, header=[header[i] for i in data_at], rows=data_rows,
                       scores=np.asarray(scores, dtype=np.float64), indices=indices, newline=newline)
