"""What a ranking is, and the list of them.

A ranking turns one trained `Trial` into one score per training row, lower = more harmful, and
declares what it needs: validation data, second derivatives (nnabla cannot take them through
every layer), the parameters of every traced step. It also says how the report and the help
text speak of its scores. Adding a ranking is one subclass with `@register`, in a module of this
package named after it, imported by `scores/__init__.py`. Ranking modules import the calculus
they score with (nnabla) inside `score`, so that listing the rankings (`--help`, NNC's plugin menu)
stays quick.

A candidate that is not (yet) part of the package, such as a research ranking, is tried with
`trying(Candidate)`: it is known by its name inside that block only.
"""
import contextlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

DEFAULT_RANKING = "influence"
# The default's stand-in where it cannot run: no validation data, or a network nnabla cannot differentiate twice.
FALLBACK_RANKING = "loss-history"


@dataclass
class Scores:
    """What a ranking may return instead of a bare array: the scores (lower: more harmful), each row's estimated
    effect on the validation loss if it were left out (negative: the loss would fall), where the ranking estimates
    one (outputs/groups.py adds them up for a group), and each row's training loss, where the ranking used it
    (a group says whether the network fits its rows)."""
    values: np.ndarray
    effects: Optional[np.ndarray] = None
    losses: Optional[np.ndarray] = None


@dataclass(frozen=True)
class ReportText:
    """How the report speaks of a ranking's scores (lower is always more harmful)."""
    scored_by: str  # "...was scored by <scored_by>"
    signed: bool  # True: the sign itself means harmful (< 0) or helpful (> 0)
    low_title: str
    low_note: str
    high_title: str
    high_note: str


GENERIC_TEXT = ReportText("its score", False, "Lowest scores (most harmful first)", "samples with the lowest scores",
                          "Highest scores", "samples with the highest scores")


class Ranking:
    """A way to score training rows. Subclasses set the class attributes and write `score`."""
    name = ""
    help = ""  # a few words for --help
    needs_validation = False  # the scores refer to the validation loss
    second_order = False  # needs second derivatives (nnabla's double backward) through the network
    checkpoints = 0  # needs the parameters at the end of the last this-many epochs
    snapshots = 0  # needs the validation gradient at this many evenly spaced points of the last epoch
    report = GENERIC_TEXT

    def __init__(self, mode="final", reference=False):
        self.mode = mode  # SGD-influence: "final" (storage-efficient) or "all" (exact)
        self.reference = reference  # use the slow per-sample reference computation

    @property
    def keeps_step_parameters(self):
        """True when training must cache the parameters of every traced step."""
        return False

    def score(self, trial):
        """Return one float64 score per training row of `trial` (lower: more harmful), or a `Scores`."""
        raise NotImplementedError


_RANKINGS = {}


def register(cls):
    """Class decorator of the package's ranking modules: make a `Ranking` subclass available by its name (the
    order of registration is kept)."""
    if not cls.name or cls.name in _RANKINGS:
        raise ValueError(f"a ranking needs a unique name, not '{cls.name}'")
    _RANKINGS[cls.name] = cls
    return cls


@contextlib.contextmanager
def trying(*classes):
    """Make the `Ranking` subclasses `classes` available by their names inside the block, and only there."""
    added = []
    try:
        for cls in classes:
            added.append(register(cls).name)
        yield
    finally:
        for name in added:
            del _RANKINGS[name]


def names():
    """The names of every registered ranking, in the order they were registered."""
    return tuple(_RANKINGS)


def ranking_class(name):
    return _RANKINGS[name]


def create(name, mode="final", reference=False):
    """A ranking object for `name` with its settings."""
    return _RANKINGS[name](mode=mode, reference=reference)


def report_text(name):
    """How the report speaks of the scores of the ranking `name` (a generic text for unknown names)."""
    cls = _RANKINGS.get(name)
    return cls.report if cls is not None else GENERIC_TEXT
