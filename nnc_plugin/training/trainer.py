"""Training as the model file's configuration says, recording what SGD-influence needs.

The trainer follows nnabla_cli's update (forward, backward of the mean loss, coupled weight
decay, the scheduler's learning rate, solver update). Every epoch is one pass over the
training set in a fresh random order (seeded; in file order when the dataset has
shuffle off); the last minibatch of an epoch holds the remainder. For the traced epochs
(the last ones) it records the sample indices and the learning rate of each step, and in
`--mode all` hands the parameters before each step to the cache.
"""
import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from . import step_size
from ..errors import UserError
from ..log import Progress, info
from .snapshots import snapshot_positions


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

    @classmethod
    def from_steps(cls, batches, learning_rates):
        """The schedule of these steps: each step's sample indices, and its learning rate."""
        return cls(np.concatenate(batches).astype(np.int32),
                   np.concatenate([[0], np.cumsum([len(b) for b in batches])]).astype(np.int64),
                   np.asarray(learning_rates, dtype=np.float64))


def epoch_minibatches(rng, n_samples, batch_size, shuffle=True):
    """One epoch's minibatches as training draws them: a fresh random order of the rows from `rng` (file order
    without `shuffle`), cut into `batch_size` rows (the last may be smaller)."""
    order = rng.permutation(n_samples) if shuffle else np.arange(n_samples)
    return [order[start:start + batch_size] for start in range(0, n_samples, batch_size)]


@dataclass(frozen=True)
class TrainingPlan:
    """How one training run goes: as the model file says, unless the user overrode it."""
    epochs: int
    batch_size: int
    seed: int  # initialisation (Model), minibatch order and random layers
    shuffle: bool = True  # a fresh random order every epoch; False: file order
    trace_epochs: int = 1  # how many final epochs SGD-influence traces back through
    keep_step_parameters: bool = False  # save the parameters before every traced step (--mode all)
    first_epoch: int = 0  # > 0: the model already holds trained parameters; run only epochs first_epoch..epochs-1,
    #                       with the learning rates the schedule gives them
    checkpoints: int = 0  # keep the parameters at the end of the last this-many epochs (the last: the final ones)
    snapshots: int = 0  # call the snapshot hook at this many evenly spaced points of the last epoch, before its end

    @property
    def epochs_to_run(self):
        return self.epochs - self.first_epoch


@dataclass
class TrainingRecord:
    """What a finished training run leaves for scoring (the cache stores and restores it, see cache.py)."""
    schedule: Schedule
    epoch_seconds: List[float] = field(default_factory=list)
    final_loss: float = float("nan")
    epoch_losses: List[float] = field(default_factory=list)  # the mean training loss of every epoch trained
    solver_steps: int = 0  # updates the solver made (Adam's bias corrections count them)
    # (epoch, learning rate of its last step) of every epoch end whose parameters the cache keeps, the last
    # (the final parameters) included
    checkpoints: List[Tuple[int, float]] = field(default_factory=list)
    loss_history: np.ndarray = None  # each sample's loss when trained on, averaged over the second half of the epochs
    untrained: Dict[str, np.ndarray] = field(default_factory=dict)  # step_size.untrained_elements of the traced steps
    final_factors: Optional[Dict[str, np.ndarray]] = None  # adaptive solvers: step_size.adaptive_factors at the end
    snapshots: int = 0  # how many snapshots of the last epoch training passed (TrainingPlan.snapshots)
    # snapshots.SnapshotGradient's sum at those snapshots (None without snapshots or validation data)
    snapshot_gradient: Optional[List[np.ndarray]] = None

    @property
    def train_seconds(self):
        return float(sum(self.epoch_seconds))


def steps_per_epoch(n_samples, batch_size):
    return int(math.ceil(n_samples / batch_size))


