"""Research: how many Lanczos steps the search for the class directions needs before its decision settles.

Usage:  .venv/bin/python benchmarks/search_steps.py [--project mnist] [--network sample|relu-mlp]
                                                    [--noise-seeds 0 1 2] [--regimes sgd momentum adam decay]

For each regime and noise seed the sample is trained once and the package's search runs on the rows and
with the seed `influence` uses, for all of its 2 C + 10 steps (the package stops at 2 C where the group does
not stand apart by then: this measures whether that changes any decision). The Hessian-vector products
are recorded, and the ratio lambda_(C-1) / lambda_C of the Ritz values after each step k is recovered from
them (the Ritz values of the k-step Krylov basis Q_k are the eigenvalues of Q_k^T H Q_k). The table prints
the ratio at a few steps; the group stands apart when the ratio is at least 2 (hessian_outliers.GAP).
Writes benchmarks/out/search_steps_<project>.md and .json.
"""
import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from heldout import NETWORKS  # noqa: E402
from regimes import noisy_runs  # noqa: E402
from nnc_plugin.log import quiet_nnabla  # noqa: E402
from nnc_plugin.options import ScoreOptions  # noqa: E402
from nnc_plugin.pipeline import score  # noqa: E402
from nnc_plugin.scores import hessian_outliers  # noqa: E402
from nnc_plugin.scores.registry import Ranking, register  # noqa: E402
from tables import publish  # noqa: E402

PRODUCTS = []  # (v, H v) of every step of the last search
STEPS_SHOWN = (14, 16, 18, 20, 24, 30)


def recording(lanczos):
    def wrapped(hvp, dimension, steps, rng, give_up=None):
        def recorded(v):
            w = hvp(v)
            PRODUCTS.append((v.copy(), w.copy()))
            return w
        return lanczos(recorded, dimension, steps, rng, give_up)
    return wrapped


hessian_outliers.lanczos = recording(hessian_outliers.lanczos)


def ratios_by_step(classes):
    """{k: lambda_(C-1) / lambda_C of the Ritz values after k steps} from the recorded products."""
    basis = np.stack([v for v, _ in PRODUCTS], axis=1)
    images = np.stack([w for _, w in PRODUCTS], axis=1)
    out = {}
    for k in range(classes + 1, len(PRODUCTS) + 1):
        projected = basis[:, :k].T @ images[:, :k]
        values = np.sort(np.linalg.eigvalsh((projected + projected.T) / 2))[::-1]
        out[k] = float(values[classes - 2] / values[classes - 1]) if values[classes - 1] > 0 else float("nan")
    return out


@register
class SearchSteps(Ranking):
    """Runs only the package's search, all of its steps (scores are zeros)."""
    name = "search-steps-research"
    second_order = True

    def score(self, trial):
        PRODUCTS.clear()
        hessian_outliers.hessian_spectrum(trial.model, trial.train_data, trial.batch_size, trial.seed + 4,
                                          hessian_outliers.lanczos_steps(trial.project.classes))
        return np.zeros(len(trial.train_data))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--project", choices=("digits", "mnist"), default="mnist")
    p.add_argument("--network", choices=NETWORKS, default="sample")
    p.add_argument("--noise-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--regimes", nargs="+", default=["sgd", "momentum", "adam", "decay"])
    a = p.parse_args()
    quiet_nnabla()
    lines = [f"{a.project} ({a.network} network): lambda_(C-1) / lambda_C of the search's Ritz values after k Lanczos steps.", "",
             "| regime | noise seed | " + " | ".join(f"k = {k}" for k in STEPS_SHOWN) + " |",
             "|---|---|" + "---|" * len(STEPS_SHOWN)]
    res = {}
    with tempfile.TemporaryDirectory() as wd:
        for regime, seed, inputs, _ in noisy_runs(a.project, a.network, a.regimes, a.noise_seeds, wd):
            run = score(ScoreOptions(**inputs, ranking=SearchSteps.name, output=os.path.join(wd, "s.csv"),
                                     cache_dir=os.path.join(wd, f"c_{regime}_{seed}")))
            ratios = ratios_by_step(run.trials[0].project.classes)
            res.setdefault(regime, []).append(ratios)
            lines.append(f"| {regime} | {seed} | " + " | ".join(f"{ratios.get(k, float('nan')):.2f}"
                                                                for k in STEPS_SHOWN) + " |")
            print(lines[-1], file=sys.stderr, flush=True)
    network = "" if a.network == "sample" else f"_{a.network}"
    publish(f"search_steps_{a.project}{network}", "\n".join(lines), res)


if __name__ == "__main__":
    main()
