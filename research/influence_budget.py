"""Influence's fixed costs bounded to the project: what the budget does to mislabel detection and to the seconds.

Usage:  .venv/bin/python research/influence_budget.py [--project mnist] [--regimes sgd momentum adam decay]
                                                      [--noise-seeds 0 1 2] [--variants unbounded split budget]
                                                      [--epochs N] [--rows N]

Variants of `--ranking influence` (scores/influence.py), tried through `registry.trying`:
  unbounded  as before the bound (but the validation rows shared out over the 9 points, as the package does
             since): the class-direction search (256 rows, 2C + 10 steps) wherever it costs no more than the
             longest recursion, the recursion up to 256 steps
  (every row at every point of the last epoch, "unbounded" and "split" in research/results/, needs the 8
  parameter files per training that the cache no longer keeps: commit fc6ab53 has that code)
  bound256   split, the whole scoring within 1.5 times sgd-influence's cost (search_and_depth: second-order work
             under FREE_MULTIPLY_ADDS is free), the search over 256 rows (where it fits)
  bound128   the same with the search over 128 rows (the package's default)
  bound64    the same with the search over 64 rows
  (the bound variants and the ones before score vbar . grad l_j as it is, their search runs 2 C + 10 iterations;
  research/harm.py's study led to dividing it by the size of the row's error in the logits, the package's
  default since:)
  plain      bound128 as the package has it, the score not divided (normalised = False)
  normalised the package's default: bound128 within 4 epochs of training too, its search stopped at 2 C
             iterations, where it decides (20 for 10 classes; "normalised-search20" in research/results/), each
             row's score divided by |e_j|
  normalised-nosearch  the same without the class-direction search
  normalised-search30  the same with the search's 2 C + 10 iterations ("normalised" in the results of before)
  (measured before the 4-epoch bound (epoch_bound) was added; the variants above all have it since)
  final-only the package's default with the validation gradient at the final parameters only (no snapshots)
--start trained scores NNC's results.nnp (nnabla_cli train of the regime's project, as benchmarks/start_from.py
does) with -nt auto, the plugin's default path, instead of training from the initialisation.
Each regime (benchmarks/regimes.py) and noise seed trains once per ranking family and scores the noisy
training CSV with sgd-influence and every variant. The table: AUROC of the flipped rows and scoring seconds
relative to sgd-influence's, mean over the noise seeds. --epochs and --rows shrink the runs (the tests use
them). Prints the table and writes benchmarks/out/influence_budget_<project>.md and .json.
"""
import argparse
import csv
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from mislabel import measure  # noqa: E402
from regimes import REGIMES, noisy_runs  # noqa: E402
from tables import publish  # noqa: E402
from nnc_plugin.log import quiet_nnabla  # noqa: E402
from nnc_plugin.options import ScoreOptions  # noqa: E402
from nnc_plugin.pipeline import score  # noqa: E402
from nnc_plugin.scores import registry  # noqa: E402
from nnc_plugin.scores.influence import Influence  # noqa: E402


def variant(name, **settings):
    """An `Influence` subclass named `influence-<name>` with other class settings."""
    return type(f"Influence_{name}", (Influence,), dict(settings, name=f"influence-{name}"))


VARIANTS = {"unbounded": variant("unbounded", cost_bound=None, search_rows=256, search_extra=10, normalised=False),
            "bound256": variant("bound256", cost_bound=1.5, search_rows=256, search_extra=10, normalised=False),
            "bound128": variant("bound128", cost_bound=1.5, search_rows=128, search_extra=10, normalised=False),
            "bound64": variant("bound64", cost_bound=1.5, search_rows=64, search_extra=10, normalised=False),
            "plain": variant("plain", normalised=False),
            "normalised": variant("normalised"),
            "normalised-nosearch": variant("normalised-nosearch", search_rows=0),
            "normalised-search30": variant("normalised-search30", search_extra=10),
            "final-only": variant("final-only", snapshots=0)}


def first_rows(source, target, rows):
    """The first `rows` rows of an NNC CSV, paths made absolute; returns `target`."""
    with open(source, newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    folder = os.path.dirname(source)
    body = [[os.path.join(folder, c) if c.endswith(".png") else c for c in r] for r in table[1:rows + 1]]
    with open(target, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows([table[0]] + body)
    return target


def measure_run(inputs, positives, names, folder, options):
    """{ranking: {auroc, top10, seconds}} for one noisy run."""
    row = {}
    for name in names:
        run = score(ScoreOptions(**inputs, ranking=name, output=os.path.join(folder, "s.csv"),
                                 cache_dir=os.path.join(folder, "cache_" + ("sgd" if name == "sgd-influence" else "i")),
                                 **options))
        found = measure(-run.scores, positives)
        row[name] = {"auroc": found["auroc"], "top10": found["top10"], "seconds": run.summary["score_seconds"]}
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", choices=("mnist", "digits"), default="mnist")
    parser.add_argument("--regimes", nargs="+", choices=REGIMES, default=list(REGIMES))
    parser.add_argument("--noise-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["plain", "normalised"])
    parser.add_argument("--epochs", type=int, default=None, help="train this many epochs (default: the model's)")
    parser.add_argument("--rows", type=int, default=None, help="score only the first rows of the training CSV")
    parser.add_argument("--start", choices=("initial", "trained"), default="initial")
    parser.add_argument("--trials", default="auto", help="-nt of every run (default auto)")
    args = parser.parse_args(argv)
    quiet_nnabla()
    classes = [VARIANTS[v] for v in args.variants]
    names = ["sgd-influence"] + [c.name for c in classes]
    results = {}
    with tempfile.TemporaryDirectory() as folder, registry.trying(*classes):
        for regime, seed, inputs, positives in noisy_runs(args.project, "sample", args.regimes, args.noise_seeds,
                                                          folder):
            if args.rows:
                inputs["input_train"] = first_rows(inputs["input_train"], os.path.join(folder, "rows.csv"), args.rows)
                positives = positives[:args.rows]
            run_folder = os.path.join(folder, f"{regime}_{seed}")
            os.makedirs(run_folder, exist_ok=True)
            if args.start == "trained":
                from start_from import nnc_training
                inputs["model"], _ = nnc_training(args.project, seed, args.epochs, run_folder, regime)
            # a trained start with seed k trains noise seed k's flipped rows first (start_from.py): seed 10 there
            trials = args.trials if args.trials == "auto" else int(args.trials)
            options = {"epochs": args.epochs, "seed": 10 if args.start == "trained" else 0, "n_trials": trials}
            row = measure_run(inputs, positives, names, run_folder, options)
            results.setdefault(regime, []).append(row)
            print(regime, seed, {k: round(v["auroc"], 3) for k, v in row.items()}, file=sys.stderr, flush=True)
    publish(f"influence_budget_{args.project}_{args.start}_{args.trials}", table(args, results, names), results)
    return results


def table(args, results, names):
    lines = [f"{args.project}: AUROC of the flipped rows / first 10% / scoring seconds relative to sgd-influence's "
             f"(mean over noise seeds {', '.join(map(str, args.noise_seeds))})", "",
             "| ranking | " + " | ".join(args.regimes) + " |", "|---|" + "---|" * len(args.regimes)]
    for name in names:
        cells = []
        for regime in args.regimes:
            rows = results[regime]
            ratio = np.mean([r[name]["seconds"] / max(r["sgd-influence"]["seconds"], 1e-9) for r in rows])
            cells.append(f"{np.mean([r[name]['auroc'] for r in rows]):.3f} / {np.mean([r[name]['top10'] for r in rows]):.0%}"
                         f" / {ratio:.2f}x")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
