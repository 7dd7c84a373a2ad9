"""Learning curves of a training run as a PNG, from its ``log.csv``.

    python -m training.curves runs/NAME/log.csv [--out runs/NAME/curve.png]

Two panels, one above the other: the training loss (log scale; black: all steps, blue: method-1
steps, red: method-2 steps of a mixed run) and the validation score of the held-out quality cases
(green, a mark per validation; :func:`training.evaluate.validation_score`, lower is better, 1 = on
issue 9's model-only targets), both against the step. matplotlib draws them when it is installed;
otherwise a small built-in rasteriser writes the same curves with numpy and zlib (no axis text beyond
the ranges printed in the corners), so no plotting package is needed.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

#: (column, colour) drawn in the loss panel and the validation panel.
LOSS_SERIES = (("loss", (40, 40, 40)), ("loss_m1", (31, 119, 180)), ("loss_m2", (214, 39, 40)))
VAL_SERIES = (("val_score", (44, 160, 44)),)


def read_log(path: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{column: (steps, values)} of every numeric column, blank cells left out."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no rows")
    out = {}
    for key in rows[0]:
        if key == "step":
            continue
        pts = [(float(r["step"]), float(r[key])) for r in rows if r.get(key) not in (None, "")]
        pts = [(s, v) for s, v in pts if math.isfinite(v)]
        if pts:
            out[key] = (np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
    return out


# --- a tiny rasteriser -----------------------------------------------------------------------------------

_FONT = {  # 3x5 glyphs, rows top to bottom, 3 bits each
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1), "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1),
    "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7), ".": (0, 0, 0, 0, 2), "-": (0, 0, 7, 0, 0),
    "e": (0, 7, 7, 4, 7), " ": (0, 0, 0, 0, 0), "+": (0, 2, 7, 2, 0),
}


def _text(img: np.ndarray, x: int, y: int, s: str, scale: int = 2) -> None:
    for ch in s:
        rows = _FONT.get(ch, _FONT[" "])
        for r, bits in enumerate(rows):
            for c in range(3):
                if bits >> (2 - c) & 1:
                    img[y + r * scale:y + (r + 1) * scale, x + c * scale:x + (c + 1) * scale] = 0
        x += 4 * scale


def _line(img: np.ndarray, x0, y0, x1, y1, colour) -> None:
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.linspace(x0, x1, n).round().astype(int)
    ys = np.linspace(y0, y1, n).round().astype(int)
    h, w, _ = img.shape
    for dx in (0, 1):
        ok = (xs + dx >= 0) & (xs + dx < w) & (ys >= 0) & (ys < h)
        img[ys[ok], xs[ok] + dx] = colour


def _panel(img, box, series, x_range, log_y=False, marks=False) -> None:
    x0, y0, x1, y1 = box
    img[y0, x0:x1] = img[y1, x0:x1] = 0
    img[y0:y1, x0] = img[y0:y1, x1] = 0
    values = [v for _, (_, v), _ in series]
    if not values:
        return
    allv = np.concatenate(values)
    if log_y:
        allv = np.log10(np.maximum(allv, 1e-12))
    lo, hi = float(allv.min()), float(allv.max())
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    sx = (x1 - x0 - 8) / max(x_range[1] - x_range[0], 1e-12)
    for _, (steps, v), colour in series:
        vv = np.log10(np.maximum(v, 1e-12)) if log_y else v
        px = x0 + 4 + (steps - x_range[0]) * sx
        py = y1 - 4 - (vv - lo) / (hi - lo) * (y1 - y0 - 8)
        if marks:
            for x, y in zip(px.round().astype(int), py.round().astype(int), strict=True):
                img[max(0, y - 2):y + 3, max(0, x - 2):x + 3] = colour
        for i in range(len(px) - 1):
            _line(img, px[i], py[i], px[i + 1], py[i + 1], colour)
    show = (lambda z: f"{10 ** z:.3g}") if log_y else (lambda z: f"{z:.3g}")
    _text(img, x0 + 6, y0 + 6, show(hi))
    _text(img, x0 + 6, y1 - 16, show(lo))


def _write_png(path: Path, img: np.ndarray) -> None:
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    blob = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)


def plot_log(log_csv: str | os.PathLike, out_png: str | os.PathLike, width: int = 900, height: int = 600
             ) -> Path:
    """Draw ``log_csv``'s curves into ``out_png`` (written atomically); returns the path."""
    data = read_log(log_csv)
    out_png = Path(out_png)
    loss = [(k, data[k], c) for k, c in LOSS_SERIES if k in data]
    val = [(k, data[k], c) for k, c in VAL_SERIES if k in data]
    if not loss:
        raise ValueError(f"{log_csv}: no loss column")
    steps = np.concatenate([s for _, (s, _), _ in loss + val])
    x_range = (float(steps.min()), float(steps.max()))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        img = np.full((height, width, 3), 255, np.uint8)
        split = height * 3 // 5
        _panel(img, (50, 10, width - 10, split - 10), loss, x_range, log_y=True)
        _panel(img, (50, split + 10, width - 10, height - 30), val, x_range, marks=True)
        _text(img, 50, height - 22, f"{x_range[0]:g}")
        _text(img, width - 10 - 4 * 2 * len(f"{x_range[1]:g}"), height - 22, f"{x_range[1]:g}")
        _write_png(out_png, img)
        return out_png
    fig, (a, b) = plt.subplots(2, 1, figsize=(width / 100, height / 100), sharex=True,
                               gridspec_kw={"height_ratios": [3, 2]})
    for k, (s, v), c in loss:
        a.plot(s, v, color=np.array(c) / 255, label=k)
    a.set_yscale("log")
    a.set_ylabel("training loss")
    a.legend()
    for k, (s, v), c in val:
        b.plot(s, v, "o-", color=np.array(c) / 255, label=k)
    b.set_ylabel("validation score (1 = targets)")
    b.set_xlabel("step")
    fig.tight_layout()
    tmp = out_png.with_name(f".{out_png.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out_png)
    return out_png


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.curves", description=__doc__.splitlines()[0])
    ap.add_argument("log", type=Path, help="a run's log.csv")
    ap.add_argument("--out", type=Path, help="PNG to write (default: curve.png beside the log)")
    args = ap.parse_args(argv)
    try:
        path = plot_log(args.log, args.out or args.log.with_name("curve.png"))
    except (OSError, ValueError, KeyError) as exc:
        print(f"curves: error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
