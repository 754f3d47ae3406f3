"""Scale: what scoring costs from 1,000 to 50,000 rows, on the sample CNN and on the paper's six-convolution network.

Usage:  .venv/bin/python benchmarks/scale.py [--networks cnn paper] [--sizes 1000 5000 20000 50000] [--epochs 2]
                                             [--job-sizes 5000] [--context cpu|cudnn]

Networks: `cnn`, the MNIST sample's CNN (two convolutions, 9,402 parameters, 28x28 inputs); `paper`, the
MNIST network of Suzuki et al. (benchmarks/networks/paper_bn.nntxt: six 3x3 convolutions with
BatchNormalization, 32/64/128 maps, 307,818 parameters, 32x32 inputs: the sample's digits padded by two
pixels, written once to benchmarks/out/data32/). Both train with SGD at batch size 64 (the CNN at its
decaying 0.1, the paper network at a constant 0.05). N rows repeat the sample's 4,000 training rows.

For each network and N, each run in a fresh process (its peak memory is its own), from the initialisation,
--epochs epochs: `score -r sgd-influence` and `score -r influence`. Columns:
  epoch s            mean seconds of one training epoch
  sgd-influence s    its scoring seconds; ms/row the same per training row
  influence s        `--ranking influence`'s scoring seconds; x its ratio to sgd-influence's
  peak MB            the larger peak resident memory of the two runs
  cache final        bytes the cache of one trial holds (sgd-influence: final parameters and schedule)
  cache all          bytes --mode all would hold: one parameter file per traced step, plus the rest
                     (measured at the smallest N, computed from the parameter file's size above it)
At each of --job-sizes the network is trained first by `nnabla_cli train` (4 epochs, as NNC does; not
counted), then the plugin's default path is timed on its results.nnp as a whole process: `score` with
the default ranking (`influence`, `-nt auto`): its training and scoring in epochs of training (their seconds /
epoch s), and the process's wall seconds, start-up and reading the data included.
Prints the table and writes benchmarks/out/scale_<networks>.md and .json (..._cudnn.* with --context cudnn).
"""
import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MNIST = os.path.join(ROOT, "sample_projects", "mnist")
BIN = os.path.dirname(sys.executable)

from tables import OUT, publish  # noqa: E402

NETWORKS = {"cnn": os.path.join(MNIST, "mnist_cnn.nntxt"), "paper": os.path.join(HERE, "networks", "paper_bn.nntxt")}


def padded_data():
    """The sample's training and validation images padded to 32x32 (benchmarks/out/data32/); returns the folder."""
    from PIL import Image
    folder = os.path.join(OUT, "data32")
    if os.path.isfile(os.path.join(folder, "val.csv")):
        return folder
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    for name in ("train", "val"):
        with open(os.path.join(MNIST, "data", f"{name}.csv"), newline="", encoding="utf-8") as f:
            table = list(csv.reader(f))
        for row in table[1:]:
            image = np.asarray(Image.open(os.path.join(MNIST, "data", row[0])))
            Image.fromarray(np.pad(image, 2)).save(os.path.join(folder, row[0]))
        with open(os.path.join(folder, f"{name}.csv"), "w", newline="", encoding="utf-8") as f:
            csv.writer(f, lineterminator="\n").writerows(table)
    return folder


def data_folder(network):
    return padded_data() if network == "paper" else os.path.join(MNIST, "data")


