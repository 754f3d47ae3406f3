"""Mislabel detection: how many of the flipped rows each ranking puts first.

Usage:  .venv/bin/python benchmarks/mislabel.py [--project mnist] [--noise-seeds 0 1 2] [--epochs N] [--gamma G]

On the noisy-label variants of a sample project (10% of the training labels flipped to another
class, one variant per noise seed; the flipped rows are known), every ranking of `score` is run
through the same code a user runs, and measured by the fraction of flipped rows among its
top 5 / 10 / 20% and by AUROC (how well the score separates flipped from clean rows; 0.5 is chance).
A random ranking is the floor. Rankings that share a training reuse one cache, as a user's reruns do.
--gamma replaces the learning-rate decay per epoch of the model (the MNIST sample decays by 0.8;
--gamma 1 --epochs 5 trains at a constant learning rate of 0.1, the regime where SGD-influence's
propagation is unstable).

Prints a table and writes benchmarks/out/mislabel_<project>.md and .json.
"""
import argparse
import csv
import os
import sys
import tempfile

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from nnc_plugin.log import quiet_nnabla  # noqa: E402
from nnc_plugin.options import ScoreOptions  # noqa: E402
from nnc_plugin.pipeline import score  # noqa: E402
from tables import publish  # noqa: E402

MODELS = {"mnist": "mnist_cnn.nntxt", "digits": "digits_mlp.nntxt"}
# (label in the table, ranking, mode, trials)
VARIANTS = [
    ("loss-history (default)", "loss-history", "final", 1),
    ("loss-history, 3 trials", "loss-history", "final", 3),
    ("loss at final parameters", "loss", "final", 1),
    ("self-influence", "self-influence", "final", 1),
    ("sgd-influence final", "sgd-influence", "final", 1),
    ("sgd-influence final, 3 trials", "sgd-influence", "final", 3),
    ("sgd-influence all (exact)", "sgd-influence", "all", 1),
]


def model_variant(model_file, folder, prefix, edit_solver):
    """A copy of the model file, in `folder`, whose every optimizer's solver `edit_solver` changed (dataset
    paths made absolute, so the copy finds the sample's data)."""
    from nnc_plugin.model.project import load_project
    from google.protobuf import text_format
    proto = load_project(model_file).proto
    for optimizer in proto.optimizer:
        edit_solver(optimizer.solver)
    for dataset in proto.dataset:
        dataset.uri = os.path.join(os.path.dirname(model_file), dataset.uri) if dataset.uri else ""
    path = os.path.join(folder, prefix + os.path.basename(model_file))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text_format.MessageToString(proto))
    return path


def with_decay(model_file, gamma, folder):
    """A copy of the model file whose exponential learning-rate schedule decays by `gamma`."""
    def decay(solver):
        solver.lr_scheduler_type = "Exponential"
        solver.exponential_scheduler_param.gamma = gamma
    return model_variant(model_file, folder, f"gamma{gamma:g}_", decay)


def flipped_rows(project, noise_seed):
    """A boolean array over the rows of train_noisy_s<seed>.csv: True where the label was flipped."""
    folder = os.path.join(ROOT, "sample_projects", project, "data")
    with open(os.path.join(folder, f"train_noisy_s{noise_seed}_flips.csv"), newline="") as f:
        flipped = [int(row[0]) for row in list(csv.reader(f))[1:]]
    with open(os.path.join(folder, f"train_noisy_s{noise_seed}.csv"), newline="") as f:
        positives = np.zeros(len(list(csv.reader(f))) - 1, dtype=bool)
    positives[flipped] = True
    return positives


def auroc(harm, positives):
    """Probability that a flipped row gets a higher harm score than a clean one (ties count half)."""
    ranks = stats.rankdata(harm)
    n_pos = positives.sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * (len(harm) - n_pos)))


def recall_at(harm, positives, fraction):
    top = np.argsort(-harm, kind="stable")[:int(round(fraction * len(harm)))]
    return float(positives[top].sum() / positives.sum())


def measure(harm, positives):
    return {"top5": recall_at(harm, positives, 0.05), "top10": recall_at(harm, positives, 0.10),
            "top20": recall_at(harm, positives, 0.20), "auroc": auroc(harm, positives)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", choices=sorted(MODELS), default="mnist")
    parser.add_argument("--noise-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="default: the model's Max Epoch")
    parser.add_argument("--gamma", type=float, default=None, help="learning-rate decay per epoch; default: the model's")
    args = parser.parse_args()
    quiet_nnabla()
    folder = os.path.join(ROOT, "sample_projects", args.project)
    results = {label: [] for label, *_ in VARIANTS}
    results["random (floor)"] = []
    with tempfile.TemporaryDirectory() as workdir:
        model_file = os.path.join(folder, MODELS[args.project])
        if args.gamma is not None:
            model_file = with_decay(model_file, args.gamma, workdir)
        for noise_seed in args.noise_seeds:
            train_csv = os.path.join(folder, "data", f"train_noisy_s{noise_seed}.csv")
            positives = flipped_rows(args.project, noise_seed)
            n_rows = len(positives)
            for label, ranking, mode, trials in VARIANTS:
                run = score(ScoreOptions(
                    model=model_file, input_train=train_csv,
                    input_val=os.path.join(folder, "data", "val.csv"), output=os.path.join(workdir, "scores.csv"),
                    ranking=ranking, mode=mode, n_trials=trials, epochs=args.epochs,
                    cache_dir=os.path.join(workdir, f"cache_{noise_seed}_{mode}")))
                results[label].append(dict(measure(-run.scores, positives), noise_seed=noise_seed,
                                           score_seconds=run.summary["score_seconds"]))
                print(f"noise seed {noise_seed}, {label}: {results[label][-1]}", file=sys.stderr, flush=True)
            random_harm = np.random.RandomState(noise_seed).permutation(n_rows).astype(float)
            results["random (floor)"].append(dict(measure(random_harm, positives), noise_seed=noise_seed))

    setting = "" if args.gamma is None else f", learning-rate decay {args.gamma:g} per epoch"
    setting += "" if args.epochs is None else f", {args.epochs} epochs"
    lines = [f"{args.project} sample{setting}, 10% of training labels flipped, noise seeds "
             f"{', '.join(map(str, args.noise_seeds))} (mean over seeds; AUROC 0.5 = chance).", "",
             "| ranking | flipped in top 5% | top 10% | top 20% | AUROC |", "|---|---|---|---|---|"]
    for label, rows in results.items():
        mean = {key: np.mean([r[key] for r in rows]) for key in ("top5", "top10", "top20", "auroc")}
        lines.append(f"| {label} | {mean['top5']:.3f} | {mean['top10']:.3f} | {mean['top20']:.3f} | {mean['auroc']:.3f} |")
    name = f"mislabel_{args.project}" + ("" if args.gamma is None else f"_gamma{args.gamma:g}")
    publish(name, "\n".join(lines), results)


if __name__ == "__main__":
    main()
