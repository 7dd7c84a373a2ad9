"""Any length: rendering and mixing hours of stems with flat memory, and how long it takes.

Run: .venv/bin/python benchmarks/bench_long.py [--minutes 15,60] [--stereo-minutes 120]
         [--mix-minutes 5,15,30,60] [--mix-stereo-minutes 120] [--steps 20] [--no-render]
         [--baseline TREE]
     (or benchmarks/run_all.py long; the 60-minute cases need about 12 GB of free disk: the stems,
     their decoded copy in the temporary folder and the mix)

Target ("Nothing the user owns is ever lost, and no song is too long"): 8 stems x 60 min and one
2-hour stereo stem mix (``stylemix mix``: model + refinement, then the render) and render with peak
memory <= 2.5 GB, time growing linearly with length. Before this work: 8 mono stems x 60 min failed
after 51 s at 5.8 GB, the 2-hour stem at 7.6 GB; ``mix`` of 8 mono stems x 5 min peaked at 4.4 GB
and x 15 min at 12.0 GB (20 steps), and longer mixes were refused by the memory check.

Each case is a fresh process (peak RSS of the whole process). ``render`` cases: stems decoded block by
block, the mix in a temporary file, the output written in blocks, with a loudness target so the
output stage makes all its passes. ``mix`` cases: 8 mono stems (or one stereo stem) against a
3-minute stereo reference with the shipped model and ``--steps`` refinement steps (refinement's cost
does not depend on the length; fewer steps keep the benchmark short). ``--baseline TREE`` runs the
mix cases with the code in TREE too (e.g. ``git archive`` of an older commit), in the same run.
Stems are generated with a fixed seed into a temporary folder and removed after each case.
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


def _mix_case(tree: Path, work: Path, stems: list[str], ref: str, steps: int) -> dict:
    return stylemix(tree, work, "mix", *stems, "--reference", ref, "--out", str(work / "mix.wav"),
                    "--steps", str(steps), env={"STYLEMIX_NO_WARMUP": "1"})


def _cell(r: dict | None, minutes: float) -> str:
    if r is None:
        return "-"
    if "error" in r:
        return r["error"]
    return (f"{r['wall']:.1f} s wall ({r['wall'] / minutes:.2f} s/min), {r['cpu']:.1f} s CPU, "
            f"peak {r['peak_mb'] / 1024:.2f} GB")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", default="15,60", help="render: lengths of the 8 mono stems, comma list")
    ap.add_argument("--stereo-minutes", type=float, default=120.0, help="render: the stereo stem's length")
    ap.add_argument("--no-render", action="store_true", help="leave out the render cases")
    ap.add_argument("--mix-minutes", default="5,15,30,60",
                    help="mix: lengths of the 8 mono stems, comma list ('' for none)")
    ap.add_argument("--mix-stereo-minutes", type=float, default=120.0,
                    help="mix: length of the one stereo stem (0 for none)")
    ap.add_argument("--steps", type=int, default=20, help="refinement steps of the mix cases (default 20)")
    ap.add_argument("--baseline", metavar="TREE", help="also run the mix cases with the code in TREE")
    ap.add_argument("--mix", action="store_true", help=argparse.SUPPRESS)  # older spelling: mix cases are on
    ap.add_argument("--folder", help="where to generate the stems (default: a temporary folder)")
    args = ap.parse_args(argv)
    work = Path(args.folder or tempfile.mkdtemp(prefix="stylemix-bench-long-"))
    rows, per_minute = [], {}
    try:
        cases = [] if args.no_render else [(8, float(m), 1) for m in args.minutes.split(",") if m]
        if args.stereo_minutes and not args.no_render:
            cases.append((1, args.stereo_minutes, 2))
        for n, minutes, ch in cases:
            folder = work / f"{n}x{minutes:g}x{ch}"
            stems = write_long(folder, n, minutes, ch)
            p = params_file(ROOT, folder, stems)
            r = stylemix(ROOT, work, "render", *stems, "--params", p, "--out", str(work / "out.wav"),
                         "--loudness", "-14", env={"STYLEMIX_NO_WARMUP": "1"})
            kind = "mono" if ch == 1 else "stereo"
            per_minute[("render", ch, minutes)] = r["wall"] / minutes
            rows.append((f"render {n} {kind} x {minutes:g} min", "<= 2.5 GB, linear", "-", _cell(r, minutes)))
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
            shutil.rmtree(folder, ignore_errors=True)
        mix_cases = [(8, float(m), 1) for m in args.mix_minutes.split(",") if m]
        if args.mix_stereo_minutes:
            mix_cases.append((1, args.mix_stereo_minutes, 2))
        ref = write_long(work / "ref", 1, 3.0, 2)[0] if mix_cases else None
        for n, minutes, ch in mix_cases:
            folder = work / f"mix{n}x{minutes:g}x{ch}"
            stems = write_long(folder, n, minutes, ch)
            before = None
            if args.baseline:
                try:
                    before = _mix_case(Path(args.baseline), work, stems, ref, args.steps)
                except RuntimeError as exc:
                    last = str(exc).strip().splitlines()[-1]
                    before = {"error": f"failed: {last[:120]}"}
            try:
                ours = _mix_case(ROOT, work, stems, ref, args.steps)
                per_minute[("mix", ch, minutes)] = ours["wall"] / minutes
            except RuntimeError as exc:
                ours = {"error": f"failed: {str(exc).strip().splitlines()[-1][:160]}"}
            kind = "mono" if ch == 1 else "stereo"
            rows.append((f"mix {n} {kind} x {minutes:g} min (model + {args.steps} steps, render)",
                         "<= 2.5 GB, linear", _cell(before, minutes), _cell(ours, minutes)))
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)  # as it goes: the cases are long
            shutil.rmtree(folder, ignore_errors=True)
            (work / "mix.wav").unlink(missing_ok=True)
        print(table(rows, ("case", "target", "before", "ours")))
        for what in ("render", "mix"):
            mono = sorted((m, v) for (w, ch, m), v in per_minute.items() if ch == 1 and w == what)
            if len(mono) >= 2:
                print(f"\n{what} linearity: seconds per minute of audio at {mono[-1][0]:g} min / at "
                      f"{mono[0][0]:g} min = {mono[-1][1] / mono[0][1]:.2f} (1.00 = linear; a mix has a "
                      "fixed part, the model and the refinement steps)")
                steps = [f"{a:g}->{b:g} min: {(vb * b - va * a) / (b - a):.2f} s/min"
                         for (a, va), (b, vb) in zip(mono, mono[1:], strict=False)]
                print(f"{what} time per added minute of audio (wall): " + ", ".join(steps))
        from core.prepare import MIX_BASE_BYTES, MIX_BYTES_PER_CHANNEL_SECOND

        for n, minutes, ch in ((8, 60, 1), (1, 120, 2)):
            need = MIX_BASE_BYTES + MIX_BYTES_PER_CHANNEL_SECOND * n * ch * minutes * 60
            print(f"mix of {n} x {minutes} min ({'mono' if ch == 1 else 'stereo'}): the memory check "
                  f"estimates {need / 1e9:.2f} GB (refused before any work where less is available)")
    finally:
        if not args.folder:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
