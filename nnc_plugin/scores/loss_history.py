"""`--ranking loss-history`: the rows the network kept getting wrong while it trained. Written as minus the loss,
so that ascending order (most harmful first) puts the highest loss first."""
import numpy as np

from ..log import info
from .registry import Ranking, ReportText, register


@register
class LossHistory(Ranking):
    """Each row's training loss averaged over the second half of the epochs, each time measured on the
    minibatch it was trained in. Free: the trainer records it. Mislabeled rows are learned late, so their
    loss stays high."""
    name = "loss-history"
    help = ("each row's training loss over the second half of training: finds mislabelled rows, not rows the "
            "network fits that still hurt (docs/evidence.md)")
    report = ReportText(
        "its training loss over the second half of training (the score is minus that loss)", False,
        "Most suspicious samples (highest training loss)",
        "samples the model kept failing on while it trained",
        "Least suspicious samples (lowest training loss)",
        "samples the model learned most easily")

    def score(self, trial):
        plan = trial.setup.plan
        if trial.setup.trained_parameters is not None:
            epochs = plan.epochs - max(plan.epochs // 2, plan.first_epoch)
            info(f"loss-history: training went on from the trained model, so each row's loss is averaged over the "
                 f"{epochs} epoch{'s' if epochs > 1 else ''} trained again, not over the second half of the whole "
                 "training.")
        return -trial.record.loss_history.astype(np.float64)
