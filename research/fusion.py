"""Fusions of `influence` and `loss-history`, studied on saved scores: can one ranking put both kinds of harmful rows
first (rows labelled right that hurt the validation data, which only influence finds, and wrong labels on harder
images, where loss-history is ahead)?

Usage:  .venv/bin/python research/fusion.py FOLDER [--fit-seeds 0 1]
FOLDER holds research/harm.py --save-scores files (KIND_sSEED_START.npz with the arrays `harmful`, `influence`,
`loss-history`). Prints AUROC / share of the harmful rows in the first 10% of every rule, per kind and start, the
mean over the seeds; with --fit-seeds, also the mean over the other seeds alone (the rules' weights were chosen
looking at the fit seeds only).

The rules (lower = more harmful, as every ranking):
  best rank (w)      each row at the better of its two ranks, loss-history's ranks multiplied by w (research/harm.py)
  evidence (w)       each ranking's evidence of harm in units of its own spread, added: z = (s - median) / MAD,
                     harm = min(z, 0), and the fused score min(z_influence, 0) + w min(z_loss-history, 0). A row that
                     one ranking calls harmful keeps its place when the other calls it ordinary or helpful: a
                     shortcut row the network fits (loss-history: helpful) is not pulled back, a wrong label that
                     both see goes up.
  evidence-all (w)   the same with influence's helpful side kept: z_influence + w min(z_loss-history, 0)
  gated best rank (w, g)  best rank, loss-history's rank counting only for rows below influence's g quantile
  amplified (w)      influence's harmful side multiplied where loss-history ranks the row high (`amplified`)
  amplified+tail (w, t)  that, plus t x loss-history's harmful half in normal quantiles
  witness (t)        the package's order since 2026-12-06 (nnc_plugin/scores/loss_witness.py): influence in units
                     of its spread plus t x loss-history's harmful half in normal quantiles (amplified+tail with
                     w = 0 and influence's helpful side kept); `influence` takes t = 0.7
Where the saved `influence` already carries the witness (runs of the package after 2026-12-06), the rules combine
it a second time: save such runs' scores with the witness off (Influence.loss_weight = 0) to compare rules.
"""
import argparse
import glob
import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "benchmarks"))
from mislabel import measure  # noqa: E402
from nnc_plugin.scores.loss_witness import with_loss_witness  # noqa: E402


def ranks(scores):
    return np.argsort(np.argsort(scores, kind="stable"), kind="stable").astype(float)


def best_rank(influence, loss_history, weight):
    first, second = ranks(loss_history) * weight, ranks(influence)
    return np.minimum(first, second) + 1e-3 * (first + second) / len(first)


def gated_best_rank(influence, loss_history, weight, gate):
    """best_rank where loss-history's rank counts only for the rows influence does not call helpful: those below
    influence's `gate` quantile (gate 0.5: its harmful half), or below 0 (gate None: every row it calls harmful)."""
    first, second = ranks(loss_history) * weight, ranks(influence)
    allowed = influence < (0.0 if gate is None else np.quantile(influence, gate))
    first = np.where(allowed, first, np.inf)
    return np.minimum(first, second) + 1e-3 * (np.where(allowed, first, second) + second) / len(second)


def robust_z(scores):
    median = np.median(scores)
    spread = np.median(np.abs(scores - median)) * 1.4826  # the MAD, scaled to a normal's standard deviation
    return (scores - median) / max(spread, 1e-300)


def evidence(influence, loss_history, weight, keep_helpful=False):
    z_influence = robust_z(influence)
    return (z_influence if keep_helpful else np.minimum(z_influence, 0.0)) + weight * np.minimum(
        robust_z(loss_history), 0.0)


def amplified(influence, loss_history, weight, keep_helpful=False):
    """Influence's harmful side, multiplied where loss-history agrees: min(z_influence, 0) (1 + w a), a =
    -log10 of the row's rank fraction under loss-history, at most 2 (its first 10%: a >= 1, its first 1%: 2). A row
    influence calls ordinary or helpful stays where it is, whatever its loss."""
    fraction = (ranks(loss_history) + 1) / len(loss_history)
    z = robust_z(influence)
    return np.minimum(z, 0.0) * (1 + weight * np.minimum(-np.log10(fraction), 2.0)) + \
        (np.maximum(z, 0.0) if keep_helpful else 1e-9 * z)


