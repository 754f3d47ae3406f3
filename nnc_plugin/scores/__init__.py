"""The rankings: one score per training row, lower = more harmful (see registry.py).

Importing this package registers every ranking, in the order the help text lists them.
"""
# each module registers its rankings, in this order (the order of the help text)
from . import losses, self_influence, sgd_influence, expected_influence, checkpoints  # noqa: F401, I001
from .registry import DEFAULT_RANKING, Ranking, create, names, ranking_class, register, report_text  # noqa: F401
