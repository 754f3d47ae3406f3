"""`nnc-cleanse evaluate`: does removing the rows a ranking calls harmful help? Remove and retrain.

For each ranking, the k most harmful rows are removed and the network is retrained with the
project's own configuration over S seeds; the same is done with k random rows, and with
nothing removed. Every retrained model is measured on a test CSV that took no part in scoring.

Written to the output folder:
  evaluation.csv           one row per retraining: k, ranking, seed, removed rows, test accuracy, test loss
  evaluation_summary.csv   mean and standard deviation over seeds, per (k, ranking)
  evaluation_summary.md    the same as a table
  evaluation.png           test accuracy against k, one line per ranking, with the spread over seeds
  scores_<ranking>.csv     the scored CSV each ranking produced
"""
import os
import shutil
from dataclasses import replace

import numpy as np

from . import parallel
from .data.checks import check_dataset
from .data.dataset import read_dataset
from .errors import UserError
from .files import write_atomically, write_csv_atomically
from .log import info
from .model.network import Model
from .model.project import load_project
from .outputs.cleanse import Amount
from .outputs.scored_csv import harmful_order
from .pipeline import dataset_path, score
from .training.trainer import TrainingPlan, train

RANDOM = "random"
NONE = "none"


def parse_counts(values, n_rows):
    """Turn '100' or '5%' into row counts (sorted, unique, each between 1 and n_rows - 1)."""
    counts = set()
    for value in values:
        count = Amount.parse(value).rows_of(n_rows)
        if not 0 < count < n_rows:
            raise UserError(f"--remove {value} asks to remove {count} of {n_rows} rows; give a number from 1 to {n_rows - 1}.")
        counts.add(count)
    return sorted(counts)


def test_metrics(model, dataset, batch_size=64):
    """(accuracy, mean loss) of `model` on `dataset`; accuracy is NaN when the loss is not a classification."""
    losses, correct, counted = [], 0, 0
    for indices, graph in model.evaluate_batches(dataset, batch_size):
        losses.append(graph.per_sample_loss.d[:len(indices)].copy())
        if graph.prediction is not None and graph.target_column in dataset.arrays:
            predicted = graph.prediction.d[:len(indices)].reshape(len(indices), -1)
            labels = dataset.arrays[graph.target_column][indices].reshape(len(indices), -1)[:, 0]
            classes = predicted.argmax(axis=1) if predicted.shape[1] > 1 else (predicted[:, 0] > 0.5)
            correct += int(np.sum(classes == labels))
            counted += len(indices)
    accuracy = correct / counted if counted else float("nan")
    return accuracy, float(np.mean(np.concatenate(losses)))


def retrain_and_test(project, train_data, test_data, plan, context="cpu"):
    """Train from scratch on `train_data` as `plan` says; return (test accuracy, test loss)."""
    model = Model(project, seed=plan.seed, context=context)
    train(model, train_data, plan)
    return test_metrics(model, test_data)


def _summary_rows(results):
    groups = {}
    for row in results:
        groups.setdefault((row["k"], row["ranking"]), []).append(row)
    summary = []
    for (k, ranking), rows in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        accuracy = np.array([r["test_accuracy"] for r in rows])
        loss = np.array([r["test_loss"] for r in rows])
        summary.append({"k": k, "ranking": ranking, "seeds": len(rows),
                        "accuracy_mean": float(accuracy.mean()), "accuracy_std": float(accuracy.std(ddof=1)) if len(rows) > 1 else 0.0,
                        "loss_mean": float(loss.mean()), "loss_std": float(loss.std(ddof=1)) if len(rows) > 1 else 0.0})
    return summary


