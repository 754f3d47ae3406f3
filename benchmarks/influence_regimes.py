"""Which influence estimate finds flipped labels in every training regime?

Usage:  python benchmarks/influence_regimes.py [--project digits|mnist] [--noise-seeds 0 1 2]
                                               [--regimes sgd momentum adam decay] [--retrain]

For a sample project and four training regimes — (sgd) SGD at a constant learning rate 0.1,
(momentum) Momentum 0.9 at lr 0.01, (adam) Adam at NNC's defaults (alpha 0.001, beta1 0.9,
beta2 0.999, eps 1e-8), (decay) SGD at lr 0.1 decaying by 0.8 per epoch (the MNIST sample's own
schedule) — and each noise seed (10% of the training labels flipped), the network is trained ONCE
and every candidate is scored from that one training (same theta_T, same traced epoch):

- sgd-influence (fold)      influence.sgd_influence with the step-size fold of step_size.py (today)
- state adjoint             stable_influence.state_influence: the solver's update linearised with its state
- state, played out         the same, with the momentum left at the end let play out (mbar_T = beta/(1-beta) A u)
- state adjoint, clipped    played out, Hessian term clipped at kappa (1 + beta) / rho_max (kappa = 1)
- fold, clipped             the fold with the same clipping (Momentum and Adam only; = the above for Sgd)
- fold / state, empirical Fisher   the Hessian-vector product replaced by the empirical Fisher (= Gauss-Newton
                            at the Softmax output for CategoricalCrossEntropy), positive semi-definite
- first-order (TracIn@T)    the state recursion without the Hessian term (u fixed at the validation gradient)
- TracIn-CP (epoch ends)    sum over the ends of the second half's epochs of eta_k c u_k . grad l_j(theta_k), with
                            u_k the validation gradient there (Pruthi et al. 2020); the directional derivative
                            by a central finite difference (2 forward passes) or exactly (double-backward)
- loss-history              minus each row's training loss over the second half of training (free)

Metrics: AUROC of flipped vs clean (harm = minus the score), fraction of the flipped rows among the
first 10% of rows, u growth (largest |u_t| / |u_T| going back), scoring seconds.
--retrain: remove-and-retrain check (first 10% by each of --retrain-rankings and by random rows
removed, retrained in the same regime, test accuracy and loss on data/test.csv).

Writes benchmarks/out/influence_regimes_<project>.md/.json (and _retrain_<project> with --retrain).
"""
import argparse
import csv
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from google.protobuf import text_format  # noqa: E402

from nnc_plugin import step_size  # noqa: E402
from nnc_plugin.cache import TrialCache, load_arrays  # noqa: E402
from nnc_plugin.dataset import read_dataset  # noqa: E402
from nnc_plugin.evaluate import test_metrics  # noqa: E402
from nnc_plugin.influence import BatchedDirectional, sgd_influence, validation_gradient  # noqa: E402
from nnc_plugin.log import quiet_nnabla  # noqa: E402
from nnc_plugin.network import Model  # noqa: E402
from nnc_plugin.pipeline import _step_factors  # noqa: E402
from nnc_plugin.project import load_project  # noqa: E402
from nnc_plugin.stable_influence import (FisherDirectional, SolverLinearisation, checkpoint_influence,  # noqa: E402
                                         linearisation, state_influence)  # noqa: E402
from nnc_plugin.trainer import train  # noqa: E402
from mislabel import auroc, recall_at  # noqa: E402
from tables import publish  # noqa: E402

MODELS = {"mnist": "mnist_cnn.nntxt", "digits": "digits_mlp.nntxt"}
REGIMES = ("sgd", "momentum", "adam", "decay")
CANDIDATES = ("sgd-influence (fold)", "state adjoint", "state, played out", "state adjoint, clipped", "fold, clipped",
              "fold, empirical Fisher", "state, empirical Fisher", "first-order (TracIn@T)", "TracIn-CP (epoch ends, difference JVP)",
              "TracIn-CP (3 epoch ends, difference JVP)", "TracIn-CP (epoch ends, exact)", "loss-history",
              "sgd-influence exact (all)", "state adjoint exact (all)", "fold, u normalised",
              "mean of fold and first-order", "rank mean of fold and first-order", "mean of fold and TracIn-CP 3",
              "rank mean of fold and TracIn-CP 3")


