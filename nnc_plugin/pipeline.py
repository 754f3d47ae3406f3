"""The front object: model file and CSVs in, scored CSV and summary out.

Each stage is a plain call: project -> datasets -> (per trial) train or reuse the cache ->
score -> average -> output. The command line and the NNC plugin scripts build a
`ScoreOptions` and call `score`.
"""
import os
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import nnabla

from . import step_size
from .cache import TrialCache, cache_folder, check_cache_folder, load_arrays, trial_key
from .dataset import read_dataset
from .errors import UserError
from .influence import sgd_influence, validation_gradient
from .log import info
from .network import Model, check_differentiable
from .output import check_writable, interrupts_held, write_scored_csv, write_summary
from .project import load_project
from .rankings import DEFAULT_RANKING, NEEDS_VALIDATION, RANKINGS, per_sample_losses, self_influence
from .stable_influence import checkpoint_influence, epoch_end_checkpoints
from .trainer import Schedule, TrainingRecord, train

MODES = ("final", "all")
UNSTABLE_GROWTH = 100.0  # u growing more than this over the traced steps: the propagation is unstable
DEFAULT_TRIALS = 1
INFLUENCE_CHECKPOINTS = 3  # --ranking influence: the parameters at the end of the last 3 epochs


@dataclass
class ScoreOptions:
    """What `nnc-cleanse score` does; the defaults are the documented ones."""
    model: str
    input_train: Optional[str] = None
    input_val: Optional[str] = None
    output: str = "influence.csv"
    ranking: str = DEFAULT_RANKING
    mode: str = "final"
    n_trials: int = DEFAULT_TRIALS
    seed: int = 0
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    trace_epochs: int = 1
    cache_dir: Optional[str] = None
    context: str = "cpu"
    reference: bool = False

    def validate(self):
        if self.ranking not in RANKINGS:
            raise UserError(f"--ranking must be one of {', '.join(RANKINGS)}, not '{self.ranking}'.")
        if self.mode not in MODES:
            raise UserError(f"--mode must be one of {', '.join(MODES)}, not '{self.mode}'.")
        for name in ("n_trials", "trace_epochs"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be 1 or more, not {getattr(self, name)}.")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be 1 or more, not {value}.")

    @property
    def keeps_step_parameters(self):
        """Only exact SGD-influence needs the parameters of every traced step."""
        return self.ranking == "sgd-influence" and self.mode == "all"

    def default_cache_dir(self):
        stem = os.path.splitext(os.path.abspath(self.output))[0]
        return stem + "_cache"


@dataclass
class TrialResult:
    scores: np.ndarray
    record: TrainingRecord
    cache_bytes: int
    validation_loss: float
    score_seconds: float
    parameter_count: int
    trainable_parameter_count: int
    reused: bool = False


@dataclass
class ScoreRun:
    """Everything `score` computed, for the caller (CLI, evaluate, tests)."""
    scores: np.ndarray
    trials: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def _dataset_path(given, spec, role, model_path):
    if given:
        return given
    if spec is None or not spec.uri:
        raise UserError(f"The model file {model_path} names no {role} dataset; pass it with "
                        f"--input-{'train' if role == 'training' else 'val'}.")
    if not os.path.isfile(spec.uri):
        raise UserError(f"The {role} dataset {spec.uri} named in the model file does not exist on this machine; "
                        f"pass it with --input-{'train' if role == 'training' else 'val'}.")
    return spec.uri


def _validation_path(options, project):
    """The validation CSV: required by SGD-influence, optional (for the log) otherwise."""
    if options.ranking in NEEDS_VALIDATION or options.input_val:
        return _dataset_path(options.input_val, project.val_dataset, "validation", project.path)
    spec = project.val_dataset
    return spec.uri if spec is not None and spec.uri and os.path.isfile(spec.uri) else None


def check_dataset(project, dataset):
    """Check that a dataset feeds the network: every column present, every sample the right size."""
    for data_name, shape in project.input_shapes.items():
        if data_name not in dataset.arrays:
            raise UserError(f"The dataset {dataset.path} has no column '{data_name}', which the network reads; "
                            f"its columns are {', '.join(dataset.header)}.")
        have = dataset.sample_shape(data_name)
        if int(np.prod(have)) != int(np.prod(shape)):
            raise UserError(f"The column '{data_name}' of {dataset.path} holds samples of shape {tuple(have)}, "
                            f"but the network expects {tuple(shape)}; resize the data or change the network's input.")
    for data_name, classes in _label_ranges(project).items():
        labels = dataset.arrays[data_name].reshape(len(dataset), -1)
        if classes is None:  # a binary loss: targets are probabilities
            bad, expected = np.flatnonzero(((labels < 0) | (labels > 1)).any(axis=1)), "a number from 0 to 1"
        else:
            bad = np.flatnonzero((labels != np.round(labels)).any(axis=1) | (labels < 0).any(axis=1)
                                 | (labels >= classes).any(axis=1))
            expected = f"a class index from 0 to {classes - 1}"
        if bad.size:
            row = int(bad[0])
            raise UserError(f"Row {row + 2} of {dataset.path}: the label '{dataset.rows[row][_column_of(dataset, data_name)]}' "
                            f"in column '{data_name}' is not {expected}; fix the label.")


