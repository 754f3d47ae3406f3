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
from .files import check_writable, interrupts_held
from .log import info
from .model.project import load_project
from .outputs.groups import describe, find_groups, row_labels
from .outputs.scored_csv import write_scored_csv
from .outputs.summary import run_summary, summary_path, trial_facts, write_summary
from .scores.differentiability import check_differentiable
from .training.cache import cache_folder, check_cache_folder
from .training.trainer import TrainingPlan
from .training.trial import TrialSetup, open_trial
from .training.trial_policy import share_trials, trial_count


@dataclass
class ScoreRun:
    """What `score` computed, for the caller (CLI, evaluate, tests): the averaged scores and the run summary."""
    scores: np.ndarray
    summary: dict = field(default_factory=dict)


@dataclass
class PreparedRun:
    """A checked `score` run before any training: the ranking, what its trials share, and this process's part."""
    ranking: scores.Ranking
    setup: TrialSetup
    share: object  # trial_policy.TrialShare


def dataset_path(given, spec, role, model_path):
    """The dataset CSV of a `role` ("training" or "validation"): the one `given`, else the one the model file
    names (`spec`), refused in one sentence when it names none or it is not on this machine."""
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
        return dataset_path(options.input_val, project.val_dataset, "validation", project.path)
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
    """Score one trial with `ranking`; return (its `scores.Scores`, validation loss, seconds)."""
    started = time.perf_counter()
    result = ranking.score(trial)
    result = result if isinstance(result, scores.Scores) else scores.Scores(np.asarray(result, dtype=np.float64))
    seconds = time.perf_counter() - started
    validation_loss = trial.validation_loss()
    _check_finite(trial, ranking, result.values, validation_loss)
    info(f"Trial {trial.number + 1}/{trial.setup.n_trials}: validation loss {validation_loss:.5f}; ranked "
         f"{len(trial.train_data)} samples by {ranking.name} in {seconds:.1f} s.")
    return result, validation_loss, seconds


def _averaged(measured, setup, ranking):
    """(the trials' scores averaged, the groups of harmful rows among them, outputs/groups.py), said in the log."""
    results = [result for _, result, _ in measured]
    averaged = _mean_of(results, "values")
    groups = (find_groups(averaged, row_labels(setup), _mean_of(results, "effects"), _mean_of(results, "losses"))
              if ranking.needs_validation else [])
    for number, group in enumerate(groups, start=1):
        info(describe(group, number))
    return averaged, groups


def _mean_of(results, field):
    """The trials' `field` of their `Scores` averaged, or None where a trial has none."""
    arrays = [getattr(result, field) for result in results]
    return None if any(a is None for a in arrays) else np.mean(arrays, axis=0)


def _read_datasets(options, ranking, project):
    """The training and validation datasets (None without validation data), checked against the network and
    the outputs checked writable, before any training."""
    train_path = dataset_path(options.input_train, project.train_dataset, "training", project.path)
    val_path = _validation_path(options, ranking, project)
    for output in (options.output, summary_path(options.output)):
        check_writable(output, inputs=(train_path, val_path, project.path))
    normalize = project.train_dataset.normalize if project.train_dataset else True
    train_data = read_dataset(train_path, normalize=normalize)
    val_data = read_dataset(val_path, normalize=normalize) if val_path else None
    for dataset in (train_data, val_data):
        if dataset is not None:
            check_dataset(project, dataset)
    return train_data, val_data


def _training_plan(options, ranking, project, trained):
    """The `TrainingPlan` of every trial (`trained`: the run continues from the model file's parameters)."""
    epochs = options.epochs or project.max_epoch
    return TrainingPlan(epochs=epochs, batch_size=options.batch_size or project.batch_size,
                        seed=options.seed, shuffle=project.train_dataset.shuffle if project.train_dataset else True,
                        trace_epochs=options.trace_epochs, keep_step_parameters=ranking.keeps_step_parameters,
                        checkpoints=ranking.checkpoints, snapshots=ranking.snapshots,
                        first_epoch=max(epochs - options.trace_epochs, 0) if trained is not None else 0)


