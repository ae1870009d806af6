#!/usr/bin/env bash
# The test command: installs what is missing, then lint, type checks and every default test
# (unit, contract, integration against Azurite, which the test session starts itself).
# Extra arguments go to pytest, e.g. `bash devstack/test.sh tests/unit -x`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; .venv/bin/mypy
echo "== architecture"; .venv/bin/lint-imports --no-cache
echo "== pytest"; .venv/bin/python -m pytest -m "not slow" "$@"
