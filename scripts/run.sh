#!/usr/bin/env bash
# Set up (idempotent) and run the main job: the desktop app with the bundled demo session, or, on a
# machine without a display, the command-line demo mix (writes out/demo_mix.wav and out/demo_params.json).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
SM="$ROOT/.venv/bin/stylemix"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && "$ROOT/.venv/bin/python" -c "import app.main" 2>/dev/null; then
  exec "$SM" "$ROOT/assets/demo/demo.stylemix" "$@"
fi
echo "No display: running the command-line demo mix."
mkdir -p out
exec "$SM" mix "$ROOT"/assets/demo/stems/*.flac --reference "$ROOT/assets/demo/reference.flac" \
  --out out/demo_mix.wav --params-out out/demo_params.json "$@"
