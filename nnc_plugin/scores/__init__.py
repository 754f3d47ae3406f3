"""The rankings: one score per training row, lower = more harmful (see registry.py).

`--ranking X` is defined in the module named after it (`scores/X.py`, with `_` for `-`). Importing this
package registers every ranking, in the order the help text lists them. The calculus they share:
gradients.py (directional derivatives, Hessian-vector products), recursion.py (SGD-influence's backward
recursion), class_directions.py (the sharpest Hessian directions of a classifier).
"""
# each module registers its ranking, in this order (the order of the help text)
from . import influence, loss_history, loss, self_influence, sgd_influence, tracin_cp  # noqa: F401, I001
from .registry import (DEFAULT_RANKING, FALLBACK_RANKING, Ranking, Scores, create, names, ranking_class,  # noqa: F401
                       register, report_text, trying)
