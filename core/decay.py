"""How the FX return's reverb decays: energy decay curves and RT60, broadband and per band.

:func:`decay_curves` builds the reverb's impulse response for a setting of its controls (the one the
console and the streaming engine play, :func:`core.reverb.impulse_response_np`), splits it into three
bands (low below 500 Hz, mid 500 Hz-4 kHz, high above 4 kHz; fourth-order Butterworth filters) and
gives for each band and for the whole response:

* the **energy decay curve** by Schroeder backward integration: ``EDC(t) = 10 log10(sum_{n >= t} e[n] /
  sum_n e[n])`` with ``e`` the energy of both channels, in dB (0 dB at t = 0; flat through the
  pre-delay, then falling);
* the **RT60** read from that curve the way T30 is read: a least-squares line through the curve from
  -5 dB to -35 dB, extrapolated to a 60 dB fall (:func:`rt60_from_edc`).

The curves ignore the return level (each is relative to its own energy): they show the shape of the
decay, which the sends and the return level only scale. Everything here is numpy/scipy (no Qt, no
torch); an 8 s response at 44.1 kHz takes some tens of milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.signal

from .reverb import impulse_response_np

#: The bands of the decay view: (name, low edge Hz or None, high edge Hz or None).
DECAY_BANDS = (("broadband", None, None), ("low", None, 500.0), ("mid", 500.0, 4000.0),
               ("high", 4000.0, None))
#: The T30 fit range on the energy decay curve, dB.
FIT_DB = (-5.0, -35.0)
#: Curves are reported down to this level (the Schroeder integral falls to -inf at the very end).
FLOOR_DB = -100.0
_FILTER_ORDER = 4


@dataclass(frozen=True)
class DecayCurve:
    """One band's energy decay curve and the RT60 read from it."""

    band: str  # "broadband", "low", "mid" or "high"
    lo_hz: float | None
    hi_hz: float | None
    times_s: np.ndarray  # (P,) seconds from the impulse
    edc_db: np.ndarray  # (P,) dB, 0 at t = 0, not below FLOOR_DB
    rt60_s: float  # NaN when the curve does not fall through the fit range

    @property
    def label(self) -> str:
        """``"broadband"``, ``"low < 500 Hz"``, ``"mid 500 Hz-4 kHz"``, ``"high > 4 kHz"``."""
        if self.lo_hz is None and self.hi_hz is None:
            return self.band
        if self.lo_hz is None:
            return f"{self.band} < {_hz(self.hi_hz)}"
        if self.hi_hz is None:
            return f"{self.band} > {_hz(self.lo_hz)}"
        return f"{self.band} {_hz(self.lo_hz)}-{_hz(self.hi_hz)}"


def _hz(f: float) -> str:
    return f"{f / 1000:g} kHz" if f >= 1000 else f"{f:g} Hz"


def energy_decay_curve(x: np.ndarray) -> np.ndarray:
    """Schroeder backward integral of ``x`` (``(T,)`` or ``(C, T)``: the channels' energies add), in dB
    relative to the total energy: ``(T,)``, 0 dB at the first sample, ``-inf`` where nothing is left.

    Raises ValueError for an empty or silent signal (no decay to read)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(f"energy decay curve needs a (T,) or (C, T) signal, got shape {x.shape}")
    energy = np.square(x) if x.ndim == 1 else np.square(x).sum(0)
    remaining = np.cumsum(energy[::-1])[::-1]
    if not remaining[0] > 0 or not np.isfinite(remaining[0]):
        raise ValueError("energy decay curve of a silent (or non-finite) signal")
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(remaining / remaining[0])


def rt60_from_edc(edc_db: np.ndarray, sample_rate: float, fit_db: tuple[float, float] = FIT_DB) -> float:
    """RT60 (s) from an energy decay curve: the least-squares line through the samples between
    ``fit_db[0]`` and ``fit_db[1]`` dB (after the curve first falls below the upper one), extrapolated
    to 60 dB. NaN when the curve never reaches the lower end or does not fall there."""
    edc_db = np.asarray(edc_db, dtype=np.float64)
    top, bottom = fit_db
    below_top = np.flatnonzero(edc_db <= top)
    below_bottom = np.flatnonzero(edc_db <= bottom)
    if below_top.size == 0 or below_bottom.size == 0:
        return math.nan
    i0, i1 = int(below_top[0]), int(below_bottom[0])
    if i1 - i0 < 2:
        return math.nan
    t = np.arange(i0, i1) / float(sample_rate)
    slope = np.polyfit(t, edc_db[i0:i1], 1)[0]
    return -60.0 / slope if slope < 0 else math.nan


def band_signal(x: np.ndarray, sample_rate: int, lo_hz: float | None, hi_hz: float | None) -> np.ndarray:
    """``x`` (``(..., T)``) through the band's Butterworth filter (causal, order 4 per edge); the signal
    itself for the broadband band."""
    nyq = sample_rate / 2.0
    if lo_hz is not None and lo_hz >= nyq:
        raise ValueError(f"band from {lo_hz:g} Hz is above the Nyquist frequency ({nyq:g} Hz)")
    if hi_hz is not None and hi_hz >= nyq:
        hi_hz = None
    if lo_hz is None and hi_hz is None:
        return np.asarray(x, dtype=np.float64)
    if lo_hz is None:
        sos = scipy.signal.butter(_FILTER_ORDER, hi_hz, "lowpass", fs=sample_rate, output="sos")
    elif hi_hz is None:
        sos = scipy.signal.butter(_FILTER_ORDER, lo_hz, "highpass", fs=sample_rate, output="sos")
    else:
        sos = scipy.signal.butter(_FILTER_ORDER, (lo_hz, hi_hz), "bandpass", fs=sample_rate, output="sos")
    return scipy.signal.sosfilt(sos, np.asarray(x, dtype=np.float64), axis=-1)


def decay_curves(params, sample_rate: int, points: int = 400) -> list[DecayCurve]:
    """The reverb's energy decay curves for a setting of its controls, one per :data:`DECAY_BANDS`.

    Args:
        params: ``(len(RETURN),)`` physical values in :data:`core.params.RETURN` order (clipped to
            their ranges, as the renderers clip them).
        sample_rate: Hz.
        points: each curve is returned at about this many evenly spaced times (the RT60 is read from
            the full-resolution curve).

    Returns:
        A :class:`DecayCurve` per band, broadband first; times from 0 to the end of the impulse
        response (pre-delay plus the decay time).
    """
    h = impulse_response_np(params, sample_rate)  # (2, L)
    if h.ndim != 2:
        raise ValueError("decay_curves takes one setting of the reverb, not a batch")
    step = max(1, h.shape[-1] // max(1, int(points)))
    idx = np.arange(0, h.shape[-1], step)
    out = []
    for band, lo, hi in DECAY_BANDS:
        edc = energy_decay_curve(band_signal(h, sample_rate, lo, hi))
        rt60 = rt60_from_edc(edc, sample_rate)
        out.append(DecayCurve(band, lo, hi, idx / float(sample_rate), np.maximum(edc[idx], FLOOR_DB),
                              float(rt60)))
    return out
