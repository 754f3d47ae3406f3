"""`--ranking influence`: each row's expected SGD-influence on the validation loss, over the random order
of training, going back only as far as the backward recursion contracts.

SGD-influence (sgd_influence.py) follows one particular minibatch order: row j's score is the term
v_t . grad l_j / |B_t| of the one step t of the traced epoch that held it, so a row trained early in that
epoch is scored through a long stretch of the recursion and a row trained late through none of it. NNC
draws a new order every epoch, and no row's place in it says anything about the row. Averaged over that
order (each row is in a given minibatch with probability |B_t| / N), the term becomes

    infl_j = vbar . grad l_j(theta_T),        vbar = (1 / N) sum_{t = T-1, T-2, ..., T-h} v_t

with v_t the recursion's step direction (recursion.py's v). vbar is one vector for every row, so the
per-row work is one directional derivative (two forward passes per row, as `directional_losses`).

How far back (h): going back, (I - eta H) shrinks u along the directions the loss curves in and keeps it
along the flat ones; sum_t v_t is then a damped inverse of the Hessian applied to the validation gradient
(a Neumann series). At a large learning rate the same recursion starts to expand after a while (eta times
the sharpest minibatch curvature above 2, or negative curvature), and what it adds after that is not the
sample's effect but the growth of a few unstable directions. So the recursion goes back while |u| keeps
falling (by at least 5% over the last WINDOW steps), at most MAX_STEPS steps, and the sum covers the steps
up to where |u| was smallest (`DepthRule`). Measured on the two sample projects in four regimes
(research/notebook.md): the best fixed depth ranges from 16 steps (MNIST, SGD at a constant 0.1)
to over 200 (the digits MLP), and the smallest-|u| step lands near it in every case.

The class directions (class_directions.py): where the Hessian at the final parameters has
C - 1 eigenvalues far above the rest (C classes; trained classifiers often have such a group),
the validation gradient and every row's gradient are dominated by those directions, which say which class a
row is rather than what its label is worth. The deep sum above damps them slowly (it is why the MLP samples
need 200 steps); here they are left out of u and the solver state at every step instead, and the sum
covers the last PROJECTED_STEPS steps: with them gone, what is left curves little, one step and sixteen
rank alike, and going further back did not help on average in any setting measured
(research/notebook.md). Where no group stands apart (the MNIST CNN trained with SGD, Momentum or a
decaying rate), nothing is left out and the DepthRule decides.

Steps before the traced epoch are drawn as training drew them (Trial.schedule_back), at the learning
rates the model file's scheduler gave them.

The validation loss averaged over the last epoch: at a large constant learning rate training does not
settle, its final parameters are one point of where it wanders, and the validation gradient there is
mostly that point's own displacement rather than the pull of the data. So the recursion starts from the
validation gradient averaged over the final parameters and SNAPSHOTS earlier, evenly spaced points of the
last epoch, whose parameters training keeps for this (TrainingPlan.snapshots): it scores each row's
influence on the validation loss averaged over the last epoch. Measured from NNC's trained MNIST model
(research/evidence.md): one trial's AUROC at SGD's constant 0.1 rose from 0.919 to 0.967, with
Momentum from 0.905 to 0.963 (3, 5 and 17 points instead of 9 in a probe: 0.942, 0.958, 0.960 and
0.957, 0.964, 0.966); after a decaying rate or with Adam the points lie close together and it changed
little.
"""
from ..log import info
from .registry import Ranking, ReportText, register

SNAPSHOTS = 8  # points of the last epoch, besides its end, where the validation gradient is averaged


def epoch_mean_validation_gradient(trial):
    """The gradient of the validation loss averaged over the last epoch: at the final parameters and at the
    `trial.record.snapshots` points of the epoch the cache keeps (module docstring). The model holds the final
    parameters again on return."""
    from .gradients import validation_gradient  # nnabla: imported when scoring, not when listing the rankings
    model = trial.model
    final = model.parameter_arrays()
    total, _ = validation_gradient(model, trial.val_data, trial.batch_size)
    try:
        for k in range(trial.record.snapshots):
            trial.cache.load_snapshot(k, model)
            gradient, _ = validation_gradient(model, trial.val_data, trial.batch_size)
            total = [t + g for t, g in zip(total, gradient)]
    finally:
        model.set_parameter_arrays(final)
    return [t / (1 + trial.record.snapshots) for t in total]


@register
class Influence(Ranking):
    """Each row's expected SGD-influence on the mean validation loss (module docstring): < 0, the row's
    training steps raised the validation loss."""
    name = "influence"
    help = ("influence on the validation loss: SGD-influence averaged over the random order of training, "
            "stable with every solver and learning rate (docs/evidence.md)")
    needs_validation = True
    second_order = True
    # At a constant rate one trial's AUROC spread 0.92-0.99 over draws from one trained model (MNIST, SGD and
    # Momentum); the average of 3 trials measured 0.976 and 0.974, of 6 0.982 and 0.975 (research/evidence.md).
    trials_at_full_rate = 3
    snapshots = SNAPSHOTS
    report = ReportText(
        "how much its training steps changed the model's loss on the validation data (influence)", True,
        "Most harmful samples (lowest influence)",
        "samples whose training steps raised the validation loss the most",
        "Most helpful samples (highest influence)",
        "samples whose training steps lowered the validation loss the most; keep these")

    def score(self, trial):
        from .class_directions import find_class_directions, search_cost
        from .recursion import MAX_STEPS, PropagationSettings, expected_influence
        model = trial.model
        u = epoch_mean_validation_gradient(trial)
        schedule = trial.schedule_back(MAX_STEPS)
        classes = trial.project.classes
        # the search for the class directions, only where it costs no more than the longest recursion would
        worth_it = 0 < search_cost(classes, len(trial.train_data)) <= len(schedule.indices)
        directions = (find_class_directions(model, trial.train_data, trial.batch_size, classes, trial.seed + 4,
                                            self.reference) if worth_it else None)
        settings = PropagationSettings(weight_decay=trial.project.weight_decay, reference=self.reference,
                                       title=f"Scoring ({trial.title})", class_directions=directions)
        scores, depth = expected_influence(model, trial.train_data, schedule, u,
                                           trial.linearisation("final", schedule), settings)
        info(f"influence ({trial.title}): followed each row's effect on the validation loss back through the last "
             f"{depth.best} training steps.")
        return scores
