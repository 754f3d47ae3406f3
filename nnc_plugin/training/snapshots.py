"""The validation loss's gradient over the last epoch, gathered while training runs.

`influence` starts from the gradient of the validation loss averaged over the last epoch: at the final
parameters and at `TrainingPlan.snapshots` evenly spaced points before them (scores/influence.py says why). Each
validation row is taken at one of the points (a seeded random split into near-equal parts: one pass over the
validation rows in all), and the parts at the points before the end are taken while training passes them, so
the cache keeps one parameter-sized sum instead of a parameter file per point. The part at the final parameters
is taken when scoring.
"""
import numpy as np


def snapshot_positions(count, per_epoch):
    """The steps of an epoch of `per_epoch` steps before which `count` evenly spaced snapshots are taken (the
    first before step 0, at the end of the epoch before; fewer when the epoch has fewer steps)."""
    return sorted({k * per_epoch // count for k in range(count)}) if count else []


def validation_parts(n_val, points, seed):
    """The validation rows taken at each of `points` points (sorted row numbers): a random split into near-equal
    parts drawn with `seed`; part 0 is taken at the final parameters, part k at snapshot k - 1."""
    order = np.random.RandomState(seed).permutation(n_val)
    return [np.sort(part) for part in np.array_split(order, points)]


class SnapshotGradient:
    """The sum, over the snapshots a training passes, of (its part's rows / all validation rows) x the gradient of
    the mean loss over its part of the validation rows there. `add` is the trainer's snapshot hook."""

    def __init__(self, val_data, points, seed, batch_size):
        self.val_data, self.batch_size = val_data, batch_size
        self.parts = validation_parts(len(val_data), points, seed)
        self.total = None
        self.count = 0

    def add(self, model):
        """Take the next snapshot's part at the model's current parameters."""
        self.count += 1
        part = self.parts[self.count]
        if not len(part):
            return
        gradient, _ = model.loss_gradient(self.val_data.subset(part), self.batch_size)
        weighted = [(g * (len(part) / len(self.val_data))).astype(np.float64) for g in gradient]
        self.total = weighted if self.total is None else [t + w for t, w in zip(self.total, weighted)]
