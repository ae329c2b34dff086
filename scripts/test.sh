#!/usr/bin/env bash
# Command 2: install what is missing, then run the whole test suite (SQLite and PostgreSQL legs,
# real Orthanc, Redis, MLLP, DICOM and browser tests), then the linter.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
export PYTHONUNBUFFERED=1
mkdir -p test-artifacts
.venv/bin/ruff check .
exec .venv/bin/pytest -p no:cacheprovider --junitxml=test-artifacts/junit.xml "$@"
