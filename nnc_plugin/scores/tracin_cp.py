"""`--ranking tracin-cp`: influence on the validation loss from a few checkpoints of training (TracIn-CP).

Pruthi et al. (NeurIPS 2020) estimate a training row's influence on a loss by the first-order
effect of its steps, checkpoint by checkpoint:

    infl_j = sum_k eta_k c . (grad L_val(theta_k) * grad l_j(theta_k))

over the parameters theta_k at the end of the last CHECKPOINTS epochs (the last is theta_T), eta_k the
learning rate there and c the solver's step factor (step_size.py). No backward recursion through the
Hessian: the estimate cannot grow without bound, whatever the learning rate or the solver, and it
needs no second derivative, so it also scores networks whose layers nnabla cannot differentiate twice
(binary layers), where `influence` and `sgd-influence` cannot run. docs/evidence.md has its
numbers: a baseline, less accurate than `influence` at finding mislabelled rows.
"""
import numpy as np

from ..log import Progress
from .registry import Ranking, ReportText, register

CHECKPOINTS = 3


@register
class TracInCP(Ranking):
    """Each row's influence on the validation loss, summed over the checkpoints at the ends of the last
    epochs (TracIn-CP); < 0, the row's steps raised the validation loss (harmful)."""
    name = "tracin-cp"
    help = ("first-order influence on the validation loss at the last 3 epochs' ends (TracIn-CP): needs no second "
            "derivative, for networks the other influence rankings refuse")
    needs_validation = True
    checkpoints = CHECKPOINTS
    report = ReportText(
        "how much its training steps changed the model's loss on the validation data (TracIn-CP)", True,
        "Most harmful samples (lowest influence)",
        "samples whose training steps raised the validation loss the most",
        "Most helpful samples (highest influence)",
        "samples whose training steps lowered the validation loss the most; keep these")

    def score(self, trial):
        from .gradients import directional_losses, validation_gradient  # nnabla: imported when scoring
        model, cache = trial.model, trial.cache
        final = model.parameter_arrays()
        factors = trial.step_factors("final")(len(trial.record.schedule) - 1)
        influence = np.zeros(len(trial.train_data), dtype=np.float64)
        last = trial.record.checkpoints[-1][0]
        with Progress(f"Scoring ({trial.title})", len(trial.record.checkpoints)) as progress:
            for epoch, learning_rate in trial.record.checkpoints:
                if epoch != last:
                    cache.load_checkpoint(epoch, model)
                u, _ = validation_gradient(model, trial.val_data, trial.batch_size)
                v = [(learning_rate * c * a).astype(np.float32) for c, a in zip(factors, u)]
                influence += directional_losses(model, trial.train_data, v, trial.batch_size, exact=self.reference)
                model.set_parameter_arrays(final)
                progress.advance(1)
        return influence
