"""Self-influence: how much a row's own training step lowers its own loss."""
import numpy as np

from .registry import Ranking, ReportText, register


@register
class SelfInfluence(Ranking):
    """eta * grad(l_j)^T P grad(l_j) at the final parameters (one backward pass per row), written as
    minus that value: rows that pull the model hardest towards themselves come first."""
    name = "self-influence"
    help = "how much each row's own training step lowers its own loss"
    report = ReportText(
        "how much its own training step lowered its own loss (self-influence; the score is minus that value)", False,
        "Most suspicious samples (highest self-influence)",
        "samples that pull the model hardest towards themselves",
        "Least suspicious samples (lowest self-influence)",
        "samples that move the model least")

    def score(self, trial):
        last = len(trial.record.schedule) - 1
        factors = trial.step_factors("final")(last)
        return -self_influence(trial.model, trial.train_data, factors, trial.record.schedule.step(last)[1])


def self_influence(model, dataset, factors, learning_rate):
    """eta * sum_k c_k * (d l_j / d theta_k)^2 for every row (c: step_size factors, scalars or arrays)."""
    parameters = list(model.parameters.values())
    graph = model.loss_graph(1, train=False)
    values = np.zeros(len(dataset), dtype=np.float64)
    for index in model.comm.share(np.arange(len(dataset))):  # data-parallel: this process's share of the rows
        model.feed(graph, dataset, np.array([index]))
        for p in parameters:
            p.grad.zero()
        graph.mean_loss.forward(clear_no_need_grad=True)
        graph.mean_loss.backward(clear_buffer=True)
        values[index] = learning_rate * sum(float(np.sum(c * p.g * p.g)) for c, p in zip(factors, parameters))
    return model.comm.sum_arrays([values])[0]
