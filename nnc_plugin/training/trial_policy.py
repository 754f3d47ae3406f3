"""How many trials a run averages and which process runs which.

A trial is one training (or its reuse from the cache) scored by the ranking; trial k trains with the seed
`seed + k`, and the run's scores are the mean of its trials' scores.

- How many (`trial_count`): the number -nt gives; -nt auto (the default) takes one. Several trials once paid
  where training ends at a constant learning rate (the final parameters are one point of where training keeps
  wandering); since `influence` divides out each row's error, one trial measured within 0.005 AUROC of three
  there, for a third of the cost (research/notebook.md), and the whole job from a trained model stays within
  five epochs of training.
- Which process runs which (`share_trials`): under mpiexec with K processes and K trials or more, process r
  runs the whole trials r, r + K, ...; with fewer trials every trial is shared out minibatch by minibatch
  over all K processes (data-parallel, parallel.py).
"""
from dataclasses import dataclass

from ..parallel import SingleProcess

AUTO = "auto"  # --n-trials auto: one trial


def trial_count(requested):
    """How many trials to average: `requested`, or 1 for AUTO."""
    return 1 if requested == AUTO else requested


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
