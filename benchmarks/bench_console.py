"""Torch console and `stylemix mix` (refine only): time and peak memory on this machine.

Run: .venv/bin/python benchmarks/bench_console.py   (or benchmarks/run_all.py for every benchmark)
Reference numbers: DESIGN.md section 5 (the authors' console and pipeline on the same 2-core CPU) and
the issues' targets for `stylemix mix` (wall time from loading the files to the written mix).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ROOT, run_case, table  # noqa: E402

SETUP_RENDER = """
import numpy as np
from core.console import render, render_long
from core.params import TRACK, MASTER
rng = np.random.default_rng(0)
n, sr, secs = 16, 44100, {secs}
x = torch.from_numpy(rng.standard_normal((1, n, 2, int(sr * secs)), dtype=np.float32)); x *= 0.1
u = rng.random((1, n, len(TRACK))); u[..., TRACK.index('comp_ratio')] = 0.5
tp = torch.tensor(TRACK.from_unit(u), dtype=torch.float32)
mp = torch.tensor(MASTER.from_unit(rng.random((1, len(MASTER)))), dtype=torch.float32)
stereo = torch.ones(1, n, dtype=torch.bool)
"""

RENDER = "with torch.no_grad():\n    y = {fn}(x, tp, mp, sr, stereo=stereo)"
BACKWARD = """
tp.requires_grad_(True); mp.requires_grad_(True)
y = render(x, tp, mp, sr, stereo=stereo)
y.square().mean().backward()
"""

SETUP_MIX = """
import glob, os, subprocess, tempfile
import numpy as np, soundfile as sf
sys.path.insert(0, {tests!r})
from synthetic import make_stems, make_reference
d = tempfile.mkdtemp()
paths = []
for k in range({n} // 6 + 1):
    for name, s in make_stems(44100, {secs}, seed=k).items():
        if len(paths) < {n}:
            p = os.path.join(d, f"{{name}}{{k}}.wav"); sf.write(p, s.T, 44100); paths.append(p)
ref = os.path.join(d, "ref.wav"); sf.write(ref, make_reference(44100, min({secs}, 60.0)).T, 44100)
from core.cli import main
import io, contextlib
"""
MIX = """
with contextlib.redirect_stdout(io.StringIO()):
    assert main(["mix", *paths, "--reference", ref, "--out", os.path.join(d, "m.wav"), *{extra!r}]) == 0
"""


def main() -> None:
    rows = []
    render_cases = [
        ("console render, 16 tracks x 10 s", 10, RENDER.format(fn="render"), "(not published)", "-"),
        ("console render, 16 tracks x 180 s", 180, RENDER.format(fn="render_long"), "57.6 s, 9.3 GB",
         "<= 2 s, <= 1 GB"),
        ("console forward+backward, 16 x 10 s", 10, BACKWARD, "(not published)", "-"),
    ]
    for label, secs, body, authors, target in render_cases:
        r = run_case(SETUP_RENDER.format(secs=secs), body)
        rows.append((label, authors, target, f"{r['seconds']:.2f} s",
                     f"{r['peak_mb']:.0f} MB ({r['peak_mb'] - r['base_mb']:.0f} MB above the loaded stems)"))
    cases = [
        (8, 20.0, ["--no-model"], "refine only", "-", "<= 30 s"),
        (16, 20.0, ["--no-model"], "refine only", "-", "-"),
        (8, 20.0, [], "model + refine", "-", "-"),
        (16, 180.0, [], "model + refine", "175 s", "<= 30 s"),
    ]
    for n, secs, extra, what, authors, target in cases:
        setup = SETUP_MIX.format(n=n, secs=secs, tests=str(ROOT / "tests"))
        r = run_case(setup, MIX.format(extra=extra))
        rows.append((f"stylemix mix ({what}, default steps), {n} stems x {secs:.0f} s", authors, target,
                     f"{r['seconds']:.1f} s", f"{r['peak_mb']:.0f} MB"))
    print("## Torch console and refine (2 threads)\n")
    print(table(rows, ("case", "authors (DESIGN.md 5)", "target", "ours: time", "ours: peak RSS")))
    print("\nPeak RSS is the whole process (torch, numba and the audio included).")


if __name__ == "__main__":
    main()