def _column_of(dataset, data_name):
    for position, cell in enumerate(dataset.header):
        if cell.split(":", 1)[0].split("__", 1)[0] == data_name:
            return position
    return 0


def _label_ranges(project):
    """{data name: number of classes, or None for a 0-to-1 target} for labels fed to a classification loss."""
    ranges = {}
    network = next(n for n in project.proto.network if n.name == project.train_network)
    shapes = {v.name: list(v.shape.dim) for v in network.variable}
    for function in network.function:
        if len(function.input) != 2:
            continue
        data_name = project.data_variables.get(function.input[1])
        if not data_name:
            continue
        if function.type in ("CategoricalCrossEntropy", "SoftmaxCrossEntropy"):
            prediction_shape = shapes.get(function.input[0], [])
            if len(prediction_shape) >= 2:
                ranges[data_name] = int(prediction_shape[1])
        elif function.type in ("BinaryCrossEntropy", "SigmoidCrossEntropy"):
            ranges[data_name] = None
    return ranges


def _trial_fingerprint(project, train_data, options, epochs, batch_size, seed):
    settings = {"epochs": epochs, "batch_size": batch_size, "trace_epochs": options.trace_epochs,
                "keep_steps": options.keeps_step_parameters, "context": options.context, "nnabla": nnabla.__version__,
                "normalize": train_data.normalize}
    if options.ranking == "influence":
        settings["checkpoints"] = INFLUENCE_CHECKPOINTS
    return trial_key(project.proto.SerializeToString(deterministic=True), train_data.arrays_digest(), seed, settings)


def _checkpoint_folder(cache):
    return os.path.join(cache.folder, "steps")


def _solver_factors(project, cache, mode):
    """Return t -> list of the solver's per-parameter factors c (P_t = eta_t * c) for the chosen mode."""
    names = project.trainable_parameters
    if not step_size.is_adaptive(project.solver_name):
        c = step_size.scalar_factor(project.solver_name, project.solver_hyperparameters)
        return lambda t: [c] * len(names)
    if mode == "all":
        return lambda t: [load_arrays(cache.step_factors(t))[n] for n in names]
    final = load_arrays(cache.final_factors)
    return lambda t: [final[n] for n in names]


def _step_factors(project, cache, mode, shapes):
    """`_solver_factors`, with c = 0 for the values training never moved: the biases a BatchNormalization
    cancels (project.cancelled_biases) and the values no traced step's gradient reached
    (step_size.untrained_elements). `shapes` maps each trainable parameter to its shape."""
    factors = _solver_factors(project, cache, mode)
    unreached = load_arrays(cache.untrained)
    unreached.update({name: np.arange(int(np.prod(shapes[name]))) for name in project.cancelled_biases})
    masks = step_size.reached_masks(unreached, shapes)
    if not masks:
        return factors
    whole = [name for name, mask in masks.items() if not mask.any()]
    if whole:
        info(f"The influence scores leave out {', '.join(whole)}: training never moved "
             f"{'it' if len(whole) == 1 else 'them'} (a bias right before BatchNormalization, for example).")
    names = project.trainable_parameters
    return lambda t: [c * masks[n] if n in masks else c for n, c in zip(names, factors(t))]


def _rank(options, project, model, record, history, cache, train_data, val_data, batch_size, title):
    """Return (scores, mean validation loss) of the chosen ranking; lower scores are more harmful."""
    if options.ranking == "sgd-influence":
        return _sgd_influence(options, project, model, record, cache, train_data, val_data, batch_size, title)
    if options.ranking == "influence":
        factors = _step_factors(project, cache, "final", model.parameter_shapes())(len(record.schedule) - 1)
        scores = checkpoint_influence(model, train_data, val_data, record.checkpoints, factors, batch_size,
                                      title=title)
        return scores, float(np.mean(per_sample_losses(model, val_data, batch_size)))
    validation_loss = float("nan") if val_data is None else float(np.mean(per_sample_losses(model, val_data, batch_size)))
    if options.ranking == "loss-history":
        return -history.astype(np.float64), validation_loss
    if options.ranking == "loss":
        return -per_sample_losses(model, train_data, batch_size), validation_loss
    last = len(record.schedule) - 1  # self-influence
    factors = _step_factors(project, cache, "final", model.parameter_shapes())(last)
    return -self_influence(model, train_data, factors, record.schedule.step(last)[1]), validation_loss


