"""How many trials a run averages and which process runs which (trial_policy.py)."""
import pytest

from nnc_plugin.parallel import SingleProcess
from nnc_plugin.training.trial_policy import AUTO, share_trials, trial_count


def test_auto_is_one_trial_and_a_number_is_taken_as_it_is():
    assert trial_count(AUTO) == 1 and trial_count(3) == 3


class _World(SingleProcess):
    def __init__(self, rank, size):
        self.rank, self.size = rank, size


@pytest.mark.parametrize("size, n_trials", [(1, 1), (1, 3), (2, 1), (2, 2), (2, 3), (3, 2), (3, 7)])
def test_whole_trials_go_to_processes_when_there_are_enough(size, n_trials):
    """K processes and K trials or more: process r runs r, r + K, ...; fewer trials: every process runs every trial,
    data-parallel over all of them."""
    shares = [share_trials(_World(rank, size), n_trials) for rank in range(size)]
    if size > 1 and n_trials >= size:
        assert sorted(n for s in shares for n in s.numbers) == list(range(n_trials))
        assert all(s.comm.size == 1 for s in shares)
    else:
        assert all(s.numbers == tuple(range(n_trials)) and s.comm.size == size for s in shares)
