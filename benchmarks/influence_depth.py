"""How far back `--ranking influence` should sum: label-free stopping rules against fixed depths.

Usage:  .venv/bin/python benchmarks/influence_depth.py [--project digits|mnist] [--noise-seeds 0 1 2]
                                                       [--regimes sgd momentum adam decay] [--trace 8]
                                                       [--curvature hessian|gauss-newton]

For each regime (benchmarks/regimes.py) and noise seed, the sample is trained once with --trace
epochs traced; the expected-influence recursion (scores/expected_influence.py) goes back up to 256
traced steps, keeping the sum of v and |u| after every step; each rule picks a depth h from the |u|
sequence alone (no labels), and the rows are scored with the sum up to h. Cells: AUROC of the flipped
labels (mean ± s.d. over the noise seeds) and the depths picked. The first row is the package's rule
(scores/expected_influence.DepthRule).

--curvature gauss-newton replaces the Hessian in the recursion by the Gauss-Newton matrix at the logits,
J^T (diag p - p p^T) J (the Fisher information of the softmax output; positive semi-definite, so the
recursion cannot grow through negative curvature). It needs a Softmax layer right before the loss, as the
sample networks have; written to influence_depth_<project>_gauss-newton.md.

Prints the table and writes benchmarks/out/influence_depth_<project>.md and .json.
"""
import argparse
import os
import sys
import tempfile

import nnabla as nn
import nnabla.functions as F
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from mislabel import MODELS, measure  # noqa: E402
from regimes import noisy_runs  # noqa: E402
from nnc_plugin.log import quiet_nnabla  # noqa: E402
from nnc_plugin.options import ScoreOptions  # noqa: E402
from nnc_plugin.pipeline import score  # noqa: E402
from nnc_plugin.scores.registry import register  # noqa: E402
from nnc_plugin.scores.expected_influence import MAX_STEPS, DepthRule, ExpectedInfluence  # noqa: E402
from nnc_plugin.scores.influence import (AdjointRecursion, PropagationSettings, directional_losses,  # noqa: E402
                                         validation_gradient)
from tables import publish  # noqa: E402

OUT = {}  # what the research ranking computed for the last run
CURVATURE = "hessian"


class GaussNewtonProducts:
    """Stands in for BatchedDirectional in the recursion: (zeros, sum over the minibatch of J_j^T A_j J_j v),
    with z the logits (the Softmax layer's input), J_j = dz_j / dtheta and A_j = diag(p_j) - p_j p_j^T the
    softmax cross-entropy's curvature in z. J v comes from differentiating J^T w with respect to a dummy w."""

    def __init__(self, model):
        self.model, self.graphs = model, {}

    def graph(self, size):
        if size not in self.graphs:
            loss = self.model.loss_graph(size, influence=True)
            softmax = loss.prediction.parent
            if softmax is None or softmax.info.type_name != "Softmax":
                sys.exit("--curvature gauss-newton needs a Softmax layer before the loss")
            logits = softmax.inputs[0]
            parameters = list(self.model.parameters.values())
            dummy = nn.Variable(logits.shape, need_grad=True)
            transposed = nn.grad([F.sum(dummy * logits)], parameters)  # J^T w, linear in w
            directions = [nn.Variable(p.shape) for p in parameters]
            jacobian_v = nn.grad([F.add_n(*[F.sum(g * d) for g, d in zip(transposed, directions)])], [dummy])[0]
            weights = nn.Variable(logits.shape)
            self.graphs[size] = (loss, logits, dummy, directions, jacobian_v, weights, F.sum(logits * weights))
        return self.graphs[size]

    def __call__(self, dataset, indices, direction):
        loss, logits, dummy, directions, jacobian_v, weights, pulled_back = self.graph(len(indices))
        self.model.feed(loss, dataset, indices)
        dummy.d = 0.0
        for variable, values in zip(directions, direction):
            variable.d = values
        jacobian_v.forward(clear_no_need_grad=True)
        jv = jacobian_v.d.astype(np.float64)
        z = logits.d.astype(np.float64)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        weights.d = p * jv - p * (p * jv).sum(axis=1, keepdims=True)
        parameters = list(self.model.parameters.values())
        for q in parameters:
            q.grad.zero()
        pulled_back.forward(clear_no_need_grad=True)
        pulled_back.backward(clear_buffer=True)
        return np.zeros(len(indices)), [q.g.copy() for q in parameters]


