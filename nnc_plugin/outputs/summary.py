"""The run summary: a JSON file beside the scored CSV that says how its scores were made.

The report shows it, `cleanse` reads which training CSV was scored from it, and a user can read it.
"""
import json
import os

import numpy as np

from ..files import write_atomically
from ..training.diagnosis import training_warnings


def summary_path(scored_csv):
    """The run summary written beside a scored CSV."""
    return scored_csv + ".summary.json"


def read_summary(scored_csv):
    """The run summary beside a scored CSV as a dict ({} when there is none or it cannot be read)."""
    try:
        with open(summary_path(scored_csv), encoding="utf-8") as f:
            summary = json.load(f)
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def write_summary(path, summary):
    write_atomically(path, json.dumps(summary, indent=2, sort_keys=True) + "\n")


def run_summary(options, setup, trials, measured):
    """The summary of a `score` run (`setup`: its TrialSetup; `measured`: (validation loss, seconds) per trial)."""
    project, plan, first = setup.project, setup.plan, trials[0]
    return {
        "model": project.path,
        "input_train": setup.train_data.path,
        "input_val": setup.val_data.path if setup.val_data is not None else None,
        "output": os.path.abspath(options.output),
        "n_train": len(setup.train_data),
        "n_val": len(setup.val_data) if setup.val_data is not None else 0,
        "ranking": options.ranking,
        "epochs": plan.epochs,
        "start_from": "trained" if setup.trained_parameters is not None else "initial",
        "epochs_trained": plan.epochs_to_run,
        "batch_size": plan.batch_size,
        "trace_epochs": min(plan.trace_epochs, plan.epochs),
        "traced_steps": len(first.record.schedule),
        "mode": options.mode,
        "n_trials": options.n_trials,
        "seed": options.seed,
        "solver": project.solver_name,
        "context": options.context,
        "cache_dir": setup.cache_root,
        "cache_bytes": first.cache.size_bytes(),
        "cache_bytes_all_trials": int(sum(t.cache.size_bytes() for t in trials)),
        "parameter_bytes": 4 * first.model.parameter_count(),
        "trainable_parameters": first.model.parameter_count(trainable_only=True),
        "train_seconds": float(sum(t.record.train_seconds for t in trials)),
        "score_seconds": float(sum(seconds for _, seconds in measured)),
        "epoch_seconds": float(np.mean([s for t in trials for s in t.record.epoch_seconds])),
        "validation_loss": float(np.mean([loss for loss, _ in measured])),
        "reused_cache": [t.reused for t in trials],
        "scoring_path": "per-sample reference" if options.reference else "batched",
        "warnings": training_warnings(first),
    }
