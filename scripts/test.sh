#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite offscreen, without a sound card: everything CI runs,
# slow tests included. Extra arguments go to pytest (e.g. -m "not slow" for a quicker local run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export QT_QPA_PLATFORM=offscreen
exec "$ROOT/.venv/bin/python" -m pytest -q "$@"
