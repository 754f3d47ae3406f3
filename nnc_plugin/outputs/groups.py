"""Groups of harmful rows that act together: many of the most harmful rows sharing one label.

Rows that teach the network a shortcut (an artefact on part of one class) each do little harm alone and much
together, and they share their label. So among the most harmful rows of a ranking by effect on the validation loss
(its first TOP_SHARE, the ones with a negative score), every label is counted (a loss ranking's first rows share a
label when the network finds a class hard, which says nothing of harm, so it gets no groups): a label whose share
there is at least CONCENTRATION times its share of the whole training set, with at least MIN_ROWS such rows, makes
a group. A wrong label shows no such concentration when labels are wrong at random; a group says "these rows of one
class pull the network the same way". Each group gets its rows (most harmful first), and, where the ranking
estimates what each row does to the validation loss (`effects`: the predicted change of the validation loss if the
row were left out, negative: it would fall), their combined effect: the sum of those estimates, a first-order
figure (rows that act together can do more together). Where the ranking knows each row's training loss (`losses`),
a group is "fitted" when most of its rows' losses are below the median: the network learned them, as it learns a
shortcut's rows; a group the network keeps getting wrong is more often wrong labels between two look-alike classes.

The groups go into the run summary (summary.py), the report shows them, and `cleanse --group K` removes one (with
a warning where it holds most of its label's rows: removing such a group whole hurt, research/results/
loss_witness.md section 8).
"""
from dataclasses import asdict, dataclass
from typing import List, Optional

import numpy as np

TOP_SHARE = 0.10
CONCENTRATION = 3.0
MIN_ROWS = 20
SHOWN_ROWS = 8  # rows of a group the report shows


@dataclass
class Group:
    """A group of harmful rows: their label, the rows (0-based rows of the training CSV, most harmful first), their
    share among the most harmful rows and of the training set, and their combined effect (None: not estimated)."""
    label: str
    rows: List[int]
    share_of_top: float
    share_of_data: float
    combined_effect: Optional[float] = None
    fitted: Optional[bool] = None  # most of its rows' training losses below the median (None: not known)

    def as_dict(self):
        return asdict(self)


def find_groups(scores, labels, effects=None, losses=None):
    """The `Group`s among the most harmful rows of `scores` (a ranking of the rows' effect on the validation loss,
    whose sign says harmful (< 0) or helpful; `labels`: each row's label as a string; `effects`: per-row effect
    estimates or None; `losses`: each row's training loss or None), largest first."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    order = np.lexsort((np.arange(len(scores)), scores))
    top = order[:max(int(round(TOP_SHARE * len(scores))), MIN_ROWS)]
    top = top[scores[top] < 0]
    groups = []
    for label in np.unique(labels[top]):
        members = top[labels[top] == label]
        share_of_top, share_of_data = len(members) / max(len(top), 1), float(np.mean(labels == label))
        if len(members) >= MIN_ROWS and share_of_top >= CONCENTRATION * share_of_data:
            effect = float(np.sum(np.asarray(effects)[members])) if effects is not None else None
            groups.append(Group(str(label), [int(r) for r in members], share_of_top, share_of_data, effect,
                                _fitted(members, losses)))
    return sorted(groups, key=lambda g: -len(g.rows))


def _fitted(members, losses):
    """Whether most of `members` have a training loss below the median of all rows (None without `losses`)."""
    if losses is None:
        return None
    losses = np.asarray(losses, dtype=np.float64)
    finite = np.isfinite(losses)
    if not finite.any():
        return None
    return bool(np.mean(losses[members] < np.median(losses[finite])) > 0.5)


def row_labels(setup):
    """Every training row's label as its CSV cell reads (the first column a loss compares with; "" without one)."""
    dataset, targets = setup.train_data, setup.project.target_columns
    if not targets:
        return np.array([""] * len(dataset))
    at = dataset.column_of(targets[0])
    return np.array([row[at] for row in dataset.rows])


def describe(group, number):
    """One sentence for the log: what group `number` (1-based) is."""
    effect = (f"; together, leaving them out would change the validation loss by about {group.combined_effect:+.3g}"
              if group.combined_effect is not None else "")
    return (f"Group {number}: {len(group.rows)} of the most harmful rows are labelled {group.label} "
            f"({group.share_of_top:.0%} of the most harmful rows, against {group.share_of_data:.0%} of all rows)"
            f"{effect}; {likely_cause(group.fitted)}; look at them together in the report. A group also holds clean rows "
            f"of its class: remove the rows that carry the fault rather than the whole group "
            f"(`nnc-cleanse cleanse --group {number}` removes them all).")


def likely_cause(fitted):
    """What a group most likely is, from whether the network fits its rows (`Group.fitted`; the log and the report
    say it)."""
    if fitted is None:
        return "rows that share an artefact, a mark or a shortcut act so"
    if fitted:
        return ("the network fits most of them (their training loss is low), as it fits rows that share an "
                "artefact, a mark or a shortcut: look for what they share besides the label")
    return ("the network kept getting most of them wrong while it trained, as it does wrong labels between two "
            "look-alike classes: check their labels")
