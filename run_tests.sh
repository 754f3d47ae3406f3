#!/usr/bin/env bash
# The README's second command: set up, then run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
.venv/bin/python -m pytest "$@"
