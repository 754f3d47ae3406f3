"""The rankings in the four regimes NNC users train in: detection of flipped labels, and remove-and-retrain.

Usage:  .venv/bin/python benchmarks/regimes.py [--project mnist] [--noise-seeds 0 1 2] [--retrain-seeds 3]
                                                [--regimes sgd momentum adam decay] [--rankings ...]
                                                [--trials 1] [--detection-only]

Regimes (the sample network, its solver and schedule replaced): `sgd`, SGD at a constant learning rate
of 0.1; `momentum`, Momentum 0.9 at 0.01; `adam`, Adam at NNC's defaults (alpha 0.001, beta1 0.9,
beta2 0.999); `decay`, SGD at 0.1 decaying by 0.8 per epoch. For each regime and noise seed every ranking
scores the noisy training CSV exactly as `score` does (detection: AUROC, flipped rows in the first 10%,
scoring seconds). Then `evaluate` removes the first 10% of each ranking, and 10% at random, and retrains
--retrain-seeds times (noise seed 0; test accuracy and loss on the sample's test CSV). --trials scores
with that many trials averaged (-nt); --detection-only skips the retraining.

Prints the tables and writes benchmarks/out/regimes_<project>.md and .json.
"""
import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from mislabel import MODELS, flipped_rows, measure, model_variant  # noqa: E402
from nnc_plugin.evaluate import evaluate  # noqa: E402
from nnc_plugin.log import quiet_nnabla  # noqa: E402
from nnc_plugin.options import EvaluateOptions, ScoreOptions  # noqa: E402
from nnc_plugin.pipeline import score  # noqa: E402
from heldout import NETWORKS, network_file  # noqa: E402
from tables import publish  # noqa: E402

REGIMES = ("sgd", "momentum", "adam", "decay")
RANKINGS = ("loss-history", "sgd-influence", "influence", "tracin-cp")


def regime_model(model_file, regime, folder):
    """A copy of the model file trained in `regime` (solver and learning-rate schedule replaced)."""
    def replace_solver(solver):
        solver.lr_scheduler_type = "Exponential"
        solver.exponential_scheduler_param.gamma = 0.8 if regime == "decay" else 1.0
        if regime in ("sgd", "decay"):
            solver.type, solver.sgd_param.lr = "Sgd", 0.1
        elif regime == "momentum":
            solver.type, solver.momentum_param.lr, solver.momentum_param.momentum = "Momentum", 0.01, 0.9
        else:
            solver.type = "Adam"
            solver.adam_param.alpha, solver.adam_param.beta1 = 0.001, 0.9
            solver.adam_param.beta2, solver.adam_param.eps = 0.999, 1e-8
    return model_variant(model_file, folder, f"{regime}_", replace_solver)


def noisy_runs(project, network, regimes, noise_seeds, folder):
    """For every regime and noise seed: (regime, noise seed, the model file, training and validation CSVs as
    ScoreOptions fields, the flipped rows). The research scripts' loop."""
    data = os.path.join(ROOT, "sample_projects", project, "data")
    for regime in regimes:
        model = regime_model(network_file(project, network, folder), regime, folder)
        for seed in noise_seeds:
            inputs = dict(model=model, input_train=os.path.join(data, f"train_noisy_s{seed}.csv"),
                          input_val=os.path.join(data, "val.csv"))
            yield regime, seed, inputs, flipped_rows(project, seed)


def research_aurocs(project, network, regimes, noise_seeds, ranking, variants, **options):
    """Score every noisy run with the research `ranking`, which leaves each variant's scores in the dict
    `variants`; return {regime: [{variant: AUROC of the flipped rows} for each noise seed]}. `options`: more
    ScoreOptions fields."""
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for regime, seed, inputs, positives in noisy_runs(project, network, regimes, noise_seeds, folder):
            variants.clear()
            score(ScoreOptions(**inputs, ranking=ranking, output=os.path.join(folder, "s.csv"),
                               cache_dir=os.path.join(folder, f"c_{regime}_{seed}"), **options))
            row = {k: measure(-v, positives)["auroc"] for k, v in variants.items()}
            results.setdefault(regime, []).append(row)
            print(regime, seed, {k: round(v, 3) for k, v in row.items()}, file=sys.stderr, flush=True)
    return results


