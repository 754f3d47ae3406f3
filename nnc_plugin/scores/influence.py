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

Where the recursion starts (`Influence.starting_gradient`): at a large constant learning rate training does not
settle, its final parameters are one point of where it wanders, and the validation gradient there is mostly
that point's own displacement rather than the pull of the data. So the recursion starts from the validation
gradient averaged over the final parameters and SNAPSHOTS earlier, evenly spaced points of the last epoch, each
validation row taken at one of them (training/snapshots.py gathers the earlier points' parts while training
runs, so the cache keeps one sum, not a parameter file per point). Other starts measured and not kept:
research/results/validation_direction.md.

Each row's error divided out: by the chain rule vbar . grad l_j = e_j . zdot_j, with e_j = d l_j / d z_j the
row's error in the network's logits z (p - y for a softmax cross-entropy) and zdot_j how the row's logits move
along vbar. The score is (e_j / |e_j|) . zdot_j: the same sign, without the size of the error. A row the network
fits already (the rows of one class that carry an artefact are fitted early: their loss is low, loss rankings
call them the most helpful) counts by the direction it pulls the network in, which is what harms the validation
data; a wrong label keeps its sign and most of its weight (|e_j| is at most sqrt 2). Measured (research/harm.py,
research/notebook.md): right-labelled rows of one class with a mark, a frame or a tint, AUROC 0.74-0.83 before,
1.00 with the division; wrongly labelled rows of the MNIST sample 0.96-0.98 before, 0.986-0.994 with it.
`Scores.effects` keeps the undivided vbar . grad l_j, the estimated change of the validation loss if the row
were left out (outputs/groups.py adds it up for a group).

