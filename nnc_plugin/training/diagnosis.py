"""Did the training learn? When it did not, every ranking's scores are noise, and the user is told why.

Three signs are checked after training: parameters the model file gives no initializer (nnabla
starts them at zero, so the units of a layer stay identical), a training loss that did not fall
from the first epoch trained to the last, and a network whose loss is the same for every row (its
output does not depend on its input).
"""
import os

import numpy as np

LOSS_FALL = 0.99  # the last epoch's loss must be below this share of the first's to count as learning
SAME_LOSS = 1e-6  # rows whose losses differ by less than this share of their mean are "the same"


def training_warnings(trial):
    """Plain sentences, one per sign that `trial`'s training did not learn (an empty list when it did)."""
    project, record = trial.project, trial.record
    where = os.path.basename(project.path)
    found = []
    if project.uninitialized_parameters and trial.setup.trained_parameters is None:
        names = ", ".join(project.uninitialized_parameters)
        found.append(f"The parameters {names} have no initializer in {where}, so nnabla started them at zero and "
                     "the units of their layer stay identical; set an initializer (for example NormalAffineGlorot) "
                     "in the layer's properties in Neural Network Console. Every ranking's scores are unreliable "
                     "until the network trains.")
    losses = record.epoch_losses
    if len(losses) >= 2 and not losses[-1] < LOSS_FALL * losses[0]:
        found.append(f"The training loss did not fall ({losses[0]:.4g} in the first epoch trained, {losses[-1]:.4g} "
                     "in the last), so the network did not learn and every ranking's scores are noise; check the "
                     "learning rate, the initializers and the labels.")
    history = record.loss_history
    if history is not None and len(history) > 1 and np.ptp(history) <= SAME_LOSS * max(abs(float(np.mean(history))),
                                                                                     1e-12):
        found.append("Every training row has the same loss, so the network's output does not depend on its input "
                     "(a dead network: for example every ReLU inactive) and no ranking can tell the rows apart; "
                     "check the network and its initializers.")
    return found
