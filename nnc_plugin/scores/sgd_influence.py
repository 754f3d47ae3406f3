"""`--ranking sgd-influence`: SGD-influence (Hara et al. 2019; storage-efficient: Suzuki et al. 2021).

Each row's score is the term of the backward recursion (recursion.py) at the one step of the traced epoch
that held it, along the minibatch order training took: what leaving the row out of that step would have
changed in the validation loss at the end of training.
"""
from ..log import info
from .registry import Ranking, ReportText, register

UNSTABLE_GROWTH = 100.0  # u growing more than this over the traced steps: the propagation is unstable


@register
class SgdInfluence(Ranking):
    """Each row's SGD-influence on the mean validation loss (recursion.py): < 0, leaving the row out
    would have lowered the validation loss. `mode` "final" takes every gradient at the final
    parameters (storage-efficient), "all" at the parameters cached before each traced step (exact)."""
    name = "sgd-influence"
    help = "influence on the validation loss (SGD-influence)"
    needs_validation = True
    second_order = True
    report = ReportText(
        "how much it changed the model's loss on the validation data (SGD influence)", True,
        "Most harmful samples (lowest influence)",
        "samples whose removal would lower the validation loss the most",
        "Most helpful samples (highest influence)",
        "samples that lowered the validation loss the most; keep these")

    @property
    def keeps_step_parameters(self):
        return self.mode == "all"

    def score(self, trial):
        from .gradients import validation_gradient  # nnabla: imported when scoring, not when listing the rankings
        from .recursion import PropagationSettings, sgd_influence
        model = trial.model
        u, _ = validation_gradient(model, trial.val_data, trial.batch_size)
        settings = PropagationSettings(
            weight_decay=trial.project.weight_decay, reference=self.reference, title=f"Scoring ({trial.title})",
            load_parameters_before_step=(lambda t: trial.cache.load_step_parameters(t, model))
            if self.mode == "all" else None)
        scores = sgd_influence(model, trial.train_data, trial.record.schedule, u, trial.linearisation(self.mode),
                               settings)
        if settings.u_growth > UNSTABLE_GROWTH:
            info(f"Note: going back through the last epoch's training steps, the effect of the rows on the "
                 f"validation loss grew {settings.u_growth:.3g} times instead of fading: training ends at a learning "
                 "rate too large for SGD-influence to follow, so the rows trained first in that epoch get the largest "
                 "scores whatever they are worth. Use --ranking influence, which stops before that growth, or the "
                 "default ranking (docs/evidence.md).")
        return scores
