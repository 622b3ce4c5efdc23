#!/usr/bin/env bash
# Run the side-by-side benchmark (needs wrk: `make bench` installs it when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" bench/run.py "$@"
