"""The training loss as a second witness in `influence`'s order.

Influence on the validation loss finds the rows that hurt the validation data whatever their loss: rows the network
fits that taught it a shortcut, which a loss ranking calls the most helpful, and most wrong labels. On harder images
it misses some wrong labels that the network keeps getting wrong while it trains, and that `loss-history` finds.
`influence` orders the rows by

    s_j = infl_j / spread + LOSS_WEIGHT * min(Phi^-1(q_j), 0)

with spread the typical size of the influence scores (their median absolute deviation, times 1.4826: a normal's
standard deviation), q_j row j's place in the order by training loss (`TrainingRecord.loss_history`, highest
first) as a fraction of the rows, and Phi^-1 the normal quantile. Only the higher-loss half moves: a row among the
10% highest losses by at most 0.9 units of influence's spread, among the highest 1% by 1.6, the highest of 50,000
rows by 2.9, while rows that taught a shortcut sit 2 to 20 units down. Where influence's most harmful rows form
a group that the network fits (rows of one label that act together, most of them with a training loss below the
median, as a shortcut's rows: outputs/groups.py, the report's groups), the witness is off for the other labels
and turns around inside the group's label: there the rows the network finds hard are the clean ones that lack
the shortcut, the rows that teach the class without it, and they move back (towards helpful) by as much as a
hard row elsewhere would move forward. Removing a shortcut helps only if its rows go and the clean rows of its
class stay (measured, research/results/loss_witness.md sections 6-9: with the witness on every row, a frame on one
class won back 34% of what removing its rows won, 77% without; the clean rows of a barred class in the first k
cost a third of the gain). A group the network keeps getting wrong (wrong labels between two look-alike
classes, as the 4s labelled 9 of one colour-image model) keeps the witness as everywhere. The sign of influence
is kept (s_j < 0: harmful), and `Scores.effects` keeps the estimate of influence alone.

Measured (research/results/loss_witness.md; colour seeds 0-4, every other kind 0-2, from a bare .nntxt / from a
trained model): wrong labels on colour images, AUROC 0.905 / 0.899 (influence alone) -> 0.954 / 0.956, with 68% /
67% of them in the first 10% (55% / 52%); MNIST's 0.994 / 0.992 -> 0.996 / 0.995. Every shortcut kind formed a
fitted group; the turned witness raised the share of the harmful rows' remove-and-retrain gain that removing the
first k won on the bar from 0.69 to 0.89 and on the frame from 0.82 to 1.12 (bare .nntxt), and lowered the
frame's from a trained model from 0.77 to 0.70.
"""
from statistics import NormalDist

import numpy as np

from ..outputs.groups import find_groups

LOSS_WEIGHT = 0.7
MAD_TO_SD = 1.4826


def typical_size(values):
    """The spread of `values` that one unit of the combined score stands for: the median absolute deviation (as a
    normal's standard deviation), or the mean absolute deviation where over half the values are equal."""
    values = np.asarray(values, dtype=np.float64)
    deviations = np.abs(values - np.median(values))
    spread = MAD_TO_SD * np.median(deviations)
    if not spread > 0:
        spread = float(np.mean(deviations))
    return spread if spread > 0 else 1.0


def loss_quantiles(losses):
    """Each row's place in the order by `losses` (highest first) as a standard normal quantile: the first of N rows
    near Phi^-1(0.5 / N), the median 0. Equal losses share their average place; a loss that is not finite counts as
    the median."""
    losses = np.asarray(losses, dtype=np.float64)
    losses = np.where(np.isfinite(losses), losses, np.median(losses[np.isfinite(losses)]) if np.isfinite(losses).any()
                      else 0.0)
    n = len(losses)
    places = np.empty(n)
    places[np.argsort(-losses, kind="stable")] = np.arange(n)
    _, tie, counts = np.unique(-losses, return_inverse=True, return_counts=True)
    places = (np.bincount(tie, weights=places) / counts)[tie]
    quantile = NormalDist().inv_cdf
    return np.array([quantile(f) for f in (places + 0.5) / n])


def with_loss_witness(influence, losses, weight=LOSS_WEIGHT):
    """The module's s_j: `influence` in units of its spread, moved down by `weight` x the harmful half of the rows'
    loss quantiles (`losses`: each row's training loss). `weight` 0: influence alone, rescaled."""
    scaled = np.asarray(influence, dtype=np.float64) / typical_size(influence)
    if not weight:
        return scaled
    return scaled + weight * np.minimum(loss_quantiles(losses), 0.0)


def influence_order(influence, losses, labels, weight=LOSS_WEIGHT):
    """`influence`'s scores as the package orders them (`labels`: each row's label): `with_loss_witness`, or,
    where influence's most harmful rows form groups that the network fits (outputs/groups.py), influence alone
    with the witness turned around in those groups' labels."""
    shortcut_labels = [group.label for group in find_groups(influence, labels, losses=losses) if group.fitted]
    if not shortcut_labels:
        return with_loss_witness(influence, losses, weight)
    in_shortcut_class = np.isin(np.asarray(labels).astype(str), shortcut_labels)
    return with_loss_witness(influence, losses, 0.0) - weight * in_shortcut_class * np.minimum(
        loss_quantiles(losses), 0.0)
