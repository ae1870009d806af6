#!/usr/bin/env bash
# The run command: installs what is missing, then runs the whole stack on localhost until Ctrl-C.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec .venv/bin/python -m devstack up "$@"
