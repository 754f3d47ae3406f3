"""1 process against 2 (mpiexec, data-parallel): seconds of training and of scoring on a sample project.

Usage:  .venv/bin/python benchmarks/parallel.py [--project mnist] [--epochs 2] [--processes 1 2]

Each configuration runs `nnc-cleanse score --ranking sgd-influence --start-from initial` from an empty
cache, as a user would start it (`mpiexec -n K nnc-cleanse score ...`), and reads the seconds from the
run summary. The machine's cores bound the speed-up: two processes on two cores share them with the
operating system and nnabla's own threads.

Prints a table and writes benchmarks/out/parallel_<project>.md and .json.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from mislabel import MODELS  # noqa: E402
from tables import publish  # noqa: E402

BIN = os.path.dirname(sys.executable)


def run(project, epochs, processes, workdir):
    folder = os.path.join(ROOT, "sample_projects", project)
    output = os.path.join(workdir, f"p{processes}", "influence.csv")
    command = ([os.path.join(BIN, "mpiexec"), "-n", str(processes)] if processes > 1 else [])
    command += [os.path.join(BIN, "nnc-cleanse"), "score", "-m", os.path.join(folder, MODELS[project]),
                "-t", os.path.join(folder, "data", "train.csv"), "-v", os.path.join(folder, "data", "val.csv"),
                "-o", output, "-r", "sgd-influence", "-e", str(epochs), "--start-from", "initial"]
    subprocess.run(command, check=True, capture_output=True)
    with open(output + ".summary.json", encoding="utf-8") as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", choices=sorted(MODELS), default="mnist")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for processes in args.processes:
            summary = run(args.project, args.epochs, processes, workdir)
            results[processes] = {"train_seconds": summary["train_seconds"], "score_seconds": summary["score_seconds"]}
            print(f"{processes} process(es): {results[processes]}", file=sys.stderr, flush=True)
    base = results[args.processes[0]]
    lines = [f"{args.project} sample, sgd-influence, {args.epochs} epochs, {os.cpu_count()} CPU cores", "",
             "| processes | training s | speed-up | scoring s | speed-up |", "|---|---|---|---|---|"]
    for processes, row in results.items():
        lines.append(f"| {processes} | {row['train_seconds']:.1f} | {base['train_seconds'] / row['train_seconds']:.2f}× | "
                     f"{row['score_seconds']:.1f} | {base['score_seconds'] / row['score_seconds']:.2f}× |")
    publish(f"parallel_{args.project}", "\n".join(lines), results)


if __name__ == "__main__":
    main()