def train(model, dataset, plan, cache=None, sample_weights=None, on_snapshot=None):
    """Train `model` on `dataset` as `plan` says; return the `TrainingRecord`.

    Parameters
    ----------
    model : network.Model
        Freshly initialised network of this trial (it holds the final parameters on return).
    dataset : dataset.Dataset
        The training set.
    plan : TrainingPlan
        Epochs, batch size, seed, order and what to trace.
    cache : cache.TrialCache, optional
        Receives the parameters (and adaptive step factors) before every traced step when
        `plan.keep_step_parameters`, and at the epoch ends `plan.checkpoints` asks for; nothing else is written
        during training.
    sample_weights : array or None
        Per-sample weights of the objective (None: all 1). A weight of 0 leaves a sample out of
        every step while keeping the minibatches and their size, which is the counterfactual
        SGD-influence estimates (used by the fidelity benchmark).
    on_snapshot : callable, optional
        Called with the model before each of the last epoch's `plan.snapshots` evenly spaced steps (snapshots.py).
    """
    run = _TrainingRun(model, dataset, plan, cache, sample_weights, on_snapshot)
    if 0 < plan.first_epoch and plan.first_epoch - 1 >= run.first_checkpoint:  # a trained start is an epoch end too
        run.checkpoint(plan.first_epoch - 1, model.project.scheduler.get_learning_rate(run.iteration - 1))
    for epoch in range(plan.first_epoch, plan.epochs):
        run.train_epoch(epoch)
    return run.finish()


