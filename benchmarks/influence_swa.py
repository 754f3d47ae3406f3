"""Research: the expected influence at the average of the traced epoch's parameters (as stochastic weight
averaging does) instead of at the final, still-bouncing parameters of constant-rate training.

Usage:  .venv/bin/python benchmarks/influence_swa.py [--project mnist] [--noise-seeds 0 1 2]
                                                      [--regimes sgd momentum adam decay]

For each regime and noise seed the sample is trained once with `--mode all` (the parameters before every
traced step are cached); `--ranking influence` is computed as the package does at the final parameters,
and again with the model holding the mean of the traced epoch's parameters (its recursion, validation
gradient and per-row derivatives all at that mean). Cells: AUROC of the flipped labels, mean ± s.d.
Writes benchmarks/out/influence_swa_<project>.md and .json.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from mislabel import MODELS  # noqa: E402
from regimes import mean_sd_rows, research_aurocs  # noqa: E402
from nnc_plugin.log import quiet_nnabla  # noqa: E402
from nnc_plugin.scores.registry import register  # noqa: E402
from nnc_plugin.scores.expected_influence import ExpectedInfluence  # noqa: E402
from heldout import NETWORKS  # noqa: E402
from tables import publish  # noqa: E402

OUT = {}


@register
class AveragedInfluence(ExpectedInfluence):
    name = "swa-research"

    @property
    def keeps_step_parameters(self):
        return True

    def score(self, trial):
        model = trial.model
        final = model.parameter_arrays()
        OUT["final"] = super().score(trial)
        total = {k: np.zeros_like(v, dtype=np.float64) for k, v in final.items()}
        steps = len(trial.record.schedule)
        for t in range(1, steps):  # the parameters after steps 0 .. steps-2, and the final ones
            trial.cache.load_step_parameters(t, model)
            for k, v in model.parameter_arrays().items():
                total[k] += v
        for k in total:
            total[k] = (total[k] + final[k]) / steps
        model.set_parameter_arrays({k: v.astype(np.float32) for k, v in total.items()})
        OUT["epoch mean"] = super().score(trial)
        model.set_parameter_arrays(final)
        return OUT["final"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--project", choices=sorted(MODELS), default="mnist")
    p.add_argument("--network", choices=NETWORKS, default="sample")
    p.add_argument("--noise-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--regimes", nargs="+", default=["sgd", "momentum", "adam", "decay"])
    a = p.parse_args()
    quiet_nnabla()
    res = research_aurocs(a.project, a.network, a.regimes, a.noise_seeds, AveragedInfluence.name, OUT, mode="all")
    lines = [f"{a.project}: AUROC of `influence` at the final parameters and at the traced epoch's mean "
             f"(noise seeds {', '.join(map(str, a.noise_seeds))}).", "",
             "| parameters | " + " | ".join(a.regimes) + " |", "|---|" + "---|" * len(a.regimes)]
    lines += mean_sd_rows(res, a.regimes, ("final", "epoch mean"))
    publish(f"influence_swa_{a.project}" + ("" if a.network == "sample" else f"_{a.network}"), "\n".join(lines), res)


if __name__ == "__main__":
    main()
