"""Speed, storage and memory of scoring, on the MNIST sample and on larger copies of it.

Usage:  .venv/bin/python benchmarks/speed.py [--project mnist|digits] [--sizes 4000 5000 20000] [--epochs 2]
                                             [--reference-steps 5]

Each configuration runs in a fresh process (so its peak memory is its own) and trains with the
sample project's own configuration (LeNet-style CNN, SGD, batch size 64). Datasets larger than
the sample repeat its training rows (the paths repeat, the images are the same files). Columns:

  N                training samples;   params: trainable parameters
  epoch s          mean seconds of one training epoch
  score s          seconds to score every sample in --mode final (validation gradient included)
  score/epoch      the ratio (the issue's bar: at most 3)
  influence s      seconds of --ranking influence on the same training (its recursion goes back as far as
                   it contracts, at most 256 steps, then one directional derivative per row)
  × sgd-infl.      influence s / score s
  HVP alone/epoch  seconds of the minibatch Hessian-vector products alone (the part of every step
                   that any implementation of the method pays), over the epoch seconds
  reference s      seconds the per-sample reference path needs for one traced epoch: a batch-size-1
                   backward per row for the inner products and batch-size-1 double-backwards for
                   the Hessian-vector product, nnabla's own rules (timed on --reference-steps steps
                   and scaled to all traced steps)
  speed-up         reference s / seconds of the batched path on the same steps
  published-style s  the published implementation's structure: the batch-size-1 backward per row,
                   then one minibatch double-backward with nnabla's own rules for the Hessian part
  speed-up         published-style s / seconds of the batched path on the same steps
  cache final      bytes the final-mode cache holds (one parameter set + the schedule)
  cache all        bytes --mode all needs (one parameter set per traced step, measured by running it)
  peak RSS MB      peak resident memory of the final-mode run

The table is printed and written to benchmarks/out/speed.md (speed_digits.md for --project digits,
the digits sample's small MLP), with the raw numbers in speed*.json.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

from tables import OUT, publish  # noqa: E402

PROJECTS = {"mnist": ("mnist_cnn.nntxt", [4000, 5000, 20000]), "digits": ("digits_mlp.nntxt", [1000, 5000, 20000])}


def sample_folder(project):
    return os.path.join(ROOT, "sample_projects", project)


def repeated_csv(project, size):
    """The sample's training CSV repeated (cyclically) to `size` rows; returns its path."""
    source = os.path.join(sample_folder(project), "data", "train.csv")
    with open(source, newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    header, rows = table[0], table[1:]
    if size == len(rows):
        return source
    target = os.path.join(sample_folder(project), "data", f"train_x{size}.csv")
    with open(target, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows[i % len(rows)] for i in range(size))
    return target


def child(args):
    """Run one configuration in this process and print its numbers as JSON."""
    sys.path.insert(0, ROOT)
    import numpy as np
    from nnc_plugin.log import quiet_nnabla
    from nnc_plugin.options import ScoreOptions
    from nnc_plugin.pipeline import score
    quiet_nnabla()
    folder = os.path.join(OUT, f"run_{args.project}_{args.size}_{args.mode}")
    sample = sample_folder(args.project)
    options = ScoreOptions(model=os.path.join(sample, PROJECTS[args.project][0]),
                           input_train=repeated_csv(args.project, args.size),
                           input_val=os.path.join(sample, "data", "val.csv"), output=os.path.join(folder, "influence.csv"),
                           ranking="sgd-influence", mode=args.mode, epochs=args.epochs, context=args.context,
                           cache_dir=os.path.join(folder, "cache"))
    if os.path.isdir(options.cache_dir):
        import shutil
        shutil.rmtree(options.cache_dir)
    run = score(options)
    result = dict(run.summary)
    if args.mode == "final":  # --ranking influence on the same training (the cache is reused)
        from dataclasses import replace
        again = score(replace(options, ranking="influence", output=os.path.join(folder, "expected.csv")))
        result["influence_score_seconds"] = again.summary["score_seconds"]
    if args.reference_steps:
        result.update(reference_timing(options, args.reference_steps, np))
    print("RESULT " + json.dumps(result))


def reference_timing(options, steps, np):
    """Seconds per traced epoch of each way to do one scoring step, timed on the last `steps` traced
    steps (same minibatches, same direction) and scaled to all traced steps."""
    from step_costs import hessian_only, published_step
    from nnc_plugin.data.dataset import read_dataset
    from nnc_plugin.model.project import load_project
    from nnc_plugin.pipeline import prepare
    from nnc_plugin.scores.gradients import BatchedDirectional, PerSampleDirectional, validation_gradient
    from nnc_plugin.training.trial import open_trial
    project = load_project(options.model)
    data = read_dataset(options.input_train)
    trial = open_trial(prepare(options).setup, 0)  # the run's training, from its cache
    model, schedule = trial.model, trial.record.schedule  # at the final parameters
    u, _ = validation_gradient(model, read_dataset(options.input_val), project.batch_size)

    ways = {"batched": BatchedDirectional(model, batch_size=project.batch_size),
            "hessian_only": hessian_only(model, project.batch_size),
            "reference": PerSampleDirectional(model),
            "published": published_step(model, project.batch_size)}
    timed = list(range(len(schedule) - steps - 1, len(schedule) - 1))  # full-size steps (the last may be short)
    result = {"reference_steps_measured": steps}
    for name, way in ways.items():
        way(data, schedule.step(timed[0])[0], u)  # builds its graphs
        started = time.perf_counter()
        for t in timed:
            way(data, schedule.step(t)[0], u)
        result[f"{name}_seconds_scaled"] = (time.perf_counter() - started) * len(schedule) / steps
    return result


def run_measured(args, size, mode, reference_steps):
    """Run a child and return (result, its peak RSS in MB)."""
    command = [sys.executable, os.path.abspath(__file__), "--child", "--project", args.project, "--size", str(size),
               "--mode", mode, "--epochs", str(args.epochs), "--reference-steps", str(reference_steps),
               "--context", args.context]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)  # this child's own resource usage
    if status != 0:
        raise SystemExit(f"benchmark child failed ({size}, {mode}):\n{stderr[-3000:]}")
    result = json.loads(next(line[7:] for line in stdout.splitlines() if line.startswith("RESULT ")))
    return result, usage.ru_maxrss / 1024.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", choices=sorted(PROJECTS), default="mnist")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="default: the sample's size, 5000, 20000")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--reference-steps", type=int, default=5)
    parser.add_argument("--context", choices=("cpu", "cudnn"), default="cpu", help="cudnn: an NVIDIA GPU")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="final", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    os.makedirs(OUT, exist_ok=True)
    rows, raw = [], []
    for size in args.sizes or PROJECTS[args.project][1]:
        print(f"benchmark: {args.project}, N={size} ...", file=sys.stderr, flush=True)
        final, rss = run_measured(args, size, "final", args.reference_steps)
        exact, _ = run_measured(args, size, "all", 0)
        epoch = final["epoch_seconds"]
        if args.reference_steps:
            batched = final["batched_seconds_scaled"]
            timed = [f"{final['hessian_only_seconds_scaled'] / epoch:.2f}",
                     f"{final['reference_seconds_scaled']:.1f}", f"{final['reference_seconds_scaled'] / batched:.1f}x",
                     f"{final['published_seconds_scaled']:.1f}", f"{final['published_seconds_scaled'] / batched:.1f}x"]
        else:
            timed = ["-"] * 5
        rows.append([size, final["trainable_parameters"], f"{epoch:.2f}", f"{final['score_seconds']:.2f}",
                     f"{final['score_seconds'] / epoch:.2f}", f"{final['influence_score_seconds']:.2f}",
                     f"{final['influence_score_seconds'] / final['score_seconds']:.2f}"] + timed +
                    [f"{final['cache_bytes']:,}", f"{exact['cache_bytes']:,}", f"{rss:.0f}"])
        raw.append({"size": size, "final": final, "all": exact, "peak_rss_mb": rss})
    header = ["N", "params", "epoch s", "score s", "score/epoch", "influence s", "× sgd-infl.", "HVP alone/epoch", "reference s", "speed-up",
              "published-style s", "speed-up", "cache final (bytes)", "cache all (bytes)", "peak RSS MB"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    sizes = {r["size"]: r["peak_rss_mb"] for r in raw}
    if 5000 in sizes and 20000 in sizes:
        lines.append("")
        lines.append(f"Peak memory N=20,000 / N=5,000: {sizes[20000] / sizes[5000]:.3f}")
    publish(("speed" if args.project == "mnist" else f"speed_{args.project}") +
            ("" if args.context == "cpu" else f"_{args.context}"), "\n".join(lines), raw)


if __name__ == "__main__":
    main()
