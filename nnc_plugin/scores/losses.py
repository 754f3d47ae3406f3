"""Rankings by loss: the rows the network fits worst. Written as minus the loss, so that ascending
order (most harmful first) puts the highest loss first."""
import numpy as np

from ..log import info

from .registry import Ranking, ReportText, register


@register
class LossHistory(Ranking):
    """Each row's training loss averaged over the second half of the epochs, each time measured on the
    minibatch it was trained in. Free: the trainer records it. Mislabeled rows are learned late, so their
    loss stays high."""
    name = "loss-history"
    help = ("each row's training loss over the second half of training, the best at finding mislabeled rows "
            "(docs/evidence.md)")
    report = ReportText(
        "its training loss over the second half of training (the score is minus that loss)", False,
        "Most suspicious samples (highest training loss)",
        "samples the model kept failing on while it trained",
        "Least suspicious samples (lowest training loss)",
        "samples the model learned most easily")

    def score(self, trial):
        plan = trial.setup.plan
        if trial.setup.trained_parameters is not None:
            info(f"loss-history averages each row's loss over the {plan.epochs - max(plan.epochs // 2, plan.first_epoch)} "
                 "epoch(s) trained from the trained parameters, not over the second half of the whole training.")
        return -trial.record.loss_history.astype(np.float64)


@register
class FinalLoss(Ranking):
    """Each row's loss at the final parameters (one forward pass)."""
    name = "loss"
    help = "each row's loss at the end of training"
    report = ReportText(
        "its loss at the end of training (the score is minus that loss)", False,
        "Most suspicious samples (highest final loss)",
        "samples the trained model fits worst",
        "Least suspicious samples (lowest final loss)",
        "samples the trained model fits best")

    def score(self, trial):
        return -trial.model.per_sample_losses(trial.train_data, trial.batch_size)