def _sgd_influence(options, project, model, record, cache, train_data, val_data, batch_size, title):
    factors = _step_factors(project, cache, options.mode, model.parameter_shapes())
    u, validation_loss = validation_gradient(model, val_data, batch_size)
    diagnostics = {}
    scores = sgd_influence(
        model, train_data, record.schedule, u, factors, weight_decay=project.weight_decay,
        parameters_before_step=cache.step_parameters if options.mode == "all" else None,
        reference=options.reference, title=title, diagnostics=diagnostics)
    if diagnostics["u_growth"] > UNSTABLE_GROWTH:
        info(f"Note: going back through the traced steps, the validation gradient grew {diagnostics['u_growth']:.3g} "
             "times (the learning rate is above the stable limit of the network's curvature at the parameters the "
             "gradients are taken at), so the earliest traced "
             "steps dominate the SGD-influence scores; to find mislabeled rows prefer --ranking loss-history "
             "(docs/evidence.md).")
    return scores, validation_loss


def run_trial(project, train_data, val_data, options, trial, epochs, batch_size, shuffle, cache_root):
    """Train (or reuse the cached training of) one trial, then score it."""
    seed = options.seed + trial
    cache = TrialCache(os.path.join(cache_root, f"trial_{trial}"))
    key = _trial_fingerprint(project, train_data, options, epochs, batch_size, seed)
    model = Model(project, seed=seed, context=options.context)
    reused, why_not = cache.reusable(key)
    if reused:
        try:
            manifest = cache.read_manifest()
            record = TrainingRecord(Schedule.load(cache.schedule), manifest["epoch_seconds"], manifest["final_loss"])
            record.checkpoints = [(os.path.join(_checkpoint_folder(cache), name), rate)
                                  for name, rate in manifest.get("checkpoints", [])]
            history = np.load(cache.loss_history)
            model.load_parameters(cache.final_parameters)
        except Exception as error:  # a damaged cache file: train again rather than fail
            reused, why_not = False, f"its files cannot be read ({type(error).__name__})"
            model = Model(project, seed=seed, context=options.context)
    if reused:
        info(f"Trial {trial + 1}/{options.n_trials}: reusing the training cached in {cache.folder} "
             "(same model, data, seed and settings); not training again.")
    else:
        if why_not:
            info(f"Trial {trial + 1}/{options.n_trials}: not reusing the cache in {cache.folder}: {why_not}; training again.")
        info(f"Trial {trial + 1}/{options.n_trials}: training {epochs} epochs on {len(train_data)} samples "
             f"(batch size {batch_size}, seed {seed}).")
        cache.start()
        try:
            checkpoints = (epoch_end_checkpoints(_checkpoint_folder(cache), epochs, INFLUENCE_CHECKPOINTS)
                           if options.ranking == "influence" else None)
            record = train(model, train_data, cache, epochs, batch_size, seed, shuffle=shuffle,
                           trace_epochs=min(options.trace_epochs, epochs),
                           keep_step_parameters=options.keeps_step_parameters, checkpoint_path=checkpoints)
            history = record.loss_history()
            cache.finish(key, {"epoch_seconds": record.epoch_seconds, "final_loss": record.final_loss,
                               "seed": seed, "epochs": epochs, "batch_size": batch_size,
                               "step_parameters": options.keeps_step_parameters,
                               "checkpoints": [[os.path.basename(path), rate] for path, rate in record.checkpoints]})
        except BaseException:  # failed or interrupted: an unfinished cache is of no use to a rerun
            cache.discard()
            raise
    # Scoring draws its own generator values, the same whether the training ran now or was reused.
    model.generator_rng = np.random.RandomState(seed + 2)

    started = time.perf_counter()
    scores, validation_loss = _rank(options, project, model, record, history, cache, train_data, val_data,
                                    batch_size, title=f"Scoring (trial {trial + 1}/{options.n_trials})")
    seconds = time.perf_counter() - started
    if not (np.all(np.isfinite(scores)) and np.isfinite(validation_loss)):
        if np.isfinite(record.final_loss) and np.isfinite(validation_loss):
            raise UserError(f"The {options.ranking} scores of trial {trial + 1} are not finite numbers (NaN or infinite), "
                            f"with a final training loss of {record.final_loss:g} and a validation loss of "
                            f"{validation_loss:g}: if those are high the training diverged, so lower the learning rate "
                            "in the model's optimizer settings; if they are good the propagation back through the traced "
                            "steps grew without bound (the final learning rate is above the stable limit of the "
                            "network's curvature), so use --ranking loss-history.")
        raise UserError(f"The scores of trial {trial + 1} are not finite numbers (NaN or infinite) because "
                        f"the training diverged (final training loss {record.final_loss:g}, validation loss "
                        f"{validation_loss:g}); lower the learning rate in the model's optimizer settings.")
    info(f"Trial {trial + 1}/{options.n_trials}: validation loss {validation_loss:.5f}; ranked {len(train_data)} "
         f"samples by {options.ranking} in {seconds:.1f} s.")
    return TrialResult(scores, record, cache.size_bytes(), validation_loss, seconds,
                       model.parameter_count(), model.parameter_count(trainable_only=True), reused)


