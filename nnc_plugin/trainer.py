"""Training as the model file's configuration says, recording what SGD-influence needs.

The trainer follows nnabla_cli's update (forward, backward of the mean loss, coupled weight
decay, the scheduler's learning rate, solver update). Every epoch is one pass over the
training set in a fresh random order (seeded; in file order when the dataset has
shuffle off); the last minibatch of an epoch holds the remainder. For the traced epochs
(the last ones) it records the sample indices and the learning rate of each step, and in
`--mode all` the parameters before each step.
"""
import math
import time
from dataclasses import dataclass, field
from typing import List

import numpy as np
import nnabla as nn

from . import step_size
from .cache import save_arrays
from .errors import UserError
from .log import Progress, info


@dataclass
class Schedule:
    """The minibatches of the traced epochs, in training order."""
    indices: np.ndarray  # int32, the samples of every step, concatenated
    offsets: np.ndarray  # int64, step t holds indices[offsets[t]:offsets[t + 1]]
    learning_rates: np.ndarray  # float64, the learning rate of every step

    def __len__(self):
        return len(self.learning_rates)

    def step(self, t):
        """Return (sample indices, learning rate) of traced step t."""
        return self.indices[self.offsets[t]:self.offsets[t + 1]], float(self.learning_rates[t])

    def save(self, path):
        with open(path, "wb") as f:
            np.savez(f, indices=self.indices, offsets=self.offsets, learning_rates=self.learning_rates)

    @classmethod
    def load(cls, path):
        with np.load(path) as data:
            return cls(data["indices"], data["offsets"], data["learning_rates"])


@dataclass
class TrainingRecord:
    """What a finished training run leaves for scoring (its files are in the trial cache)."""
    schedule: Schedule
    epoch_seconds: List[float] = field(default_factory=list)
    final_loss: float = float("nan")
    history_sum: np.ndarray = None  # each sample's loss when trained on, summed over the history epochs
    history_epochs: int = 0  # how many epochs history_sum holds
    checkpoints: list = field(default_factory=list)  # (parameter file, learning rate) at chosen epoch ends

    @property
    def train_seconds(self):
        return float(sum(self.epoch_seconds))

    def loss_history(self):
        """Each sample's loss averaged over the second half of the epochs (at least the last one)."""
        return (self.history_sum / max(self.history_epochs, 1)).astype(np.float32)


def steps_per_epoch(n_samples, batch_size):
    return int(math.ceil(n_samples / batch_size))