def repeated_csv(network, size):
    """The training CSV of `size` rows, the sample's rows repeated; returns its path."""
    source = data_folder(network)
    with open(os.path.join(source, "train.csv"), newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    target = os.path.join(OUT, f"scale_{network}_{size}.csv")
    with open(target, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([os.path.join(source, rows[i % len(rows)][0])] + rows[i % len(rows)][1:] for i in range(size))
    return target


def run(command):
    """Run a command line in a fresh process; return (its wall seconds, its peak resident memory in MB)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)  # this child's own resource usage
    if status != 0:
        raise SystemExit(f"benchmark step failed: {' '.join(command)}\n{stderr[-3000:]}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024.0


def score(network, train_csv, output, *extra, model=None, context="cpu"):
    """`nnc-cleanse score` on `train_csv`; return (its summary, wall seconds, peak MB)."""
    command = [os.path.join(BIN, "nnc-cleanse"), "score", "-m", model or NETWORKS[network], "-t", train_csv,
               "-v", os.path.join(data_folder(network), "val.csv"), "-o", output, "--context", context, *extra]
    seconds, peak = run(command)
    with open(output + ".summary.json", encoding="utf-8") as f:
        return json.load(f), seconds, peak


def trained_model(network, train_csv, folder, context):
    """A results.nnp of `network` trained 4 epochs by nnabla_cli on `train_csv`, as NNC trains it."""
    with open(NETWORKS[network], encoding="utf-8") as f:
        text = re.sub(r"max_epoch: \d+", "max_epoch: 4", f.read())
    val = os.path.join(data_folder(network), "val.csv")
    text = re.sub(r'uri: "[^"]*train.csv"', f'uri: "{train_csv}"', text)
    text = re.sub(r'uri: "[^"]*val.csv"', f'uri: "{val}"', text)
    if context == "cudnn":
        text = text.replace('backends: "cpu:float"', 'backends: "cudnn:float"')
    config = os.path.join(folder, "project.nntxt")
    os.makedirs(folder, exist_ok=True)
    with open(config, "w", encoding="utf-8") as f:
        f.write(text)
    run([os.path.join(BIN, "nnabla_cli"), "train", "-c", config, "-o", folder])
    return os.path.join(folder, "results.nnp")


def measure(network, size, args, with_job):
    """One row of the table (a dict)."""
    folder = os.path.join(OUT, f"scale_{network}_{size}")
    train_csv = repeated_csv(network, size)
    common = ["-e", str(args.epochs), "--start-from", "initial"]
    sgd, _, sgd_peak = score(network, train_csv, os.path.join(folder, "sgd.csv"), "-r", "sgd-influence", *common,
                             context=args.context)
    influence, _, influence_peak = score(network, train_csv, os.path.join(folder, "influence.csv"), "-r", "influence",
                                         *common, context=args.context)
    row = {"network": network, "size": size, "parameters": sgd["trainable_parameters"],
           "epoch_seconds": sgd["epoch_seconds"], "sgd_seconds": sgd["score_seconds"],
           "influence_seconds": influence["score_seconds"], "peak_mb": max(sgd_peak, influence_peak),
           "cache_final": sgd["cache_bytes"], "traced_steps": sgd["traced_steps"],
           "parameter_bytes": sgd["parameter_bytes"]}
    if with_job:
        nnp = trained_model(network, train_csv, os.path.join(folder, "nnabla_cli"), args.context)
        summary, seconds, _ = score(network, train_csv, os.path.join(folder, "job_default.csv"), model=nnp,
                                    context=args.context)
        row["job_default"] = {"seconds": seconds, "work_seconds": summary["train_seconds"] + summary["score_seconds"],
                              "trials": summary["n_trials"], "epochs_trained": summary["epochs_trained"]}
    return row


def cache_all_bytes(network, row, smallest, args):
    """--mode all's cache: measured for the smallest N, computed from it for the others."""
    if row["size"] == smallest["size"]:
        folder = os.path.join(OUT, f"scale_{network}_{row['size']}")
        summary, _, _ = score(network, repeated_csv(network, row["size"]), os.path.join(folder, "all.csv"), "-r",
                              "sgd-influence", "--mode", "all", "-e", str(args.epochs), "--start-from", "initial",
                              context=args.context)
        smallest["per_step"] = (summary["cache_bytes"] - row["cache_final"]) / row["traced_steps"]
        return summary["cache_bytes"]
    return int(row["cache_final"] + smallest["per_step"] * row["traced_steps"])


def table(rows):
    header = ["network", "N", "params", "epoch s", "sgd-influence s", "ms/row", "influence s", "x", "peak MB",
              "cache final", "cache all", "job: epochs (wall s)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        # the job from results.nnp with the default ranking: its training and scoring in epochs of training, and
        # the whole process's wall seconds (start-up and reading the data included)
        job = r.get("job_default")
        job_cell = f"{job['work_seconds'] / r['epoch_seconds']:.1f} ({job['seconds']:.0f} s)" if job else "-"
        lines.append("| " + " | ".join(str(c) for c in [
            r["network"], f"{r['size']:,}", f"{r['parameters']:,}", f"{r['epoch_seconds']:.2f}",
            f"{r['sgd_seconds']:.1f}", f"{1e3 * r['sgd_seconds'] / r['size']:.2f}", f"{r['influence_seconds']:.1f}",
            f"{r['influence_seconds'] / r['sgd_seconds']:.2f}", f"{r['peak_mb']:.0f}", f"{r['cache_final']:,}",
            f"{r['cache_all']:,}", job_cell]) + " |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", choices=sorted(NETWORKS), default=["cnn", "paper"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000, 50000])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--job-sizes", type=int, nargs="*", default=[5000])
    parser.add_argument("--context", choices=("cpu", "cudnn"), default="cpu")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    rows = []
    for network in args.networks:
        smallest = {}
        for size in sorted(args.sizes):
            print(f"scale: {network}, N={size} ...", file=sys.stderr, flush=True)
            row = measure(network, size, args, size in args.job_sizes)
            smallest = smallest or dict(row)
            row["cache_all"] = cache_all_bytes(network, row, smallest, args)
            rows.append(row)
            print(table([row])[-1], file=sys.stderr, flush=True)
    publish("scale_" + "_".join(args.networks) + ("" if args.context == "cpu" else f"_{args.context}"),
            "\n".join(table(rows)), rows)


if __name__ == "__main__":
    main()