def mean_sd_rows(results, regimes, variants):
    """Markdown table rows: for each variant, its AUROC's mean ± s.d. over the noise seeds in each regime."""
    return [f"| {k} | " + " | ".join(f"{np.mean([r[k] for r in results[g]]):.3f} ± "
                                      f"{np.std([r[k] for r in results[g]]):.3f}" for g in regimes) + " |"
            for k in variants]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", choices=sorted(MODELS), default="mnist")
    parser.add_argument("--network", choices=NETWORKS, default="sample",
                        help="sample: the project's own network; relu-mlp: a held-out ReLU MLP (heldout.py)")
    parser.add_argument("--noise-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--retrain-seeds", type=int, default=3)
    parser.add_argument("--regimes", nargs="+", choices=REGIMES, default=list(REGIMES))
    parser.add_argument("--rankings", nargs="+", default=list(RANKINGS))
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--detection-only", action="store_true")
    args = parser.parse_args()
    quiet_nnabla()
    data = os.path.join(ROOT, "sample_projects", args.project, "data")
    detection, retraining = {}, {}
    with tempfile.TemporaryDirectory() as workdir:
        for regime in args.regimes:
            model = regime_model(network_file(args.project, args.network, workdir), regime, workdir)
            for noise_seed in args.noise_seeds:
                positives = flipped_rows(args.project, noise_seed)
                for ranking in args.rankings:
                    run = score(ScoreOptions(model=model, input_train=os.path.join(data, f"train_noisy_s{noise_seed}.csv"),
                                             input_val=os.path.join(data, "val.csv"), ranking=ranking,
                                             n_trials=args.trials,
                                             output=os.path.join(workdir, "scores.csv"),
                                             cache_dir=os.path.join(workdir, f"cache_{regime}_{noise_seed}_{ranking}")))
                    row = dict(measure(-run.scores, positives), seconds=run.summary["score_seconds"])
                    detection.setdefault(regime, {}).setdefault(ranking, []).append(row)
                    print(f"{regime}, noise seed {noise_seed}, {ranking}: {row}", file=sys.stderr, flush=True)
            if args.detection_only:
                continue
            scoring = ScoreOptions(model=model, input_train=os.path.join(data, "train_noisy_s0.csv"),
                                   input_val=os.path.join(data, "val.csv"), n_trials=args.trials)
            rows = evaluate(EvaluateOptions(scoring=scoring, input_test=os.path.join(data, "test.csv"), remove=["10%"],
                                            rankings=args.rankings, seeds=args.retrain_seeds,
                                            output_dir=os.path.join(workdir, f"evaluate_{regime}")))
            retraining[regime] = rows
    name = f"regimes_{args.project}" + ("" if args.network == "sample" else f"_{args.network}") + (f"_{args.trials}trials" if args.trials > 1 else "")
    publish(name, table(args, detection, retraining), {"detection": detection, "retraining": retraining})


def table(args, detection, retraining):
    network = "sample network" if args.network == "sample" else f"held-out {args.network}"
    lines = [f"{args.project} ({network}), 10% of training labels flipped, {args.trials} trial(s). Detection: noise seeds "
             f"{', '.join(map(str, args.noise_seeds))}, mean ± s.d.; scoring seconds relative to sgd-influence's.", "",
             "| regime | ranking | AUROC | flipped in top 10% | scoring s | × sgd-influence |", "|---|---|---|---|---|---|"]
    for regime, by_ranking in detection.items():
        base = np.mean([r["seconds"] for r in by_ranking.get("sgd-influence", [{"seconds": np.nan}])])
        for ranking, rows in by_ranking.items():
            auroc, top = np.array([r["auroc"] for r in rows]), np.array([r["top10"] for r in rows])
            seconds = np.mean([r["seconds"] for r in rows])
            lines.append(f"| {regime} | {ranking} | {auroc.mean():.3f} ± {auroc.std():.3f} | {top.mean():.3f} ± "
                         f"{top.std():.3f} | {seconds:.2f} | {seconds / base:.2f} |")
    if not retraining:
        return "\n".join(lines)
    lines += ["", f"Remove the first 10% and retrain (noise seed 0, {args.retrain_seeds} seeds; test accuracy and loss, "
              "mean ± s.d.):", "", "| regime | removed by | test accuracy | test loss |", "|---|---|---|---|"]
    for regime, rows in retraining.items():
        for row in rows:
            lines.append(f"| {regime} | {row['ranking'] if row['k'] else 'nothing removed'} | "
                         f"{row['accuracy_mean']:.4f} ± {row['accuracy_std']:.4f} | "
                         f"{row['loss_mean']:.4f} ± {row['loss_std']:.4f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