def regime_model(model_file, regime, folder):
    """A copy of the model file trained in `regime` (solver and learning-rate schedule replaced)."""
    proto = load_project(model_file).proto
    for optimizer in proto.optimizer:
        solver = optimizer.solver
        solver.lr_scheduler_type = "Exponential"
        solver.exponential_scheduler_param.gamma = 0.8 if regime == "decay" else 1.0
        if regime in ("sgd", "decay"):
            solver.type = "Sgd"
            solver.sgd_param.lr = 0.1
        elif regime == "momentum":
            solver.type = "Momentum"
            solver.momentum_param.lr = 0.01
            solver.momentum_param.momentum = 0.9
        elif regime == "adam":
            solver.type = "Adam"
            solver.adam_param.alpha = 0.001
            solver.adam_param.beta1 = 0.9
            solver.adam_param.beta2 = 0.999
            solver.adam_param.eps = 1e-8
    for dataset in proto.dataset:
        dataset.uri = os.path.join(os.path.dirname(model_file), dataset.uri) if dataset.uri else ""
    path = os.path.join(folder, f"{regime}_" + os.path.basename(model_file))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text_format.MessageToString(proto))
    return path


def flipped_rows(folder, noise_seed, n_rows):
    with open(os.path.join(folder, "data", f"train_noisy_s{noise_seed}_flips.csv"), newline="") as f:
        flipped = [int(row[0]) for row in list(csv.reader(f))[1:]]
    positives = np.zeros(n_rows, dtype=bool)
    positives[flipped] = True
    return positives


def masks_of(project, cache, model):
    """Per trainable parameter: the 0/1 mask of the values training moves (or 1.0)."""
    shapes = model.parameter_shapes()
    unreached = load_arrays(cache.untrained)
    unreached.update({name: np.arange(int(np.prod(shapes[name]))) for name in project.cancelled_biases})
    masks = step_size.reached_masks(unreached, shapes)
    return [masks.get(name, 1.0) for name in model.parameters]


