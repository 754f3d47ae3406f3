"""`score`: model file and CSVs in, scored CSV and summary out. This module only sequences the stages:

    project (model file) -> datasets -> trials (train, or reuse the cache) -> ranking -> outputs

The command line and the NNC plugin scripts build a `ScoreOptions` and call `score`.
"""
import os
import time
from dataclasses import dataclass, field

import numpy as np

from . import parallel, scores
from .data.checks import check_dataset
from .data.dataset import read_dataset
from .errors import UserError
from .log import info
from .model.project import load_project
from .outputs.output import check_writable, interrupts_held, write_scored_csv
from .outputs.summary import run_summary, summary_path, trial_facts, write_summary
from .scores.checks import check_differentiable
from .training.cache import cache_folder, check_cache_folder
from .training.trainer import TrainingPlan
from .training.trial import AUTO, TrialSetup, open_trial, trial_count


@dataclass
class ScoreRun:
    """Everything `score` computed, for the caller (CLI, evaluate, tests)."""
    scores: np.ndarray
    trials: list = field(default_factory=list)  # the `Trial` of each seed this process trained (mpiexec: its share)
    summary: dict = field(default_factory=dict)


def _dataset_path(given, spec, role, model_path):
    if given:
        return given
    flag = f"--input-{'train' if role == 'training' else 'val'}"
    if spec is None or not spec.uri:
        raise UserError(f"The model file {model_path} names no {role} dataset; pass it with {flag}.")
    if not os.path.isfile(spec.uri):
        raise UserError(f"The {role} dataset {spec.uri} named in the model file does not exist on this machine; "
                        f"pass it with {flag}.")
    return spec.uri


def _validation_path(options, ranking, project):
    """The validation CSV: required by rankings that refer to the validation loss, optional (for the log) otherwise."""
    if ranking.needs_validation or options.input_val:
        return _dataset_path(options.input_val, project.val_dataset, "validation", project.path)
    spec = project.val_dataset
    return spec.uri if spec is not None and spec.uri and os.path.isfile(spec.uri) else None


def _check_finite(trial, ranking, scores_, validation_loss):
    """Refuse scores that are not finite numbers, with the likely cause (no validation data: NaN loss, fine)."""
    if np.all(np.isfinite(scores_)) and (np.isfinite(validation_loss) or trial.val_data is None):
        return
    final_loss, number = trial.record.final_loss, trial.number + 1
    if np.isfinite(final_loss) and np.isfinite(validation_loss):
        raise UserError(f"The {ranking.name} scores of trial {number} are not finite numbers (NaN or infinite), "
                        f"with a final training loss of {final_loss:g} and a validation loss of "
                        f"{validation_loss:g}: if those are high the training diverged, so lower the learning rate "
                        "in the model's optimizer settings; if they are good the propagation back through the traced "
                        "steps grew without bound (the final learning rate is above the stable limit of the "
                        "network's curvature), so use --ranking loss-history.")
    raise UserError(f"The scores of trial {number} are not finite numbers (NaN or infinite) because "
                    f"the training diverged (final training loss {final_loss:g}, validation loss "
                    f"{validation_loss:g}); lower the learning rate in the model's optimizer settings.")


def score_trial(trial, ranking):
    """Score one trial with `ranking`; return (scores, validation loss, seconds)."""
    started = time.perf_counter()
    values = ranking.score(trial)
    seconds = time.perf_counter() - started
    validation_loss = trial.validation_loss()
    _check_finite(trial, ranking, values, validation_loss)
    info(f"Trial {trial.number + 1}/{trial.setup.n_trials}: validation loss {validation_loss:.5f}; ranked "
         f"{len(trial.train_data)} samples by {ranking.name} in {seconds:.1f} s.")
    return values, validation_loss, seconds