def prepare(options):
    """Read and check everything before any training; return the `PreparedRun`."""
    options.validate()
    project = load_project(options.model, context=options.context)
    ranking = scores.create(chosen_ranking(options, project), mode=options.mode, reference=options.reference)
    if (options.epochs or project.max_epoch) < 1:
        raise UserError(f"The training configuration in {project.path} has no epochs (Max Epoch is "
                        f"{project.max_epoch}); set Max Epoch in Neural Network Console's CONFIG tab, or pass --epochs.")
    train_data, val_data = _read_datasets(options, ranking, project)
    check_differentiable(project, context=options.context, second_order=ranking.second_order)
    if project.eval_network_derived:
        info(f"Scoring with a copy of the network '{project.train_network}' in evaluation mode "
             "(batch statistics fixed, dropout and augmentation off).")
    trained = _trained_start(options, project, options.epochs or project.max_epoch)
    plan = _training_plan(options, ranking, project, trained)
    n_trials = trial_count(options.n_trials)
    cache_root = os.path.abspath(options.cache_dir or options.default_cache_dir())
    check_cache_folder(cache_root, n_trials)
    share = share_trials(parallel.world(), n_trials)
    if share.comm.size > 1:
        _check_data_parallel(project, share.comm.size)
    setup = TrialSetup(project, train_data, val_data, plan, n_trials, cache_root, options.context, trained, share.comm)
    return PreparedRun(ranking, setup, share)


def chosen_ranking(options, project):
    """The ranking's name: the one asked for, else the default, or its stand-in where the default cannot run (no
    validation data, or a network nnabla cannot differentiate twice), said in the log."""
    if options.ranking is not None:
        return options.ranking
    default, fallback = scores.DEFAULT_RANKING, scores.FALLBACK_RANKING
    spec = project.val_dataset
    if not options.input_val and not (spec is not None and spec.uri and os.path.isfile(spec.uri)):
        info(f"No validation data (pass it with --input-val, or name it in the project): ranking by {fallback}, the "
             f"rows' training loss, instead of the default {default}, which needs the validation loss.")
        return fallback
    try:
        check_differentiable(project, context=options.context, second_order=True)
    except UserError as error:
        info(f"Ranking by {fallback}, the rows' training loss, instead of the default {default}: {error}")
        return fallback
    return default


def _check_data_parallel(project, processes):
    """Refuse a network whose rows cannot be shared out over `processes` and give one process's answer; say how
    a network with random layers is trained then."""
    whole_trials = (f"pass --n-trials {processes} (or more) to give each process whole trials instead, or run "
                    "without mpiexec")
    if project.influence_batch_statistics:
        raise UserError(f"The network in {project.path} normalises with minibatch statistics, which sharing each "
                        f"minibatch over {processes} processes would change; {whole_trials}.")
    if project.generator_variables:
        raise UserError(f"The network in {project.path} reads random inputs (the optimizer's generator variables "
                        f"{', '.join(project.generator_variables)}), which sharing each minibatch over {processes} "
                        f"processes would draw differently; {whole_trials}.")
    if project.random_training_layers:
        info(f"The training network has random layers ({', '.join(project.random_training_layers[:3])}): each of "
             f"the {processes} processes trains on whole minibatches, as one process does, so that the scores are "
             "one process's; the scoring is shared out.")


def _trained_start(options, project, epochs):
    """The model file's trained parameters when training continues from them (--start-from), else None."""
    if options.start_from == "initial" or (options.start_from == "auto" and not project.has_trained_parameters):
        if project.has_trained_parameters:
            info("The model file holds trained parameters; they are not used (--start-from initial): training "
                 "starts from the network's initialisation, as Neural Network Console does.")
        return None
    traced = min(options.trace_epochs, epochs)
    again = "its last epoch" if traced == 1 else f"its last {traced} epochs"
    info(f"Starting from the trained model in {os.path.basename(project.path)}: training {again} of {epochs} again, "
         "at the learning rates its schedule ends with, and watching what each row does there (--start-from initial "
         "retrains every epoch from the initialisation instead).")
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
    prepared = prepare(options)
    ranking, setup, share = prepared.ranking, prepared.setup, prepared.share
    measured = []  # (trial number, Scores, facts)
    with cache_folder(setup.cache_root):  # removed again if the run fails before caching anything
        for number in share.numbers:
            trial = open_trial(setup, number)
            result, validation_loss, seconds = score_trial(trial, ranking)
            measured.append((number, result, trial_facts(trial, validation_loss, seconds)))
    comm = parallel.world()
    if share.comm.size < comm.size:  # whole trials per process: every process learns every trial's scores
        measured = sorted((m for part in comm.gather(measured) for m in part), key=lambda m: m[0])
    averaged, groups = _averaged(measured, setup, ranking)
    summary = run_summary(options, setup, [facts for _, _, facts in measured], comm.size, ranking.name)
    summary["groups"] = [group.as_dict() for group in groups]
    for warning in summary["warnings"]:
        info(f"Warning: {warning}")
    if comm.is_root:  # one process writes the outputs
        with interrupts_held():  # the CSV and its summary belong together
            write_scored_csv(options.output, setup.train_data, averaged)
            write_summary(summary_path(options.output), summary)
    info(f"Wrote {options.output}: {len(setup.train_data)} rows, most harmful first (lowest influence).")
    return ScoreRun(scores=averaged, summary=summary)
