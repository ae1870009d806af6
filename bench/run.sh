#!/usr/bin/env bash
# All benchmarks (long: minutes). Installs what is missing first, like the test command.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../devstack/bootstrap.sh"
.venv/bin/python -m bench.webhook "$@"
.venv/bin/python -m bench.decode
.venv/bin/python -m bench.sync
.venv/bin/python -m bench.reconciler
.venv/bin/python -m bench.readside
