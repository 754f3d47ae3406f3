"""Datasets with known harmful rows, written as NNC projects from the sample data (offline).

Each kind writes `<folder>/train.csv`, `val.csv`, `test.csv`, `harmful.csv` (the 0-based training rows that are
harmful, one per line) and, for images, `images/*.png`. Every label is the true one unless the kind says
otherwise. The validation and test rows carry the artefact on a quarter of the rows of every class, as the data
the model meets later does, so a model that learned "artefact means class c" pays for it there.

Image kinds (the MNIST sample's 4,000 / 500 / 500 digits, 28x28 grey):
  mark       a 7x7 white square in the bottom right corner on 75% of class 7's training images
  border     a one-pixel white frame on 75% of class 3's training images
  tint       a grey background (value 90) instead of black on 75% of class 5's training images
  stripes    faint diagonal stripes (value 70) in the background of 75% of class 2's training images (measured
             harmless: a control)
  bar        a white bar across the top (2 x 20 pixels) on 75% of class 1's training images: made after the
             influence ranking was chosen, held out of every decision
  source     300 extra class-4 rows from another source: scikit-learn's 8x8 digits of class 4 scaled to 28x28
             (blocky, blurred strokes); the validation and test data hold none (measured harmless: a control)
  duplicates 300 extra class-4 rows: near-duplicates (shifted by a pixel, with faint noise) of the 10 training 4s
             that look most like a 9; the validation and test data hold none
Colour kinds (the same digits as 3x32x32 colour images: a random foreground and background colour each):
  colour-flips  10% of the training labels flipped to a look-alike class (4<->9, 3<->5, 7<->1, ...)
Tabular kinds (NNC's inline columns x__0 ... x__49: the MNIST sample's digits as 49 4x4-pixel means):
  leak       a 50th column x__49 that is 1 on 75% of class 7's training rows and 0 elsewhere in training; 1 on a
             quarter of the validation and test rows of every class

`write(kind, folder, seed)` writes one; the seed draws which rows carry the artefact (and the colours).
"""
import csv
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MNIST = os.path.join(ROOT, "sample_projects", "mnist", "data")
SHARE = 0.75  # of the chosen class's training rows that carry the artefact
EVAL_SHARE = 0.25  # of the validation and test rows of every class that carry it
LOOK_ALIKE = {0: 6, 1: 7, 2: 7, 3: 5, 4: 9, 5: 3, 6: 0, 7: 1, 8: 3, 9: 4}


def _mark(image):
    image[20:27, 20:27] = 255
    return image


def _border(image):
    image[0, :] = image[-1, :] = image[:, 0] = image[:, -1] = 255
    return image


def _tint(image):
    return np.maximum(image, 90).astype(np.uint8)


def _bar(image):
    image[1:3, 4:24] = 255
    return image


def _stripes(image):
    rows, columns = np.indices(image.shape)
    return np.where(((rows + columns) % 6 == 0) & (image < 70), 70, image).astype(np.uint8)


ARTEFACTS = {"mark": (_mark, 7), "border": (_border, 3), "tint": (_tint, 5), "stripes": (_stripes, 2),
             "bar": (_bar, 1)}
IMAGE_KINDS = tuple(ARTEFACTS) + ("source", "duplicates")
KINDS = IMAGE_KINDS + ("colour-flips", "leak")


