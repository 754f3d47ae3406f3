"""The rankings: one score per training row, lower = more harmful (see registry.py).

Importing this package registers every ranking, in the order the help text lists them.
"""
from . import losses, self_influence, sgd_influence  # noqa: F401  (each module registers its rankings)
from .registry import DEFAULT_RANKING, Ranking, create, names, ranking_class, register, report_text  # noqa: F401