def rule_horizons(norms, steps_per_epoch):
    """{rule: (depth it sums to, depth it stopped going back at)} from n[k] = |u| after k steps back."""
    n = np.asarray(norms)
    rules = {}
    package = DepthRule(n[0])
    stopped = next((k for k in range(1, len(n)) if package.stop_after(n[k])), len(n) - 1)
    rules["smallest |u|; stop when |u| fell < 5% over 32 steps (the package's)"] = (package.best, stopped)
    best = 0
    for k in range(1, len(n)):
        if n[k] < n[best]:
            best = k
        if n[k] > 2.0 * n[best]:
            break
    rules["smallest |u|; stop when |u| > 2 x it"] = (best, k)
    # more plateau rules: stop once |u| fell by less than (1 - frac) over the last W steps
    for W, frac in ((16, 0.95), (32, 0.9)):
        best = 0
        for k in range(1, len(n)):
            if n[k] < n[best]:
                best = k
            if k >= W and n[k] > frac * n[k - W]:
                break
        rules[f"smallest |u|; W{W} {frac}"] = (best, k)
        rules[f"where W{W} {frac} stops"] = (k, k)
    rules["1 epoch"] = (steps_per_epoch, steps_per_epoch)
    for h in (4, 8, 16, 32, 64, 128, 256):
        rules[f"fixed {h}"] = (h, h)
    return rules


@register
class DepthResearch(ExpectedInfluence):
    """`influence` going back MAX_STEPS steps once, then scoring the rows at every rule's depth (into OUT)."""
    name = "depth-research"

    def score(self, trial):
        model, data, schedule = trial.model, trial.train_data, trial.record.schedule
        u, _ = validation_gradient(model, trial.val_data, trial.batch_size)
        recursion = AdjointRecursion(model, schedule, u, trial.linearisation("final"),
                                     PropagationSettings(weight_decay=trial.project.weight_decay))
        if CURVATURE == "gauss-newton":
            recursion.directional = GaussNewtonProducts(model)
        N, n = len(data), len(schedule)
        total = [np.zeros(a.shape, dtype=np.float64) for a in u]
        snaps, norms = [[x.astype(np.float32) for x in total]], [recursion.norm]
        for back in range(1, min(n, MAX_STEPS) + 1):
            recursion.step_back(data, n - back)
            for s, v in zip(total, recursion.v):
                s += v / N
            snaps.append([x.astype(np.float32) for x in total])
            norms.append(recursion.norm)
        rules = rule_horizons(norms, int(np.ceil(N / trial.batch_size)))
        cache = {}
        out = {"_norms": norms}
        for name, (h, stop) in rules.items():
            h = max(1, min(h, len(snaps) - 1))
            if h not in cache:
                cache[h] = directional_losses(model, data, snaps[h], trial.batch_size)
            out[name] = cache[h]
            out["_h " + name] = (h, stop)
        OUT.update(out)
        return cache[h]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--project", choices=sorted(MODELS), default="digits")
    p.add_argument("--noise-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--regimes", nargs="+", default=["sgd", "momentum", "adam", "decay"])
    p.add_argument("--trace", type=int, default=8)
    p.add_argument("--curvature", choices=("hessian", "gauss-newton"), default="hessian")
    a = p.parse_args()
    global CURVATURE
    CURVATURE = a.curvature
    quiet_nnabla()
    res = {}
    with tempfile.TemporaryDirectory() as wd:
        for regime, seed, inputs, pos in noisy_runs(a.project, "sample", a.regimes, a.noise_seeds, wd):
            OUT.clear()
            score(ScoreOptions(**inputs, ranking="depth-research", trace_epochs=a.trace,
                               output=os.path.join(wd, "s.csv"), cache_dir=os.path.join(wd, f"c_{regime}_{seed}")))
            row = {}
            for k, v in OUT.items():
                if k.startswith("_"):
                    row[k] = v if not isinstance(v, np.ndarray) else v.tolist()
                else:
                    m = measure(-v, pos)
                    row[k] = [m["auroc"], m["top10"]]
            res.setdefault(regime, []).append(row)
            print(regime, seed, {k: round(v[0], 3) for k, v in row.items() if not k.startswith("_")}, file=sys.stderr,
                  flush=True)
    names = [k for k in res[a.regimes[0]][0] if not k.startswith("_")]
    lines = [f"{a.project} sample, 10% of labels flipped; AUROC of the expected influence ({a.curvature} in the "
             f"recursion) summed to the depth each rule picks (noise seeds {', '.join(map(str, a.noise_seeds))}; depths per seed in steps).", "",
             "| rule | " + " | ".join(a.regimes) + " | worst |", "|---|" + "---|" * (len(a.regimes) + 1)]
    for k in names:
        cells, worst = [], 1.0
        for r in a.regimes:
            x = np.array([row[k] for row in res[r]])
            depths = "/".join(str(row["_h " + k][0]) for row in res[r])
            cells.append(f"{x[:, 0].mean():.3f} ± {x[:, 0].std():.3f} (h {depths})")
            worst = min(worst, x[:, 0].mean())
        lines.append(f"| {k} | " + " | ".join(cells) + f" | {worst:.3f} |")
    suffix = "" if a.curvature == "hessian" else f"_{a.curvature}"
    publish(f"influence_depth_{a.project}{suffix}", "\n".join(lines), res)

if __name__ == "__main__":
    main()
