"""The backward recursion of SGD-influence, and the two ways the influence rankings sum it.

Hara, Nitanda and Maehara (NeurIPS 2019) trace the effect of leaving sample j out of the
minibatches back through the SGD steps; Suzuki, Kobayashi and Narihira (arXiv 2103.11807)
make it storage-efficient by taking every gradient at the final parameters. The solver's
update is s_t = beta s_{t-1} + B_t g_t, theta_{t+1} = theta_t - A_t s_t (step_size.py: for SGD
beta = 0, A_t = 1, B_t = eta_t). With u = grad of the validation loss at the end of training and
mbar = 0 (minus the loss's gradient with respect to the solver's state), going back over traced steps t:

    q      = A_t u + mbar
    v      = B_t q                                   (for SGD: eta_t u)
    infl_j += v . grad l_j(theta_t) / |B_t|          for every j in the minibatch B_t
    u      <- u - (sum_{i in B_t} hess l_i(theta_t)) v / |B_t| - weight_decay * v
    mbar   <- beta q

This is the adjoint of the update with the solver's state (Momentum's buffer, Adam's first moment;
Adam's second moment held fixed, as Terashita et al., ICLR 2021).
infl_j < 0: leaving j out would have lowered the validation loss (harmful).
By default the final parameters stand in for every theta_t; the exact method loads the
parameters cached before each step (`PropagationSettings.load_parameters_before_step`).

`sgd_influence` sums the terms along the one minibatch order training took (`--ranking sgd-influence`);
`expected_influence` averages them over the random order (`--ranking influence`: sgd_influence.py and
influence.py say why), going back only as far as `DepthRule` says.
"""
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..log import Progress
from .gradients import BatchedDirectional, PerSampleDirectional, directional_losses, norm


MAX_STEPS = 256  # the deepest the recursion goes; beyond it the measured rankings no longer changed
WINDOW = 32  # steps over which |u| must keep falling ...
KEEP_FALLING = 0.95  # ... by at least 5%, for the recursion to go on
PROJECTED_STEPS = 16  # the steps summed when the class directions are left out


@dataclass
class PropagationSettings:
    """How `sgd_influence` goes back through the traced steps (the defaults: storage-efficient, batched)."""
    weight_decay: float = 0.0  # the coupled weight decay the solver applied
    load_parameters_before_step: Optional[Callable[[int], None]] = None  # exact mode: put theta_t into the model
    reference: bool = False  # the per-sample reference path instead of the batched one
    title: str = "Scoring"
    u_growth: float = 1.0  # set by sgd_influence: the largest |u_t| / |u_T| met going back
    class_directions: Optional[object] = None  # class_directions.ClassDirections: u and the solver state stay
    #                                              out of them
    max_steps: int = MAX_STEPS  # expected_influence: the most steps the DepthRule goes back


def sgd_influence(model, dataset, schedule, u, linearisation, settings=None):
    """Return the SGD-influence of every sample of `dataset` (float64 array, one value per row).

    Parameters
    ----------
    model : network.Model
        Holds the final parameters on entry (and on return).
    schedule : trainer.Schedule
        The traced steps.
    u : list of arrays
        Gradient of the validation loss at the final parameters (`validation_gradient`).
    linearisation : step_size.Linearisation
        The solver's update at every traced step (beta, A_t, B_t); `folded(step_factors)` for a plain
        step size P_t = eta_t * c.
    settings : PropagationSettings, optional
        Weight decay, the exact mode's parameters, the reference path, the progress title; it
        receives `u_growth`: the largest |u_t| / |u_T| met going back. Far above 1, the
        propagation is unstable (a learning rate above 2 / the largest Hessian eigenvalue, common at the
        end of deep-network training) and the earliest traced steps dominate the scores.
    """
    settings = settings or PropagationSettings()
    load_parameters_before_step = settings.load_parameters_before_step
    final = model.parameter_arrays() if load_parameters_before_step else None
    recursion = AdjointRecursion(model, schedule, u, linearisation, settings)
    influence = np.zeros(len(dataset), dtype=np.float64)
    with Progress(settings.title, len(schedule)) as progress:
        for t in reversed(range(len(schedule))):
            if load_parameters_before_step:
                load_parameters_before_step(t)
            mine, scores = recursion.step_back(dataset, t, last=t == 0)
            np.add.at(influence, mine, scores)
            progress.advance(1)
    if final is not None:
        model.set_parameter_arrays(final)
    settings.u_growth = recursion.growth
    return model.comm.sum_arrays([influence])[0]