class _TrainingRun:
    """The state of one `train` call while it runs: the iteration, the traced steps, the sums it records."""

    def __init__(self, model, dataset, plan, cache, sample_weights, on_snapshot):
        self.model, self.dataset, self.plan, self.cache, self.sample_weights = model, dataset, plan, cache, sample_weights
        self.on_snapshot = on_snapshot
        self.per_epoch = steps_per_epoch(len(dataset), plan.batch_size)
        self.first_traced_epoch = max(plan.epochs - plan.trace_epochs, 0)
        self.first_history_epoch = max(plan.epochs // 2, plan.first_epoch)
        self.first_checkpoint = plan.epochs - plan.checkpoints
        self.adaptive = step_size.is_adaptive(model.project.solver_name)
        self.rng = np.random.RandomState(plan.seed)
        model.seed_random_layers(plan.seed)
        self.traced_batches, self.traced_rates = [], []
        # per value of every trainable parameter: the sum over traced steps of its squared gradient
        self.squared_gradients = {name: np.zeros(p.shape, dtype=np.float64) for name, p in model.parameters.items()}
        self.record = TrainingRecord(schedule=None)
        self.history_sum = np.zeros(len(dataset))  # each row's loss when trained on, summed over the history epochs
        self.iteration = plan.first_epoch * self.per_epoch  # the scheduler's rates continue where that epoch starts

    def checkpoint(self, epoch, learning_rate, final=False):
        """Keep the parameters at the end of `epoch` (the final ones are cached anyway)."""
        if not final:
            self.cache.save_checkpoint(epoch, self.model)
        self.record.checkpoints.append((epoch, float(learning_rate)))

    def train_epoch(self, epoch):
        plan, record = self.plan, self.record
        started = time.perf_counter()
        minibatches = epoch_minibatches(self.rng, len(self.dataset), plan.batch_size, plan.shuffle)
        snapshot_steps = snapshot_positions(plan.snapshots, self.per_epoch) if epoch == plan.epochs - 1 else ()
        loss_sum = 0.0
        with Progress(f"Training epoch {epoch + 1}/{plan.epochs}", self.per_epoch) as progress:
            for step, indices in enumerate(minibatches):
                if step in snapshot_steps:
                    if self.on_snapshot is not None:
                        self.on_snapshot(self.model)
                    record.snapshots += 1
                loss, learning_rate = self.train_step(epoch, step, indices)
                loss_sum += loss * len(indices)
                progress.advance(1, note=f"loss={loss:.4f}")
        if epoch >= self.first_checkpoint:
            self.checkpoint(epoch, learning_rate, final=epoch == plan.epochs - 1)
        record.epoch_seconds.append(time.perf_counter() - started)
        record.final_loss = loss_sum / len(self.dataset)
        record.epoch_losses.append(record.final_loss)
        info(f"Epoch {epoch + 1}/{plan.epochs}: training loss {record.final_loss:.5f} "
             f"({record.epoch_seconds[-1]:.1f} s)")

    def train_step(self, epoch, step, indices):
        """One solver step on the rows `indices`; return (their mean loss, the learning rate)."""
        plan, model = self.plan, self.model
        traced = epoch >= self.first_traced_epoch
        learning_rate = float(model.project.scheduler.get_learning_rate(self.iteration))
        if traced and plan.keep_step_parameters:
            self.cache.save_step_parameters(len(self.traced_rates), model)
        weights = None if self.sample_weights is None else self.sample_weights[indices]
        loss, rows, losses = _update(model, self.dataset, indices, learning_rate, weights,
                                     self.squared_gradients if traced else None)
        if epoch >= self.first_history_epoch:
            self.history_sum[rows] += losses
        if not math.isfinite(loss):
            raise UserError(
                f"The training loss became {'NaN' if math.isnan(loss) else 'infinite'} in epoch {epoch + 1} "
                f"(step {step + 1}) with learning rate {learning_rate:g}; lower the learning rate in the "
                "model's optimizer settings, or check the training data for extreme values.")
        if traced:
            if plan.keep_step_parameters and self.adaptive:
                self.cache.save_step_factors(len(self.traced_rates), _adaptive_factors(model))
            self.traced_batches.append(indices)
            self.traced_rates.append(learning_rate)
        self.iteration += 1
        self.record.solver_steps += 1
        return loss, learning_rate

    def finish(self):
        """The `TrainingRecord` once every epoch has run."""
        record, model = self.record, self.model
        traced_steps = max(len(self.traced_rates), 1)
        record.untrained = step_size.untrained_elements(
            {name: total / traced_steps for name, total in self.squared_gradients.items()})
        if self.adaptive:
            record.final_factors = _adaptive_factors(model)
        record.schedule = Schedule.from_steps(self.traced_batches, self.traced_rates)
        history_sum = model.training_comm.sum_arrays([self.history_sum])[0]  # data-parallel: each saw its share
        record.loss_history = (history_sum / max(self.plan.epochs - self.first_history_epoch, 1)).astype(np.float32)
        return record


def _update(model, dataset, indices, learning_rate, weights=None, squared_gradients=None):
    """One solver step on the samples `indices`; return their mean loss and (rows, each row's loss) of the rows this
    process computed, before the step.

    In a data-parallel run each process takes its share of the minibatch (model.training_comm); the gradients
    (each share's mean, weighted by its size) are summed over the processes, so every process applies the same
    update.
    `squared_gradients`, when given, receives the square of the loss gradient (weight decay not included)."""
    comm = model.training_comm
    positions = comm.share(np.arange(len(indices)))
    rows = indices[positions]
    parameters = list(model.parameters.values())
    model.solver.zero_grad()
    mean_loss, losses = 0.0, np.zeros(0)
    if len(rows):
        graph = model.loss_graph(len(rows), train=True)
        model.feed(graph, dataset, rows, None if weights is None else weights[positions])
        graph.mean_loss.forward(clear_no_need_grad=True)
        graph.mean_loss.backward(clear_buffer=True)
        mean_loss, losses = float(graph.mean_loss.d), graph.per_sample_loss.d.copy()
    if comm.size > 1:
        share = len(rows) / len(indices)
        totals = comm.sum_arrays([p.g * share for p in parameters] + [np.array([mean_loss * share])])
        for parameter, total in zip(parameters, totals):
            parameter.g = total
        mean_loss = float(totals[-1][0])
    if squared_gradients is not None:
        for name, parameter in model.parameters.items():
            squared_gradients[name] += np.square(parameter.g)
    if model.project.weight_decay > 0:
        model.solver.weight_decay(model.project.weight_decay)
    model.solver.set_learning_rate(learning_rate)
    model.solver.update()
    return mean_loss, rows, losses


def _adaptive_factors(model):
    return step_size.adaptive_factors(model.project.solver_name, model.project.solver_hyperparameters,
                                      model.solver.get_states(), list(model.parameters))