def _prepare(options, ranking, comm):
    """Read and check everything before any training; return the `TrialSetup` (`comm`: data-parallel processes)."""
    project = load_project(options.model, context=options.context)
    if (options.epochs or project.max_epoch) < 1:
        raise UserError(f"The training configuration in {project.path} has no epochs (Max Epoch is {project.max_epoch}); "
                        "set Max Epoch in Neural Network Console's CONFIG tab, or pass --epochs.")
    train_path = _dataset_path(options.input_train, project.train_dataset, "training", project.path)
    val_path = _validation_path(options, ranking, project)
    for output in (options.output, summary_path(options.output)):
        check_writable(output, inputs=(train_path, val_path, project.path))
    check_differentiable(project, context=options.context, second_order=ranking.second_order)

    if project.eval_network_derived:
        info(f"Scoring with a copy of the network '{project.train_network}' in evaluation mode "
             "(batch statistics fixed, dropout and augmentation off).")
    normalize = project.train_dataset.normalize if project.train_dataset else True
    train_data = read_dataset(train_path, normalize=normalize)
    val_data = read_dataset(val_path, normalize=normalize) if val_path else None
    for dataset in (train_data, val_data):
        if dataset is not None:
            check_dataset(project, dataset)
    epochs = options.epochs or project.max_epoch
    trained = _trained_start(options, project, epochs)
    plan = TrainingPlan(epochs=epochs, batch_size=options.batch_size or project.batch_size,
                        seed=options.seed, shuffle=project.train_dataset.shuffle if project.train_dataset else True,
                        trace_epochs=options.trace_epochs, keep_step_parameters=ranking.keeps_step_parameters,
                        checkpoints=ranking.checkpoints, snapshots=ranking.snapshots,
                        first_epoch=max(epochs - options.trace_epochs, 0) if trained is not None else 0)
    n_trials = trial_count(options.n_trials, ranking, project, plan, len(train_data), trained is not None)
    if options.n_trials == AUTO and n_trials > 1:
        retrained = f"epoch {epochs}" if plan.epochs_to_run == 1 else f"its last {plan.epochs_to_run} epochs"
        info(f"Averaging {n_trials} trials (--n-trials auto): training ends at its full learning rate, where one "
             f"trial's {ranking.name} ranking is one draw of where training wanders; each trial trains {retrained} "
             f"again from the trained parameters, with its own seed. Pass -nt 1 for one trial: about {n_trials} "
             "times faster, less reliable (docs/evidence.md, section 4).")
    cache_root = os.path.abspath(options.cache_dir or options.default_cache_dir())
    check_cache_folder(cache_root, n_trials)
    if _spreads_trials(comm, n_trials):
        comm = parallel.SingleProcess()  # each process trains and scores whole trials
    elif comm.size > 1 and project.influence_batch_statistics:
        raise UserError(f"The network in {project.path} normalises with minibatch statistics, which sharing each "
                        f"minibatch over {comm.size} processes would change; pass --n-trials {comm.size} (or more) "
                        "to give each process whole trials instead, or run without mpiexec.")
    return TrialSetup(project, train_data, val_data, plan, n_trials, cache_root, options.context, trained, comm)


def _spreads_trials(comm, n_trials):
    """True when the processes share out whole trials (as many trials as processes, or more), else each trial's
    minibatches are shared out over them (data-parallel)."""
    return comm.size > 1 and n_trials >= comm.size


def _trained_start(options, project, epochs):
    """The model file's trained parameters when training continues from them (--start-from), else None."""
    if options.start_from == "initial" or (options.start_from == "auto" and not project.has_trained_parameters):
        if project.has_trained_parameters:
            info("The model file holds trained parameters; they are not used (--start-from initial): training "
                 "starts from the network's initialisation, as Neural Network Console does.")
        return None
    traced = min(options.trace_epochs, epochs)
    info(f"Starting from the trained parameters in {os.path.basename(project.path)}: training only the last "
         f"{traced} of its {epochs} epochs again, with the learning rates its schedule ends with, and tracing them "
         "(--start-from initial retrains every epoch from the initialisation instead).")
    return project.trained_parameters(options.context)


def score(options):
    """Train (or reuse the cache), rank every training row, write the scored CSV and its summary; return a `ScoreRun`.

    Examples
    --------
    >>> import os, tempfile
    >>> from nnc_plugin.options import ScoreOptions
    >>> from nnc_plugin.pipeline import score
    >>> folder = tempfile.mkdtemp()
    >>> run = score(ScoreOptions(model="sample_projects/digits/digits_mlp.nntxt", epochs=2,
    ...                          output=os.path.join(folder, "influence.csv")))
    >>> run.scores.shape  # one score per row of the training CSV, which lists the lowest (most harmful) first
    (1000,)
    >>> sorted(os.listdir(folder))
    ['influence.csv', 'influence.csv.summary.json', 'influence_cache']
    """
    options.validate()
    ranking = scores.create(options.ranking, mode=options.mode, reference=options.reference)
    comm = parallel.world()
    setup = _prepare(options, ranking, comm)
    spread = _spreads_trials(comm, setup.n_trials)
    trials, measured = [], []  # measured: (trial number, scores, facts)
    with cache_folder(setup.cache_root):  # removed again if the run fails before caching anything
        for number in range(comm.rank, setup.n_trials, comm.size) if spread else range(setup.n_trials):
            trial = open_trial(setup, number)
            values, validation_loss, seconds = score_trial(trial, ranking)
            trials.append(trial)
            measured.append((number, values, trial_facts(trial, validation_loss, seconds)))
    if spread:  # every process learns every trial's scores, in trial order
        measured = sorted((m for part in comm.gather(measured) for m in part), key=lambda m: m[0])
    averaged = np.mean([values for _, values, _ in measured], axis=0)
    summary = run_summary(options, setup, [facts for _, _, facts in measured], comm.size)
    for warning in summary["warnings"]:
        info(f"Warning: {warning}")
    if comm.is_root:  # one process writes the outputs
        with interrupts_held():  # the CSV and its summary belong together
            write_scored_csv(options.output, setup.train_data, averaged)
            write_summary(summary_path(options.output), summary)
    info(f"Wrote {options.output}: {len(setup.train_data)} rows, most harmful first (lowest influence).")
    return ScoreRun(scores=averaged, trials=trials, summary=summary)
