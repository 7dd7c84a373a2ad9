"""Controller speed and memory: forward pass and one training step, on the CPU.

Each case runs in a fresh subprocess so that its peak resident memory (``ru_maxrss``) is its own. The
peak includes the Python interpreter, torch and the input audio, i.e. what a user's process needs.

    python benchmarks/bench_model.py                       # default config, Markdown table
    python benchmarks/bench_model.py --set embed_dim=512 --set cnn_channels=32,64,128,256
    python benchmarks/bench_model.py --threads 1

Random weights and noise inputs (the cost does not depend on either).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import fields

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Authors' model on this 2-core CPU, 16 tracks x 10 s + reference (DESIGN.md section 5).
AUTHORS = {"forward_s": 31.8, "peak_gb": 11.5}
TARGET = {"forward_s": 1.0, "peak_gb": 1.5}

CASES = [
    # name, kind, batch, tracks, channels per track
    ("forward, 8 mono tracks", "forward", 1, 8, 1),
    ("forward, 16 mono tracks", "forward", 1, 16, 1),
    ("forward, 16 stereo tracks", "forward", 1, 16, 2),
    ("train step, batch 4 x 8 mono tracks", "train", 4, 8, 1),
]


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def _parse_overrides(items: list[str]) -> dict:
    from core.model import ModelConfig

    types = {f.name: f.type for f in fields(ModelConfig)}
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in types:
            raise SystemExit(f"unknown config field '{key}'")
        if key == "cnn_channels":
            out[key] = tuple(int(v) for v in value.split(","))
        elif "int" in str(types[key]):
            out[key] = int(value)
        else:
            out[key] = float(value)
    return out


def run_case(kind: str, batch: int, tracks: int, channels: int, seconds: float, repeats: int,
             overrides: dict) -> dict:
    """Runs in the child process; returns timings and memory."""
    import torch

    from core.model import MixController, ModelConfig

    torch.manual_seed(0)
    config = ModelConfig(**overrides)
    model = MixController(config)
    T = int(seconds * config.sample_rate)
    shape = (batch, tracks, T) if channels == 1 else (batch, tracks, 2, T)
    x = torch.randn(shape) * 0.01
    ref = torch.randn(batch, 2, T) * 0.1
    baseline_gb = _peak_rss_gb()

    if kind == "forward":
        model.eval()

        def step():
            with torch.inference_mode():
                model(x, ref)
    else:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        target_t = torch.rand(batch, tracks, config_width("track"))
        target_m = torch.rand(batch, config_width("master"))

        def step():
            opt.zero_grad(set_to_none=True)
            tu, mu = model(x, ref)
            loss = torch.nn.functional.mse_loss(tu, target_t) + torch.nn.functional.mse_loss(mu, target_m)
            loss.backward()
            opt.step()

    t0 = time.perf_counter()
    step()
    cold = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {
        "cold_s": cold,
        "median_s": statistics.median(times),
        "best_s": min(times),
        "cpu_s": statistics.median(cpu),
        "peak_gb": _peak_rss_gb(),
        "baseline_gb": baseline_gb,
        "threads": torch.get_num_threads(),
        "params": model.num_parameters(),
    }


def config_width(which: str) -> int:
    from core.params import MASTER, TRACK

    return (TRACK if which == "track" else MASTER).n_predicted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="ModelConfig override")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    overrides = _parse_overrides(args.set)

    if args.child:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        kind, batch, tracks, channels = json.loads(args.child)
        result = run_case(kind, batch, tracks, channels, args.seconds, args.repeats, overrides)
        print(json.dumps(result))
        return

    from core.model import ModelConfig

    print(f"config: {ModelConfig(**overrides)}")
    print(f"CPU cores: {os.cpu_count()}, audio {args.seconds:g} s at 44.1 kHz + stereo reference, "
          f"median of {args.repeats} after one cold call\n")
    rows = []
    for name, kind, batch, tracks, channels in CASES:
        case = json.dumps([kind, batch, tracks, channels])
        cmd = [sys.executable, os.path.abspath(__file__), "--child", case,
               "--seconds", str(args.seconds), "--repeats", str(args.repeats), "--threads", str(args.threads)]
        cmd += [a for s in args.set for a in ("--set", s)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            raise SystemExit(f"case '{name}' failed:\n{proc.stderr}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append((name, r))

    params = rows[0][1]["params"]
    print(f"parameters: {params:,} ({params / 1e6:.2f} M), torch threads: {rows[0][1]['threads']}\n")
    print("| case | cold call (s) | median (s) | best (s) | CPU time (s) | peak RSS (GB) "
          "| above setup (GB) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['cold_s']:.3f} | {r['median_s']:.3f} | {r['best_s']:.3f} | {r['cpu_s']:.3f} | "
              f"{r['peak_gb']:.2f} | {r['peak_gb'] - r['baseline_gb']:.2f} |")
    a, t = AUTHORS, TARGET
    print(f"| authors' model, forward, 16 tracks | | {a['forward_s']:.1f} | | | {a['peak_gb']:.1f} | |")
    print(f"| target, forward, 16 tracks | | <= {t['forward_s']:.1f} | | | <= {t['peak_gb']:.1f} | |")
    print("\nWall times vary with other load on the machine; 'best' is the least disturbed call and 'CPU "
          "time' the work done (summed over threads).")


if __name__ == "__main__":
    main()
