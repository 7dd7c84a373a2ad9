"""Streaming console: real-time factor, export time, edit-to-output latency and underruns.

Run: .venv/bin/python benchmarks/bench_engine.py   (or benchmarks/run_all.py engine)
Reference numbers: DESIGN.md section 5 (the authors' console on the same 2-core CPU) and the targets of
the streaming-engine issue. Each case runs in a fresh process; "one core" pins the process to one CPU.
The machine may be shared: wall times include waiting for the CPU, CPU times do not.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _util import ROOT, table  # noqa: E402

_PRELUDE = r"""
import json, os, sys, time
sys.path.insert(0, {root!r})
import numpy as np
from core.params import MASTER, TRACK
rng = np.random.default_rng(0)
SR = 44100

def song(n_tracks, seconds):
    t = np.arange(int(SR * seconds)) / SR
    x = 0.1 * rng.standard_normal((n_tracks, 2, t.size)).astype(np.float32)
    x += (0.2 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)
    return x

def params(n_tracks):
    return TRACK.from_unit(rng.random((n_tracks, len(TRACK)))), MASTER.from_unit(rng.random(len(MASTER)))
"""

RTF = _PRELUDE + r"""
os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:{cores}]))
from core.engine import render_stream
x = song(16, {seconds}); tp, mp = params(16); stereo = np.ones(16, bool)
render_stream(x[:, :, :SR], stereo, tp, mp, SR, threads={cores})  # compile / load kernels
best_wall, best_cpu = 1e9, 1e9
for _ in range({repeats}):
    c0, w0 = time.process_time(), time.perf_counter()
    render_stream(x, stereo, tp, mp, SR, threads={cores})
    best_wall = min(best_wall, time.perf_counter() - w0)
    best_cpu = min(best_cpu, time.process_time() - c0)
print("RESULT " + json.dumps({{"wall": best_wall, "cpu": best_cpu}}))
"""

EXPORT = _PRELUDE + r"""
import tempfile
from core.export import export_mix
from core.engine import render_stream
x = song(16, 180.0); tp, mp = params(16); stereo = np.ones(16, bool)
render_stream(x[:, :, :SR], stereo, tp, mp, SR)
out = os.path.join(tempfile.mkdtemp(), "mix.wav")
w0, c0 = time.perf_counter(), time.process_time()
export_mix(x, tp, mp, SR, out, bits="24", stereo=stereo, measure=False)
wall, cpu = time.perf_counter() - w0, time.process_time() - c0
print("RESULT " + json.dumps({{"wall": wall, "cpu": cpu}}))
"""

SESSION = _PRELUDE + r"""
import threading
from core.playback import Player
# as the app does (core.playback.use_short_switch_interval; older code set 1 ms in Player()): the busy
# thread below stands for its GUI thread
try:
    from core.playback import use_short_switch_interval
    use_short_switch_interval()
except ImportError:
    sys.setswitchinterval(0.001)
x = song(16, {seconds}); tp, mp = params(16); stereo = np.ones(16, bool)
tp[:, TRACK.index("gain_db")] = -12.0
B = {block}
rec_t, rec_v, nrec = np.zeros(1 << 20), np.zeros(1 << 20, np.int64), [0]

class Recorded(Player):  # notes when each block reached the device and which edit it carried
    def callback(self, outdata, frames, time_info, status):
        Player.callback(self, outdata, frames, time_info, status)
        i = nrec[0]
        rec_t[i], rec_v[i] = time.perf_counter(), self.played_version
        nrec[0] = i + 1

p = Recorded(x, stereo, SR, tp, mp, block=B, audio={real})
p.wait_idle(30)
p.set_loop(0, x.shape[-1])
stop = False

def device():  # a sound card's thread: one callback per block period, on time
    buf = np.zeros((B, 2), np.float32)
    period = B / SR
    nxt = time.perf_counter()
    while not stop:
        p.callback(buf, B, None, None)
        nxt += period
        time.sleep(max(0.0, nxt - time.perf_counter()))

def busy(seconds):  # the GUI thread redrawing: pure Python holding the GIL
    end = time.perf_counter() + seconds
    acc = 0
    while time.perf_counter() < end:
        acc += sum(i * i for i in range(2000))
    return acc

p.play()
if not {real}:
    dev = threading.Thread(target=device, daemon=True)
    dev.start()
while nrec[0] < 50:  # the stream has started
    time.sleep(0.01)
changes = []  # (time, version)
t_end = time.perf_counter() + {duration}
k = 0
while time.perf_counter() < t_end:
    t = k % 16
    if k % 3 == 0:
        key, value = "eq_band2_gain_db", rng.uniform(-12, 12)  # a strip is filtered again
    else:
        key, value = "gain_db", rng.uniform(-24, 0)  # re-mix only
    if hasattr(p, "set_value"):  # one control, as the app sends it
        snap = p.set_value(t, key, value)
    else:  # code before the narrow edit path: the whole console
        tp2 = p.snapshot.track.copy()
        tp2[t, TRACK.index(key)] = value
        snap = p.set_params(tp2)
    changes.append((time.perf_counter(), snap.version))
    k += 1
    busy(0.1)
