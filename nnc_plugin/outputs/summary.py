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


def trial_facts(trial, validation_loss, seconds):
    """What the summary says of one scored trial, as plain values (they travel between processes)."""
    return {"traced_steps": len(trial.record.schedule), "cache_bytes": trial.cache.size_bytes(),
            "parameter_count": trial.model.parameter_count(),
            "trainable_parameters": trial.model.parameter_count(trainable_only=True),
            "train_seconds": trial.record.train_seconds, "epoch_seconds": list(trial.record.epoch_seconds),
            "reused": trial.reused, "warnings": training_warnings(trial), "validation_loss": validation_loss,
            "score_seconds": seconds}


def run_summary(options, setup, facts, processes=1, ranking_name=""):
    """The summary of a `score` run (`setup`: its TrialSetup; `facts`: `trial_facts` of every trial, in order;
    `ranking_name`: the ranking it used where `options` left the choice to the plugin)."""
    project, plan, first = setup.project, setup.plan, facts[0]
    return {
        "model": project.path,
        "input_train": setup.train_data.path,
        "input_val": setup.val_data.path if setup.val_data is not None else None,
        "output": os.path.abspath(options.output),
        "n_train": len(setup.train_data),
        "n_val": len(setup.val_data) if setup.val_data is not None else 0,
        "label_columns": list(project.target_columns),
        "ranking": options.ranking or ranking_name,
        "epochs": plan.epochs,
        "start_from": "trained" if setup.trained_parameters is not None else "initial",
        "epochs_trained": plan.epochs_to_run,
        "batch_size": plan.batch_size,
        "trace_epochs": min(plan.trace_epochs, plan.epochs),
        "traced_steps": first["traced_steps"],
        "mode": options.mode,
        "n_trials": setup.n_trials,
        "seed": options.seed,
        "solver": project.solver_name,
        "context": options.context,
        "processes": processes,
        "cache_dir": setup.cache_root,
        "cache_bytes": first["cache_bytes"],
        "cache_bytes_all_trials": int(sum(f["cache_bytes"] for f in facts)),
        "parameter_bytes": 4 * first["parameter_count"],
        "trainable_parameters": first["trainable_parameters"],
        "train_seconds": float(sum(f["train_seconds"] for f in facts)),
        "score_seconds": float(sum(f["score_seconds"] for f in facts)),
        "epoch_seconds": float(np.mean([s for f in facts for s in f["epoch_seconds"]])),
        "validation_loss": float(np.mean([f["validation_loss"] for f in facts])),
        "reused_cache": [f["reused"] for f in facts],
        "scoring_path": "per-sample reference" if options.reference else "batched",
        "warnings": first["warnings"],
    }
