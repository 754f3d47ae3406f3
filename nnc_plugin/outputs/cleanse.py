"""The cleansed dataset: the training CSV without its most harmful rows.

Input is a scored CSV written by `nnc-cleanse score` (the training CSV's own columns plus
`influence` and `datasource_index`). Output is a training CSV with the original header and
columns, in the original row order, without the removed rows, and with every path rewritten
so it still resolves from the output's folder. It can be used as it is as the Training
dataset of the same project (in Neural Network Console or with `nnabla_cli train`).
Nothing is ever written over the scored CSV or the original training CSV.
"""
import math
import os
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..data.dataset import relocate_path
from ..errors import UserError
from ..files import check_writable, write_csv_atomically
from ..log import info
from .scored_csv import format_score, harmful_order, read_scored_csv
from .summary import read_summary


@dataclass
class Amount:
    """How many of the most harmful rows to remove: a row count, or a percentage of all rows."""
    value: float
    percent: bool = False

    @classmethod
    def parse(cls, text):
        """Return the `Amount` written as ``"100"`` (rows) or ``"5%"`` (percent of the rows)."""
        raw = str(text).strip()
        percent = raw.endswith("%")
        number = raw[:-1].strip() if percent else raw
        try:
            value = float(number) if percent else int(number)
        except ValueError:
            raise UserError(f"--remove must be a number of rows such as 100 or a percentage such as 5%, not '{text}'.")
        if not math.isfinite(value) or value < 0 or (percent and value > 100):
            raise UserError(f"--remove must be 0 or more rows, or a percentage from 0% to 100%, not '{text}'.")
        return cls(value, percent)

    def rows_of(self, total):
        """The number of rows this amount means in a dataset of `total` rows."""
        return int(round(total * self.value / 100.0)) if self.percent else int(self.value)

    def __str__(self):
        return f"{self.value:g}%" if self.percent else f"{int(self.value)}"


@dataclass
class CleanseResult:
    """What `cleanse` did."""
    output: str
    kept: int
    removed_indices: List[int]  # datasource_index of every removed row, most harmful first
    highest_removed_score: Optional[float]


def rows_of_group(table, summary, group):
    """The positions (in `table`) of the rows of group `group` (1-based) of the run summary, most harmful first."""
    groups = summary.get("groups") or []
    if not 1 <= group <= len(groups):
        found = (f"it lists {len(groups)} group{'s' if len(groups) != 1 else ''} (1 to {len(groups)})" if groups
                 else "it lists no group of harmful rows that act together")
        raise UserError(f"--group {group} is not a group of the run summary beside {table.path}: {found}; see the "
                        "report's groups, or remove rows with --remove instead.")
    wanted = {int(r) for r in groups[group - 1]["rows"]}
    order = harmful_order(table.scores, table.indices)
    return order[np.isin(table.indices[order], list(wanted))]


def rows_to_remove(table, remove=None, threshold=None):
    """Return the positions (in `table`) of the rows to remove, most harmful first.

    Parameters
    ----------
    remove : Amount or str, optional
        Remove this many of the most harmful rows ("100") or this share of all rows ("5%").
    threshold : float, optional
        Remove every row whose influence is below this value.
    Exactly one of the two is given.
    """
    order = harmful_order(table.scores, table.indices)
    if threshold is not None:
        threshold = float(threshold)
        if not math.isfinite(threshold):
            raise UserError(f"--threshold must be a finite number, not {threshold}.")
        chosen = order[table.scores[order] < threshold]
    else:
        amount = remove if isinstance(remove, Amount) else Amount.parse(remove)
        count = amount.rows_of(len(table))
        if count > len(table):
            raise UserError(f"--remove {amount} is more than the {len(table)} rows of {table.path}; "
                            "choose a smaller number.")
        chosen = order[:count]
    if len(chosen) == len(table):
        what = f"--threshold {threshold:g}" if threshold is not None else f"--remove {remove}"
        raise UserError(f"{what} would remove all {len(table)} rows, leaving nothing to train on; "
                        "remove fewer rows.")
    return chosen


