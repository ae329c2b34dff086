#!/usr/bin/env bash
# Command 1: install what is missing, then run the whole stack on loopback with demo data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/yigong up --demo "$@"
