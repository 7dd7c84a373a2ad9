"""Shared benchmark helpers: run a case in a fresh process and report wall time and peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_RUNNER = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads({threads})
{setup}
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
{body}
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("RESULT " + json.dumps({{"seconds": seconds, "peak_mb": peak / 1024, "base_mb": base / 1024}}))
"""


def run_case(setup: str, body: str, threads: int = 2, timeout: int = 1800) -> dict:
    """Run ``setup`` then time ``body`` in a new Python process; peak RSS covers the whole process."""
    code = _RUNNER.format(root=str(ROOT), threads=threads, setup=setup, body=body)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"benchmark case failed:\n{proc.stderr[-2000:]}")


def table(rows: list[tuple], header: tuple) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