def _warn_if_the_group_takes_its_class(group, n_rows, number):
    """A warning where group `number` (a run summary's dict) holds most of the rows of its label: without them the
    network hardly learns that class. Measured (research/results/loss_witness.md section 8): a shortcut on three
    quarters of one class, its group removed whole left 2-23% of the class and gained nothing or made the test loss
    worse than removing nothing, while removing the ranking's first rows helped."""
    of_label = int(round(group.get("share_of_data", 0.0) * n_rows))
    if of_label and len(group["rows"]) > 0.5 * of_label:
        info(f"Warning: group {number} holds {len(group['rows'])} of the {of_label} rows labelled {group['label']}, "
             f"so the network retrained on this CSV sees only {of_label - len(group['rows'])} rows of that class and "
             "may do worse than with the group; a group holds clean rows of its class beside the harmful ones, so "
             "look at its rows and remove only those that carry what they share (`cleanse -k N` removes the first "
             "N rows of the ranking).")


def _say_what_was_removed(table, chosen, result, choice, output, summary):
    """The log lines of a cleanse: what was removed, what was kept into `output` (as the user named it), what to do
    next (`choice`: the three options; `summary`: the run summary)."""
    remove, threshold, group = choice
    if chosen.size and group is not None:
        info(f"Removed the {len(chosen)} rows of group {group} of {len(table)} rows; wrote {output} with the other "
             f"{result.kept} rows in their original order.")
        _warn_if_the_group_takes_its_class(summary["groups"][group - 1], len(table), group)
    elif chosen.size:
        info(f"Removed the {len(chosen)} most harmful of {len(table)} rows (the lowest scores, up to "
             f"{format_score(result.highest_removed_score)}); wrote {output} with the other {result.kept} rows in "
             "their original order.")
    elif threshold is not None:
        info(f"No row has an influence below {float(threshold):g}; wrote {output} with all {result.kept} rows.")
    else:
        info(f"--remove {remove} means no row; wrote {output} with all {result.kept} rows.")
    helpful = int((table.scores[chosen] > 0).sum())  # only SGD influence has positive scores
    if helpful:
        info(f"Note: {helpful} of the removed rows have a positive influence, so they helped the model; "
             "remove fewer rows (or use --threshold 0) to keep them.")
    info("To retrain without the removed rows, use this CSV as the Training dataset of your project.")


def cleanse(scored_csv, output, remove=None, threshold=None, group=None):
    """Write the training CSV without the most harmful rows; return a `CleanseResult`.

    Parameters
    ----------
    scored_csv : str
        A CSV written by `nnc-cleanse score`.
    output : str
        The cleansed training CSV to write (never the scored CSV or the original training CSV).
    remove, threshold
        Which rows to remove; see `rows_to_remove`.
    group : int, optional
        Instead, remove the rows of this group of harmful rows (1-based) of the run summary (outputs/groups.py).
    Exactly one of `remove`, `threshold` and `group` is given.

    Examples
    --------
    >>> import os, tempfile
    >>> from nnc_plugin.options import ScoreOptions
    >>> from nnc_plugin.outputs.cleanse import cleanse
    >>> from nnc_plugin.pipeline import score
    >>> folder = tempfile.mkdtemp()
    >>> run = score(ScoreOptions(model="sample_projects/digits/digits_mlp.nntxt", epochs=2,
    ...                          output=os.path.join(folder, "influence.csv")))
    >>> result = cleanse(os.path.join(folder, "influence.csv"), os.path.join(folder, "train_cleansed.csv"), remove="5%")
    >>> result.kept, len(result.removed_indices)
    (950, 50)
    """
    if sum(x is not None for x in (remove, threshold, group)) != 1:
        raise UserError("Say which rows to remove: give one of --remove (a number of rows or a percentage), "
                        "--threshold (an influence value) or --group (a group of the report), not several and not "
                        "none.")
    summary = read_summary(os.path.abspath(scored_csv))
    check_writable(output, inputs=(scored_csv, summary.get("input_train")))
    table = read_scored_csv(scored_csv)
    chosen = (rows_of_group(table, summary, group) if group is not None
              else rows_to_remove(table, remove=remove, threshold=threshold))
    removed = set(int(p) for p in chosen)
    kept = sorted((p for p in range(len(table)) if p not in removed), key=lambda p: table.indices[p])

    source_folder = os.path.dirname(table.path)
    target_folder = os.path.dirname(os.path.abspath(output))
    body = [[relocate_path(cell, source_folder, target_folder) for cell in table.rows[p]] for p in kept]
    write_csv_atomically(output, table.header, body, table.newline)

    highest = float(table.scores[chosen].max()) if len(chosen) else None
    result = CleanseResult(output=os.path.abspath(output), kept=len(kept),
                           removed_indices=[int(table.indices[p]) for p in chosen], highest_removed_score=highest)
    _say_what_was_removed(table, chosen, result, (remove, threshold, group), output, summary)
    return result