def probit_ranks(scores):
    """Each row's rank fraction as a standard normal quantile: the first of N rows near -3.5, the median 0."""
    from statistics import NormalDist
    quantile = NormalDist().inv_cdf
    return np.array([quantile(f) for f in (ranks(scores) + 0.5) / len(scores)])


def amplified_tail(influence, loss_history, weight, tail, keep_helpful=False):
    """`amplified`, plus `tail` x loss-history's harmful side in normal quantiles (at most about 3.5 tail): orders the
    rows influence calls ordinary by their loss without lifting them above the rows it calls clearly harmful."""
    return amplified(influence, loss_history, weight, keep_helpful) + tail * np.minimum(probit_ranks(loss_history), 0.0)


RULES = {
    "influence": lambda i, l: i,
    "loss-history": lambda i, l: l,
    "best rank (1)": lambda i, l: best_rank(i, l, 1.0),
    "best rank (2)": lambda i, l: best_rank(i, l, 2.0),
    **{f"gated best rank ({w:g}, {g})": (lambda w, g: lambda i, l: gated_best_rank(i, l, w, g))(w, g)
       for w in (1.0, 2.0) for g in (None, 0.5, 0.3)},
    **{f"amplified ({w:g})": (lambda w: lambda i, l: amplified(i, l, w))(w) for w in (0.5, 1.0, 2.0)},
    **{f"amplified+tail ({w:g}, {t:g})": (lambda w, t: lambda i, l: amplified_tail(i, l, w, t))(w, t)
       for w in (0.5, 1.0) for t in (0.1, 0.2, 0.3)},
    **{f"amplified+tail, helpful kept ({w:g}, {t:g})": (lambda w, t: lambda i, l: amplified_tail(i, l, w, t, True))(w, t)
       for w in (0.5, 1.0) for t in (0.2, 0.3, 0.4)},
    **{f"witness ({t:g})": (lambda t: lambda i, l: with_loss_witness(i, -l, t))(t) for t in (0.5, 0.6, 0.7, 0.8, 1.0)},
    **{f"evidence ({w:g})": (lambda w: lambda i, l: evidence(i, l, w))(w) for w in (0.25, 0.5, 1.0, 2.0)},
    **{f"evidence-all ({w:g})": (lambda w: lambda i, l: evidence(i, l, w, True))(w) for w in (0.5, 1.0)},
}


def load(folder):
    """{(kind, start): {seed: arrays}}."""
    found = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.npz"))):
        kind, seed, start = re.match(r"(.+)_s(\d+)_(initial|trained)\.npz", os.path.basename(path)).groups()
        found.setdefault((kind, start), {})[int(seed)] = dict(np.load(path))
    return found


def table(found, seeds=None):
    columns = sorted(found, key=lambda c: (c[1], c[0]))
    lines = ["| rule | " + " | ".join(f"{k} ({s})" for k, s in columns) + " |", "|---|" + "---|" * len(columns)]
    for name, rule in RULES.items():
        cells = []
        for column in columns:
            runs = [r for seed, r in found[column].items() if seeds is None or seed in seeds]
            measures = [measure(-rule(r["influence"], r["loss-history"]), r["harmful"].astype(bool)) for r in runs]
            cells.append(f"{np.mean([m['auroc'] for m in measures]):.3f} / {np.mean([m['top10'] for m in measures]):.0%}"
                         if measures else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--fit-seeds", type=int, nargs="*", default=None)
    args = parser.parse_args(argv)
    found = load(args.folder)
    lines = ["AUROC / first 10%, mean over every seed", ""] + table(found)
    if args.fit_seeds:
        held = sorted({s for runs in found.values() for s in runs} - set(args.fit_seeds))
        lines += ["", f"the same over seeds {held} alone (weights chosen on {args.fit_seeds})", ""] + table(found, held)
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
