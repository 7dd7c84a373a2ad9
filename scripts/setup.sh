#!/usr/bin/env bash
# One-time, idempotent set-up on Debian with Python >= 3.10: system libraries (when root), a virtualenv
# in .venv, the CPU build of torch and the project with its dev and train extras.
# Sourced by scripts/run.sh and scripts/test.sh; safe to run again (it skips what is already done).
# Last, it compiles the audio kernels ("preparing the audio engine (once)", about a minute).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"

# System packages: PortAudio for playback, Qt's runtime libraries, FluidSynth + the GM soundfont for
# the synthetic data generator.
APT_PKGS=(libportaudio2 libgl1 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3 fluidsynth fluid-soundfont-gm)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # another apt/dpkg run (unattended upgrades on a fresh machine) holds the lock: wait for it
    lock=(-o DPkg::Lock::Timeout=300)
    apt-get "${lock[@]}" update -qq >/dev/null
    apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: note: missing system packages (${missing[*]}); run as root or" \
         "'sudo apt-get install ${missing[*]}'. Playback needs libportaudio2, data generation fluidsynth." >&2
  fi
fi

# Python environment. torch is pinned first so that the project's range is satisfied by the CPU wheel
# and pip never pulls a CUDA build.
stamp="$VENV/.stylemix-installed"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating virtualenv in .venv"
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python packages (first run takes a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q -e ".[dev,train]"
  echo "$want" > "$stamp"
fi

# Compile the audio kernels once (numba caches them on disk), so the first mix is as fast as the
# second. Skipped when this version of the code is already compiled.
"$VENV/bin/python" -m core.warmup --if-needed
