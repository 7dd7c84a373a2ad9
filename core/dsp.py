"""Console constants and the EQ design in NumPy (no torch).

The streaming engine, playback and the output stage need the EQ's biquads and the compressor's
constants, but not torch: importing torch costs seconds, and ``stylemix render`` / ``analyze`` /
``params`` never need it. The torch console (:mod:`core.console`) designs the same biquads
differentiably; :func:`eq_coeffs` follows the same RBJ Audio-EQ-Cookbook formulas in float64 and
agrees with it to the last few ulps (a test holds them together).
"""

from __future__ import annotations

import math

import numpy as np

from .params import EQ_BAND_KEYS, EQ_BAND_TYPES, TRACK, Schema

#: Time constant of the compressor's RMS detector, ms (``ms2coef`` convention: 10-90 % rise time).
RMS_MS = 5.0

#: Floor added to the detector power before taking its level, so silence reads -100 dB, not -inf.
LEVEL_FLOOR = 1e-10

#: Highest centre frequency the EQ designs, as a fraction of the sample rate (only binds below
#: about 36 kHz, where a band's range could reach Nyquist and the RBJ design breaks down).
MAX_FREQ_FRACTION = 0.45


#: The EQ controls, as a sub-schema of the track strip (same keys on the master bus), in the order
#: :func:`eq_coeffs` takes them.
EQ = Schema("eq", tuple(p for p in TRACK if p.group == "eq"))


def rbj_biquad(gain_db, freq_hz, q, sample_rate: float, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """One RBJ cookbook biquad per element: ``(b, a)`` each ``(..., 3)`` float64 with ``a[..., 0] == 1``.

    ``kind``: ``"low_shelf"``, ``"high_shelf"``, ``"peaking"`` or ``"high_pass"`` (gain ignored).
    """
    gain_db, freq_hz, q = (np.asarray(v, dtype=np.float64) for v in (gain_db, freq_hz, q))
    amp = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * (freq_hz / float(sample_rate))
    alpha = np.sin(w0) / (2.0 * q)
    cos_w0 = np.cos(w0)
    sqrt_a = np.sqrt(amp)
    if kind == "high_shelf":
        b0 = amp * ((amp + 1) + (amp - 1) * cos_w0 + 2 * sqrt_a * alpha)
        b1 = -2 * amp * ((amp - 1) + (amp + 1) * cos_w0)
        b2 = amp * ((amp + 1) + (amp - 1) * cos_w0 - 2 * sqrt_a * alpha)
        a0 = (amp + 1) - (amp - 1) * cos_w0 + 2 * sqrt_a * alpha
        a1 = 2 * ((amp - 1) - (amp + 1) * cos_w0)
        a2 = (amp + 1) - (amp - 1) * cos_w0 - 2 * sqrt_a * alpha
    elif kind == "low_shelf":
        b0 = amp * ((amp + 1) - (amp - 1) * cos_w0 + 2 * sqrt_a * alpha)
        b1 = 2 * amp * ((amp - 1) - (amp + 1) * cos_w0)
        b2 = amp * ((amp + 1) - (amp - 1) * cos_w0 - 2 * sqrt_a * alpha)
        a0 = (amp + 1) + (amp - 1) * cos_w0 + 2 * sqrt_a * alpha
        a1 = -2 * ((amp - 1) + (amp + 1) * cos_w0)
        a2 = (amp + 1) + (amp - 1) * cos_w0 - 2 * sqrt_a * alpha
    elif kind == "high_pass":
        b0 = (1 + cos_w0) / 2
        b1 = -(1 + cos_w0)
        b2 = (1 + cos_w0) / 2
        a0 = 1 + alpha
        a1 = -2 * cos_w0
        a2 = 1 - alpha
    elif kind == "peaking":
        b0 = 1 + alpha * amp
        b1 = -2 * cos_w0
        b2 = 1 - alpha * amp
        a0 = 1 + (alpha / amp)
        a1 = -2 * cos_w0
        a2 = 1 - (alpha / amp)
    else:
        raise ValueError(f"unknown biquad kind {kind!r}")
    b = np.stack([b0, b1, b2], axis=-1) / a0[..., None]
    a = np.stack([a0, a1, a2], axis=-1) / a0[..., None]
    return b, a


def eq_coeffs(eq_params, sample_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """The six EQ biquads: ``eq_params (..., 18)`` (gain, freq, Q per band, schema order) ->
    ``(b, a)`` each ``(..., 6, 3)`` float64, ``a[..., 0] == 1``. Same design as
    :func:`core.console.biquad_coeffs`."""
    p = np.asarray(eq_params, dtype=np.float64)
    if p.shape[-1] != 3 * len(EQ_BAND_KEYS):
        raise ValueError(f"EQ parameters have {p.shape[-1]} values, expected {3 * len(EQ_BAND_KEYS)}")
    f_max = MAX_FREQ_FRACTION * float(sample_rate)
    bs, as_ = [], []
    for k, kind in enumerate(EQ_BAND_TYPES):
        gain, freq, q = p[..., 3 * k], np.minimum(p[..., 3 * k + 1], f_max), p[..., 3 * k + 2]
        b, a = rbj_biquad(gain, freq, q, sample_rate, kind)
        bs.append(b)
        as_.append(a)
    return np.stack(bs, axis=-2), np.stack(as_, axis=-2)
