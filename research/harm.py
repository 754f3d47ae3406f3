"""Harm a loss cannot see: which ranking finds the harmful rows of each kind (benchmarks/harm_data.py), and does
removing its first rows help?

Usage:  .venv/bin/python research/harm.py [--kinds mark border tint stripes source leak colour-flips mnist-flips]
            [--seeds 0 1 2] [--start initial|trained] [--rankings loss-history influence ...] [--retrain 3]
            [--epochs 8] [--rows N] [--trials T] [--save-scores FOLDER]

Every kind trains its network with Adam at NNC's defaults (alpha 0.001) for --epochs epochs: the image kinds the
MNIST sample's CNN, colour-flips benchmarks/networks/colour_cnn.nntxt, leak benchmarks/networks/table_mlp.nntxt;
mnist-flips is the MNIST sample's noisy-label CSV (noise seed = --seeds); --network mlp puts the image kinds on a
held-out MLP. --start trained first trains the project with nnabla_cli (as NNC does) and scores its results.nnp,
the plugin's default path. Each ranking (the package's, and the candidates of research/harm_rankings.py) scores the
training CSV; the table gives AUROC of the harmful rows and their share in the first 10%, mean over the seeds.
Rankings fused by rank ("a+b": each row at the better of its two ranks) are computed from the scores. --retrain S
removes each listed ranking's first k rows (k: the number of harmful rows), the harmful rows themselves, k random
rows and nothing, retrains from scratch with S seeds (from --retrain-first on) and reports the test loss ("a/2+b":
a's ranks counted twice); --split R also removes the harmful rows R puts in its first k, and apart from them those
it puts after (do the ones it misses hurt?); --retrain-groups also removes the rows of the groups each ranking's
run shows. Prints the tables and writes benchmarks/out/harm_<start>.md and .json. --rows and --epochs shrink the
runs (the tests use them).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
sys.path.insert(0, HERE)

import harm_data  # noqa: E402
from harm_rankings import CANDIDATES  # noqa: E402
from mislabel import flipped_rows, measure  # noqa: E402
from regimes import regime_model  # noqa: E402
from tables import OUT, publish  # noqa: E402
from nnc_plugin.log import quiet_nnabla  # noqa: E402
from nnc_plugin.options import ScoreOptions  # noqa: E402
from nnc_plugin.pipeline import score  # noqa: E402
from nnc_plugin.scores import registry  # noqa: E402

NETWORKS = {"colour-flips": os.path.join(ROOT, "benchmarks", "networks", "colour_cnn.nntxt"),
            "leak": os.path.join(ROOT, "benchmarks", "networks", "table_mlp.nntxt")}
HELD_OUT_NETWORK = os.path.join(ROOT, "benchmarks", "networks", "mnist_mlp.nntxt")  # --network mlp
SAMPLE_CNN = os.path.join(ROOT, "sample_projects", "mnist", "mnist_cnn.nntxt")
DEFAULT_RANKINGS = ["loss-history", "influence", "tracin-cp"]  # the candidates: --rankings
# (first, second, weight of the first's ranks): "a+b" each row at the better of its ranks; "a/2+b" the first's ranks
# counted twice (it contributes about a third of the first rows, the second two thirds)
FUSIONS = [("loss-history", "conflict-final", 1), ("loss-history", "influence-conflict", 1),
           ("loss-history", "influence", 1), ("loss-history", "influence", 2)]


def dataset(kind, seed, rows=None):
    """(folder with train/val/test CSVs, harmful rows as booleans) of a kind and seed, written once."""
    if kind == "mnist-flips":
        data = os.path.join(ROOT, "sample_projects", "mnist", "data")
        folder = os.path.join(OUT, "harm", f"mnist-flips_s{seed}")
        os.makedirs(folder, exist_ok=True)
        for split, source in (("train", f"train_noisy_s{seed}.csv"), ("val", "val.csv"), ("test", "test.csv")):
            absolute_csv(os.path.join(data, source), os.path.join(folder, f"{split}.csv"))
        harmful = flipped_rows("mnist", seed)
    else:
        folder = os.path.join(OUT, "harm", f"{kind}_s{seed}")
        if not os.path.isfile(os.path.join(folder, "harmful.csv")):
            harm_data.write(kind, folder, seed)
        harmful = harm_data.harmful_rows(folder)
    if rows:
        absolute_csv(os.path.join(folder, "train.csv"), os.path.join(folder, f"train_{rows}.csv"), rows)
        return folder, f"train_{rows}.csv", harmful[:rows]
    return folder, "train.csv", harmful


def absolute_csv(source, target, rows=None):
    """Copy an NNC CSV with its image paths made absolute (and only its first `rows` rows)."""
    import csv
    with open(source, newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    folder = os.path.dirname(os.path.abspath(source))
    body = [[os.path.join(folder, c) if c.endswith(".png") else c for c in r] for r in table[1:]]
    with open(target, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows([table[0]] + body[:rows])


def model_file(kind, workdir, network="sample"):
    """The kind's network trained with Adam at NNC's defaults (a copy in `workdir`); `network` "mlp": the held-out
    MLP for the image kinds."""
    source = HELD_OUT_NETWORK if network == "mlp" and kind not in NETWORKS else NETWORKS.get(kind, SAMPLE_CNN)
    return regime_model(source, "adam", workdir)


def nnabla_cli_training(model, folder, train_csv, epochs):
    """results.nnp of `model` trained by nnabla_cli on `train_csv` for `epochs` epochs, as NNC trains it."""
    with open(model, encoding="utf-8") as f:
        text = re.sub(r"max_epoch: \d+", f"max_epoch: {epochs}", f.read())
    text = re.sub(r'uri: "[^"]*train[^"]*\.csv"', f'uri: "{train_csv}"', text)
    text = re.sub(r'uri: "[^"]*val[^"]*\.csv"', f'uri: "{os.path.join(os.path.dirname(train_csv), "val.csv")}"', text)
    config = os.path.join(folder, "project.nntxt")
    with open(config, "w", encoding="utf-8") as f:
        f.write(text)
    cli = os.path.join(os.path.dirname(sys.executable), "nnabla_cli")
    subprocess.run([cli, "train", "-c", config, "-o", folder], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return os.path.join(folder, "results.nnp")


def fused(first, second, weight=1):
    """Scores of the rank fusion: each row at the better (lower) of its ranks under the two score arrays, the
    first's ranks multiplied by `weight`."""
    ranks = [np.argsort(np.argsort(s, kind="stable"), kind="stable").astype(float) for s in (first, second)]
    ranks[0] *= weight
    return np.minimum(*ranks) + 1e-3 * np.add(*ranks) / len(first)  # ties broken by the sum of the ranks


