"""Research: the expected-influence recursion with the sharpest Hessian directions projected out (issue 10's
Lanczos candidate; docs/influence_research.md, last section). The package keeps the gated form
(scores/hessian_outliers.py); this script measures it against the fixed-count forms it grew from.

Usage:  .venv/bin/python benchmarks/influence_projection.py [--project mnist] [--network sample|relu-mlp]
            [--noise-seeds 0 1 2] [--regimes sgd momentum] [--top 9 10 20] [--lanczos 30] [--rows 256]
            [--projected-depth 64] [--lanczos-only]

For each regime and noise seed the sample is trained once (cached under --cache). At the final parameters
the top eigenvectors Q of the training loss's Hessian (on --rows random training rows) are found by
Lanczos (--lanczos iterations). The expected-influence recursion of `--ranking influence` then goes back:
as the package's depth rule alone does ("plain", up to 256 steps); for each k of --top, with the
validation gradient, u and the solver state projected onto the complement of Q's first k columns after
every step ("top k out"); and with k found by a gap rule (the largest ratio lambda_k / lambda_k+1 >= 2
among the top 20, lambda_k >= 0.1 lambda_1; "gap out", the depth rule alone where none is found). The
projected recursions go back --projected-depth steps. The rows are scored at fixed depths and at the
depth rule's depth. Cells: AUROC of the flipped labels (mean ± s.d. over the noise seeds); also eta *
lambda of the top directions (the last step's learning rate times each eigenvalue). --lanczos-only prints
the spectra and the gap rule's counts, nothing else.
Writes benchmarks/out/influence_projection_<project>[_<network>][<tag>].md and .json.
"""
import argparse
import os
import sys
import tempfile

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
from nnc_plugin.scores.influence import (AdjointRecursion, BatchedDirectional, PropagationSettings,  # noqa: E402
                                         directional_losses, validation_gradient)
from heldout import NETWORKS  # noqa: E402
from nnc_plugin.scores.hessian_outliers import (Outliers, flatten as flat, lanczos,  # noqa: E402
                                                unflatten as unflat)
from tables import publish  # noqa: E402

OUT = {}
ARGS = None
DEPTHS = (1, 4, 16, 64, 256)


def outlier_count(values, gap=2.0, floor=0.1):
    """k when the top k eigenvalues stand apart from the rest (lambda_k / lambda_k+1 >= gap, the largest such
    ratio, lambda_k >= floor * lambda_1), else 0."""
    best, count = gap, 0
    for k in range(1, len(values)):
        if values[k - 1] >= floor * values[0] and values[k] > 0 and values[k - 1] / values[k] >= best:
            best, count = values[k - 1] / values[k], k
    return count