class AdjointRecursion:
    """The backward recursion of `sgd_influence`, one traced step at a time (shared with the expected
    influence, `expected_influence`).

    It holds u and mbar; `step_back(dataset, t)` computes step t's v, each of this process's rows' term
    v . grad l_j / |B_t|, and moves u and mbar to before step t (without their components along
    `settings.class_directions`, when given). `v` is the last step's v, `norm` |u| now,
    `growth` the largest |u_t| / |u_T| so far."""

    def __init__(self, model, schedule, u, linearisation, settings):
        self.model, self.schedule, self.linearisation = model, schedule, linearisation
        self.weight_decay = settings.weight_decay
        comm = model.comm  # data-parallel: each process takes its share of every minibatch
        largest = int(np.max(np.diff(schedule.offsets))) if len(schedule) else 1
        largest = len(comm.share(np.arange(largest)))
        self.directional = PerSampleDirectional(model) if settings.reference else BatchedDirectional(
            model, batch_size=largest)
        self.class_directions = settings.class_directions
        self.u = [np.asarray(a, dtype=np.float32) for a in (self.class_directions.remove(u) if self.class_directions else u)]
        self.mbar = [np.zeros_like(a) for a in self.u]  # minus the validation loss's gradient w.r.t. the solver state
        self.start_norm = norm(self.u)
        self.norm = self.start_norm
        self.growth = 1.0
        self.v = None

    def step_back(self, dataset, t, last=False):
        """Go back over step t; return (this process's rows of the step, their terms). `last`: u is not needed
        before this step (saves a little: no update)."""
        comm, linearisation = self.model.comm, self.linearisation
        indices, _ = self.schedule.step(t)
        a_t, b_t = linearisation.step(t)
        q = [a * ui + mi for a, ui, mi in zip(a_t, self.u, self.mbar)]
        v = [(b * qi).astype(np.float32) for b, qi in zip(b_t, q)]
        mine = comm.share(indices)
        if len(mine):
            scores, hvp = self.directional(dataset, mine, v)
        else:
            scores, hvp = np.zeros(0), [np.zeros_like(d) for d in v]
        hvp = comm.sum_arrays(hvp)
        if not last:
            self.u = [a - h / len(indices) - self.weight_decay * d for a, h, d in zip(self.u, hvp, v)]
            if self.class_directions:
                self.u = self.class_directions.remove(self.u)
            self.norm = norm(self.u)
            self.growth = max(self.growth, self.norm / self.start_norm if self.start_norm > 0 else 1.0)
        if linearisation.beta:
            self.mbar = [(linearisation.beta * qi).astype(np.float32) for qi in q]
            if self.class_directions:
                self.mbar = self.class_directions.remove(self.mbar)
        self.v = v
        return mine, scores / len(indices)


class DepthRule:
    """Where to stop going back, from |u| after each step back: once |u| has fallen by less than 5% over the
    last WINDOW steps (or risen), or after `limit` steps (MAX_STEPS); the sum then covers the steps up to the
    smallest |u| seen (at least one step)."""

    def __init__(self, start_norm, limit=MAX_STEPS):
        self.norms = [start_norm]  # |u| after 0, 1, 2, ... steps back
        self.best = 0  # steps back at the smallest |u| (0: none taken yet)
        self.limit = limit  # the most steps it goes back

    def stop_after(self, u_norm):
        """Record |u| after one more step back; True when going further back is of no use."""
        self.norms.append(u_norm)
        back = len(self.norms) - 1
        finite = bool(np.isfinite(u_norm))
        if self.best == 0 or (finite and u_norm < self.norms[self.best]):
            self.best = back
        if not finite or back >= self.limit:  # overflowed: what came before is all there is
            return True
        return back >= WINDOW and u_norm > KEEP_FALLING * self.norms[back - WINDOW]

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
        super().__init__(start_norm, steps)

    def stop_after(self, u_norm):
        self.norms.append(u_norm)
        self.best = len(self.norms) - 1
        return self.best >= self.limit or not np.isfinite(u_norm)


def expected_direction(model, dataset, schedule, u, linearisation, settings=None):
    """Return (vbar, the direction every row's gradient is taken along: float32 arrays like the parameters; the
    rule that decided the depth, a `DepthRule`).

    `schedule` holds the steps to go back through, last step last (Trial.schedule_back); `u`, `linearisation`
    and `settings` as in sgd_influence (`settings.reference`: the per-sample reference path). With
    `settings.class_directions` the recursion stays out of them and sums PROJECTED_STEPS steps (`FixedDepth`);
    without, the `DepthRule` decides."""
    settings = settings or PropagationSettings()
    recursion = AdjointRecursion(model, schedule, u, linearisation, settings)
    total = [np.zeros(a.shape, dtype=np.float64) for a in recursion.u]
    rule = (FixedDepth(recursion.start_norm, PROJECTED_STEPS) if settings.class_directions
            else DepthRule(recursion.start_norm, settings.max_steps))
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
    return [(s / len(dataset)).astype(np.float32) for s in best_total], rule


def expected_influence(model, dataset, schedule, u, linearisation, settings=None):
    """Return (every row's expected SGD-influence: float64, one value per row of `dataset`; the rule that
    decided the depth, a `DepthRule`): vbar . grad l_j for vbar = `expected_direction` (`settings.reference`: the
    exact inner products instead of the finite difference)."""
    settings = settings or PropagationSettings()
    direction, rule = expected_direction(model, dataset, schedule, u, linearisation, settings)
    batch_size = int(np.max(np.diff(schedule.offsets)))  # training's: its forward passes fit in memory
    return directional_losses(model, dataset, direction, batch_size, exact=settings.reference), rule
