#!/usr/bin/env bash
# Installs what the local stack and the tests need, skipping every step whose inputs did not change:
# the Python venv (.venv, from requirements*.txt) and Azurite (node_modules, from package-lock.json).
# Sourced by devstack/run.sh and devstack/test.sh; safe to run on its own.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi

py_hash="$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat .venv/.requirements.sha256 2>/dev/null)" != "$py_hash" ]; then
  echo "bootstrap: installing Python packages (first run takes about a minute)"
  # Byte-compiling at install time matters: PYTHONDONTWRITEBYTECODE is set on these machines,
  # so without it every process would recompile msgraph-sdk (measured on the CI machines).
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  echo "$py_hash" > .venv/.requirements.sha256
fi

node_hash="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"
if [ "$(cat node_modules/.lock.sha256 2>/dev/null)" != "$node_hash" ]; then
  echo "bootstrap: installing Azurite from npm"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$node_hash" > node_modules/.lock.sha256
fi
