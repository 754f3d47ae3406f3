"""Does every NNC network score or get refused in one sentence, quickly?

Given a folder of NNC model files (.nntxt / .nnp), for each one this writes a small random dataset
of the shapes the network reads (images for image-shaped inputs, labels or 0/1 targets as its loss
layer needs, arrays otherwise), runs `nnc-cleanse score --epochs 1` with each ranking under a
per-run timeout, and prints a table: OK, refused (with the sentence), crash (anything else with a
non-zero exit, or an exit 0 without a complete scored CSV) or timeout.

    python benchmarks/nnc_networks.py FOLDER [--rankings loss-history,sgd-influence] [--timeout 300]
        [--rows 12] [--jobs 1]

The NNC tutorial networks that nnabla's test suite carries (python/test/core/nntxt.py of
sony/nnabla) were run this way for research/evidence.md, section 6; they are not part of this repository.
"""
import argparse
import concurrent.futures
import csv
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from tables import publish  # noqa: E402

RANKINGS = ("loss-history", "loss", "self-influence", "sgd-influence")
CLASS_LOSSES = ("CategoricalCrossEntropy", "SoftmaxCrossEntropy", "Top_nError", "TopNError")
BINARY_LOSSES = ("BinaryCrossEntropy", "SigmoidCrossEntropy")


def read_proto(path):
    """The model file's proto (nnabla's own reader of .nntxt/.nnp)."""
    from google.protobuf import text_format
    from nnabla.utils import nnabla_pb2
    import zipfile
    proto = nnabla_pb2.NNablaProtoBuf()
    if path.lower().endswith(".nnp"):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith((".nntxt", ".prototxt")):
                    text_format.Merge(archive.read(name).decode("utf-8"), proto)
    else:
        with open(path, encoding="utf-8") as f:
            text_format.Merge(f.read(), proto)
    return proto


def column_kinds(proto):
    """{data name: (kind, per-sample shape, classes)} for the columns the optimizer feeds.

    kind: "label" (a class index below `classes`), "binary" (0/1 values), "image" or "array".
    """
    optimizer = proto.optimizer[0]
    network = next(n for n in proto.network if n.name == optimizer.network_name)
    shapes = {v.name: tuple(d for d in v.shape.dim[1:]) for v in network.variable}
    variable_shape = {v.name: tuple(v.shape.dim[1:]) for v in network.variable}
    targets = {}
    for function in network.function:
        if len(function.input) >= 2 and function.type in CLASS_LOSSES + BINARY_LOSSES:
            prediction = variable_shape.get(function.input[0], (2,))
            targets[function.input[1]] = ("label" if function.type in CLASS_LOSSES else "binary",
                                          max(2, int(prediction[-1]) if prediction else 2))
    kinds = {}
    for data in optimizer.data_variable:
        shape = shapes.get(data.variable_name, (1,))
        if data.data_name in kinds:
            continue
        if data.variable_name in targets:
            kind, classes = targets[data.variable_name]
            kinds[data.data_name] = (kind, shape, classes)
        elif len(shape) == 3 and shape[0] in (1, 3) and min(shape[1:]) >= 4:
            kinds[data.data_name] = ("image", shape, 0)
        else:
            kinds[data.data_name] = ("array", shape, 0)
    return kinds


