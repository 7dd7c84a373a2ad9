"""What a user waits for: commands from start to written file, the first mix after set-up, peak memory.

Run: .venv/bin/python benchmarks/bench_cli.py [--baseline REV] [--cases render,analyze,params,first]
     [--repeat N]
     (or benchmarks/run_all.py cli)

Every case is a fresh ``stylemix`` process; wall time is from the command to its exit, CPU time is
user + system, peak memory is the process's peak RSS. ``--baseline REV`` also runs each case with the
code of git revision REV (extracted to a temporary folder), in the same run, so the comparison is a
ratio on the same machine at the same load. Targets: the "Fast from the first click" issue.

Cases:
  render   stylemix render, 16 stereo stems x 180 s (24-bit WAV) with saved parameters
  analyze  stylemix analyze of a 3-minute stereo song
  params   stylemix params
  app      the desktop app: process start to window shown, and to the demo session usable (its
           audio loaded), offscreen, no audio device
  first    first stylemix mix after set-up (a cold copy of the code, then scripts/setup.sh's kernel
           compilation) against the second, 8 stems x 20 s, model + 60 steps
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import ROOT, table  # noqa: E402

PY = sys.executable
_WRAP = r"""
import json, resource, subprocess, sys, time
w0 = time.perf_counter()
r = subprocess.run(sys.argv[2:], cwd=sys.argv[1], capture_output=True, text=True)
wall = time.perf_counter() - w0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": r.returncode, "wall": wall, "cpu": ru.ru_utime + ru.ru_stime,
                  "peak_mb": ru.ru_maxrss / 1024, "err": r.stderr[-1500:]}))
"""


def stylemix(tree: Path, cwd: Path, *args: str, env: dict | None = None) -> dict:
    """Run ``stylemix ARGS`` with the code in ``tree``, in a fresh process; wall, CPU, peak RSS."""
    code = (f"import sys; sys.path.insert(0, {str(tree)!r}); from core.cli import entry; "
            "sys.argv[0] = 'stylemix'; entry()")
    e = dict(os.environ, **(env or {}))
    e.pop("PYTHONPATH", None)
    out = subprocess.run([PY, "-c", _WRAP, str(cwd), PY, "-c", code, *args], capture_output=True, text=True,
                         env=e, timeout=3600)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if res["rc"] != 0:
        raise RuntimeError(f"stylemix {' '.join(args[:3])} failed:\n{res['err']}")
    return res


def write_song(folder: Path, n: int, seconds: float, stereo: bool = True,
               subtype: str = "PCM_24") -> list[str]:
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sr = 44100
    t = np.arange(int(seconds * sr)) / sr
    paths = []
    for i in range(n):
        x = 0.15 * np.sin(2 * np.pi * 55 * (i + 1) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
        x = np.stack([x, np.roll(x, 7)]) if stereo else x[None]
        x = x + 0.02 * rng.standard_normal(x.shape)
        p = folder / f"stem{i:02d}.wav"
        sf.write(p, x.T.astype(np.float32), sr, subtype=subtype)
        paths.append(str(p))
    return paths


def extract(rev: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    arch = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=arch, check=True)
    return dest


def params_file(tree: Path, work: Path, stems: list[str]) -> str:
    """Saved parameters for the stems (random, deterministic), written by the tree's own code."""
    out = work / "params.json"
    code = f"""
import sys; sys.path.insert(0, {str(tree)!r})
import numpy as np
from pathlib import Path
from core.paramfile import MixParams, write_params
from core.params import MASTER, TRACK
names = [Path(p).stem for p in {stems!r}]
rng = np.random.default_rng(0)
tp = TRACK.from_unit(rng.random((len(names), len(TRACK))))
tp[:, TRACK.index("gain_db")] = -12.0
write_params({str(out)!r}, MixParams(names, tp, MASTER.from_unit(rng.random(len(MASTER)))))
"""
    subprocess.run([PY, "-c", code], check=True)
    return str(out)


_APP = r"""
import os, sys, time, json
t0 = time.perf_counter()
os.environ["QT_QPA_PLATFORM"] = "offscreen"
sys.path.insert(0, {tree!r})
from app.main import make_app, DEMO_SESSION
try:
    app = make_app([], plots=False)
except TypeError:  # older code: one call does everything
    app = make_app([])
try:
    from app.main import configure_plots, show_splash
    splash = show_splash(app)
except ImportError:  # code without a start-up window
    splash = None
first = time.perf_counter() - t0
if splash is not None:
    configure_plots()
from app.mainwindow import MainWindow
w = MainWindow(audio=False)
w.open_session(str(DEMO_SESSION))
w.show()
app.processEvents()
shown = time.perf_counter() - t0
while w.loading or w.model.inputs is None:
    app.processEvents()
    time.sleep(0.005)
usable = time.perf_counter() - t0
print(json.dumps({{"first": first if splash is not None else shown, "shown": shown,
                  "usable": usable}}), flush=True)
os._exit(0)
"""


