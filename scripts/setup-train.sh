#!/usr/bin/env bash
# Training-only set-up, idempotent: the recorded instruments the realistic song generator uses
# (python -m training.synth generate --realism full, python -m training.datasets synth).
#   hydrogen-drumkits                       multi-velocity acoustic and electronic drum kits (~220 MB)
#   musescore-general-soundfont-lossless    MuseScore General, a richer GM soundfont (~480 MB)
#   fluidsynth, fluid-soundfont-gm          the renderer and FluidR3 (also installed by scripts/setup.sh)
# The app's set-up (scripts/setup.sh) does not install these; without them the generator falls back to
# FluidR3's instruments and says so. Runs apt-get as root, or through sudo when that is available.
set -euo pipefail

PKGS=(fluidsynth fluid-soundfont-gm hydrogen-drumkits musescore-general-soundfont-lossless)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-train: all present (${PKGS[*]})"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup-train: no apt-get here; install ${missing[*]} (or their equivalents) by hand" >&2
  exit 1
fi
if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null; then
  SUDO=(sudo)
else
  echo "setup-train: run as root or install sudo; needs: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "setup-train: installing ${missing[*]} (about 470 MB to download)"
export DEBIAN_FRONTEND=noninteractive
# another apt/dpkg run (unattended upgrades on a fresh machine) holds the lock: wait for it
lock=(-o DPkg::Lock::Timeout=300)
"${SUDO[@]}" apt-get "${lock[@]}" update -qq >/dev/null
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
echo "setup-train: done"
