"""--start-from trained against --start-from initial: what starting from NNC's trained model costs and saves.

Usage:  .venv/bin/python benchmarks/start_from.py [--project mnist] [--noise-seeds 0 1 2] [--epochs N]
                                                   [--rankings loss-history loss sgd-influence influence]
                                                   [--trials 1] [--regime sgd|momentum|adam|decay]
                                                   [--starts trained initial]

For each noisy-label variant of a sample project, the project is first trained with `nnabla_cli train`
(as Neural Network Console trains it), which writes results.nnp. Then every ranking scores that
results.nnp twice: from the trained parameters (only the traced epoch is trained again) and from the
initialisation (every epoch is trained again). The table gives mislabel detection (flipped rows in the
first 10%, AUROC), the epochs trained and the seconds of training and scoring, mean over noise seeds.
--regime trains in one of benchmarks/regimes.py's regimes instead of the sample's own solver and schedule.
--seed is the plugin's seed (trial k of -nt uses seed + k). Its default, 10, keeps clear of the noise seeds:
the flipped rows of train_noisy_s<k>.csv are the first 10% of numpy's permutation drawn with seed k, and a
trained start with seed k trains its one epoch in exactly that order, all flipped rows first (seed 0 on
noise seed 0 put them in the first 7 minibatches, and `influence` fell to AUROC 0.57-0.64 there).

Prints a table and writes benchmarks/out/start_from_<project>.md and .json.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from mislabel import MODELS, flipped_rows, measure  # noqa: E402
from nnc_plugin.log import quiet_nnabla  # noqa: E402
from nnc_plugin.options import ScoreOptions  # noqa: E402
from nnc_plugin.pipeline import score  # noqa: E402
from tables import publish  # noqa: E402

RANKINGS = ("loss-history", "loss", "sgd-influence", "influence")


def nnc_training(project, noise_seed, epochs, workdir, regime=None):
    """Train the noisy variant with nnabla_cli as NNC would (in `regime`, when given); return (results.nnp,
    training seconds)."""
    import time
    folder = os.path.join(ROOT, "sample_projects", project)
    model = os.path.join(folder, MODELS[project])
    if regime:
        from regimes import regime_model
        model = regime_model(model, regime, workdir)  # its dataset paths are absolute
    with open(model, encoding="utf-8") as f:
        config = f.read()
    for train_csv in ('data/train.csv', f'{folder}/data/train.csv'):
        config = config.replace(f'uri: "{train_csv}"', f'uri: "{folder}/data/train_noisy_s{noise_seed}.csv"')
    config = config.replace('uri: "data/', f'uri: "{folder}/data/')
    if epochs:
        import re
        config = re.sub(r"max_epoch: \d+", f"max_epoch: {epochs}", config)
    path = os.path.join(workdir, f"noisy_s{noise_seed}.nntxt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(config)
    results = os.path.join(workdir, f"results_s{noise_seed}")
    os.makedirs(results, exist_ok=True)
    started = time.perf_counter()
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "nnabla_cli"), "train", "-c", path, "-o", results],
                   check=True, capture_output=True)
    return os.path.join(results, "results.nnp"), time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", choices=sorted(MODELS), default="mnist")
    parser.add_argument("--noise-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="Max Epoch of NNC's training; default: the model's")
    parser.add_argument("--rankings", nargs="+", default=list(RANKINGS))
    parser.add_argument("--trials", type=int, default=1, help="trials averaged (-nt)")
    parser.add_argument("--regime", choices=("sgd", "momentum", "adam", "decay"), default=None,
                        help="train in this regime of benchmarks/regimes.py (default: the sample's own solver)")
    parser.add_argument("--seed", type=int, default=10, help="the plugin's seed (not one of the noise seeds)")
    parser.add_argument("--starts", nargs="+", choices=("trained", "initial"), default=["trained", "initial"])
    args = parser.parse_args()
    quiet_nnabla()
    folder = os.path.join(ROOT, "sample_projects", args.project)
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for noise_seed in args.noise_seeds:
            nnp, nnc_seconds = nnc_training(args.project, noise_seed, args.epochs, workdir, args.regime)
            positives = flipped_rows(args.project, noise_seed)
            for start in args.starts:
                for ranking in args.rankings:
                    run = score(ScoreOptions(
                        model=nnp, input_train=os.path.join(folder, "data", f"train_noisy_s{noise_seed}.csv"),
                        input_val=os.path.join(folder, "data", "val.csv"), ranking=ranking, start_from=start,
                        n_trials=args.trials, seed=args.seed,
                        output=os.path.join(workdir, "scores.csv"), cache_dir=os.path.join(workdir, f"c{noise_seed}{start}")))
                    row = dict(measure(-run.scores, positives), noise_seed=noise_seed, nnc_seconds=nnc_seconds,
                               epochs_trained=run.summary["epochs_trained"], epochs=run.summary["epochs"],
                               train_seconds=run.summary["train_seconds"], score_seconds=run.summary["score_seconds"],
                               reused=run.summary["reused_cache"][0])
                    results.setdefault(f"{ranking}, start from {start}", []).append(row)
                    print(f"noise seed {noise_seed}, {ranking}, {start}: {row}", file=sys.stderr, flush=True)

    publish(f"start_from_{args.project}" + (f"_{args.regime}" if args.regime else "") +
            (f"_{args.epochs}epochs" if args.epochs else "") +
            (f"_{args.trials}trials" if args.trials > 1 else ""),
            table(args.project, results), results)


def table(project, results):
    """The markdown table of `results` ({"<ranking>, start from <start>": [row per noise seed]})."""
    first = results[next(iter(results))]
    lines = [f"{project} sample, NNC's training (nnabla_cli train) of {first[0]['epochs']} epochs "
             f"({np.mean([r['nnc_seconds'] for r in first]):.1f} s), 10% of training labels flipped, noise seeds "
             f"{', '.join(str(r['noise_seed']) for r in first)} (mean over seeds).", "",
             "| ranking, start | flipped in top 10% | AUROC | epochs trained | training s | scoring s |",
             "|---|---|---|---|---|---|"]
    for label, rows in results.items():
        start = label.rsplit(" ", 1)[1]
        trained = [r["train_seconds"] for key, group in results.items() if key.endswith(start)
                   for r in group if not r["reused"]]
        mean = {key: np.mean([r[key] for r in rows]) for key in ("top10", "auroc", "epochs_trained", "score_seconds")}
        lines.append(f"| {label} | {mean['top10']:.3f} | {mean['auroc']:.3f} | {mean['epochs_trained']:.0f} | "
                     f"{np.mean(trained):.2f} | {mean['score_seconds']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
