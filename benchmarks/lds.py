"""Linear datamodeling score (LDS; Park et al., ICML 2023, "TRAK") of every ranking on the digits sample.

Usage:  .venv/bin/python benchmarks/lds.py [--subsets 100] [--fraction 0.5] [--seeds 0 1 2]

The measure TRAK, Kronfluence and dattri publish: draw M random subsets S holding `fraction` of the
training rows, retrain on each (the project's own configuration, same seed), and measure the validation
loss L(S). A ranking whose scores are additive influences predicts L(S) - L(all) ~ sum over the rows j
left out of S of score_j (for SGD-influence score_j is exactly the predicted change when j is left out).
LDS is the Spearman correlation between the predictions and the measured L(S) over the M subsets, for
each scoring seed; the loss rankings are scored the same way, for comparison. It takes M retrainings
per seed (--subsets).

Prints a table and writes benchmarks/out/lds_digits.md and .json.
"""
import argparse
import os
import sys
import tempfile

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from nnc_plugin.data.dataset import read_dataset  # noqa: E402
from nnc_plugin.log import quiet_nnabla  # noqa: E402
from nnc_plugin.model.network import Model  # noqa: E402
from nnc_plugin.model.project import load_project  # noqa: E402
from nnc_plugin.options import ScoreOptions  # noqa: E402
from nnc_plugin.pipeline import score  # noqa: E402
from nnc_plugin.scores import names  # noqa: E402
from nnc_plugin.training.trainer import TrainingPlan, train  # noqa: E402
from tables import publish  # noqa: E402

DIGITS = os.path.join(ROOT, "sample_projects", "digits")


def subset_losses(project, train_data, val_data, subsets, seed):
    """The validation loss after training on each subset of rows (same seed, same configuration)."""
    losses = []
    for rows in subsets:
        model = Model(project, seed=seed)
        train(model, train_data.subset(rows), TrainingPlan(project.max_epoch, project.batch_size, seed))
        losses.append(float(np.mean(model.per_sample_losses(val_data, 100))))
    return np.array(losses)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subsets", type=int, default=100)
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    quiet_nnabla()
    model_file = os.path.join(DIGITS, "digits_mlp.nntxt")
    train_csv, val_csv = os.path.join(DIGITS, "data", "train.csv"), os.path.join(DIGITS, "data", "val.csv")
    project = load_project(model_file)
    train_data, val_data = read_dataset(train_csv), read_dataset(val_csv)
    n = len(train_data)
    results = {ranking: [] for ranking in names()}
    with tempfile.TemporaryDirectory() as workdir:
        for seed in args.seeds:
            rng = np.random.RandomState(1000 + seed)
            subsets = [np.sort(rng.permutation(n)[:int(args.fraction * n)]) for _ in range(args.subsets)]
            measured = subset_losses(project, train_data, val_data, subsets, seed)
            for ranking in names():
                run = score(ScoreOptions(model=model_file, input_train=train_csv, input_val=val_csv, ranking=ranking,
                                         seed=seed, output=os.path.join(workdir, "scores.csv"),
                                         cache_dir=os.path.join(workdir, f"cache_{seed}_{ranking}")))
                left_out = [np.setdiff1d(np.arange(n), rows) for rows in subsets]
                predicted = np.array([run.scores[rows].sum() for rows in left_out])
                results[ranking].append(float(stats.spearmanr(predicted, measured).correlation))
                print(f"seed {seed}, {ranking}: LDS {results[ranking][-1]:.3f}", file=sys.stderr, flush=True)
    lines = [f"digits sample (MLP, {n} rows, {project.max_epoch} epochs): LDS over {args.subsets} random subsets of "
             f"{args.fraction:.0%} of the rows, one retraining each ({args.subsets * len(args.seeds)} retrainings), "
             f"seeds {', '.join(map(str, args.seeds))}.", "", "| ranking | LDS (mean ± s.d. over seeds) |", "|---|---|"]
    lines += [f"| {ranking} | {np.mean(v):.3f} ± {np.std(v):.3f} |" for ranking, v in results.items()]
    publish("lds_digits", "\n".join(lines), results)


if __name__ == "__main__":
    main()
