"""Fidelity: how well SGD-influence predicts the true effect of leaving one sample out.

Usage:  .venv/bin/python benchmarks/fidelity.py [--samples 200] [--epochs 10] [--batch-size 20] [--seeds 0 1 2]

On a small real problem (the digits sample's MLP, the first --samples training rows, the whole
validation set) with a fixed minibatch order, it retrains once per training sample with that
sample left out of every step (same initialisation, same minibatches and denominators: the
counterfactual SGD-influence estimates) and measures the change of the mean validation loss.
SGD-influence traced over all epochs, in `--mode all` (exact, per-step parameters) and
`--mode final` (storage-efficient), is compared with that truth by Kendall's tau and Pearson's r.
The published anchor: Kendall tau about 0.75 (Hara, Nitanda, Maehara, NeurIPS 2019).

Prints a table and writes benchmarks/out/fidelity.md and fidelity.json.
"""
import argparse
import csv
import json
import os
import sys
import tempfile

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from nnc_plugin.cache import TrialCache  # noqa: E402
from nnc_plugin.dataset import read_dataset  # noqa: E402
from nnc_plugin.influence import validation_gradient  # noqa: E402
from nnc_plugin.log import Progress, quiet_nnabla  # noqa: E402
from nnc_plugin.network import Model  # noqa: E402
from nnc_plugin.pipeline import ScoreOptions, score  # noqa: E402
from nnc_plugin.project import load_project  # noqa: E402
from nnc_plugin.trainer import train  # noqa: E402

DIGITS = os.path.join(ROOT, "sample_projects", "digits")


def first_rows(source, target, count):
    with open(source, newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    folder = os.path.dirname(source)
    with open(target, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(table[0])
        for row in table[1:count + 1]:
            writer.writerow([os.path.join(folder, row[0]), row[1]])
    return target


def true_effects(project, train_data, val_data, epochs, batch_size, seed, workdir):
    """L_val(trained without j) - L_val(trained with all), for every j, with the same schedule."""
    def validation_loss(weights):
        model = Model(project, seed=seed)
        cache = TrialCache(os.path.join(workdir, "loo"))
        cache.start()
        train(model, train_data, cache, epochs, batch_size, seed, trace_epochs=1, sample_weights=weights)
        return validation_gradient(model, val_data, 100)[1]

    n = len(train_data)
    baseline = validation_loss(np.ones(n, dtype=np.float32))
    effects = np.zeros(n)
    with Progress("Leave-one-out retraining", n) as progress:
        for j in range(n):
            weights = np.ones(n, dtype=np.float32)
            weights[j] = 0.0
            effects[j] = validation_loss(weights) - baseline
            progress.advance(1)
    return effects


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    quiet_nnabla()
    from nnabla.logger import logger
    logger.setLevel(100)  # the hundreds of retraining logs are not worth showing

    rows, raw = [], []
    with tempfile.TemporaryDirectory() as workdir:
        train_csv = first_rows(os.path.join(DIGITS, "data", "train.csv"), os.path.join(workdir, "train.csv"), args.samples)
        val_csv = os.path.join(DIGITS, "data", "val.csv")
        model_file = os.path.join(DIGITS, "digits_mlp.nntxt")
        project = load_project(model_file)
        train_data, val_data = read_dataset(train_csv), read_dataset(val_csv)
        for seed in args.seeds:
            truth = true_effects(project, train_data, val_data, args.epochs, args.batch_size, seed, workdir)
            estimates = {}
            for mode in ("all", "final"):
                run = score(ScoreOptions(model=model_file, input_train=train_csv, input_val=val_csv,
                                         output=os.path.join(workdir, f"{mode}.csv"), ranking="sgd-influence", mode=mode, seed=seed,
                                         epochs=args.epochs, batch_size=args.batch_size, trace_epochs=args.epochs,
                                         cache_dir=os.path.join(workdir, f"cache_{mode}")))
                estimates[mode] = run.scores
            for mode, estimate in estimates.items():
                tau = stats.kendalltau(estimate, truth).correlation
                r = stats.pearsonr(estimate, truth)[0]
                rows.append([seed, mode, f"{tau:.3f}", f"{r:.3f}"])
                raw.append({"seed": seed, "mode": mode, "kendall_tau": tau, "pearson_r": r,
                            "truth_abs_mean": float(np.abs(truth).mean())})
            print(f"seed {seed}: " + ", ".join(f"{r[1]} tau={r[2]} r={r[3]}" for r in rows[-2:]), file=sys.stderr)

    lines = [f"Digits MLP, {args.samples} training samples, {args.epochs} epochs, batch size {args.batch_size}, "
             "all epochs traced, fixed minibatch order.", "",
             "| seed | mode | Kendall tau | Pearson r |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    for mode in ("all", "final"):
        taus = [r["kendall_tau"] for r in raw if r["mode"] == mode]
        pearsons = [r["pearson_r"] for r in raw if r["mode"] == mode]
        lines.append(f"| mean | {mode} | {np.mean(taus):.3f} | {np.mean(pearsons):.3f} |")
    table = "\n".join(lines)
    print(table)
    os.makedirs(os.path.join(HERE, "out"), exist_ok=True)
    with open(os.path.join(HERE, "out", "fidelity.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    with open(os.path.join(HERE, "out", "fidelity.json"), "w", encoding="utf-8") as f:
        json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