def train_once(model_file, train_data, seed, workdir, epochs=None):
    """Train the project once; return (project, model at theta_T, cache, record, extras).

    The parameters before every step of every epoch are kept (for the exact-mode diagnostics and the
    epoch-end checkpoints of TracIn-CP); `record.schedule` is cut to the last epoch, the traced epoch
    every other candidate uses, and extras = {"offset": its first step's number among all steps,
    "checkpoints": [(parameter file, learning rate)] at the end of each epoch of the second half}."""
    from nnc_plugin.trainer import Schedule, steps_per_epoch
    project = load_project(model_file)
    epochs = epochs or project.max_epoch
    model = Model(project, seed=seed)
    cache = TrialCache(os.path.join(workdir, "trial"))
    cache.start()
    record = train(model, train_data, cache, epochs, project.batch_size, seed, trace_epochs=epochs,
                   keep_step_parameters=True)
    full = record.schedule
    per_epoch = steps_per_epoch(len(train_data), project.batch_size)
    offset = per_epoch * (epochs - 1)
    start = full.offsets[offset]
    record.schedule = Schedule(full.indices[start:], full.offsets[offset:] - start, full.learning_rates[offset:])
    checkpoints = []
    for epoch in range(epochs // 2, epochs):  # the end of epochs epochs//2+1 .. epochs
        end = (epoch + 1) * per_epoch
        path = cache.final_parameters if epoch == epochs - 1 else cache.step_parameters(end)
        checkpoints.append((path, float(full.learning_rates[end - 1])))
    return project, model, cache, record, {"offset": offset, "checkpoints": checkpoints}


def score_candidates(project, model, cache, record, train_data, val_data, extras, skip=(), exact=False):
    """{candidate: (scores, u growth, seconds, extra)} from one training; lower score = more harmful.

    `exact` adds the exact-mode (gradients at theta_t) fold and state adjoint, to tell the final-parameter
    approximation's share of the error from the method's."""
    results = {}
    schedule = record.schedule
    largest = int(np.max(np.diff(schedule.offsets)))
    directional = BatchedDirectional(model, batch_size=largest)
    fisher = FisherDirectional(model, batch_size=largest)
    wd = project.weight_decay

    def timed(function):
        started = time.perf_counter()
        diagnostics = {}
        u, _ = validation_gradient(model, val_data, project.batch_size)
        scores = function(u, diagnostics)
        return scores, diagnostics, time.perf_counter() - started

    factors = _step_factors(project, cache, "final", model.parameter_shapes())
    fold = SolverLinearisation("sgd", 0.0, masks=list(factors(len(schedule) - 1)))
    state = linearisation(project, model, masks_of(project, cache, model))
    plans = {
        "sgd-influence (fold)": lambda u, d: sgd_influence(model, train_data, schedule, u, factors, wd, diagnostics=d),
        "state adjoint": lambda u, d: state_influence(model, train_data, schedule, u, state, wd, diagnostics=d,
                                                      directional=directional),
        "state, played out": lambda u, d: state_influence(model, train_data, schedule, u, state, wd, played_out=True,
                                                          diagnostics=d, directional=directional),
        "state adjoint, clipped": lambda u, d: state_influence(model, train_data, schedule, u, state, wd, kappa=1.0,
                                                               played_out=True, diagnostics=d, directional=directional),
        "fold, clipped": lambda u, d: state_influence(model, train_data, schedule, u, fold, wd, kappa=1.0,
                                                      diagnostics=d, directional=directional),
        "fold, empirical Fisher": lambda u, d: state_influence(model, train_data, schedule, u, fold, wd,
                                                               diagnostics=d, directional=fisher),
        "state, empirical Fisher": lambda u, d: state_influence(model, train_data, schedule, u, state, wd,
                                                                played_out=True, diagnostics=d, directional=fisher),
        "first-order (TracIn@T)": lambda u, d: state_influence(model, train_data, schedule, u, state, wd,
                                                               hessian=False, played_out=True, diagnostics=d, directional=directional),
    }
    plans["fold, u normalised"] = lambda u, d: normalised_influence(model, train_data, schedule, u, factors, wd,
                                                                    directional)
    if exact:
        offset = extras["offset"]
        every_step = _step_factors(project, cache, "all", model.parameter_shapes())
        every = lambda t: every_step(t + offset)  # noqa: E731
        before = lambda t: cache.step_parameters(t + offset)  # noqa: E731
        plans["sgd-influence exact (all)"] = lambda u, d: sgd_influence(
            model, train_data, schedule, u, every, wd, parameters_before_step=before, diagnostics=d)
        plans["state adjoint exact (all)"] = lambda u, d: state_influence(
            model, train_data, schedule, u, state, wd, played_out=True, diagnostics=d, directional=directional,
            parameters_before_step=before)
    last_factors = list(factors(len(schedule) - 1))
    plans["TracIn-CP (epoch ends, difference JVP)"] = lambda u, d: checkpoint_influence(
        model, train_data, val_data, extras["checkpoints"], last_factors, largest)
    plans["TracIn-CP (3 epoch ends, difference JVP)"] = lambda u, d: checkpoint_influence(
        model, train_data, val_data, extras["checkpoints"][-3:], last_factors, largest)
    plans["TracIn-CP (epoch ends, exact)"] = lambda u, d: checkpoint_influence(
        model, train_data, val_data, extras["checkpoints"], last_factors, largest, exact=True)
    for name, plan in plans.items():
        if name in skip:
            continue
        if name in ("fold, clipped", "state, empirical Fisher") and project.solver_name == "Sgd":
            twin = "state adjoint, clipped" if name == "fold, clipped" else "fold, empirical Fisher"
            results[name] = results[twin]  # the same computation for Sgd
            continue
        scores, diagnostics, seconds = timed(plan)
        results[name] = (scores, diagnostics.get("u_growth", 1.0), seconds,
                         {k: diagnostics[k] for k in ("rho", "clip", "eigen_seconds") if k in diagnostics})
    results["loss-history"] = (-record.loss_history().astype(np.float64), 1.0, 0.0, {})
    from scipy.stats import rankdata
    fold = results.get("sgd-influence (fold)")
    for other, label in (("first-order (TracIn@T)", "first-order"), ("TracIn-CP (3 epoch ends, difference JVP)",
                                                                     "TracIn-CP 3")):
        if fold is None or other not in results:
            continue
        second = results[other]
        results[f"mean of fold and {label}"] = ((fold[0] + second[0]) / 2, 1.0, fold[2] + second[2], {})
        results[f"rank mean of fold and {label}"] = (rankdata(fold[0]) + rankdata(second[0]), 1.0,
                                                     fold[2] + second[2], {})
    return results


def normalised_influence(model, dataset, schedule, u, factors, weight_decay, directional):
    """sgd-influence with |u| held at |u_T| after every step: the Hessian term turns u, never scales it."""
    influence = np.zeros(len(dataset))
    u = [np.asarray(a, dtype=np.float32) for a in u]
    start = np.sqrt(sum(float(np.vdot(a.astype(np.float64), a.astype(np.float64))) for a in u))
    for t in reversed(range(len(schedule))):
        indices, lr = schedule.step(t)
        v = [(lr * c * a).astype(np.float32) for c, a in zip(factors(t), u)]
        scores, hvp = directional(dataset, indices, v)
        np.add.at(influence, indices, scores / len(indices))
        u = [a - h / len(indices) - weight_decay * d for a, h, d in zip(u, hvp, v)]
        norm = np.sqrt(sum(float(np.vdot(a.astype(np.float64), a.astype(np.float64))) for a in u))
        u = [a * np.float32(start / norm) for a in u] if norm > 0 else u
    return influence


def position_groups(schedule, n_rows):
    """Rows trained in the first and in the last quarter of the traced epoch's steps (boolean masks).

    The backward recursion reaches the first quarter last: if the Hessian term hurts, it hurts there most."""
    position = np.full(n_rows, -1.0)
    for t in range(len(schedule)):
        position[schedule.step(t)[0]] = t / max(len(schedule) - 1, 1)
    return (position >= 0) & (position < 0.25), position >= 0.75


def run_regimes(args, folder):
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for regime in args.regimes:
            model_file = regime_model(os.path.join(folder, MODELS[args.project]), regime, workdir)
            for noise_seed in args.noise_seeds:
                project = load_project(model_file)
                normalize = project.train_dataset.normalize if project.train_dataset else True
                train_data = read_dataset(os.path.join(folder, "data", f"train_noisy_s{noise_seed}.csv"),
                                          normalize=normalize)
                val_data = read_dataset(os.path.join(folder, "data", "val.csv"), normalize=normalize)
                positives = flipped_rows(folder, noise_seed, len(train_data))
                started = time.perf_counter()
                project, model, cache, record, extras = train_once(model_file, train_data, noise_seed,
                                                                   os.path.join(workdir, f"{regime}_{noise_seed}"),
                                                                   args.epochs)
                train_seconds = time.perf_counter() - started
                test_data = read_dataset(os.path.join(folder, "data", "test.csv"), normalize=normalize)
                accuracy, test_loss = test_metrics(model, test_data)
                early, late = position_groups(record.schedule, len(train_data))
                for name, (scores, growth, seconds, extra) in score_candidates(
                        project, model, cache, record, train_data, val_data, extras, skip=args.skip,
                        exact=args.exact).items():
                    harm = -scores
                    row = dict(regime=regime, noise_seed=noise_seed, candidate=name, auroc=auroc(harm, positives),
                               top10=recall_at(harm, positives, 0.10), u_growth=float(growth), seconds=float(seconds),
                               auroc_early=auroc(harm[early], positives[early]),
                               auroc_late=auroc(harm[late], positives[late]),
                               train_seconds=train_seconds, test_accuracy=accuracy, test_loss=test_loss, **extra)
                    rows.append(row)
                    print(f"{regime} s{noise_seed} {name:24s} AUROC {row['auroc']:.3f} top10 {row['top10']:.3f} "
                          f"growth {growth:.3g} {seconds:.2f}s {extra}", file=sys.stderr, flush=True)
    return rows


def regime_table(args, rows):
    lines = [f"{args.project} sample, 10% of training labels flipped, noise seeds "
             f"{', '.join(map(str, args.noise_seeds))}; one training per (regime, seed), every candidate scored from "
             "it. Mean ± standard deviation over seeds. u growth: geometric mean of max |u_t|/|u_T|. "
             "seconds: scoring time (validation gradient included).", "",
             "AUROC first/last quarter: among the rows trained in the first / last quarter of the traced epoch.", "",
             "| regime | candidate | AUROC | flipped in top 10% | u growth | seconds | × fold time | AUROC first quarter | AUROC last quarter |",
             "|---|---|---|---|---|---|---|---|---|"]
    for regime in args.regimes:
        base = [r["seconds"] for r in rows if r["regime"] == regime and r["candidate"] == CANDIDATES[0]]
        for name in CANDIDATES:
            chosen = [r for r in rows if r["regime"] == regime and r["candidate"] == name]
            if not chosen:
                continue
            au = np.array([r["auroc"] for r in chosen])
            top = np.array([r["top10"] for r in chosen])
            growth = float(np.exp(np.mean(np.log([max(r["u_growth"], 1e-30) for r in chosen]))))
            seconds = float(np.mean([r["seconds"] for r in chosen]))
            ratio = seconds / np.mean(base) if base and seconds > 0 else float("nan")
            early = np.mean([r["auroc_early"] for r in chosen])
            late = np.mean([r["auroc_late"] for r in chosen])
            lines.append(f"| {regime} | {name} | {au.mean():.3f} ± {au.std():.3f} | {top.mean():.3f} ± {top.std():.3f} "
                         f"| {growth:.3g} | {seconds:.2f} | {ratio:.2f} | {early:.3f} | {late:.3f} |")
    accuracy = {regime: np.mean([r["test_accuracy"] for r in rows if r["regime"] == regime and
                                 r["candidate"] == CANDIDATES[0]]) for regime in args.regimes}
    lines += ["", "Test accuracy of the trained networks: " +
              ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items())]
    return "\n".join(lines)


