"""Research: `--ranking influence` averaged over the parameters at the ends of the last 3 epochs of one training,
an ensemble that needs no extra training (against -nt, which trains again).

Usage:  .venv/bin/python benchmarks/influence_checkpoints.py [--project mnist] [--noise-seeds 0 1 2]
                                                              [--regimes sgd momentum adam decay]

For each regime and noise seed the sample is trained once, keeping the parameters at the ends of the last
3 epochs (as `--ranking tracin-cp` does). `influence` is computed as the package does at each of them (the
search for the class directions, the recursion and the rows' derivatives all at that epoch end) and the
scores are averaged. Cells: AUROC of the flipped labels, mean ± s.d. over the noise seeds, for each epoch
end alone and for the averages of the last 2 and 3.
Writes benchmarks/out/influence_checkpoints_<project>.md and .json.
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
from nnc_plugin.scores.checkpoints import CHECKPOINTS  # noqa: E402
from nnc_plugin.scores.expected_influence import ExpectedInfluence  # noqa: E402
from nnc_plugin.scores.registry import register  # noqa: E402
from tables import publish  # noqa: E402

OUT = {}
VARIANTS = ("last epoch end (the package)", "the one before", "the one before that", "mean of the last 2",
            "mean of the last 3")


@register
class CheckpointAverage(ExpectedInfluence):
    """`influence` at each kept epoch end (last first into OUT), and their averages."""
    name = "checkpoint-average-research"
    checkpoints = CHECKPOINTS

    def score(self, trial):
        model = trial.model
        final = model.parameter_arrays()
        last = trial.record.checkpoints[-1][0]
        scores = []
        for epoch, _ in reversed(trial.record.checkpoints):
            if epoch != last:
                trial.cache.load_checkpoint(epoch, model)
            scores.append(super().score(trial))
            model.set_parameter_arrays(final)
        OUT.update(zip(VARIANTS, scores + [np.mean(scores[:2], axis=0), np.mean(scores, axis=0)]))
        return scores[0]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--project", choices=sorted(MODELS), default="mnist")
    p.add_argument("--noise-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--regimes", nargs="+", default=["sgd", "momentum", "adam", "decay"])
    a = p.parse_args()
    quiet_nnabla()
    res = research_aurocs(a.project, "sample", a.regimes, a.noise_seeds, CheckpointAverage.name, OUT)
    lines = [f"{a.project}: AUROC of `influence` at the ends of the last {CHECKPOINTS} epochs of one training, and "
             f"averaged (noise seeds {', '.join(map(str, a.noise_seeds))}).", "",
             "| parameters | " + " | ".join(a.regimes) + " |", "|---|" + "---|" * len(a.regimes)]
    lines += mean_sd_rows(res, a.regimes, VARIANTS)
    publish(f"influence_checkpoints_{a.project}", "\n".join(lines), res)


if __name__ == "__main__":
    main()
