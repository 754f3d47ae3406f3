"""The rankings `score` can write: one value per training row, lower = more harmful.

Every ranking is written the same way (column `influence`, sorted ascending), so NNC sorts and
filters them alike; docs/evidence.md compares them on real data.

- loss-history   (default) each sample's training loss, averaged over the second half of the
                 epochs, each time measured on the minibatch it was trained in. Free: the trainer
                 records it. Mislabeled samples are learned late, so their loss stays high.
- loss           each sample's loss at the final parameters (one forward pass).
- self-influence eta * grad(l_j)^T P grad(l_j) at the final parameters: how much the sample's own
                 step lowers its own loss (one backward pass per sample).
- sgd-influence  SGD-influence on the mean validation loss (influence.py), the method the plugin
                 is named after: `--mode final` (storage-efficient) or `--mode all` (exact).
- influence      TracIn-CP on the mean validation loss at the ends of the last 3 epochs
                 (stable_influence.checkpoint_influence): no backward recursion, so it cannot blow
                 up whatever the solver and learning rate (docs/influence_regimes.md).

Loss-based rankings are written as minus the loss, so that ascending order puts the highest loss first.
"""
import numpy as np

RANKINGS = ("loss-history", "loss", "self-influence", "sgd-influence", "influence")
DEFAULT_RANKING = "loss-history"
NEEDS_VALIDATION = ("sgd-influence", "influence")


def per_sample_losses(model, dataset, batch_size=64):
    """Loss of every row of `dataset` under the scoring network at the current parameters."""
    losses = np.zeros(len(dataset), dtype=np.float64)
    for rows, graph in model.evaluate_batches(dataset, batch_size):
        losses[rows] = graph.per_sample_loss.d[:len(rows)]
    return losses


def self_influence(model, dataset, factors, learning_rate):
    """eta * sum_k c_k * (d l_j / d theta_k)^2 for every row (c: step_size factors, scalars or arrays)."""
    parameters = list(model.parameters.values())
    graph = model.loss_graph(1, train=False)
    values = np.zeros(len(dataset), dtype=np.float64)
    for index in range(len(dataset)):
        model.feed(graph, dataset, np.array([index]))
        for p in parameters:
            p.grad.zero()
        graph.mean_loss.forward(clear_no_need_grad=True)
        graph.mean_loss.backward(clear_buffer=True)
        values[index] = learning_rate * sum(float(np.sum(c * p.g * p.g)) for c, p in zip(factors, parameters))
    return values