stop = True
if not {real}:
    dev.join()
underruns, xruns = p.underruns, p.device_underflows
p.close()
played_t, played_v = rec_t[:nrec[0]], rec_v[:nrec[0]]
lat = []
for t0, v in changes:
    hit = np.flatnonzero((played_t >= t0) & (played_v >= v))
    if hit.size:
        lat.append(played_t[hit[0]] - t0)
lat = np.array(lat) * 1000
print("RESULT " + json.dumps({{"median_ms": float(np.median(lat)), "p95_ms": float(np.percentile(lat, 95)),
                               "p99_ms": float(np.percentile(lat, 99)),
                               "max_ms": float(lat.max()), "changes": len(changes), "underruns": underruns,
                               "xruns": xruns, "callbacks": int(nrec[0])}}))
"""


def _run(code: str, timeout: int = 1800) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"benchmark case failed:\n{proc.stderr[-2000:]}")


def _fmt(code: str, root: Path = ROOT, **kw) -> str:
    return code.format(root=str(root), **kw)


def _session_rows(before: Path | None, block: int) -> list[tuple]:
    """The 60 s edit session with this code, and with ``before`` (another checkout) in the same run."""
    rows = []
    runs = [("ours", ROOT)] + ([("before", before)] if before is not None else [])
    res = {name: _run(_fmt(SESSION, root=root, seconds=20.0, duration=60.0, real=False, block=block),
                      timeout=600) for name, root in runs}
    res = {name: res[name] for name in sorted(res)}  # 'before' first
    lat = "; ".join(f"{name}: {r['median_ms']:.1f} / {r['p99_ms']:.1f} / {r['max_ms']:.1f} ms"
                    for name, r in res.items())
    und = "; ".join(f"{name}: {r['underruns']} in {r['callbacks']} callbacks" for name, r in res.items())
    rows.append((f"edit-to-output latency, {block}-sample blocks, 44.1 kHz, simulated device "
                 "(median / p99 / max)", "p99 <= 15 ms, max <= 25 ms (256-sample blocks)", lat))
    rows.append((f"60 s session, {block}-sample blocks, an edit every 100 ms, GUI thread busy: underruns "
                 "(simulated device)", "target 0", und))
    return rows


def main(argv: list[str] | None = None) -> None:
    import argparse
    import os

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--session-only", action="store_true", help="only the live edit session")
    ap.add_argument("--block", type=int, default=256, help="frames per block in the session (default 256)")
    ap.add_argument("--before", type=Path, help="another checkout to measure in the same run (e.g. "
                    "'git archive main core | tar -x -C /tmp/before')")
    args = ap.parse_args(argv)
    rows = []
    seconds = 60.0
    for cores in (1, 2) if not args.session_only else ():
        r = _run(_fmt(RTF, cores=cores, seconds=seconds, repeats=3))
        cpu = f"{seconds / r['cpu']:.0f}x " + ("per CPU-second" if cores > 1 else "CPU time")
        rows.append((f"engine real-time factor, 16 stereo stems, {cores} core{'s' * (cores > 1)} "
                     f"(random parameters, {seconds:.0f} s song)",
                     "authors: 3.1x (57.6 s for 180 s) / target >= 100x",
                     f"{seconds / r['wall']:.0f}x wall ({cpu})"))
    if not args.session_only:
        r = _run(_fmt(EXPORT))
        rows.append(("export 16 stereo stems x 180 s to 24-bit WAV (render + write)",
                     "authors: 57.6 s / <= 2 s",
                     f"{r['wall']:.2f} s wall ({r['cpu']:.2f} s CPU)"))
    rows += _session_rows(args.before, args.block)
    from core.playback import check_audio

    if not args.session_only and check_audio() is None:
        r = _run(_fmt(SESSION, seconds=20.0, duration=60.0, real=True, block=args.block), timeout=600)
        rows.append(("the same 60 s session on a real output stream (median / p99 / max latency)",
                     "<= 30 ms", f"{r['median_ms']:.1f} / {r['p99_ms']:.1f} / {r['max_ms']:.1f} ms"))
        rows.append(("the same session on a real output stream: underruns / device xruns", "target 0",
                     f"{r['underruns']} / {r['xruns']} in {r['callbacks']} callbacks"))
    print(f"## Streaming console (this machine; load average {os.getloadavg()[0]:.1f})\n")
    print(table(rows, ("metric", "reference (authors / target)", "ours")))


if __name__ == "__main__":
    main()