def score_all(inputs, rankings, folder, epochs, trials=1):
    """({ranking: scores}, {ranking: the rows of the groups its run shows}) of one dataset (each ranking's scores
    averaged over `trials` trials, its -nt; the groups of outputs/groups.py, what `cleanse --group` removes)."""
    found, groups = {}, {}
    for name in rankings:
        needs = registry.create(name)
        # rankings that keep the same parameters during training share one training
        cache = os.path.join(folder, f"cache_s{needs.snapshots}_c{needs.checkpoints}_k{int(needs.keeps_step_parameters)}")
        run = score(ScoreOptions(**inputs, ranking=name, epochs=epochs, n_trials=trials,
                                 output=os.path.join(folder, "s.csv"), cache_dir=cache))
        found[name] = run.scores
        groups[name] = sorted({row for group in run.summary.get("groups", []) for row in group["rows"]})
    for a, b, weight in FUSIONS:
        if a in found and b in found:
            found[f"{a}{'' if weight == 1 else f'/{weight}'}+{b}"] = fused(found[a], found[b], weight)
    return found, groups


def retrain(model, folder, train_name, removals, seeds, epochs):
    """{what was removed: each retraining seed's test loss}, retraining from scratch without each set of rows."""
    from nnc_plugin.data.dataset import read_dataset
    from nnc_plugin.evaluate import retrain_and_test
    from nnc_plugin.model.project import load_project
    from nnc_plugin.training.trainer import TrainingPlan
    project = load_project(model)
    train, test = read_dataset(os.path.join(folder, train_name)), read_dataset(os.path.join(folder, "test.csv"))
    losses = {}
    for what, removed in removals.items():
        keep = np.setdiff1d(np.arange(len(train)), removed)
        losses[what] = [float(retrain_and_test(project, train.subset(keep), test,
                                               TrainingPlan(epochs, project.batch_size, seed))[1]) for seed in seeds]
    return losses


