"""Probe: which validation gradient should `influence` start from? Results: research/results/validation_direction.md.

Two choices (`Influence.snapshot_power` and `Influence.final_share`), measured on research/harm.py's kinds:
  how each validation row counts (--directions): its error e_i in the logits weighted by |e_i| ** -power
    loss      power 0: the validation loss's own gradient (the package)
    sqrt      power 1/2
    unit      power 1: each row by the direction of its error alone
  where the rows are taken (--points):
    average   each validation row at one of the final parameters and the 8 snapshots of the last epoch (the
              package)
    mix       half from every row at the final parameters, half from the 8 snapshots
    final     the final parameters alone (no snapshots)
Two more variants, measured with the code of commit c2f6e0b (results/validation_direction.md): `balanced`, every
class's part of the loss's gradient of unit length, and `late`, the snapshots in the last half-epoch only.

Usage:  .venv/bin/python research/probe_validation_direction.py KIND:SEED [...] [--start initial|trained]
            [--directions loss sqrt] [--points average mix] [--epochs 8] [--rows N]
"""
import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harm  # noqa: E402  (puts the package and benchmarks/ on the path)
from mislabel import measure  # noqa: E402
from nnc_plugin.log import quiet_nnabla  # noqa: E402
from nnc_plugin.options import ScoreOptions  # noqa: E402
from nnc_plugin.pipeline import score  # noqa: E402
from nnc_plugin.scores import registry  # noqa: E402
from nnc_plugin.scores.influence import SNAPSHOTS, Influence  # noqa: E402

POWERS = {"loss": 0.0, "sqrt": 0.5, "unit": 1.0}
POINTS = {"average": (SNAPSHOTS, None), "mix": (SNAPSHOTS, 0.5), "final": (0, None)}


def variant(direction, points):
    """The `Influence` subclass that starts from `direction` taken at `points`."""
    count, share = POINTS[points]
    return type(f"Influence_{direction}_{points}", (Influence,),
                {"name": f"influence-{direction}-{points}", "snapshot_power": POWERS[direction],
                 "snapshots": count, "final_share": share})


def run(kind, seed, args, variants, work):
    """{variant name: detection measures} on one kind and seed."""
    folder, train_name, harmful = harm.dataset(kind, seed, args.rows)
    model = harm.model_file(kind, work)
    train_csv = os.path.join(folder, train_name)
    inputs = {"model": model, "input_train": train_csv, "input_val": os.path.join(folder, "val.csv")}
    if args.start == "trained":
        inputs["model"] = harm.nnabla_cli_training(model, work, train_csv, args.epochs)
    row = {}
    for ranking in variants:
        result = score(ScoreOptions(**inputs, ranking=ranking.name, epochs=args.epochs, n_trials=1,
                                    output=os.path.join(work, "s.csv"), cache_dir=os.path.join(work, ranking.name)))
        row[ranking.name] = measure(-result.scores, harmful)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="KIND:SEED (research/harm.py's kinds)")
    parser.add_argument("--start", choices=("initial", "trained"), default="initial")
    parser.add_argument("--directions", nargs="+", choices=sorted(POWERS), default=["loss", "sqrt"])
    parser.add_argument("--points", nargs="+", choices=sorted(POINTS), default=["average", "mix"])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rows", type=int, default=None, help="only the first N training rows (the tests)")
    args = parser.parse_args(argv)
    quiet_nnabla()
    variants = [variant(d, p) for d in args.directions for p in args.points]
    rows = {}
    with registry.trying(*variants):
        for spec in args.runs:
            kind, seed = spec.split(":")
            with tempfile.TemporaryDirectory() as work:
                rows[spec] = run(kind, int(seed), args, variants, work)
            print(spec, args.start, "  ".join(f"{n}={m['auroc']:.3f}/{m['top10']:.0%}" for n, m in rows[spec].items()),
                  flush=True)
    return rows


if __name__ == "__main__":
    main()
