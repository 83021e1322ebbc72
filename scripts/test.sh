#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the checks: ruff, mypy, then the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
ruff check .
mypy
lint-imports
pytest "$@"