def app_times(tree: Path) -> dict:
    out = subprocess.run([PY, "-c", _APP.format(tree=str(tree))], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, STYLEMIX_NO_WARMUP="1"))
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt(r: dict) -> str:
    spread = f" (runs {min(r['walls']):.2f}-{max(r['walls']):.2f} s)" if len(r.get("walls", ())) > 1 else ""
    return f"{r['wall']:.2f} s wall{spread}, {r['cpu']:.2f} s CPU, {r['peak_mb'] / 1024:.2f} GB"


def median_of(runs: list[dict]) -> dict:
    """The run with the median wall time, with every run's wall time under ``walls``."""
    walls = [r["wall"] for r in runs]
    mid = sorted(runs, key=lambda r: r["wall"])[len(runs) // 2]
    return {**mid, "walls": walls}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", metavar="REV", help="also run the code of this git revision")
    ap.add_argument("--cases", default="render,analyze,params,app,first")
    ap.add_argument("--json", metavar="PATH", help="write the numbers here")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of render, analyze and params per tree; the median is shown (default 3)")
    args = ap.parse_args(argv)
    cases = args.cases.split(",")
    work = Path(tempfile.mkdtemp(prefix="stylemix-bench-cli-"))
    results: dict = {}
    try:
        trees = {"ours": ROOT}
        if args.baseline:
            trees = {"baseline": extract(args.baseline, work / "baseline"), "ours": ROOT}
        env = {"STYLEMIX_NO_WARMUP": "1"}  # set-up has compiled the kernels (the "first" case measures that)
        rows = []
        if "render" in cases:
            stems = write_song(work / "s16", 16, 180.0)
            decoded_gb = 16 * 2 * 180 * 44100 * 4 / 2**30
            for name, tree in trees.items():
                p = params_file(tree, work, stems)
                stylemix(tree, work, "render", *stems[:2], "--params", p, "--out", str(work / "w.wav"),
                         env=env)  # load the kernels' cache once
                r = median_of([stylemix(tree, work, "render", *stems, "--params", p, "--out",
                                        str(work / f"{name}.wav"), env=env) for _ in range(args.repeat)])
                results[f"render/{name}"] = r
                rows.append(("render 16 stereo stems x 180 s", name, "<= 5 s; <= 1.5x decoded stems",
                             f"{fmt(r)} ({r['peak_mb'] / 1024 / decoded_gb:.2f}x the {decoded_gb:.2f} GB "
                             "decoded)"))
        if "analyze" in cases:
            song = write_song(work / "a", 1, 180.0)[0]
            for name, tree in trees.items():
                stylemix(tree, work, "analyze", song, env=env)
                r = median_of([stylemix(tree, work, "analyze", song, env=env) for _ in range(args.repeat)])
                results[f"analyze/{name}"] = r
                rows.append(("analyze, 3-minute song", name, "<= 1.5 s", fmt(r)))
        if "params" in cases:
            for name, tree in trees.items():
                r = median_of([stylemix(tree, work, "params", env=env) for _ in range(args.repeat)])
                results[f"params/{name}"] = r
                rows.append(("params", name, "-", fmt(r)))
        if "app" in cases:
            for name, tree in trees.items():
                app_times(tree)  # caches warm
                r = app_times(tree)
                results[f"app/{name}"] = r
                rows.append(("app: first window / main window / demo usable", name, "<= 2 s / - / <= 6 s",
                             f"{r['first']:.2f} s / {r['shown']:.2f} s / {r['usable']:.2f} s"))
        if "first" in cases:
            demo = ROOT / "assets" / "demo"
            for name, tree in trees.items():
                cold = work / f"cold-{name}"
                shutil.copytree(tree, cold,
                                ignore=shutil.ignore_patterns("__pycache__", ".git", ".venv", "out"))
                setup = None
                if (cold / "core" / "warmup.py").exists():  # what scripts/setup.sh runs last
                    w = subprocess.run([PY, "-c", _WRAP, str(work), PY, "-m", "core.warmup"],
                                       capture_output=True, text=True,
                                       env=dict(os.environ, PYTHONPATH=str(cold)))
                    setup = json.loads(w.stdout.strip().splitlines()[-1])
                mix = ["mix", str(demo / "stems"), "--reference", str(demo / "reference.flac"),
                       "--out", str(work / f"first-{name}.wav")]
                r1 = stylemix(cold, work, *mix)
                r2 = stylemix(cold, work, *mix)
                results[f"first/{name}"] = {"setup": setup, "first": r1, "second": r2}
                rows.append(("first mix after set-up / second", name, "<= 1.2x",
                             f"{r1['wall']:.1f} s / {r2['wall']:.1f} s = "
                             f"{r1['wall'] / r2['wall']:.2f}x wall, "
                             f"{r1['cpu'] / r2['cpu']:.2f}x CPU"
                             + (f" (set-up compiled in {setup['wall']:.0f} s)" if setup else "")))
        print(table(rows, ("case", "code", "target", "measured")))
        if args.baseline:
            print("\nratios, baseline / ours (same run):")
            for key in sorted({k.split("/")[0] for k in results}):
                a, b = results.get(f"{key}/baseline"), results.get(f"{key}/ours")
                if a and b and "wall" in a:
                    print(f"  {key}: wall {a['wall'] / b['wall']:.1f}x, CPU {a['cpu'] / b['cpu']:.1f}x, "
                          f"peak memory {a['peak_mb'] / b['peak_mb']:.1f}x")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
