#!/usr/bin/env bash
# Install what the tests need (scripts/install-test-deps.sh), then run the whole suite.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/image -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
exec .venv/bin/python -m pytest -ra -q "$@"
