"""`--ranking influence`: each row's expected SGD-influence on the validation loss, over the random order
of training, going back only as far as the backward recursion contracts.

SGD-influence (influence.py) follows one particular minibatch order: row j's score is the term
v_t . grad l_j / |B_t| of the one step t of the traced epoch that held it, so a row trained early in that
epoch is scored through a long stretch of the recursion and a row trained late through none of it. NNC
draws a new order every epoch, and no row's place in it says anything about the row. Averaged over that
order (each row is in a given minibatch with probability |B_t| / N), the term becomes

    infl_j = vbar . grad l_j(theta_T),        vbar = (1 / N) sum_{t = T-1, T-2, ..., T-h} v_t

with v_t the recursion's step direction (influence.py's v). vbar is one vector for every row, so the
per-row work is one directional derivative (two forward passes per row, as `directional_losses`).

How far back (h): going back, (I - eta H) shrinks u along the directions the loss curves in and keeps it
along the flat ones; sum_t v_t is then a damped inverse of the Hessian applied to the validation gradient
(a Neumann series). At a large learning rate the same recursion starts to expand after a while (eta times
the sharpest minibatch curvature above 2, or negative curvature), and what it adds after that is not the
sample's effect but the growth of a few unstable directions. So the recursion goes back while |u| keeps
falling (by at least 5% over the last WINDOW steps), at most MAX_STEPS steps, and the sum covers the steps
up to where |u| was smallest (`DepthRule`). Measured on the two sample projects in four regimes
(docs/influence_research.md): the best fixed depth ranges from 16 steps (MNIST, SGD at a constant 0.1)
to over 200 (the digits MLP), and the smallest-|u| step lands near it in every case.

The directions that mark the classes (hessian_outliers.py): where the Hessian at the final parameters has
C - 1 eigenvalues far above the rest (C classes; trained classifiers often have such a group),
the validation gradient and every row's gradient are dominated by those directions, which say which class a
row is rather than what its label is worth. The deep sum above damps them slowly (it is why the MLP samples
need 200 steps); here they are removed from u and the solver state at every step instead, and the sum
covers the last PROJECTED_STEPS steps: with them gone, what is left curves little, one step and sixteen
rank alike, and going further back did not help on average in any setting measured
(docs/influence_research.md). Where no group stands apart (the MNIST CNN trained with SGD, Momentum or a
decaying rate), nothing is removed and the DepthRule decides.

Steps before the traced epoch are drawn as training drew them (Trial.schedule_back), at the learning
rates the model file's scheduler gave them.

The validation loss averaged over the last epoch: at a large constant learning rate training does not
settle, its final parameters are one point of where it wanders, and the validation gradient there is
mostly that point's own displacement rather than the pull of the data. So the recursion starts from the
validation gradient averaged over the final parameters and SNAPSHOTS earlier, evenly spaced points of the
last epoch, whose parameters training keeps for this (TrainingPlan.snapshots): it scores each row's
influence on the validation loss averaged over the last epoch. Measured from NNC's trained MNIST model
(docs/evidence.md, section 4): one trial's AUROC at SGD's constant 0.1 rose from 0.919 to 0.967, with
Momentum from 0.905 to 0.963 (3, 5 and 17 points instead of 9 in a probe: 0.942, 0.958, 0.960 and
0.957, 0.964, 0.966); after a decaying rate or with Adam the points lie close together and it changed
little.
"""
import numpy as np

from ..log import Progress, info
from .hessian_outliers import find_outliers, search_cost
from .influence import AdjointRecursion, PropagationSettings, directional_losses, validation_gradient
from .registry import Ranking, ReportText, register

MAX_STEPS = 256  # the deepest the recursion goes; beyond it the measured rankings no longer changed
WINDOW = 32  # steps over which |u| must keep falling ...
KEEP_FALLING = 0.95  # ... by at least 5%, for the recursion to go on
PROJECTED_STEPS = 16  # the steps summed when the directions that mark the classes are removed
SNAPSHOTS = 8  # points of the last epoch, besides its end, where the validation gradient is averaged


class DepthRule:
    """Where to stop going back, from |u| after each step back: once |u| has fallen by less than 5% over the
    last WINDOW steps (or risen), or after MAX_STEPS steps; the sum then covers the steps up to the
    smallest |u| seen (at least one step)."""

    def __init__(self, start_norm):
        self.norms = [start_norm]  # |u| after 0, 1, 2, ... steps back
        self.best = 0  # steps back at the smallest |u| (0: none taken yet)
        self.limit = MAX_STEPS  # the most steps it goes back

    def stop_after(self, norm):
        """Record |u| after one more step back; True when going further back is of no use."""
        self.norms.append(norm)
        back = len(self.norms) - 1
        finite = bool(np.isfinite(norm))
        if self.best == 0 or (finite and norm < self.norms[self.best]):
            self.best = back
        if not finite or back >= self.limit:  # overflowed: what came before is all there is
            return True
        return back >= WINDOW and norm > KEEP_FALLING * self.norms[back - WINDOW]

    @property
    def gone_back(self):
        """How many steps back the recursion went."""
        return len(self.norms) - 1

    @property
    def shrink(self):
        """|u| where it was smallest, over |u| at the end of training."""
        return self.norms[self.best] / self.norms[0] if self.norms[0] > 0 else 1.0