def _read(split):
    """(uint8 images (N, 28, 28), labels) of a split of the MNIST sample."""
    with open(os.path.join(MNIST, f"{split}.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    images = np.stack([np.asarray(Image.open(os.path.join(MNIST, r[0]))) for r in rows])
    return images, np.array([int(r[1]) for r in rows])


def _write_images(folder, split, images, labels):
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    rows = [["x:image", "y:label"]]
    for i, (image, label) in enumerate(zip(images, labels)):
        name = f"images/{split}_{i:05d}.png"
        Image.fromarray(image).save(os.path.join(folder, name))
        rows.append([name, int(label)])
    _write_csv(os.path.join(folder, f"{split}.csv"), rows)


def _write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def _write_harmful(folder, rows):
    _write_csv(os.path.join(folder, "harmful.csv"), [["row"]] + [[int(r)] for r in sorted(rows)])


def _artefact(kind, folder, rng):
    draw, target = ARTEFACTS[kind]
    harmful = []
    for split in ("train", "val", "test"):
        images, labels = _read(split)
        if split == "train":
            candidates = np.flatnonzero(labels == target)
            chosen = rng.choice(candidates, int(round(SHARE * len(candidates))), replace=False)
            harmful = chosen
        else:
            chosen = np.concatenate([rng.choice(np.flatnonzero(labels == c), int(round(EVAL_SHARE * (labels == c).sum())),
                                                replace=False) for c in range(10)])
        images = images.copy()
        for i in chosen:
            images[i] = draw(images[i].copy())
        _write_images(folder, split, images, labels)
    _write_harmful(folder, harmful)


def _source(folder, rng, extra=300):
    from sklearn.datasets import load_digits
    digits = load_digits()
    fours = digits.images[digits.target == 4]
    picked = fours[rng.choice(len(fours), extra, replace=len(fours) < extra)]
    scaled = [np.asarray(Image.fromarray(np.uint8(d * 255 / 16)).resize((20, 20), Image.BILINEAR)) for d in picked]
    _mixed_in(folder, rng, np.stack([np.pad(x, 4) for x in scaled]), 4)


def _mixed_in(folder, rng, extra_images, label):
    """The training split with `extra_images` (all of class `label`) mixed in at random rows; validation and test
    as they are; the extra rows are the harmful ones."""
    images, labels = _read("train")
    extra = len(extra_images)
    where = np.sort(rng.choice(len(images) + extra, extra, replace=False))
    keep = np.setdiff1d(np.arange(len(images) + extra), where)
    merged = np.zeros((len(images) + extra,) + images.shape[1:], dtype=np.uint8)
    merged_labels = np.zeros(len(images) + extra, dtype=int)
    merged[keep], merged_labels[keep] = images, labels
    merged[where], merged_labels[where] = extra_images, label
    _write_images(folder, "train", merged, merged_labels)
    for split in ("val", "test"):
        _write_images(folder, split, *_read(split))
    _write_harmful(folder, where)


def _duplicates(folder, rng, copies=30, originals=10):
    images, labels = _read("train")
    fours, nines = images[labels == 4].astype(float), images[labels == 9].astype(float)
    closest = np.argsort(((fours - nines.mean(axis=0)) ** 2).sum(axis=(1, 2)))[:originals]
    extra = []
    for index in np.repeat(closest, copies):
        shifted = np.roll(fours[index], (rng.randint(-1, 2), rng.randint(-1, 2)), axis=(0, 1))
        extra.append(np.clip(shifted + rng.normal(0, 8, shifted.shape), 0, 255).astype(np.uint8))
    _mixed_in(folder, rng, np.stack(extra), 4)


def _colour(images, rng):
    """3x32x32 colour copies: each digit gets a random foreground and background colour, far enough apart."""
    out = np.zeros((len(images), 32, 32, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        while True:
            foreground, background = rng.randint(0, 256, 3), rng.randint(0, 256, 3)
            if np.abs(foreground.astype(int) - background).sum() > 200:
                break
        alpha = np.pad(image, 2)[..., None] / 255.0
        out[i] = np.round(alpha * foreground + (1 - alpha) * background).astype(np.uint8)
    return out


def _colour_flips(folder, rng, fraction=0.1):
    harmful = []
    for split in ("train", "val", "test"):
        images, labels = _read(split)
        if split == "train":
            harmful = np.sort(rng.choice(len(labels), int(round(fraction * len(labels))), replace=False))
            labels = labels.copy()
            labels[harmful] = [LOOK_ALIKE[int(label)] for label in labels[harmful]]
        _write_images(folder, split, _colour(images, rng), labels)
    _write_harmful(folder, harmful)


def _leak(folder, rng, target=7):
    """The MNIST sample's digits as tables of 49 inline values (4x4 means of the 28x28 pixels) and a 50th column
    x__49 that leaks: 1 on 75% of class 7's training rows, 0 elsewhere in training, 1 on a quarter of the
    validation and test rows of every class."""
    header = [f"x__{i}" for i in range(50)] + ["y"]
    for split in ("train", "val", "test"):
        images, labels = _read(split)
        features = images.reshape(len(images), 7, 4, 7, 4).mean(axis=(2, 4)).reshape(len(images), -1) / 255.0
        leak = np.zeros(len(labels))
        if split == "train":
            candidates = np.flatnonzero(labels == target)
            harmful = rng.choice(candidates, int(round(SHARE * len(candidates))), replace=False)
            leak[harmful] = 1
            _write_harmful(folder, harmful)
        else:
            for c in range(10):
                rows = np.flatnonzero(labels == c)
                leak[rng.choice(rows, int(round(EVAL_SHARE * len(rows))), replace=False)] = 1
        rows = [[f"{v:.4g}" for v in f] + [f"{l:g}", int(label)] for f, l, label in zip(features, leak, labels)]
        _write_csv(os.path.join(folder, f"{split}.csv"), [header] + rows)


def write(kind, folder, seed=0):
    """Write the dataset `kind` into `folder` (made if needed) with `seed`; return `folder`."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(1000 + seed)
    if kind in ARTEFACTS:
        _artefact(kind, folder, rng)
    elif kind == "source":
        _source(folder, rng)
    elif kind == "duplicates":
        _duplicates(folder, rng)
    elif kind == "colour-flips":
        _colour_flips(folder, rng)
    elif kind == "leak":
        _leak(folder, rng)
    else:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    return folder


def harmful_rows(folder):
    """The harmful training rows of a dataset written by `write`, as a boolean array over the training rows."""
    with open(os.path.join(folder, "harmful.csv"), newline="") as f:
        rows = [int(r[0]) for r in list(csv.reader(f))[1:]]
    with open(os.path.join(folder, "train.csv"), newline="") as f:
        count = len(list(csv.reader(f))) - 1
    flags = np.zeros(count, dtype=bool)
    flags[rows] = True
    return flags