The order: the normalised scores in units of their spread, the rows the network kept getting wrong moved down by
a bounded amount, unless the most harmful rows form a group acting together (loss_witness.py: a second witness
for wrong labels on harder images, free, since training records every row's loss).

The cost: the search and the recursion take what keeps the whole scoring within `cost_bound` times
sgd-influence's cost and `epoch_bound` epochs of training (`search_and_depth`), second-order work under
`free_multiply_adds` multiply-adds not counted.
"""
import numpy as np

from ..log import info
from ..training.snapshots import validation_parts
from .loss_witness import LOSS_WEIGHT, influence_order
from .registry import Ranking, ReportText, Scores, register

SNAPSHOTS = 8  # points of the last epoch, besides its end, where the validation gradient is averaged
# What a row costs, in training rows (one forward and one backward pass), measured on the sample CNN on CPU
# (benchmarks/step_costs.py): through the second derivatives (a double backward) about 3, a forward pass about a third.
ROW_COSTS = {"second order": 3.0, "forward": 1.0 / 3.0}
# Second-order work this small is never bounded: about a tenth of a second on one CPU core, whatever the rows.
FREE_MULTIPLY_ADDS = 2e8


def second_order_rows(ranking, trial, validation_passes):
    """How many rows the class-direction search and the recursion of `ranking` (an `Influence`) may take through the
    second derivatives for the whole scoring to cost at most `cost_bound` times sgd-influence's (its validation
    pass and its traced rows through the second derivatives) and at most `epoch_bound` epochs of training (from
    the initialisation, also at most `replay_bound` times the epochs trained: a one-epoch project) with the
    validation rows that training took at the snapshots, after
    `validation_passes` passes over the validation rows and the two forward passes per training row of the end
    (costs in training rows: ROW_COSTS); and at least the rows that take no more than `free_multiply_adds`
    multiply-adds (a training row: about three forward passes' multiply-adds)."""
    n_val, n_train, n_traced = len(trial.val_data), len(trial.train_data), len(trial.record.schedule.indices)
    sgd_influence = n_val + ROW_COSTS["second order"] * n_traced
    epochs = ranking.epoch_bound
    if trial.setup.trained_parameters is None:
        epochs = min(epochs, ranking.replay_bound * len(trial.record.epoch_seconds))
    # the validation rows that training took at the snapshots count against the epochs too: the job is training
    # plus scoring, and where the validation set is large beside the training set they are a large part of it
    snapshot_rows = n_val * trial.record.snapshots / (trial.record.snapshots + 1)
    allowed = min(ranking.cost_bound * sgd_influence, epochs * n_train - snapshot_rows)
    fixed = validation_passes * n_val + 2 * ROW_COSTS["forward"] * n_train
    free = ranking.free_multiply_adds / (ROW_COSTS["second order"] * 3 * max(trial.project.row_multiply_adds, 1))
    return max((allowed - fixed) / ROW_COSTS["second order"], free)


def class_search(ranking, trial):
    """The `class_directions.Search` of `ranking` (an `Influence`) on `trial`."""
    from .class_directions import Search
    return Search(trial.project.classes, trial.seed + 4, ranking.search_rows, ranking.reference, ranking.search_extra)


def search_and_depth(ranking, trial):
    """(the `Search` for the class directions, or None where it is left out; the most steps the recursion goes
    back) for `ranking` (an `Influence`): within its cost bound, the search where it leaves the recursion its
    PROJECTED_STEPS steps and the recursion the rest; without a bound, the search where it costs no more than the
    longest recursion, and MAX_STEPS."""
    from .recursion import MAX_STEPS, PROJECTED_STEPS
    search = class_search(ranking, trial)
    cost = search.cost(len(trial.train_data))
    if ranking.cost_bound is None:
        return (search if 0 < cost <= len(trial.schedule_back(MAX_STEPS).indices) else None), MAX_STEPS
    rows = second_order_rows(ranking, trial, 1)
    searched = 0 < cost and cost + PROJECTED_STEPS * trial.batch_size <= rows
    steps = int((rows - (cost if searched else 0)) // trial.batch_size)
    return (search if searched else None), int(np.clip(steps, 1, MAX_STEPS))


@register
class Influence(Ranking):
    """Each row's expected SGD-influence on the mean validation loss (module docstring): < 0, the row's
    training steps raised the validation loss."""
    name = "influence"
    help = ("each row's effect on the validation loss, with its training loss as a second witness, the default: finds "
            "mislabelled rows and rows labelled right that still hurt, such as a class with an artefact "
            "(docs/evidence.md)")
    needs_validation = True
    second_order = True
    snapshots = SNAPSHOTS
    cost_bound = 1.5  # the scoring costs at most this many times sgd-influence's (search_and_depth); None: no bound
    epoch_bound = 4.0  # ... and at most this many epochs of training (from a trained model: 5 with its one epoch)
    replay_bound = 2.0  # ... and from the initialisation at most this many times the epochs trained (the job: 3x)
    free_multiply_adds = FREE_MULTIPLY_ADDS  # second-order work this small is within the bound whatever it is
    search_rows = 128  # the training rows the class-direction search averages the Hessian over
    search_extra = 0  # its Lanczos iterations after the 2 C at which it decides (research/influence_budget.py)
    normalised = True  # each row's score divided by the size of its error in the logits (module docstring)
    loss_weight = LOSS_WEIGHT  # the training loss's weight as a second witness (loss_witness.py); 0: influence alone
    report = ReportText(
        "how much its training steps changed the model's loss on the validation data (influence)", True,
        "Most harmful samples (lowest influence)",
        "samples whose training steps raised the validation loss the most (a sample the model kept getting wrong "
        "while it trained counts a little more)",
        "Most helpful samples (highest influence)",
        "samples whose training steps lowered the validation loss the most; keep these")

    def score(self, trial):
        from ..outputs.groups import row_labels
        from .class_directions import find_class_directions
        from .gradients import directional_losses, normalised_directional
        from .recursion import PropagationSettings, expected_direction
        model = trial.model
        u = self.starting_gradient(trial)
        search, max_steps = search_and_depth(self, trial)
        schedule = trial.schedule_back(max_steps)
        directions = find_class_directions(model, trial.train_data, trial.batch_size, search) if search else None
        settings = PropagationSettings(weight_decay=trial.project.weight_decay, reference=self.reference,
                                       title=f"Scoring ({trial.title})", class_directions=directions,
                                       max_steps=max_steps)
        vbar, depth = expected_direction(model, trial.train_data, schedule, u, trial.linearisation("final", schedule),
                                         settings)
        info(self._what_it_did(trial, search, depth))
        if self.normalised:
            values, plain = normalised_directional(model, trial.train_data, vbar, trial.batch_size, self.reference)
        else:
            plain = directional_losses(model, trial.train_data, vbar, trial.batch_size, exact=self.reference)
            values = plain
        losses = trial.record.loss_history
        return Scores(influence_order(values, losses, row_labels(trial.setup), self.loss_weight), effects=plain,
                      losses=losses)

    def starting_gradient(self, trial):
        """The validation gradient the recursion starts from (module docstring): its average over the final
        parameters and the last epoch's earlier points (the `trial.record.snapshots` that training/snapshots.py
        gathered), each point with its share of the validation rows. Research candidates override it."""
        n_val = len(trial.val_data)
        first = validation_parts(n_val, 1 + trial.record.snapshots, trial.seed + 5)[0]
        final, _ = trial.model.loss_gradient(trial.val_data.subset(first), trial.batch_size)
        if trial.record.snapshot_gradient is None:
            return final
        return [(f * (len(first) / n_val) + s).astype(np.float32)
                for f, s in zip(final, trial.record.snapshot_gradient)]

    def _what_it_did(self, trial, search, depth):
        """The log line of a scored trial: how far back it went, and what the cost bound left out."""
        steps = f"{depth.best} training step{'s' if depth.best > 1 else ''}"
        said = f"influence ({trial.title}): followed each row's effect on the validation loss back through {steps}"
        if search is None and class_search(self, trial).cost(len(trial.train_data)) and self.cost_bound is not None:
            said += (f"; on {len(trial.train_data):,} rows, measuring how the loss curves would have cost more than "
                     f"the scoring itself, so it was left out (it helps most on larger training sets)")
        return said + "."
