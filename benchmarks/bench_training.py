"""Training step time on the CPU (methods 1 and 2), and model prediction on a whole song.

    python benchmarks/bench_training.py [--steps 3] [--threads 2] [--set embed_dim=128 ...]

A training step is the whole thing the loop does per batch: model forward, console render, loss,
backward through console and model, AdamW update. Each case runs in a fresh process (peak memory is
its own), after one untimed warm-up step (kernel compilation, allocator). Audio is synthetic (made
in the process); costs do not depend on content. Wall times vary with other load on the machine.
"""

from __future__ import annotations

import argparse
import json

from _util import run_case, table

_SETUP = r"""
import numpy as np, torch
from core.model import MixController, ModelConfig
from training.methods import Example, collate, method1_example, training_loss
SR = 44100
rng = np.random.default_rng(0)
torch.manual_seed(0)
cfg = ModelConfig(**{overrides!r})
model = MixController(cfg).train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

def tracks(n, seconds):
    t = np.arange(int(SR * seconds)) / SR
    gate = [0.5 + 0.5 * np.sign(np.sin(2 * np.pi * (k + 1) * t)) for k in range(n)]
    x = np.stack([np.sin(2 * np.pi * 55 * (k + 1) * t) * gate[k] + 0.1 * rng.standard_normal(t.size)
                  for k in range(n)])
    return np.repeat((0.05 * x)[:, None], 2, axis=1).astype(np.float32)

def batch(method, b, n, seconds):
    if method == 1:
        return collate([method1_example(tracks(n, 2 * seconds), np.zeros(n, bool), SR, rng)
                        for _ in range(b)])
    ref = (0.1 * rng.standard_normal((2, int(SR * seconds)))).astype(np.float32)
    return collate([Example(tracks(n, seconds), np.zeros(n, bool), ref) for _ in range(b)])

def step(bt, method):
    opt.zero_grad(set_to_none=True)
    loss, _ = training_loss(model, bt, method, SR)
    loss.backward()
    opt.step()

bt = batch({method}, {batch}, {tracks}, {seconds})
step(bt, {method})  # warm-up
"""

_TRAIN_BODY = "for _ in range({steps}):\n    step(bt, {method})"

_PREDICT_SETUP = r"""
import numpy as np, torch
from core.audio_io import Audio
from core.model import MixController, ModelConfig
from core.predict import predict
from core.prepare import from_audio
SR = 44100
rng = np.random.default_rng(0)
model = MixController(ModelConfig(**{overrides!r})).eval()
n = int(SR * {seconds})
stems = [Audio((0.05 * rng.standard_normal((1, n))).astype(np.float32), SR, f"s{{i}}.wav", f"s{{i}}", SR, n)
         for i in range({tracks})]
ref = (0.1 * rng.standard_normal((2, n))).astype(np.float32)
inputs = from_audio(stems, SR, Audio(ref, SR, "ref.wav", "ref", SR, n))
predict(inputs, model)  # warm-up
"""

CASES = [
    # name, method, batch, tracks, seconds
    ("method 2, batch 4 x 8 tracks x 4 s", 2, 4, 8, 4.0),
    ("method 2, batch 4 x 16 tracks x 4 s", 2, 4, 16, 4.0),
    ("method 1, batch 4 x 8 tracks x 4 s", 1, 4, 8, 4.0),
]


def _overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = [int(v) for v in value.split(",")] if key == "cnn_channels" else json.loads(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3, help="timed steps per case")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="ModelConfig override")
    ap.add_argument("--no-predict", action="store_true", help="skip the whole-song prediction case")
    args = ap.parse_args()
    overrides = _overrides(args.set)

    rows = []
    for name, method, b, n, seconds in CASES:
        setup = _SETUP.format(overrides=overrides, method=method, batch=b, tracks=n, seconds=seconds)
        r = run_case(setup, _TRAIN_BODY.format(steps=args.steps, method=method), threads=args.threads)
        per = r["seconds"] / args.steps
        rows.append((name, f"{per:.2f}", f"{b / per:.1f}", f"{r['peak_mb'] / 1024:.2f}"))
    if not args.no_predict:
        setup = _PREDICT_SETUP.format(overrides=overrides, tracks=16, seconds=180.0)
        r = run_case(setup, "predict(inputs, model)", threads=args.threads)
        rows.append(("predict (model only), 16 stems x 180 s", f"{r['seconds']:.2f}", "-",
                     f"{r['peak_mb'] / 1024:.2f}"))
    described = overrides or "none (default ModelConfig)"
    print(f"model config overrides: {described}; torch threads {args.threads}\n")
    print(table(rows, ("case", "s/step", "examples/s", "peak RSS (GB)")))


if __name__ == "__main__":
    main()
