#!/usr/bin/env bash
# The README's first command: set up, then score the bundled MNIST sample project
# (4,000 training digits, 10% of their labels flipped) and write
# sample_projects/mnist/out/influence.csv, most harmful rows first.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
.venv/bin/nnc-cleanse score \
  --model sample_projects/mnist/mnist_cnn.nntxt \
  --input-train sample_projects/mnist/data/train_noisy_s0.csv \
  --input-val sample_projects/mnist/data/val.csv \
  --output sample_projects/mnist/out/influence.csv "$@"
.venv/bin/nnc-cleanse report \
  --input sample_projects/mnist/out/influence.csv \
  --output sample_projects/mnist/out/influence_report.html
echo "Done: sample_projects/mnist/out/influence.csv and influence_report.html (open it in a web browser)."
echo "The rows whose labels were flipped are listed in sample_projects/mnist/data/train_noisy_s0_flips.csv."
