"""Scored CSVs of a fixed set of runs, with their SHA-256: run it before and after a change that must not
change any score (a reshape of the package), and compare the two listings.

Usage:  .venv/bin/python benchmarks/snapshot.py OUT_FOLDER [--quick]

Runs (the sample projects' data, written by setup.sh):
  digits-<ranking>      the digits MLP on train_noisy_s0.csv, every ranking, the model's 10 epochs
  digits-all-2trials    sgd-influence --mode all -nt 2
  digits-bn-<ranking>   the digits network with BatchNormalization, sgd-influence and influence
  digits-trained        influence from a trained results.nnp (nnabla_cli train, 4 epochs): -nt auto
  mnist-<ranking>       the MNIST CNN on train_noisy_s0.csv, loss-history and influence
--quick leaves the MNIST runs out. Prints `sha256  name` per CSV (also OUT_FOLDER/sha256.txt).
"""
import argparse
import hashlib
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SAMPLES = os.path.join(ROOT, "sample_projects")
TOOL = os.path.join(os.path.dirname(sys.executable), "nnc-cleanse")
RANKINGS = ("loss-history", "loss", "self-influence", "sgd-influence", "influence", "tracin-cp")


def runs(out, quick):
    """(name, arguments of nnc-cleanse score) of every run."""
    digits, mnist = os.path.join(SAMPLES, "digits"), os.path.join(SAMPLES, "mnist")
    noisy = ["-t", os.path.join(digits, "data", "train_noisy_s0.csv"), "-v", os.path.join(digits, "data", "val.csv")]
    found = [(f"digits-{r}", ["-m", os.path.join(digits, "digits_mlp.nntxt"), *noisy, "-r", r]) for r in RANKINGS]
    found.append(("digits-all-2trials", ["-m", os.path.join(digits, "digits_mlp.nntxt"), *noisy, "-r", "sgd-influence",
                                         "--mode", "all", "-nt", "2"]))
    found += [(f"digits-bn-{r}", ["-m", os.path.join(digits, "digits_conv_bn.nntxt"), *noisy, "-r", r])
              for r in ("sgd-influence", "influence")]
    found.append(("digits-trained", ["-m", trained_digits(out), *noisy, "-r", "influence"]))
    if not quick:
        mnist_data = ["-t", os.path.join(mnist, "data", "train_noisy_s0.csv"), "-v", os.path.join(mnist, "data", "val.csv")]
        found += [(f"mnist-{r}", ["-m", os.path.join(mnist, "mnist_cnn.nntxt"), *mnist_data, "-r", r])
                  for r in ("loss-history", "influence")]
    return found


def trained_digits(out):
    """A results.nnp of the digits MLP trained 4 epochs by nnabla_cli, as NNC trains it."""
    folder = os.path.join(out, "nnabla_cli")
    result = os.path.join(folder, "results.nnp")
    if os.path.isfile(result):
        return result
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(SAMPLES, "digits", "digits_mlp.nntxt"), encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"max_epoch: \d+", "max_epoch: 4", text)
    text = text.replace('uri: "data/train.csv"', f'uri: "{SAMPLES}/digits/data/train_noisy_s0.csv"')
    text = text.replace('uri: "data/', f'uri: "{SAMPLES}/digits/data/')
    config = os.path.join(folder, "digits.nntxt")
    with open(config, "w", encoding="utf-8") as f:
        f.write(text)
    cli = os.path.join(os.path.dirname(sys.executable), "nnabla_cli")
    subprocess.run([cli, "train", "-c", config, "-o", folder], check=True, stdout=subprocess.DEVNULL)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    lines = []
    for name, arguments in runs(args.out, args.quick):
        output = os.path.join(args.out, name, "influence.csv")
        subprocess.run([TOOL, "score", *arguments, "-o", output], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        with open(output, "rb") as f:
            lines.append(f"{hashlib.sha256(f.read()).hexdigest()}  {name}")
        print(lines[-1], flush=True)
    with open(os.path.join(args.out, "sha256.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