def plot(summary, path, title):
    """Test accuracy against k, one line per ranking, with a band of one standard deviation."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=110)
    baseline = [s for s in summary if s["ranking"] == NONE]
    rankings = sorted({s["ranking"] for s in summary if s["ranking"] != NONE})
    for ranking in rankings:
        rows = sorted((s for s in summary if s["ranking"] == ranking), key=lambda s: s["k"])
        rows = baseline + rows
        k = np.array([s["k"] for s in rows])
        mean = np.array([s["accuracy_mean"] for s in rows])
        std = np.array([s["accuracy_std"] for s in rows])
        line, = axes.plot(k, mean, marker="o", label=ranking)
        axes.fill_between(k, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    axes.set_xlabel("rows removed from the training set (k)")
    axes.set_ylabel("test accuracy (mean ± 1 s.d. over seeds)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    temporary = path + ".tmp.png"
    figure.savefig(temporary)
    plt.close(figure)
    os.replace(temporary, path)


def _scored_orders(options, workdir):
    """{ranking: training rows, most harmful first} for every ranking of `options`, each scored as `score` does."""
    orders = {}
    for ranking in options.rankings:
        info(f"Evaluate: scoring with {ranking}.")
        run = score(replace(options.scoring, ranking=ranking,
                            output=os.path.join(options.output_dir, f"scores_{ranking}.csv"),
                            cache_dir=os.path.join(workdir, f"cache_{ranking}")))
        orders[ranking] = harmful_order(run.scores)
    return orders


def _retrain_all(options, data, counts, orders):
    """One row of results per retraining (k rows removed by a ranking, at random or none, for each seed); with
    mpiexec the retrainings are shared out over the processes. `data`: (project, train_data, test_data)."""
    project, train_data, test_data = data
    scoring = options.scoring
    base_plan = TrainingPlan(epochs=scoring.epochs or project.max_epoch,
                             batch_size=scoring.batch_size or project.batch_size, seed=0,
                             shuffle=project.train_dataset.shuffle if project.train_dataset else True)
    plan = [(0, NONE, seed) for seed in range(options.seeds)]
    plan += [(k, ranking, seed) for k in counts for ranking in options.rankings + [RANDOM] for seed in range(options.seeds)]
    comm = parallel.world()
    results = []
    for number, (k, ranking, seed) in list(enumerate(plan, start=1))[comm.rank::comm.size]:
        if ranking == NONE:
            removed = np.array([], dtype=np.int64)
        elif ranking == RANDOM:
            removed = np.random.RandomState(10_000 + seed).permutation(len(train_data))[:k]
        else:
            removed = orders[ranking][:k]
        keep = np.setdiff1d(np.arange(len(train_data)), removed)
        accuracy, loss = retrain_and_test(project, train_data.subset(keep), test_data,
                                          replace(base_plan, seed=seed), scoring.context)
        results.append({"k": k, "ranking": ranking, "seed": seed, "removed": len(removed),
                        "test_accuracy": accuracy, "test_loss": loss, "number": number})
        info(f"Evaluate {number}/{len(plan)}: removed {k} rows by {ranking}, seed {seed}: "
             f"test accuracy {accuracy:.4f}, test loss {loss:.4f}")
    results = sorted((r for part in comm.gather(results) for r in part), key=lambda r: r["number"])
    for row in results:
        del row["number"]
    return results


def _write_tables(options, results, summary, title):
    """evaluation.csv, evaluation_summary.csv and .md, and evaluation.png in the output folder."""
    folder = options.output_dir
    columns = ["k", "ranking", "seed", "removed", "test_accuracy", "test_loss"]
    write_csv_atomically(os.path.join(folder, "evaluation.csv"), columns,
                         [[r[c] if not isinstance(r[c], float) else f"{r[c]:.6f}" for c in columns] for r in results])
    summary_columns = ["k", "ranking", "seeds", "accuracy_mean", "accuracy_std", "loss_mean", "loss_std"]
    write_csv_atomically(os.path.join(folder, "evaluation_summary.csv"), summary_columns,
                         [[s[c] if not isinstance(s[c], float) else f"{s[c]:.6f}" for c in summary_columns]
                          for s in summary])
    table = ["| k | ranking | seeds | test accuracy | test loss |", "|---|---|---|---|---|"]
    table += [f"| {s['k']} | {s['ranking']} | {s['seeds']} | {s['accuracy_mean']:.4f} ± {s['accuracy_std']:.4f} | "
              f"{s['loss_mean']:.4f} ± {s['loss_std']:.4f} |" for s in summary]
    write_atomically(os.path.join(folder, "evaluation_summary.md"), "\n".join(table) + "\n")
    plot(summary, os.path.join(folder, "evaluation.png"), title)


def evaluate(options):
    """Run the remove-and-retrain comparison; return the summary rows (files are written to output_dir).

    Examples
    --------
    >>> import tempfile
    >>> from nnc_plugin.evaluate import evaluate
    >>> from nnc_plugin.options import EvaluateOptions, ScoreOptions
    >>> scoring = ScoreOptions(model="sample_projects/digits/digits_mlp.nntxt", epochs=2,
    ...                        input_train="sample_projects/digits/data/train_noisy_s0.csv")
    >>> rows = evaluate(EvaluateOptions(scoring=scoring, input_test="sample_projects/digits/data/test.csv",
    ...                                 remove=["10%"], rankings=["loss-history"], seeds=1, output_dir=tempfile.mkdtemp()))
    >>> [(row["k"], row["ranking"]) for row in rows]  # rows removed, and by what
    [(0, 'none'), (100, 'loss-history'), (100, 'random')]
    """
    options.validate()
    scoring = options.scoring
    project = load_project(scoring.model, context=scoring.context)
    train_path = dataset_path(scoring.input_train, project.train_dataset, "training", project.path)
    normalize = project.train_dataset.normalize if project.train_dataset else True
    train_data = read_dataset(train_path, normalize=normalize)
    test_data = read_dataset(options.input_test, normalize=normalize)
    check_dataset(project, train_data)
    check_dataset(project, test_data)
    if os.path.abspath(options.input_test) == os.path.abspath(train_path):
        raise UserError("The test CSV is the training CSV; evaluate on rows that took no part in training or scoring.")
    counts = parse_counts(options.remove, len(train_data))
    os.makedirs(options.output_dir, exist_ok=True)
    workdir = os.path.join(options.output_dir, "work")
    orders = _scored_orders(options, workdir)
    results = _retrain_all(options, (project, train_data, test_data), counts, orders)
    summary = _summary_rows(results)
    if parallel.world().is_root:  # process 0 writes the tables
        shutil.rmtree(workdir, ignore_errors=True)
        _write_tables(options, results, summary,
                      f"Remove and retrain: {os.path.basename(train_path)} ({len(train_data)} rows)")
        info(f"Evaluate: wrote evaluation.csv, evaluation_summary.csv/.md and evaluation.png to {options.output_dir}.")
    return summary
