#!/usr/bin/env bash
# Set up (idempotent) and run the main job: the desktop app with the bundled demo session. On a
# machine without a display it runs the command-line demo mix instead (writes out/demo_mix.wav and
# out/demo_params.json). Extra arguments go to the app (see 'stylemix --help').
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/stylemix" --demo "$@"