def score(options):
    """Run the whole job; return a `ScoreRun` (the CSV and summary are written)."""
    options.validate()
    project = load_project(options.model, context=options.context)
    step_size.check_supported(project.solver_name, project.path)
    if (options.epochs or project.max_epoch) < 1:
        raise UserError(f"The training configuration in {project.path} has no epochs (Max Epoch is {project.max_epoch}); "
                        "set Max Epoch in Neural Network Console's CONFIG tab, or pass --epochs.")
    train_path = _dataset_path(options.input_train, project.train_dataset, "training", project.path)
    val_path = _validation_path(options, project)
    check_writable(options.output, inputs=(train_path, val_path, project.path))
    summary_path = options.output + ".summary.json"
    check_writable(summary_path, inputs=(train_path, val_path, project.path))
    cache_root = os.path.abspath(options.cache_dir or options.default_cache_dir())
    check_cache_folder(cache_root, options.n_trials)
    check_differentiable(project, context=options.context, second_order=options.ranking == "sgd-influence")

    if project.has_trained_parameters:
        info("The model file holds trained parameters; they are not used: training starts from the network's "
             "initialisation, as Neural Network Console does, so the traced steps are real ones.")
    if project.eval_network_derived:
        info(f"Scoring with a copy of the network '{project.train_network}' in evaluation mode "
             "(batch statistics fixed, dropout and augmentation off).")
    normalize = project.train_dataset.normalize if project.train_dataset else True
    train_data = read_dataset(train_path, normalize=normalize)
    val_data = read_dataset(val_path, normalize=normalize) if val_path else None
    check_dataset(project, train_data)
    if val_data is not None:
        check_dataset(project, val_data)

    epochs = options.epochs or project.max_epoch
    batch_size = options.batch_size or project.batch_size
    shuffle = project.train_dataset.shuffle if project.train_dataset else True

    trials = []
    with cache_folder(cache_root):  # removed again if the run fails before caching anything
        for trial in range(options.n_trials):
            trials.append(run_trial(project, train_data, val_data, options, trial, epochs, batch_size, shuffle,
                                    cache_root))
    scores = np.mean([t.scores for t in trials], axis=0)

    summary = {
        "model": project.path,
        "input_train": train_data.path,
        "input_val": val_data.path if val_data is not None else None,
        "output": os.path.abspath(options.output),
        "n_train": len(train_data),
        "n_val": len(val_data) if val_data is not None else 0,
        "ranking": options.ranking,
        "epochs": epochs,
        "batch_size": batch_size,
        "trace_epochs": min(options.trace_epochs, epochs),
        "traced_steps": len(trials[0].record.schedule),
        "mode": options.mode,
        "n_trials": options.n_trials,
        "seed": options.seed,
        "solver": project.solver_name,
        "context": options.context,
        "cache_dir": cache_root,
        "cache_bytes": trials[0].cache_bytes,
        "cache_bytes_all_trials": int(sum(t.cache_bytes for t in trials)),
        "parameter_bytes": 4 * trials[0].parameter_count,
        "trainable_parameters": trials[0].trainable_parameter_count,
        "train_seconds": float(sum(t.record.train_seconds for t in trials)),
        "score_seconds": float(sum(t.score_seconds for t in trials)),
        "epoch_seconds": float(np.mean([s for t in trials for s in t.record.epoch_seconds])),
        "validation_loss": float(np.mean([t.validation_loss for t in trials])),
        "reused_cache": [t.reused for t in trials],
        "scoring_path": "per-sample reference" if options.reference else "batched",
    }
    with interrupts_held():  # the CSV and its summary belong together
        write_scored_csv(options.output, train_data, scores)
        write_summary(summary_path, summary)
    info(f"Wrote {options.output}: {len(train_data)} rows, most harmful first (lowest influence).")
    return ScoreRun(scores=scores, trials=trials, summary=summary)