def train(model, dataset, cache, epochs, batch_size, seed, shuffle=True, trace_epochs=1, keep_step_parameters=False,
          sample_weights=None, checkpoint_path=None):
    """Train `model` on `dataset`; write the final parameters and the schedule to `cache`.

    Parameters
    ----------
    model : network.Model
        Freshly initialised network of this trial.
    dataset : dataset.Dataset
        The training set.
    cache : cache.TrialCache
        Where the final parameters, the schedule and (keep_step_parameters) per-step parameters go.
    epochs, batch_size, seed : int
        As the model file says, unless the user overrode them.
    trace_epochs : int
        How many final epochs SGD-influence traces back through.
    keep_step_parameters : bool
        Save the parameters before every traced step (`--mode all`).
    sample_weights : array or None
        Per-sample weights of the objective (None: all 1). A weight of 0 leaves a sample out of
        every step while keeping the minibatches and their size, which is the counterfactual
        SGD-influence estimates (used by the fidelity benchmark).
    checkpoint_path : callable or None
        epoch (0-based) -> parameter file to save the parameters to at the end of that epoch, or None;
        the files and the epoch's last learning rate go to `record.checkpoints` (TracIn-CP,
        stable_influence.checkpoint_influence).
    """
    project = model.project
    n = len(dataset)
    per_epoch = steps_per_epoch(n, batch_size)
    first_traced_epoch = max(epochs - trace_epochs, 0)
    adaptive = step_size.is_adaptive(project.solver_name)
    rng = np.random.RandomState(seed)
    nn.seed(seed)  # random layers (dropout, augmentation) of the training network

    traced_indices, traced_offsets, traced_rates = [], [0], []
    # per value of every trainable parameter: the sum over traced steps of its squared gradient
    squared_gradients = {name: np.zeros(p.shape, dtype=np.float64) for name, p in model.parameters.items()}
    record = TrainingRecord(schedule=None, history_sum=np.zeros(n), history_epochs=epochs - epochs // 2)
    first_history_epoch = epochs // 2  # the loss history averages the second half of the epochs
    iteration = 0
    for epoch in range(epochs):
        started = time.perf_counter()
        order = rng.permutation(n) if shuffle else np.arange(n)
        traced = epoch >= first_traced_epoch
        loss_sum = 0.0
        with Progress(f"Training epoch {epoch + 1}/{epochs}", per_epoch) as progress:
            for step in range(per_epoch):
                indices = order[step * batch_size:(step + 1) * batch_size]
                learning_rate = float(project.scheduler.get_learning_rate(iteration))
                if traced and keep_step_parameters:
                    model.save_parameters(cache.step_parameters(len(traced_rates)))
                weights = None if sample_weights is None else sample_weights[indices]
                loss, losses = _update(model, dataset, indices, learning_rate, weights,
                                       squared_gradients if traced else None)
                if epoch >= first_history_epoch:
                    record.history_sum[indices] += losses
                if not math.isfinite(loss):
                    raise UserError(
                        f"The training loss became {'NaN' if math.isnan(loss) else 'infinite'} in epoch {epoch + 1} "
                        f"(step {step + 1}) with learning rate {learning_rate:g}; lower the learning rate in the "
                        "model's optimizer settings, or check the training data for extreme values.")
                loss_sum += loss * len(indices)
                if traced:
                    if keep_step_parameters and adaptive:
                        save_arrays(cache.step_factors(len(traced_rates)), _adaptive_factors(model))
                    traced_indices.append(indices.astype(np.int32))
                    traced_offsets.append(traced_offsets[-1] + len(indices))
                    traced_rates.append(learning_rate)
                iteration += 1
                progress.advance(1, note=f"loss={loss:.4f}")
        path = checkpoint_path(epoch) if checkpoint_path else None
        if path:
            model.save_parameters(path)
            record.checkpoints.append((path, learning_rate))
        record.epoch_seconds.append(time.perf_counter() - started)
        record.final_loss = loss_sum / n
        info(f"Epoch {epoch + 1}/{epochs}: training loss {record.final_loss:.5f} ({record.epoch_seconds[-1]:.1f} s)")

    model.save_parameters(cache.final_parameters)
    traced_steps = max(len(traced_rates), 1)
    save_arrays(cache.untrained, step_size.untrained_elements(
        {name: total / traced_steps for name, total in squared_gradients.items()}))
    if adaptive:
        save_arrays(cache.final_factors, _adaptive_factors(model))
    record.schedule = Schedule(np.concatenate(traced_indices).astype(np.int32),
                               np.asarray(traced_offsets, dtype=np.int64),
                               np.asarray(traced_rates, dtype=np.float64))
    record.schedule.save(cache.schedule)
    np.save(cache.loss_history, record.loss_history())
    return record


def _update(model, dataset, indices, learning_rate, weights=None, squared_gradients=None):
    """One solver step on the samples `indices`; returns their mean loss and each one's loss, before the step.

    `squared_gradients`, when given, receives the square of the loss gradient (weight decay not included)."""
    graph = model.loss_graph(len(indices), train=True)
    model.feed(graph, dataset, indices, weights)
    graph.mean_loss.forward(clear_no_need_grad=True)
    model.solver.zero_grad()
    graph.mean_loss.backward(clear_buffer=True)
    if squared_gradients is not None:
        for name, parameter in model.parameters.items():
            squared_gradients[name] += np.square(parameter.g)
    if model.project.weight_decay > 0:
        model.solver.weight_decay(model.project.weight_decay)
    model.solver.set_learning_rate(learning_rate)
    model.solver.update()
    return float(graph.mean_loss.d), graph.per_sample_loss.d.copy()


def _adaptive_factors(model):
    return step_size.adaptive_factors(model.project.solver_name, model.project.solver_hyperparameters,
                                      model.solver.get_states(), list(model.parameters))
