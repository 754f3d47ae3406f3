"""One trial: a training run, trained now or reused from its cache, ready for a ranking to score.

`open_trial` trains as the plan says, or reuses the cached training when the model, the data, the
seed and the settings are the same as when it was cached, and returns a `Trial`: everything a
ranking reads (the model at its final parameters, the training record, the datasets, the solver's
step factors).
"""
import os
from dataclasses import dataclass, field, replace
from typing import Optional

import nnabla
import numpy as np

from . import step_size
from ..data.dataset import Dataset
from ..errors import UserError
from ..log import info
from ..model.network import Model
from ..model.project import Project
from ..parallel import SingleProcess
from .cache import TrialCache, fingerprint, trial_key
from .snapshots import SnapshotGradient, snapshot_positions
from .trainer import Schedule, TrainingPlan, TrainingRecord, epoch_minibatches, steps_per_epoch, train


@dataclass
class TrialSetup:
    """What every trial of a run shares; trial k uses the seed `plan.seed + k`."""
    project: Project
    train_data: Dataset
    val_data: Optional[Dataset]
    plan: TrainingPlan
    n_trials: int = 1
    cache_root: str = ""
    context: str = "cpu"
    trained_parameters: Optional[dict] = None  # the model file's parameters, when training continues from them
    comm: SingleProcess = field(default_factory=SingleProcess)  # shares every minibatch out (data-parallel)


