"""Fidelity: how well SGD-influence predicts the true effect of leaving one sample out.

Usage:  .venv/bin/python benchmarks/fidelity.py [--model mlp|conv-bn] [--samples 200] [--epochs 10]
                                                [--batch-size 20] [--seeds 0 1 2]

On a small real problem (a digits sample network, the first --samples training rows, the whole
validation set) with a fixed minibatch order, it retrains once per training sample with that
sample left out of every step (same initialisation, same minibatches and denominators: the
counterfactual SGD-influence estimates) and measures the change of the mean validation loss.
SGD-influence traced over all epochs, in `--mode all` (exact, per-step parameters) and
`--mode final` (storage-efficient), is compared with that truth by Kendall's tau and Pearson's r.
The published anchor: Kendall tau about 0.75 (Hara, Nitanda, Maehara, NeurIPS 2019).

--model mlp is the digits sample's MLP; --model conv-bn its Convolution + BatchNormalization network
(research/evidence.md also has the variant the plugin does not use, the traced steps differentiated with
the running statistics: measured with the script of commit 20437d9).

Prints a table and writes benchmarks/out/fidelity[_conv-bn].md and .json.
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

from nnc_plugin.data.dataset import read_dataset  # noqa: E402
from nnc_plugin.errors import UserError  # noqa: E402
from nnc_plugin.scores.gradients import validation_gradient  # noqa: E402
from nnc_plugin.log import Progress, quiet_nnabla  # noqa: E402
from nnc_plugin.model.network import Model  # noqa: E402
from nnc_plugin.options import ScoreOptions  # noqa: E402
from nnc_plugin.pipeline import score  # noqa: E402
from regimes import REGIMES, regime_model  # noqa: E402
from tables import publish  # noqa: E402
from nnc_plugin.model.project import load_project  # noqa: E402
from nnc_plugin.training.trainer import TrainingPlan, train  # noqa: E402

DIGITS = os.path.join(ROOT, "sample_projects", "digits")
MODELS = {"mlp": ("digits_mlp.nntxt", "Digits MLP"),
          "conv-bn": ("digits_conv_bn.nntxt", "Digits Convolution + BatchNormalization")}


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


def true_effects(project, train_data, val_data, plan):
    """L_val(trained without j) - L_val(trained with all), for every j, with the same schedule."""
    def validation_loss(weights):
        model = Model(project, seed=plan.seed)
        train(model, train_data, plan, sample_weights=weights)
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


def seed_averaged(truths, all_estimates, modes):
    """Table lines: each estimate against the leave-one-out effect averaged over the seeds (which also average
    over minibatch orders and initialisations), per seed and for the estimates averaged over the seeds too."""
    if len(truths) < 2:
        return []
    truth = np.mean(truths, axis=0)
    lines = ["", f"Against the leave-one-out effect averaged over the {len(truths)} seeds (each seed's own estimate; and the "
             "estimates averaged over the seeds, as --n-trials does):", "",
             "| mode | Kendall tau, one seed's estimate (mean ± s.d.) | Kendall tau, estimates averaged |", "|---|---|---|"]
    for mode in modes:
        estimates = [e[mode] for e in all_estimates]
        if not all(np.all(np.isfinite(e)) for e in estimates):
            lines.append(f"| {mode} | overflow | overflow |")
            continue
        taus = [stats.kendalltau(e, truth).correlation for e in estimates]
        averaged = stats.kendalltau(np.mean(estimates, axis=0), truth).correlation
        lines.append(f"| {mode} | {np.mean(taus):.3f} ± {np.std(taus):.3f} | {averaged:.3f} |")
    return lines


def _number(value):
    return "overflow" if not np.isfinite(value) else f"{value:.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="mlp")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--regime", choices=("as-is",) + REGIMES, default="as-is",
                        help="train with another solver (benchmarks/regimes.py): momentum, adam, ...")
    args = parser.parse_args()
    quiet_nnabla()
    from nnabla.logger import logger
    logger.setLevel(100)  # the hundreds of retraining logs are not worth showing

    rows, raw = [], []
    truths, all_estimates = [], []
    with tempfile.TemporaryDirectory() as workdir:
        train_csv = first_rows(os.path.join(DIGITS, "data", "train.csv"), os.path.join(workdir, "train.csv"), args.samples)
        val_csv = os.path.join(DIGITS, "data", "val.csv")
        model_file = os.path.join(DIGITS, MODELS[args.model][0])
        if args.regime != "as-is":
            model_file = regime_model(model_file, args.regime, workdir)
        project = load_project(model_file)
        train_data, val_data = read_dataset(train_csv), read_dataset(val_csv)
        variants = [("all", "sgd-influence", "all"), ("final", "sgd-influence", "final"),  # (label, ranking, mode)
                    ("influence (expected SGD-influence)", "influence", "final"), ("tracin-cp", "tracin-cp", "final")]
        for seed in args.seeds:
            truth = true_effects(project, train_data, val_data, TrainingPlan(args.epochs, args.batch_size, seed))
            estimates = {}
            for name, ranking, mode in variants:
                try:
                    run = score(ScoreOptions(model=model_file, input_train=train_csv, input_val=val_csv,
                                             output=os.path.join(workdir, f"{mode}.csv"), ranking=ranking,
                                             mode=mode, seed=seed, epochs=args.epochs, batch_size=args.batch_size,
                                             trace_epochs=args.epochs,
                                             cache_dir=os.path.join(workdir, f"cache_{ranking}_{mode}")))
                    estimates[name] = run.scores
                except UserError:  # the scores overflowed: no correlation to report
                    estimates[name] = np.full(len(truth), np.nan)
            truths.append(truth)
            all_estimates.append(estimates)
            for mode, estimate in estimates.items():
                overflowed = not np.all(np.isfinite(estimate))
                tau = np.nan if overflowed else stats.kendalltau(estimate, truth).correlation
                r = np.nan if overflowed else stats.pearsonr(estimate, truth)[0]
                rows.append([seed, mode, _number(tau), _number(r)])
                raw.append({"seed": seed, "mode": mode, "kendall_tau": tau, "pearson_r": r,
                            "truth_abs_mean": float(np.abs(truth).mean())})
            print(f"seed {seed}: " + ", ".join(f"{r[1]} tau={r[2]} r={r[3]}" for r in rows[-len(variants):]),
                  file=sys.stderr)

    lines = [f"{MODELS[args.model][1]} ({project.solver_name}), {args.samples} training samples, {args.epochs} epochs, batch size {args.batch_size}, "
             "all epochs traced, fixed minibatch order.", "",
             "| seed | mode | Kendall tau | Pearson r |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    for mode, _, _ in variants:
        taus = [r["kendall_tau"] for r in raw if r["mode"] == mode]
        pearsons = [r["pearson_r"] for r in raw if r["mode"] == mode]
        finite = [t for t in taus if np.isfinite(t)]
        note = f" ({len(taus) - len(finite)} of {len(taus)} overflowed)" if len(finite) < len(taus) else ""
        mean_tau = _number(np.mean(finite)) if finite else "overflow"
        mean_r = _number(np.mean([p for p in pearsons if np.isfinite(p)])) if finite else "overflow"
        lines.append(f"| mean{note} | {mode} | {mean_tau} | {mean_r} |")
    lines += seed_averaged(truths, all_estimates, [v[0] for v in variants])
    name = "fidelity" + ("" if args.model == "mlp" else f"_{args.model}") + ("" if args.regime == "as-is" else f"_{args.regime}")
    publish(name, "\n".join(lines), raw)


if __name__ == "__main__":
    main()
