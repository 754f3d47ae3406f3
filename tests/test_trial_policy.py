"""How many trials a run averages, which process runs which, and what the log says of it (trial_policy.py)."""
import logging

import pytest

from helpers import softmax_regression_project, subset_csv, variant
from nnc_plugin.model.project import load_project
from nnc_plugin.options import ScoreOptions
from nnc_plugin.parallel import SingleProcess
from nnc_plugin.pipeline import score
from nnc_plugin.scores import create
from nnc_plugin.training.trainer import TrainingPlan
from nnc_plugin.training.trial_policy import AUTO, one_trial_is_unsteady, share_trials, trial_count


def _project(tmp_path, solver="Sgd", gamma=1.0, lr=0.1):
    return variant(softmax_regression_project(str(tmp_path), lr=lr, epochs=4, batch_size=16, solver=solver),
                   str(tmp_path / "schedule.nntxt"), {"gamma: 1": f"gamma: {gamma}"})


@pytest.mark.parametrize("ranking, solver, gamma, trained, expected", [
    ("influence", "Sgd", 1.0, True, 3),
    ("influence", "Momentum", 1.0, True, 3),
    ("influence", "Adam", 1.0, True, 1),  # one trial is within 0.01 of three there
    ("influence", "Sgd", 0.5, True, 1),  # the rate has decayed: one trial is close to another
    ("influence", "Sgd", 1.0, False, 1),  # every trial would train every epoch again: the log advises instead
    ("loss-history", "Sgd", 1.0, True, 1),
    ("sgd-influence", "Sgd", 1.0, True, 1),
])
def test_auto_trial_count(tmp_path, ranking, solver, gamma, trained, expected):
    project = load_project(_project(tmp_path, solver, gamma))
    plan = TrainingPlan(epochs=4, batch_size=16, seed=0, first_epoch=3 if trained else 0)
    assert trial_count(AUTO, create(ranking), project, plan, 40, trained) == expected
    assert trial_count(3, create(ranking), project, plan, 40, trained) == 3  # a number is taken as it is


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


@pytest.mark.parametrize("gamma, n_trials, noted", [(1.0, 1, True), (1.0, 2, False), (0.5, 1, False)])
def test_a_constant_rate_with_one_trial_gets_the_advice_to_average_trials(tmp_path, digits, caplog, gamma, n_trials,
                                                                         noted):
    """At its full learning rate the network never settles, so one trial is unsteady (research/evidence.md):
    the log says so, and what to do, for one trial; not with several, nor where the rate decayed (0.5 per epoch)."""
    train_csv = subset_csv(digits["train"], tmp_path / "train.csv", 40)
    model = _project(tmp_path, gamma=gamma, lr=0.5)
    plan = TrainingPlan(epochs=4, batch_size=16, seed=0)
    assert one_trial_is_unsteady(load_project(model), plan, 40) == (gamma == 1.0)  # Sgd: no adaptive steps
    with caplog.at_level(logging.DEBUG, logger="nnabla"):
        score(ScoreOptions(model=model, input_train=str(train_csv), input_val=digits["val"],
                           output=str(tmp_path / "out.csv"), ranking="influence", n_trials=n_trials))
    advice = [r.getMessage() for r in caplog.records if "-nt 3 averages 3 trainings" in r.getMessage()]
    assert len(advice) == noted
    if noted:
        assert advice[0].startswith("Note: training ends at its full learning rate (0.5)")
