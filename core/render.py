"""Whole-song rendering and the output stage shared by ``mix``, ``render`` and export.

The output stage matches loudness with the master fader (so a saved parameter set reproduces the
output) and then keeps the true peak under a ceiling with a transparent look-ahead limiter. Rendering
is offline, so the look-ahead reads the future directly: the output stays sample-aligned with the
stems (no latency).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .features import db_to_amp, integrated_lufs, true_peak_dbtp
from .paramfile import MixParams
from .params import MASTER

LIMITER_LOOKAHEAD_MS = 1.5
LIMITER_RELEASE_MS = 60.0
_OVERSAMPLE = 4


def render_mix(inputs, params: MixParams, engine: str = "stream") -> np.ndarray:
    """Render the whole song: (2, T) float32. ``engine`` picks the renderer."""
    if engine == "stream":
        from .engine import render_stream

        return render_stream(inputs.stems, inputs.stereo, params.tracks, params.master, inputs.sample_rate)
    if engine != "torch":
        raise ValueError(f"unknown engine '{engine}'")
    import torch

    from .console import render_long

    with torch.no_grad():
        mix = render_long(
            torch.from_numpy(inputs.stems).unsqueeze(0),
            torch.from_numpy(params.tracks).float().unsqueeze(0),
            torch.from_numpy(params.master).float().unsqueeze(0),
            inputs.sample_rate,
            stereo=torch.from_numpy(np.asarray(inputs.stereo, bool)).unsqueeze(0),
        )
    return mix[0].numpy().astype(np.float32)


def _true_peak_envelope(x: np.ndarray) -> np.ndarray:
    """Per-sample peak of the 4x oversampled signal (max over channels): (T,)."""
    from scipy.signal import resample_poly

    up = np.abs(resample_poly(x, _OVERSAMPLE, 1, axis=-1)).max(axis=0)
    t = x.shape[-1]
    return np.maximum(up[: t * _OVERSAMPLE].reshape(t, _OVERSAMPLE).max(axis=1), np.abs(x).max(axis=0))


@njit(cache=True)
def _release(gain: np.ndarray, coef: float) -> np.ndarray:
    """Instant attack, one-pole release towards 1, never above the requested gain."""
    out = np.empty_like(gain)
    g = 1.0
    for i in range(gain.shape[0]):
        g = g + coef * (1.0 - g)
        if gain[i] < g:
            g = gain[i]
        out[i] = g
    return out


def limit(x: np.ndarray, sample_rate: int, ceiling_dbtp: float) -> np.ndarray:
    """Look-ahead true-peak limiter: (C, T) -> (C, T), peaks at most ``ceiling_dbtp``.

    Gain: required reduction from the oversampled peak envelope, held over the look-ahead window
    (running minimum), released with a one-pole of LIMITER_RELEASE_MS, then smoothed by a box filter
    of the look-ahead length so that it is already down when the peak arrives. Below the ceiling the
    signal passes unchanged.
    """
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ceiling = db_to_amp(ceiling_dbtp) * db_to_amp(-0.05)
    env = _true_peak_envelope(x.astype(np.float64))
    need = np.minimum(1.0, ceiling / np.maximum(env, 1e-12))
    if need.min() >= 1.0:
        return x
    look = max(1, int(round(LIMITER_LOOKAHEAD_MS * 1e-3 * sample_rate)))
    # running min over [n - look, n + look]: the box filter below spreads it by +-look/2
    held = minimum_filter1d(need, size=2 * look + 1, mode="nearest")
    coef = 1.0 - math.exp(-1.0 / (LIMITER_RELEASE_MS * 1e-3 * sample_rate))
    released = _release(held, coef)
    smooth = uniform_filter1d(released, size=look, mode="nearest")
    gain = np.minimum(smooth, need)  # the box filter must never let a peak through
    return (x * gain[None, :]).astype(x.dtype)


def output_stage(mix: np.ndarray, sample_rate: int, params: MixParams, loudness_lufs: float | None,
                 ceiling_dbtp: float | None) -> tuple[np.ndarray, MixParams]:
    """Match ``loudness_lufs`` (via the master fader) and limit to ``ceiling_dbtp``.

    Returns the output (2, T) and the parameters with the master fader that produced it.
    """
    params = params.copy()
    gi = MASTER.index("gain_db")
    fader = MASTER["gain_db"]
    out = mix
    if loudness_lufs is not None:
        level = integrated_lufs(mix, sample_rate)
        if math.isfinite(level):
            # a few passes: the limiter takes a little loudness away from peaky material
            for _ in range(5):
                new_gain = fader.clip(params.master[gi] + loudness_lufs - level)
                out = mix * np.float32(db_to_amp(new_gain - params.master[gi]))
                if ceiling_dbtp is not None:
                    out = limit(out, sample_rate, ceiling_dbtp)
                got = integrated_lufs(out, sample_rate)
                if abs(got - loudness_lufs) < 0.05:
                    break
                level -= loudness_lufs - got
            params.master[gi] = new_gain
            mix = out
    if ceiling_dbtp is not None and true_peak_dbtp(mix, sample_rate) > ceiling_dbtp:
        mix = limit(mix, sample_rate, ceiling_dbtp)
    return mix.astype(np.float32), params
