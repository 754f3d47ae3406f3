#!/usr/bin/env bash
# Set up everything on a fresh machine: find Python 3.10 (nnabla has wheels for 3.8-3.10 only),
# make the virtual environment .venv, install the package with its test and data extras, and
# write the sample projects' datasets. Safe to run again: it only redoes what changed.
set -euo pipefail
cd "$(dirname "$0")"

is_supported() {  # nnabla publishes wheels for Python 3.8, 3.9 and 3.10
  "$1" -c 'import sys; sys.exit(0 if (3, 8) <= sys.version_info[:2] <= (3, 10) else 1)' >/dev/null 2>&1
}

find_python() {
  if [ -n "${PYTHON:-}" ]; then
    is_supported "$PYTHON" && { echo "$PYTHON"; return; }
    echo "setup: PYTHON=$PYTHON is not Python 3.8-3.10, which nnabla needs." >&2; exit 1
  fi
  local root candidate
  if command -v pyenv >/dev/null 2>&1 && root=$(pyenv root 2>/dev/null); then
    for version in 3.10 3.9 3.8; do
      for candidate in "$root"/versions/"$version".*/bin/python; do
        [ -x "$candidate" ] && is_supported "$candidate" && { echo "$candidate"; return; }
      done
    done
  fi
  for candidate in python3.10 python3.9 python3.8 python3; do
    command -v "$candidate" >/dev/null 2>&1 && is_supported "$candidate" && { command -v "$candidate"; return; }
  done
  echo "setup: no Python 3.8-3.10 found; install Python 3.10 (for example 'pyenv install 3.10') or set PYTHON=/path/to/python3.10." >&2
  exit 1
}

if [ ! -x .venv/bin/python ] || ! is_supported .venv/bin/python; then
  python=$(find_python)
  echo "setup: making .venv with $python"
  rm -rf .venv
  "$python" -m venv .venv
fi

stamp=.venv/.installed
want=$(cat pyproject.toml | cksum)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing nnabla and the plugin into .venv (a few minutes the first time)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test,data,mpi]"
  echo "$want" > "$stamp"
fi

.venv/bin/python sample_projects/make_datasets.py