class FixedDepth(DepthRule):
    """The sum over the last `steps` steps (or all there are), whatever |u| does."""

    def __init__(self, start_norm, steps):
        super().__init__(start_norm)
        self.limit = steps

    def stop_after(self, norm):
        self.norms.append(norm)
        self.best = len(self.norms) - 1
        return self.best >= self.limit or not np.isfinite(norm)


def expected_influence(model, dataset, schedule, u, linearisation, settings=None):
    """Return (every row's expected SGD-influence: float64, one value per row of `dataset`; the rule that
    decided the depth, a `DepthRule`).

    `schedule` holds the steps to go back through, last step last (Trial.schedule_back); `u`, `linearisation`
    and `settings` as in influence.sgd_influence (`settings.reference`: the per-sample reference path, and
    the exact inner products instead of the finite difference). With `settings.keep_out` (the directions
    that mark the classes) the recursion stays out of them and sums PROJECTED_STEPS steps (`FixedDepth`);
    without, the `DepthRule` decides."""
    settings = settings or PropagationSettings()
    recursion = AdjointRecursion(model, schedule, u, linearisation, settings)
    total = [np.zeros(a.shape, dtype=np.float64) for a in recursion.u]
    rule = FixedDepth(recursion.start_norm, PROJECTED_STEPS) if settings.keep_out else DepthRule(recursion.start_norm)
    best_total = None
    with Progress(settings.title, min(len(schedule), rule.limit)) as progress:
        for back in range(1, len(schedule) + 1):
            recursion.step_back(dataset, len(schedule) - back)
            for s, v in zip(total, recursion.v):  # v comes from u before this step: finite even if u overflowed now
                s += v
            stop = rule.stop_after(recursion.norm)
            if rule.best == back:
                best_total = [a.copy() for a in total]
            progress.advance(1)
            if stop:
                break
    direction = [(s / len(dataset)).astype(np.float32) for s in best_total]
    batch_size = int(np.max(np.diff(schedule.offsets)))  # training's: its forward passes fit in memory
    return directional_losses(model, dataset, direction, batch_size, exact=settings.reference), rule


def epoch_mean_validation_gradient(trial):
    """The gradient of the validation loss averaged over the last epoch: at the final parameters and at the
    `trial.record.snapshots` points of the epoch the cache keeps (module docstring). The model holds the final
    parameters again on return."""
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
class ExpectedInfluence(Ranking):
    """Each row's expected SGD-influence on the mean validation loss (module docstring): < 0, the row's
    training steps raised the validation loss."""
    name = "influence"
    help = ("influence on the validation loss: SGD-influence averaged over the random order of training, "
            "stable with every solver and learning rate (docs/influence.md)")
    needs_validation = True
    second_order = True
    # At a constant rate one trial's AUROC spread 0.92-0.99 over draws from one trained model (MNIST, SGD and
    # Momentum); the average of 3 trials measured 0.976 and 0.974, of 6 0.982 and 0.975 (docs/evidence.md, section 4).
    trials_at_full_rate = 3
    snapshots = SNAPSHOTS
    report = ReportText(
        "how much its training steps changed the model's loss on the validation data (influence)", True,
        "Most harmful samples (lowest influence)",
        "samples whose training steps raised the validation loss the most",
        "Most helpful samples (highest influence)",
        "samples whose training steps lowered the validation loss the most; keep these")

    def score(self, trial):
        model = trial.model
        u = epoch_mean_validation_gradient(trial)
        schedule = trial.schedule_back(MAX_STEPS)
        classes = trial.project.classes
        # the search for the class directions, only where it costs no more than the longest recursion would
        worth_it = 0 < search_cost(classes, len(trial.train_data)) <= len(schedule.indices)
        outliers = (find_outliers(model, trial.train_data, trial.batch_size, classes, trial.seed + 4, self.reference)
                    if worth_it else None)
        settings = PropagationSettings(weight_decay=trial.project.weight_decay, reference=self.reference,
                                       title=f"Scoring ({trial.title})", keep_out=outliers)
        scores, depth = expected_influence(model, trial.train_data, schedule, u,
                                           trial.linearisation("final", schedule), settings)
        points = (f"{trial.record.snapshots + 1} points of the last epoch" if trial.record.snapshots
                  else "the final parameters")
        if outliers:
            info(f"influence ({trial.title}): on the validation loss averaged over {points}; left out the "
                 f"{outliers.count} directions in which the training loss curves far more sharply than in any other "
                 f"(they mark the classes, not what a label is worth); summed over the last {depth.best} training "
                 "steps.")
        else:
            further = f"; it went back {depth.gone_back} steps to find that" if depth.gone_back > depth.best else ""
            info(f"influence ({trial.title}): on the validation loss averaged over {points}; summed over the last "
                 f"{depth.best} training steps, where the validation gradient traced back was smallest "
                 f"({depth.shrink:.2g} of its size at the end){further}.")
        if trial.setup.n_trials == 1 and trial.one_trial_is_a_draw():
            rate = float(trial.record.schedule.learning_rates[-1])
            remedy = (f"-nt auto, the default, averages {self.trials_at_full_rate} one-epoch trials here"
                      if trial.setup.trained_parameters is not None else
                      "-nt 3 averages three trainings, each of every epoch (0.973 and 0.972 with SGD and Momentum on "
                      "the MNIST sample, against 0.964 and 0.959)")
            info(f"Note: training ends at its full learning rate ({rate:g}), so its final parameters are one draw of "
                 "where training wanders, and one trial's influence ranking varies from draw to draw (AUROC 0.92-0.99 "
                 f"on the MNIST sample); {remedy} (docs/evidence.md, sections 4 and 5).")
        return scores
