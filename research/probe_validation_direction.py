"""Probe: which validation gradient should `influence` start from? Results: research/results/validation_direction.md.

Two choices, measured on research/harm.py's kinds:
  how each validation row counts (--directions):
    loss      the validation loss's gradient: each row by its error e_i in the logits (the package until 2026-12-06)
    sqrt      each row's error weighted by |e_i| ** -1/2 (the package since)
    unit      each row by the direction of its error alone (|e_i| ** -1)
    balanced  the loss's gradient with every class's part of unit length (class weights taken over the whole
              validation set at the first point it meets)
  where the rows are taken (--points):
    average   each validation row at one of the final parameters and the 8 snapshots of the last epoch
    mix       half from every row at the final parameters, half from the 8 snapshots (the package since)
    late      average, with the 8 snapshots spread over the last half-epoch only
    final     every row at the final parameters alone (`influence-final-only`: no snapshots)

Usage:  .venv/bin/python research/probe_validation_direction.py KIND:SEED [...] [--start initial|trained]
            [--directions loss sqrt] [--points average mix]
"""
import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harm  # noqa: E402  (puts the package and benchmarks/ on the path)
from harm_rankings import InfluenceFinalOnly  # noqa: E402
from mislabel import measure  # noqa: E402
from nnc_plugin.log import quiet_nnabla  # noqa: E402
from nnc_plugin.options import ScoreOptions  # noqa: E402
from nnc_plugin.pipeline import score  # noqa: E402
from nnc_plugin.scores import gradients, influence, registry  # noqa: E402
from nnc_plugin.training import snapshots, trainer, trial as trial_module  # noqa: E402

PACKAGE = {"direction": snapshots.validation_direction, "start": influence.starting_gradient,
           "add": snapshots.SnapshotGradient.add, "positions": snapshots.snapshot_positions}
CLASS_WEIGHTS = {}  # the balanced direction's row weights and the final point's rows, for the run in progress


def class_weighted_gradient(model, dataset, weights, batch_size):
    """sum_i w_i grad l_i / N with one weight per class (`weights` per row), one gradient per class."""
    total = [np.zeros(shape, np.float64) for shape in (p.shape for p in model.parameters.values())]
    for w in np.unique(weights):
        rows = np.flatnonzero(weights == w)
        g, _ = model.loss_gradient(dataset.subset(rows), batch_size)
        total = [t + w * len(rows) / len(dataset) * a for t, a in zip(total, g)]
    return [t.astype(np.float32) for t in total]


def class_weights(model, dataset, batch_size):
    """Each validation row's weight N / (n_c |g_c|): every class's mean gradient g_c of unit length."""
    labels = dataset.arrays[model.loss_graph(2).target_column].reshape(len(dataset), -1)[:, 0].astype(int)
    weights = np.zeros(len(dataset))
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        g, _ = model.loss_gradient(dataset.subset(rows), batch_size)
        weights[rows] = len(dataset) / (len(rows) * max(gradients.norm(g), 1e-30))
    return weights


def balanced(model, dataset, batch_size):
    if "w" not in CLASS_WEIGHTS:  # no snapshots: the whole validation set at the final parameters
        return class_weighted_gradient(model, dataset, class_weights(model, dataset, batch_size), batch_size)
    return class_weighted_gradient(model, dataset, CLASS_WEIGHTS["w"][CLASS_WEIGHTS["rows"]], batch_size)


def balanced_add(self, model):
    """SnapshotGradient.add with the class weights taken at its first point over the whole validation set."""
    if self.count == 0:
        CLASS_WEIGHTS["w"] = class_weights(model, self.val_data, self.batch_size)
    self.count += 1
    part = self.parts[self.count]
    gradient = class_weighted_gradient(model, self.val_data.subset(part), CLASS_WEIGHTS["w"][part], self.batch_size)
    weighted = [(g * (len(part) / len(self.val_data))).astype(np.float64) for g in gradient]
    self.total = weighted if self.total is None else [t + w for t, w in zip(self.total, weighted)]


DIRECTIONS = {"loss": lambda m, d, b: m.loss_gradient(d, b)[0],
              "sqrt": lambda m, d, b: gradients.error_weighted_gradient(m, d, b, power=0.5),
              "unit": lambda m, d, b: gradients.error_weighted_gradient(m, d, b, power=1.0),
              "balanced": balanced}


def averaged_start(trial):
    """The package's start until 2026-12-06: each validation row at one of the final parameters and the snapshots."""
    part = snapshots.validation_parts(len(trial.val_data), 1 + trial.record.snapshots, trial.seed + 5)[0]
    CLASS_WEIGHTS["rows"] = part
    final = [g * (len(part) / len(trial.val_data))
             for g in snapshots.validation_direction(trial.model, trial.val_data.subset(part), trial.batch_size)]
    if trial.record.snapshot_gradient is None:
        return final
    return [(f + s).astype(np.float32) for f, s in zip(final, trial.record.snapshot_gradient)]


def mixed_start(trial):
    CLASS_WEIGHTS["rows"] = np.arange(len(trial.val_data))
    return PACKAGE["start"](trial)


def late_positions(count, per_epoch):
    half = per_epoch // 2
    return sorted({half + k * (per_epoch - half) // count for k in range(count)}) if count else []


def configure(direction, points):
    """Patch the package for one direction and one way of taking the points."""
    snapshots.validation_direction = DIRECTIONS[direction]
    snapshots.SnapshotGradient.add = balanced_add if direction == "balanced" else PACKAGE["add"]
    influence.starting_gradient = mixed_start if points == "mix" else averaged_start
    positions = late_positions if points == "late" else PACKAGE["positions"]
    snapshots.snapshot_positions = trainer.snapshot_positions = trial_module.snapshot_positions = positions


def run(kind, seed, start, directions, points, work):
    folder, train_name, harmful = harm.dataset(kind, seed)
    model = harm.model_file(kind, work)
    train_csv = os.path.join(folder, train_name)
    inputs = {"model": model, "input_train": train_csv, "input_val": os.path.join(folder, "val.csv")}
    if start == "trained":
        inputs["model"] = harm.nnabla_cli_training(model, work, train_csv, 8)
    row = {}
    for direction in directions:
        for way in points:
            configure(direction, way)
            CLASS_WEIGHTS.clear()
            name = "influence-final-only" if way == "final" else "influence"
            cache = os.path.join(work, f"cache_{direction}_{way}")
            result = score(ScoreOptions(**inputs, ranking=name, epochs=8, n_trials=1,
                                        output=os.path.join(work, "s.csv"), cache_dir=cache))
            row[f"{direction} {way}"] = measure(-result.scores, harmful)
    configure("sqrt", "mix")
    influence.starting_gradient = PACKAGE["start"]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="KIND:SEED (research/harm.py's kinds)")
    parser.add_argument("--start", choices=("initial", "trained"), default="initial")
    parser.add_argument("--directions", nargs="+", choices=sorted(DIRECTIONS), default=["loss", "sqrt"])
    parser.add_argument("--points", nargs="+", choices=("average", "mix", "late", "final"),
                        default=["average", "mix"])
    args = parser.parse_args()
    quiet_nnabla()
    with registry.trying(InfluenceFinalOnly):
        for spec in args.runs:
            kind, seed = spec.split(":")
            with tempfile.TemporaryDirectory() as work:
                row = run(kind, int(seed), args.start, args.directions, args.points, work)
            print(spec, args.start, "  ".join(f"{n}={m['auroc']:.3f}/{m['top10']:.0%}" for n, m in row.items()),
                  flush=True)


if __name__ == "__main__":
    main()