def run_retrain(args, folder):
    """Remove the first 10% by each ranking (or random rows), retrain in the same regime, test."""
    from nnc_plugin.evaluate import retrain_and_test
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for regime in args.regimes:
            model_file = regime_model(os.path.join(folder, MODELS[args.project]), regime, workdir)
            for noise_seed in args.noise_seeds:
                project = load_project(model_file)
                normalize = project.train_dataset.normalize if project.train_dataset else True
                train_data = read_dataset(os.path.join(folder, "data", f"train_noisy_s{noise_seed}.csv"),
                                          normalize=normalize)
                val_data = read_dataset(os.path.join(folder, "data", "val.csv"), normalize=normalize)
                test_data = read_dataset(os.path.join(folder, "data", "test.csv"), normalize=normalize)
                positives = flipped_rows(folder, noise_seed, len(train_data))
                project, model, cache, record, extras = train_once(model_file, train_data, noise_seed,
                                                                   os.path.join(workdir, f"{regime}_{noise_seed}"),
                                                                   args.epochs)
                skip = [c for c in CANDIDATES if c not in args.retrain_rankings]
                results = score_candidates(project, model, cache, record, train_data, val_data, extras, skip=skip)
                n_remove = int(round(0.1 * len(train_data)))
                orders = {name: np.argsort(results[name][0], kind="stable") for name in args.retrain_rankings}
                # (the noisy variants flipped the first rows of RandomState(noise_seed).permutation: use another seed)
                orders["random"] = np.random.RandomState(1000 + noise_seed).permutation(len(train_data))
                orders["flipped rows (oracle)"] = np.flatnonzero(positives)
                orders["none (all rows)"] = np.array([], dtype=np.int64)
                for name, order in orders.items():
                    removed = order[:n_remove] if len(order) else order
                    keep = np.setdiff1d(np.arange(len(train_data)), removed)
                    accuracy, loss = retrain_and_test(project, train_data, test_data, keep, noise_seed,
                                                      args.epochs or project.max_epoch, project.batch_size, True, "cpu",
                                                      os.path.join(workdir, f"re_{regime}_{noise_seed}"))
                    rows.append(dict(regime=regime, noise_seed=noise_seed, removed_by=name, test_accuracy=accuracy,
                                     test_loss=loss, flipped_removed=int(positives[removed].sum()) if len(removed) else 0))
                    print(f"retrain {regime} s{noise_seed} {name:24s} acc {accuracy:.4f} loss {loss:.4f} "
                          f"flipped removed {rows[-1]['flipped_removed']}", file=sys.stderr, flush=True)
    lines = [f"Remove-and-retrain on the {args.project} sample: the first 10% of rows by each ranking removed, "
             "retrained in the same regime with the same seed; test set data/test.csv. Mean ± std over noise seeds "
             f"{', '.join(map(str, args.noise_seeds))}.", "",
             "| regime | removed by | flipped rows removed | test accuracy | test loss |", "|---|---|---|---|---|"]
    for regime in args.regimes:
        for name in list(args.retrain_rankings) + ["random", "flipped rows (oracle)", "none (all rows)"]:
            chosen = [r for r in rows if r["regime"] == regime and r["removed_by"] == name]
            acc = np.array([r["test_accuracy"] for r in chosen])
            loss = np.array([r["test_loss"] for r in chosen])
            flips = np.mean([r["flipped_removed"] for r in chosen])
            lines.append(f"| {regime} | {name} | {flips:.1f} | {acc.mean():.4f} ± {acc.std():.4f} | "
                         f"{loss.mean():.4f} ± {loss.std():.4f} |")
    return rows, "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", choices=sorted(MODELS), default="digits")
    parser.add_argument("--noise-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--regimes", nargs="+", choices=REGIMES, default=list(REGIMES))
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--retrain-rankings", nargs="+", default=["TracIn-CP (3 epoch ends, difference JVP)",
                                                               "sgd-influence (fold)", "first-order (TracIn@T)",
                                                               "loss-history"])
    parser.add_argument("--tag", default="")
    parser.add_argument("--epochs", type=int, default=None, help="default: the model's Max Epoch")
    parser.add_argument("--skip", nargs="*", default=[], help="candidates not to score")
    parser.add_argument("--exact", action="store_true", help="also score in the exact mode (parameters of every step)")
    args = parser.parse_args()
    quiet_nnabla()
    folder = os.path.join(ROOT, "sample_projects", args.project)
    suffix = args.project + (f"_{args.tag}" if args.tag else "")
    if args.retrain:
        rows, table = run_retrain(args, folder)
        publish(f"influence_regimes_retrain_{suffix}", table, rows)
    else:
        rows = run_regimes(args, folder)
        publish(f"influence_regimes_{suffix}", regime_table(args, rows), rows)


if __name__ == "__main__":
    main()