def run_kind(kind, seed, args, workdir):
    folder, train_name, harmful = dataset(kind, seed, args.rows)
    model = model_file(kind, workdir, args.network)
    work = os.path.join(workdir, f"{kind}_{seed}")
    os.makedirs(work, exist_ok=True)
    train_csv = os.path.join(folder, train_name)
    inputs = {"model": model, "input_train": train_csv, "input_val": os.path.join(folder, "val.csv")}
    if args.start == "trained":
        inputs["model"] = nnabla_cli_training(model, work, train_csv, args.epochs)
    scores, groups = score_all(inputs, args.rankings, work, args.epochs, args.trials)
    if args.save_scores:  # for fusions studied afterwards (research/fusion.py)
        os.makedirs(args.save_scores, exist_ok=True)
        np.savez(os.path.join(args.save_scores, f"{kind}_s{seed}_{args.start}.npz"), harmful=harmful,
                 **{name: values for name, values in scores.items()})
    detection = {name: measure(-s, harmful) for name, s in scores.items()}
    result = {"detection": detection}
    if args.retrain:
        k = int(harmful.sum())
        removals = {"nothing": np.array([], dtype=int), "the harmful rows": np.flatnonzero(harmful),
                    "random": np.random.RandomState(10_000 + seed).permutation(len(harmful))[:k]}
        removals.update({name: np.argsort(scores[name], kind="stable")[:k] for name in args.retrain_rankings})
        if args.retrain_groups:  # what `cleanse --group` removes, as the report suggests for a shortcut
            removals.update({f"{name}'s groups": np.array(groups[name], dtype=int)
                             for name in args.retrain_rankings if groups.get(name)})
        for name in args.split:  # do the harmful rows a ranking misses hurt the test data as the ones it finds do?
            first = np.zeros(len(harmful), dtype=bool)
            first[np.argsort(scores[name], kind="stable")[:k]] = True
            removals[f"harmful rows in {name}'s first k"] = np.flatnonzero(harmful & first)
            removals[f"harmful rows after {name}'s first k"] = np.flatnonzero(harmful & ~first)
        seeds = range(args.retrain_first, args.retrain_first + args.retrain)
        result["test_losses"] = retrain(model, folder, train_name, removals, seeds, args.epochs)
        result["test_loss"] = {what: float(np.mean(each)) for what, each in result["test_losses"].items()}
        result["removed"] = {what: len(rows) for what, rows in removals.items()}
    print(kind, seed, {n: round(d["auroc"], 3) for n, d in detection.items()}, result.get("test_loss"),
          file=sys.stderr, flush=True)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=list(harm_data.KINDS) + ["mnist-flips"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--start", choices=("initial", "trained"), default="initial")
    parser.add_argument("--rankings", nargs="+", default=DEFAULT_RANKINGS)
    parser.add_argument("--retrain", type=int, default=0, help="retraining seeds (0: no remove-and-retrain)")
    parser.add_argument("--retrain-groups", action="store_true",
                        help="with --retrain: also remove the rows of the groups each ranking's run shows")
    parser.add_argument("--retrain-first", type=int, default=0,
                        help="the first retraining seed (more retrainings without repeating earlier ones)")
    parser.add_argument("--retrain-rankings", nargs="+", default=["loss-history", "influence",
                                                                   "loss-history+influence", "loss-history/2+influence"])
    parser.add_argument("--split", nargs="*", default=[],
                        help="with --retrain: also remove the harmful rows each of these rankings puts in its "
                             "first k, and apart from them those it puts after")
    parser.add_argument("--trials", type=int, default=1, help="each ranking's -nt (trials averaged)")
    parser.add_argument("--save-scores", default=None, help="a folder: each kind and seed's scores as .npz")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--network", choices=("sample", "mlp"), default="sample",
                        help="mlp: the image kinds on a held-out MLP (benchmarks/networks/mnist_mlp.nntxt)")
    args = parser.parse_args(argv)
    quiet_nnabla()
    results = {}
    with tempfile.TemporaryDirectory() as workdir, registry.trying(*CANDIDATES):
        for kind in args.kinds:
            for seed in args.seeds:
                results.setdefault(kind, []).append(run_kind(kind, seed, args, workdir))
    name = f"harm_{args.start}" + ("" if args.network == "sample" else f"_{args.network}")
    publish(name, "\n".join(tables(args, results)), results)
    return results


def tables(args, results):
    names = list(next(iter(results.values()))[0]["detection"])
    lines = [f"AUROC of the harmful rows / their share in the first 10% (start: {args.start}, {args.epochs} epochs, "
             f"mean over seeds {', '.join(map(str, args.seeds))})", "",
             "| ranking | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    for name in names:
        cells = [f"{np.mean([r['detection'][name]['auroc'] for r in rows]):.3f} / "
                 f"{np.mean([r['detection'][name]['top10'] for r in rows]):.0%}" for rows in results.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if args.retrain:
        removed = list(next(iter(results.values()))[0]["test_loss"])
        lines += ["", "Test loss after removing k rows (k = the harmful rows' number) and retraining, mean over "
                  f"{args.retrain} retraining seeds and the data seeds", "",
                  "| removed | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
        for what in removed:
            counts = [np.mean([r["removed"][what] for r in rows]) for rows in results.values() if "removed" in rows[0]]
            label = what + (f" ({np.mean(counts):.0f} rows)" if counts else "")
            lines.append(f"| {label} | " + " | ".join(
                f"{np.mean([r['test_loss'][what] for r in rows]):.3f}" for rows in results.values()) + " |")
    return lines


if __name__ == "__main__":
    main()
