"""`--ranking loss`: the rows the trained network fits worst. Written as minus the loss, so that ascending
order (most harmful first) puts the highest loss first."""
from .registry import Ranking, ReportText, register


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
