"""Test accuracy of the sample networks trained on the clean and on the noisy training CSV.

Usage:  .venv/bin/python benchmarks/clean_baseline.py [--project mnist|digits] [--seeds 5] [--epochs N]

The gap between the two is all that removing mislabeled rows can win back; docs/evidence.md puts
the remove-and-retrain results beside it. Prints a table; writes benchmarks/out/clean_baseline_<project>.md.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from nnc_plugin.data.dataset import read_dataset  # noqa: E402
from nnc_plugin.evaluate import retrain_and_test  # noqa: E402
from nnc_plugin.training.trainer import TrainingPlan  # noqa: E402
from nnc_plugin.log import quiet_nnabla  # noqa: E402
from nnc_plugin.model.project import load_project  # noqa: E402
from tables import publish  # noqa: E402

MODELS = {"mnist": "mnist_cnn.nntxt", "digits": "digits_mlp.nntxt"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", choices=sorted(MODELS), default="mnist")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    quiet_nnabla()
    folder = os.path.join(ROOT, "sample_projects", args.project)
    project = load_project(os.path.join(folder, MODELS[args.project]))
    epochs = args.epochs or project.max_epoch
    test = read_dataset(os.path.join(folder, "data", "test.csv"))
    lines = [f"{args.project} sample, {epochs} epochs, {args.seeds} seeds: test accuracy (mean ± s.d.)", "",
             "| training CSV | test accuracy | test loss |", "|---|---|---|"]
    for name in ("train.csv", "train_noisy_s0.csv"):
        data = read_dataset(os.path.join(folder, "data", name))
        results = np.array([retrain_and_test(project, data, test, TrainingPlan(epochs, project.batch_size, seed))
                            for seed in range(args.seeds)])
        lines.append(f"| {name} | {results[:, 0].mean():.4f} ± {results[:, 0].std(ddof=1):.4f} | "
                     f"{results[:, 1].mean():.4f} ± {results[:, 1].std(ddof=1):.4f} |")
    publish(f"clean_baseline_{args.project}", "\n".join(lines))


if __name__ == "__main__":
    main()