def write_dataset(folder, name, kinds, rows, rng):
    """Write `name`.csv with `rows` random samples of the columns `kinds`; return its path."""
    from PIL import Image
    os.makedirs(os.path.join(folder, name), exist_ok=True)
    header = [f"{column}:{'image' if kind == 'image' else 'label' if kind in ('label', 'binary') else 'data'}"
              for column, (kind, _, _) in kinds.items()]
    table = [header]
    for row in range(rows):
        cells = []
        for column, (kind, shape, classes) in kinds.items():
            if kind == "label" and int(np.prod(shape)) == 1:
                cells.append(str(row % min(classes, 2)))
            elif kind == "binary" and int(np.prod(shape)) == 1:
                cells.append(str(row % 2))
            elif kind == "image":
                pixels = rng.randint(0, 256, size=shape).astype(np.uint8)
                file = f"{name}/{column}_{row}.png"
                image = pixels[0] if shape[0] == 1 else pixels.transpose(1, 2, 0)
                Image.fromarray(image).save(os.path.join(folder, file))
                cells.append(file)
            else:
                values = (rng.randint(0, 2, size=shape) if kind in ("binary", "label")
                          else rng.uniform(0, 1, size=shape)).astype(np.float32)
                file = f"{name}/{column}_{row}.npy"
                np.save(os.path.join(folder, file), values)
                cells.append(file)
        table.append(cells)
    path = os.path.join(folder, f"{name}.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(table)
    return path


def run_one(model, train, val, ranking, folder, timeout):
    """Run `nnc-cleanse score` once; return (outcome, detail, seconds)."""
    output = os.path.join(folder, f"scored_{ranking}.csv")
    command = [sys.executable, "-m", "nnc_plugin.cli", "score", "-m", model, "-t", train, "-v", val,
               "-o", output, "--epochs", "1", "-r", ranking, "--cache-dir", os.path.join(folder, f"cache_{ranking}")]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.time()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=folder)
    except subprocess.TimeoutExpired:
        return "timeout", f"no result after {timeout} s", time.time() - start
    seconds = time.time() - start
    errors = [line for line in result.stderr.splitlines() if line.startswith("nnc-cleanse: error:")]
    if result.returncode == 0:
        with open(train, encoding="utf-8") as f:
            expected = sum(1 for _ in f) - 1
        try:
            with open(output, encoding="utf-8") as f:
                scored = list(csv.reader(f))
        except OSError:
            return "crash", "exit 0 without a scored CSV", seconds
        complete = (len(scored) == expected + 1 and scored[0][-2:] == ["influence", "datasource_index"]
                    and all(row[-2] not in ("", "nan") for row in scored[1:]))
        return ("OK", "", seconds) if complete else ("crash", "incomplete scored CSV", seconds)
    if errors and "Traceback" not in result.stderr:  # the sentence, with the model's path made generic
        return "refused", errors[0][len("nnc-cleanse: error: "):].replace(model, "<model file>"), seconds
    tail = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
    return "crash", f"exit {result.returncode}: {tail}", seconds


def run_network(model, rankings, timeout, rows, work):
    name = os.path.splitext(os.path.basename(model))[0]
    folder = os.path.join(work, name)
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(0)
    try:
        kinds = column_kinds(read_proto(model))
        train = write_dataset(folder, "train", kinds, rows, rng)
        val = write_dataset(folder, "val", kinds, max(2, rows // 2), rng)
    except Exception as error:  # a model file this script cannot read: the plugin gets it as is
        kinds = {}
        train = write_dataset(folder, "train", {"x": ("array", (1,), 0)}, rows, rng)
        val = train
        print(f"{name}: could not derive the dataset shapes ({error})", file=sys.stderr)
    results = {}
    for ranking in rankings:
        results[ranking] = run_one(os.path.abspath(model), train, val, ranking, folder, timeout)
        print(f"{name} {ranking}: {results[ranking][0]} {results[ranking][1]} ({results[ranking][2]:.0f} s)",
              file=sys.stderr, flush=True)
    return name, kinds, results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="folder of .nntxt / .nnp model files")
    parser.add_argument("--rankings", default=",".join(RANKINGS))
    parser.add_argument("--timeout", type=float, default=300, help="seconds per run")
    parser.add_argument("--rows", type=int, default=12, help="training rows (validation: half)")
    parser.add_argument("--jobs", type=int, default=1, help="networks run at the same time")
    parser.add_argument("--name", default="nnc_networks", help="benchmarks/out/<name>.md")
    args = parser.parse_args()
    rankings = [r for r in args.rankings.split(",") if r]
    models = sorted(os.path.join(args.folder, f) for f in os.listdir(args.folder)
                    if f.lower().endswith((".nntxt", ".nnp")))
    work = tempfile.mkdtemp(prefix="nnc_networks_")
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        outcomes = list(pool.map(lambda m: run_network(m, rankings, args.timeout, args.rows, work), models))
    lines = ["| network | " + " | ".join(rankings) + " |", "|---|" + "---|" * len(rankings)]
    sentences = {}
    raw = {}
    for name, kinds, results in outcomes:
        cells = []
        for ranking in rankings:
            outcome, detail, seconds = results[ranking]
            if outcome == "refused":
                key = sentences.setdefault(detail, f"R{len(sentences) + 1}")
                cells.append(f"refused ({key})")
            elif outcome == "OK":
                cells.append(f"OK ({seconds:.0f} s)")
            else:
                cells.append(f"{outcome}: {detail}" if detail else outcome)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        raw[name] = {r: list(v) for r, v in results.items()}
    for sentence, key in sentences.items():
        lines.append(f"\n{key}: {sentence}")
    publish(args.name, "\n".join(lines), raw)


if __name__ == "__main__":
    main()
