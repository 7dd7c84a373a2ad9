"""Any length: rendering hours of stems with flat memory, and how long mixing them takes.

Run: .venv/bin/python benchmarks/bench_long.py [--minutes 15,60] [--stereo-minutes 120] [--mix]
     (or benchmarks/run_all.py long; needs about 4 GB of free disk for the generated stems)

Target ("Nothing the user owns is ever lost, and no song is too long"): 8 stems x 60 min and one
2-hour stereo stem render with peak memory <= 2.5 GB, time growing linearly with length. Before this
work: 8 mono stems x 60 min failed after 51 s at 5.8 GB, the 2-hour stem at 7.6 GB. Each case is a
fresh ``stylemix render`` process (stems decoded block by block, the mix in a temporary file, the
output written in blocks) with a loudness target, so the output stage makes all its passes.
``--mix`` also runs ``stylemix mix`` on the 8 x 15 min stems (the analysis still holds the stems in
memory: about 24 MB per stem-minute) and shows the memory check's answer for 8 x 60 min.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _util import ROOT, table  # noqa: E402
from bench_cli import params_file, stylemix  # noqa: E402


def write_long(folder: Path, n: int, minutes: float, channels: int) -> list[str]:
    """``n`` stems of ``minutes`` as 16-bit WAV, written in blocks (never whole in memory)."""
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    sr, block = 44100, 1 << 20
    total = int(minutes * 60 * sr)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"stem{i:02d}.wav"
        with sf.SoundFile(p, "w", sr, channels, "PCM_16") as f:
            for s in range(0, total, block):
                t = np.arange(s, min(total, s + block)) / sr
                x = 0.2 * np.sin(2 * np.pi * 55 * (i + 1) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
                x = x + 0.03 * rng.standard_normal(t.size)
                f.write(np.stack([x, 0.8 * x], axis=1) if channels == 2 else x)
        paths.append(str(p))
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", default="15,60", help="lengths of the 8 mono stems, comma list")
    ap.add_argument("--stereo-minutes", type=float, default=120.0, help="length of the one stereo stem")
    ap.add_argument("--mix", action="store_true", help="also run stylemix mix on the shortest 8 stems")
    ap.add_argument("--folder", help="where to generate the stems (default: a temporary folder)")
    args = ap.parse_args(argv)
    work = Path(args.folder or tempfile.mkdtemp(prefix="stylemix-bench-long-"))
    rows, per_minute = [], {}
    try:
        cases = [(8, float(m), 1) for m in args.minutes.split(",")]
        if args.stereo_minutes:
            cases.append((1, args.stereo_minutes, 2))
        for n, minutes, ch in cases:
            folder = work / f"{n}x{minutes:g}x{ch}"
            stems = write_long(folder, n, minutes, ch)
            p = params_file(ROOT, folder, stems)
            r = stylemix(ROOT, work, "render", *stems, "--params", p, "--out", str(work / "out.wav"),
                         "--loudness", "-14", env={"STYLEMIX_NO_WARMUP": "1"})
            kind = "mono" if ch == 1 else "stereo"
            per_minute[(n, ch, minutes)] = r["wall"] / minutes
            rows.append((f"render {n} {kind} x {minutes:g} min", "<= 2.5 GB, linear",
                         f"{r['wall']:.1f} s wall ({r['wall'] / minutes:.2f} s/min), {r['cpu']:.1f} s CPU, "
                         f"peak {r['peak_mb'] / 1024:.2f} GB"))
            if args.mix and ch == 1 and minutes == min(float(m) for m in args.minutes.split(",")):
                ref = write_long(work / "ref", 1, 3.0, 2)[0]
                m = stylemix(ROOT, work, "mix", *stems, "--reference", ref, "--out", str(work / "mix.wav"),
                             env={"STYLEMIX_NO_WARMUP": "1"})
                rows.append((f"mix {n} mono x {minutes:g} min (model + 60 steps)", "-",
                             f"{m['wall']:.1f} s wall, {m['cpu']:.1f} s CPU, "
                             f"peak {m['peak_mb'] / 1024:.2f} GB"))
            shutil.rmtree(folder, ignore_errors=True)
        print(table(rows, ("case", "target", "measured")))
        mono = sorted((m, v) for (n, ch, m), v in per_minute.items() if ch == 1)
        if len(mono) >= 2:
            print(f"\nlinearity: seconds per minute of audio at {mono[-1][0]:g} min / at {mono[0][0]:g} min"
                  f" = {mono[-1][1] / mono[0][1]:.2f} (1.00 = linear)")
        from core.prepare import MIX_BASE_BYTES, MIX_BYTES_PER_STEM_BYTE

        need = MIX_BASE_BYTES + MIX_BYTES_PER_STEM_BYTE * 8 * 8 * 60 * 60 * 44100
        print(f"mix of 8 stems x 60 min: the memory check estimates {need / 1e9:.1f} GB "
              "(refused before any work where less is available)")
    finally:
        if not args.folder:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