@dataclass
class Trial:
    """One trained network and what its training left, as rankings read it."""
    number: int  # 0-based
    setup: TrialSetup
    model: Model  # at the final parameters
    record: TrainingRecord
    cache: TrialCache
    reused: bool = False

    @property
    def project(self):
        return self.setup.project

    @property
    def seed(self):
        """This trial's seed (TrialSetup: the plan's seed + the trial's number)."""
        return self.setup.plan.seed + self.number

    @property
    def train_data(self):
        return self.setup.train_data

    @property
    def val_data(self):
        return self.setup.val_data

    @property
    def batch_size(self):
        return self.setup.plan.batch_size

    @property
    def title(self):
        return f"trial {self.number + 1}/{self.setup.n_trials}"

    def validation_loss(self):
        """Mean loss over the validation set at the final parameters (NaN without validation data)."""
        if self.val_data is None:
            return float("nan")
        return float(np.mean(self.model.per_sample_losses(self.val_data, self.batch_size)))

    def linearisation(self, mode, schedule=None):
        """The solver's update over the traced steps (or over `schedule`, which ends with them) in step_size's
        linear form, for SGD-influence's recursion."""
        schedule = self.record.schedule if schedule is None else schedule
        total = self.record.solver_steps
        last = len(schedule) - 1

        def iterations(t):  # (this step's iteration, the iteration its step factors were recorded at)
            k = max(total - (last - t), 1)
            return k, (total if mode == "final" else k)
        return step_size.linearisation(self.project.solver_name, self.project.solver_hyperparameters,
                                       lambda t: schedule.step(t)[1], self.step_factors(mode), iterations)

    def schedule_back(self, steps):
        """The steps to go back through: the traced ones, preceded, when they are fewer than `steps`, by whole
        earlier epochs (never more than training had), each a fresh random order of the training rows (training's
        own orders of those epochs are not kept) at the learning rates the model file's scheduler gave them. Each
        trial draws its own orders (from its seed), so that averaging trials averages over them too."""
        traced, plan = self.record.schedule, self.setup.plan
        per_epoch = steps_per_epoch(len(self.train_data), plan.batch_size)
        earlier = min(-(-(steps - len(traced)) // per_epoch), plan.epochs - len(traced) // per_epoch)
        if earlier <= 0:
            return traced
        rng = np.random.RandomState(self.seed + 3)
        first = (plan.epochs - len(traced) // per_epoch - earlier) * per_epoch  # the first added step's iteration
        batches = [batch for _ in range(earlier)
                   for batch in epoch_minibatches(rng, len(self.train_data), plan.batch_size, plan.shuffle)]
        rates = [float(self.project.scheduler.get_learning_rate(first + step)) for step in range(len(batches))]
        batches += [traced.step(t)[0] for t in range(len(traced))]
        return Schedule.from_steps(batches, rates + list(traced.learning_rates))

    def step_factors(self, mode):
        """Return t -> the solver's per-parameter factors c of traced step t (P_t = eta_t * c; see step_size),
        with c = 0 for the values training never moved: the biases a BatchNormalization cancels
        (project.cancelled_biases) and the values no traced step's gradient reached (record.untrained).
        `mode` "all" uses each step's cached factors (adaptive solvers), "final" the final ones."""
        project, names = self.project, self.project.trainable_parameters
        if not step_size.is_adaptive(project.solver_name):
            c = step_size.scalar_factor(project.solver_name, project.solver_hyperparameters)
            factors = lambda t: [c] * len(names)  # noqa: E731
        elif mode == "all":
            factors = lambda t: [self.cache.step_factors(t)[n] for n in names]  # noqa: E731
        else:
            factors = lambda t: [self.record.final_factors[n] for n in names]  # noqa: E731
        shapes = self.model.parameter_shapes()
        unreached = dict(self.record.untrained)
        unreached.update({name: np.arange(int(np.prod(shapes[name]))) for name in project.cancelled_biases})
        masks = step_size.reached_masks(unreached, shapes)
        if not masks:
            return factors
        whole = [name for name, mask in masks.items() if not mask.any()]
        if whole:
            info(f"The influence scores leave out {', '.join(whole)}: training never moved "
                 f"{'it' if len(whole) == 1 else 'them'} (a bias right before BatchNormalization, for example).")
        return lambda t: [c * masks[n] if n in masks else c for n, c in zip(names, factors(t))]


def _key(setup, plan):
    """What a trial's training is made from, for the cache's manifest (see cache.trial_key)."""
    model = setup.project.proto.SerializeToString(deterministic=True)
    if setup.trained_parameters is not None:  # the trained parameters it starts from are part of the model
        model += fingerprint(*setup.trained_parameters.values()).encode()
    gathers_validation = plan.snapshots and setup.val_data is not None  # snapshots.py keeps its gradient
    return trial_key(
        model, setup.train_data.arrays_digest(), plan.seed,
        {"epochs": plan.epochs, "batch_size": plan.batch_size, "trace_epochs": plan.trace_epochs,
         "keep_steps": plan.keep_step_parameters, "context": setup.context, "nnabla": nnabla.__version__,
         "normalize": setup.train_data.normalize, "first_epoch": plan.first_epoch, "checkpoints": plan.checkpoints,
         "snapshots": plan.snapshots},
        setup.val_data.arrays_digest() if gathers_validation else None)


def _model(setup, seed):
    return Model(setup.project, seed=seed, context=setup.context, comm=setup.comm)


def _train_now(setup, plan, model, cache, key):
    """Train `model` as `plan` says into `cache` (emptied first, manifest last); return the `TrainingRecord`."""
    points = 1 + len(snapshot_positions(plan.snapshots, steps_per_epoch(len(setup.train_data), plan.batch_size)))
    snapshots = (SnapshotGradient(setup.val_data, points, plan.seed + 5, plan.batch_size)
                 if points > 1 and setup.val_data is not None else None)
    cache.start()
    try:
        record = train(model, setup.train_data, plan, cache, on_snapshot=snapshots.add if snapshots else None)
        record.snapshot_gradient = ([t.astype(np.float32) for t in snapshots.total]
                                    if snapshots and snapshots.total is not None else None)
        cache.save_training(model, record, key, {"seed": plan.seed, "epochs": plan.epochs,
                                                 "batch_size": plan.batch_size,
                                                 "step_parameters": plan.keep_step_parameters})
    except BaseException:  # failed or interrupted: an unfinished cache is of no use to a rerun
        cache.discard()
        raise
    return record


def open_trial(setup, number):
    """Train trial `number` (or reuse its cached training); return the `Trial`."""
    plan = replace(setup.plan, seed=setup.plan.seed + number, trace_epochs=min(setup.plan.trace_epochs,
                                                                               setup.plan.epochs))
    label = f"Trial {number + 1}/{setup.n_trials}"
    comm = setup.comm
    cache = TrialCache(os.path.join(setup.cache_root, f"trial_{number}"), writable=comm.is_root)
    key = _key(setup, replace(plan, trace_epochs=setup.plan.trace_epochs))
    model = _model(setup, plan.seed)
    # Process 0 alone looks at the folder and decides for every process: another process still reading it
    # while process 0 empties it for a new run would find its files gone.
    reused, why_not = comm.broadcast(cache.reusable(key) if comm.is_root else None)
    if reused:
        try:
            record = cache.load_training(model)
        except Exception as error:  # a damaged cache file: train again rather than fail
            reused, why_not = False, f"its files cannot be read ({type(error).__name__})"
            model = _model(setup, plan.seed)
        if comm.size > 1 and not all(comm.gather(reused)):
            raise UserError(f"Not every process could read the training cached in {cache.folder}; "
                            "delete that folder and run again.")
    if reused:
        info(f"{label}: reusing the training cached in {cache.folder} "
             "(same model, data, seed and settings); not training again.")
    else:
        if why_not:
            info(f"{label}: not reusing the cache in {cache.folder}: {why_not}; training again.")
        if setup.trained_parameters is not None:
            model.set_trained_parameters(setup.trained_parameters, setup.project.path)
            which = (f"epoch {plan.epochs}" if plan.epochs_to_run == 1 else
                     f"epochs {plan.first_epoch + 1} to {plan.epochs}")
            info(f"{label}: training {which} of {plan.epochs} from the trained parameters, on "
                 f"{len(setup.train_data)} samples (batch size {plan.batch_size}, seed {plan.seed}).")
        else:
            info(f"{label}: training {plan.epochs} epochs on {len(setup.train_data)} samples "
                 f"(batch size {plan.batch_size}, seed {plan.seed}).")
        record = _train_now(setup, plan, model, cache, key)
        comm.barrier()  # the other processes read what process 0 has now written
    # Scoring draws its own generator values, the same whether the training ran now or was reused.
    model.seed_generators(plan.seed + 2)
    return Trial(number, setup, model, record, cache, reused)
