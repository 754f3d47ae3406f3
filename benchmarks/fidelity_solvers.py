"""Fidelity for Momentum and Adam: step-size fold versus the solver-state adjoint, against retraining.

Usage:  python benchmarks/fidelity_solvers.py [--solvers momentum adam] [--samples 200] [--epochs 10]
                                              [--batch-size 20] [--seeds 0 1 2]

As benchmarks/fidelity.py (the digits MLP, its first --samples training rows, the whole validation
set, a fixed seed), but trained with Momentum (lr 0.01, momentum 0.9) or Adam (NNC's defaults):
every sample is left out of every step once (same initialisation, same minibatches and denominators)
and the change of the validation loss is measured. Both estimates trace all epochs back, in the exact
mode (parameters of every step) and the storage-efficient one (final parameters):
- fold:  influence.sgd_influence with the step-size fold of step_size.py (P = lr/(1-momentum), or
         alpha sqrt(1-beta2^t)/(sqrt(v)+eps) with that step's v in the exact mode)
- state: stable_influence.state_influence, the solver's update linearised with its momentum as state
         (Adam: v held at its final value).
Kendall tau and Pearson r against the truth. Writes benchmarks/out/fidelity_solvers.md/.json.
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
sys.path.insert(0, HERE)

from fidelity import first_rows, true_effects  # noqa: E402
from influence_regimes import regime_model  # noqa: E402
from nnc_plugin.cache import TrialCache  # noqa: E402
from nnc_plugin.dataset import read_dataset  # noqa: E402
from nnc_plugin.influence import sgd_influence, validation_gradient  # noqa: E402
from nnc_plugin.log import quiet_nnabla  # noqa: E402
from nnc_plugin.network import Model  # noqa: E402
from nnc_plugin.pipeline import _step_factors  # noqa: E402
from nnc_plugin.project import load_project  # noqa: E402
from nnc_plugin.stable_influence import linearisation, state_influence  # noqa: E402
from nnc_plugin.trainer import train  # noqa: E402
from tables import publish  # noqa: E402

DIGITS = os.path.join(ROOT, "sample_projects", "digits")


def estimates(project, train_data, val_data, epochs, batch_size, seed, workdir):
    """{(method, mode): scores} from one training with every step's parameters kept."""
    model = Model(project, seed=seed)
    cache = TrialCache(os.path.join(workdir, "estimate"))
    cache.start()
    record = train(model, train_data, cache, epochs, batch_size, seed, trace_epochs=epochs, keep_step_parameters=True)
    u, _ = validation_gradient(model, val_data, 100)
    state = linearisation(project, model)
    results = {}
    for mode in ("all", "final"):
        before = cache.step_parameters if mode == "all" else None
        factors = _step_factors(project, cache, mode, model.parameter_shapes())
        results[("fold", mode)] = sgd_influence(model, train_data, record.schedule, u, factors, project.weight_decay,
                                                parameters_before_step=before)
        results[("state", mode)] = state_influence(model, train_data, record.schedule, u, state, project.weight_decay,
                                                   parameters_before_step=before)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--solvers", nargs="+", choices=["momentum", "adam"], default=["momentum", "adam"])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    quiet_nnabla()
    from nnabla.logger import logger
    logger.setLevel(100)
    raw = []
    with tempfile.TemporaryDirectory() as workdir:
        train_csv = first_rows(os.path.join(DIGITS, "data", "train.csv"), os.path.join(workdir, "train.csv"),
                               args.samples)
        train_data = read_dataset(train_csv)
        val_data = read_dataset(os.path.join(DIGITS, "data", "val.csv"))
        for solver in args.solvers:
            project = load_project(regime_model(os.path.join(DIGITS, "digits_mlp.nntxt"), solver, workdir))
            for seed in args.seeds:
                truth = true_effects(project, train_data, val_data, args.epochs, args.batch_size, seed, workdir)
                for (method, mode), estimate in estimates(project, train_data, val_data, args.epochs,
                                                          args.batch_size, seed, workdir).items():
                    raw.append({"solver": solver, "seed": seed, "method": method, "mode": mode,
                                "kendall_tau": float(stats.kendalltau(estimate, truth).correlation),
                                "pearson_r": float(stats.pearsonr(estimate, truth)[0]),
                                "scale": float(np.sum(estimate * truth) / np.sum(estimate * estimate))})
                    print(raw[-1], file=sys.stderr, flush=True)
    lines = [f"Digits MLP, {args.samples} training samples, {args.epochs} epochs, batch size {args.batch_size}, all "
             "epochs traced, fixed minibatch order; truth = retraining with each sample left out of every step. "
             f"Mean ± std over seeds {', '.join(map(str, args.seeds))}. scale: least-squares factor truth ≈ scale × "
             "estimate (1 = right magnitude).", "",
             "| solver | method | mode | Kendall tau | Pearson r | scale |", "|---|---|---|---|---|---|"]
    for solver in args.solvers:
        for method in ("fold", "state"):
            for mode in ("all", "final"):
                chosen = [r for r in raw if (r["solver"], r["method"], r["mode"]) == (solver, method, mode)]
                tau = np.array([r["kendall_tau"] for r in chosen])
                pr = np.array([r["pearson_r"] for r in chosen])
                sc = np.array([r["scale"] for r in chosen])
                lines.append(f"| {solver} | {method} | {mode} | {tau.mean():.3f} ± {tau.std():.3f} | "
                             f"{pr.mean():.3f} ± {pr.std():.3f} | {sc.mean():.2f} |")
    publish("fidelity_solvers", "\n".join(lines), raw)


if __name__ == "__main__":
    main()