@register
class ProjectionResearch(ExpectedInfluence):
    """`influence` with the spectrum measured and several projections tried (into OUT)."""
    name = "projection-research"

    def score(self, trial):
        model, data = trial.model, trial.train_data
        u, _ = validation_gradient(model, trial.val_data, trial.batch_size)
        schedule = trial.schedule_back(MAX_STEPS)
        linearisation = trial.linearisation("final", schedule)
        wd = trial.project.weight_decay
        N = len(data)
        rng = np.random.RandomState(0)
        rows = rng.choice(N, size=min(ARGS.rows, N), replace=False)
        directional = BatchedDirectional(model, batch_size=trial.batch_size)

        def hvp(vector):
            direction = unflat(vector, u)
            total = np.zeros_like(vector)
            for start in range(0, len(rows), trial.batch_size):
                total += flat(directional(data, rows[start:start + trial.batch_size], direction)[1])
            return total / len(rows)

        values, Q = lanczos(hvp, sum(a.size for a in u), ARGS.lanczos, rng)
        values, Q = values[:max(ARGS.top + [20])], Q[:, :max(ARGS.top + [20])]
        gap_k = outlier_count(values)
        OUT["_gap_k"] = gap_k
        OUT["_eta_lambda"] = (float(schedule.step(len(schedule) - 1)[1]) * values).tolist()
        if ARGS.lanczos_only:
            return np.zeros(N)
        g = flat(u)

        variants = {}
        for k in [0] + ARGS.top + ([("gap", gap_k)] if gap_k else []):
            name, k = k if isinstance(k, tuple) else (None, k)
            keep_out = Outliers(Q[:, :k], values) if k else None
            recursion = AdjointRecursion(model, schedule, u, linearisation,
                                         PropagationSettings(weight_decay=wd, keep_out=keep_out))
            total = np.zeros(g.size)
            snaps, norms = [total.copy()], [recursion.norm]
            n = len(schedule)
            for back in range(1, min(n, MAX_STEPS if k == 0 else ARGS.projected_depth) + 1):
                recursion.step_back(data, n - back)
                total += flat(recursion.v) / N
                snaps.append(total.copy())
                norms.append(recursion.norm)
            rule = DepthRule(norms[0])
            next((j for j in range(1, len(norms)) if rule.stop_after(norms[j])), None)
            variant = "gap out" if name else (f"top {k} out" if k else "plain")
            variants[variant] = (snaps, norms, rule.best)
            OUT[f"_norms {variant}"] = norms
            OUT[f"_h {variant}"] = rule.best
        if not gap_k:
            variants["gap out"] = variants["plain"]
            OUT["_h gap out"] = OUT["_h plain"]
        for variant, (snaps, norms, best) in variants.items():
            depths = [(f"h{h}", min(h, len(snaps) - 1)) for h in DEPTHS] + [("rule", max(best, 1))]
            for label, h in depths:
                OUT[f"{variant} {label}"] = directional_losses(model, data, unflat(snaps[h], u), trial.batch_size)
        return OUT["plain rule"]


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--project", choices=sorted(MODELS), default="mnist")
    p.add_argument("--network", choices=NETWORKS, default="sample")
    p.add_argument("--noise-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--regimes", nargs="+", default=["sgd", "momentum"])
    p.add_argument("--top", type=int, nargs="*", default=[])
    p.add_argument("--projected-depth", type=int, default=256)
    p.add_argument("--lanczos-only", action="store_true", help="only the spectrum and the gap rule's count")
    p.add_argument("--lanczos", type=int, default=40)
    p.add_argument("--rows", type=int, default=512)
    p.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "influence_projection"))
    p.add_argument("--tag", default="")
    ARGS = p.parse_args()
    quiet_nnabla()
    os.makedirs(ARGS.cache, exist_ok=True)
    res = {}
    for regime, seed, inputs, pos in noisy_runs(ARGS.project, ARGS.network, ARGS.regimes, ARGS.noise_seeds, ARGS.cache):
        OUT.clear()
        score(ScoreOptions(**inputs, ranking="projection-research", output=os.path.join(ARGS.cache, "s.csv"),
                           cache_dir=os.path.join(ARGS.cache, f"c_{ARGS.project}_{ARGS.network}_{regime}_{seed}")))
        row = {}
        for k, v in OUT.items():
            row[k] = v if k.startswith("_") else measure(-v, pos)["auroc"]
        res.setdefault(regime, []).append(row)
        if ARGS.lanczos_only:
            print(regime, seed, "gap k", OUT["_gap_k"], "eta*lambda", np.round(OUT["_eta_lambda"][:12], 3),
                  file=sys.stderr, flush=True)
            continue
        print(regime, seed, "gap k", OUT["_gap_k"], "eta*lambda", np.round(OUT["_eta_lambda"][:12], 2),
              {k: v for k, v in OUT.items() if k.startswith("_h ")}, file=sys.stderr, flush=True)
        print({k: round(v, 3) for k, v in row.items() if not k.startswith("_")}, file=sys.stderr, flush=True)
    if ARGS.lanczos_only:
        return
    names = [k for k in res[ARGS.regimes[0]][0] if not k.startswith("_")]
    lines = [f"{ARGS.project}: AUROC of the expected influence with the top {ARGS.top} Hessian directions "
             f"(Lanczos {ARGS.lanczos} on {ARGS.rows} rows) projected out (noise seeds "
             f"{', '.join(map(str, ARGS.noise_seeds))}).", "",
             "| variant | " + " | ".join(ARGS.regimes) + " |", "|---|" + "---|" * len(ARGS.regimes)]
    for k in names:
        cells = []
        for r in ARGS.regimes:
            x = np.array([row[k] for row in res[r]])
            cells.append(f"{x.mean():.3f} ± {x.std():.3f}")
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    for r in ARGS.regimes:
        el = np.array([row["_eta_lambda"] for row in res[r]])
        lines.append(f"\n{r}: eta*lambda of the top directions (seed means): {np.round(el.mean(0), 2).tolist()}")
        lines.append(f"{r}: outliers found by the gap rule {[row['_gap_k'] for row in res[r]]}")
        lines.append(f"{r}: DepthRule depths " + "; ".join(
            f"{k[3:]} {[row[k] for row in res[r]]}" for k in res[r][0] if k.startswith("_h ")))
    network = "" if ARGS.network == "sample" else f"_{ARGS.network}"
    publish(f"influence_projection_{ARGS.project}{network}{ARGS.tag}", "\n".join(lines), res)


if __name__ == "__main__":
    main()
