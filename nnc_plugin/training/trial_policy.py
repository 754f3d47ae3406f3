"""How many trials a run averages, which process runs which, and what the user is told about it.

A trial is one training (or its reuse from the cache) scored by the ranking; trial k trains with the seed
`seed + k`, and the run's scores are the mean of its trials' scores.

- How many (`trial_count`): the number -nt gives, or for -nt auto the ranking's `trials_at_full_rate` where
  one trial's scores are unsteady (`one_trial_is_unsteady`: training ends at its full learning rate, so the
  final parameters are one point of where training keeps wandering) and a trial is cheap (it continues from
  the model file's trained parameters, so it trains one epoch); else 1.
- Which process runs which (`share_trials`): under mpiexec with K processes and K trials or more, process r
  runs the whole trials r, r + K, ...; with fewer trials every trial is shared out minibatch by minibatch
  over all K processes (data-parallel, parallel.py).
- What the log says (`trial_note`).
"""
from dataclasses import dataclass

from . import step_size
from ..parallel import SingleProcess
from .trainer import steps_per_epoch

AUTO = "auto"  # --n-trials auto: let `trial_count` decide


def final_learning_rate(project, plan, n_rows):
    """The learning rate of the last step of `plan`, as the model file's scheduler gives it."""
    last = plan.epochs * steps_per_epoch(n_rows, plan.batch_size) - 1
    return float(project.scheduler.get_learning_rate(last))


def ends_at_full_rate(project, plan, n_rows):
    """True when the last step of `plan` runs at half or more of the largest learning rate the model file's
    scheduler gives any epoch (a constant rate, say, as against one that decays)."""
    per_epoch = steps_per_epoch(n_rows, plan.batch_size)

    def rate(iteration):
        return float(project.scheduler.get_learning_rate(iteration))
    largest = max(rate(epoch * per_epoch + step) for epoch in range(plan.epochs) for step in (0, per_epoch - 1))
    return final_learning_rate(project, plan, n_rows) >= 0.5 * largest


def one_trial_is_unsteady(project, plan, n_rows):
    """True where one trial's final parameters are one point of where training wanders: a solver without adaptive
    steps (SGD, Momentum and kin) that ends at its full learning rate (`ends_at_full_rate`)."""
    return not step_size.is_adaptive(project.solver_name) and ends_at_full_rate(project, plan, n_rows)


def trial_count(requested, ranking, project, plan, n_rows, trained):
    """How many trials to average: `requested`, or for AUTO what the module docstring says (`trained`: training
    continues from the model file's trained parameters)."""
    if requested != AUTO:
        return requested
    if trained and ranking.trials_at_full_rate > 1 and one_trial_is_unsteady(project, plan, n_rows):
        return ranking.trials_at_full_rate
    return 1


@dataclass(frozen=True)
class TrialShare:
    """What one process of a run does: the trials it runs, and the processes each of them is shared out over."""
    numbers: tuple  # the trial numbers, in order
    comm: object  # every process of the run (data-parallel trials), or this process alone (whole trials)


def share_trials(comm, n_trials):
    """This process's `TrialShare` of `n_trials` trials (`comm`: the run's communicator, parallel.py)."""
    if comm.size > 1 and n_trials >= comm.size:
        return TrialShare(tuple(range(comm.rank, n_trials, comm.size)), SingleProcess())
    return TrialShare(tuple(range(n_trials)), comm)


def trial_note(requested, n_trials, ranking, plan, unsteady_rate=None):
    """The log line that explains the number of trials to the user, or "" when there is nothing to say.

    `unsteady_rate`: the final learning rate where one trial is unsteady (`one_trial_is_unsteady`), else None."""
    if requested == AUTO and n_trials > 1:
        retrained = f"epoch {plan.epochs}" if plan.epochs_to_run == 1 else f"its last {plan.epochs_to_run} epochs"
        return (f"Averaging {n_trials} trials (--n-trials auto): training ends at its full learning rate, where the "
                f"network never settles and one trial's {ranking.name} scores change from run to run; each trial "
                f"trains {retrained} again from the trained model, with its own seed. Pass -nt 1 for one trial: "
                f"about {n_trials} times faster, less steady (docs/evidence.md).")
    several = ranking.trials_at_full_rate
    if n_trials > 1 or unsteady_rate is None or several <= 1:
        return ""
    remedy = (f"-nt auto (the default) averages {several} one-epoch trials here" if plan.first_epoch > 0 else
              f"-nt {several} averages {several} trainings, each of every epoch")
    return (f"Note: training ends at its full learning rate ({unsteady_rate:g}), where the network never settles, so "
            f"one trial's {ranking.name} scores change from run to run; {remedy}, steadier and about {several} times "
            "slower (docs/evidence.md).")
