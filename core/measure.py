"""What the app's analysis panel shows, computed without Qt (run on a worker thread).

The mix is rendered by the streaming console (what playback plays and export writes) over the loop
region, or the whole song. Loudness and true peak are measured as they are; the style terms (AF
features, spectrum) are measured after loudness-normalising both signals to the reference level the
matching uses, so the comparison is about balance, tone, dynamics and image, not about level.
Each measurement also carries the match report's analysis (:func:`core.report.analyse`), so the
panel's tonal-difference curve and report terms come from the same numbers as ``stylemix compare``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .engine import render_stream
from .meter import af_features_np, integrated_lufs, loudness_normalize, true_peak_dbtp
from .prepare import REFERENCE_LUFS
from .report import Analysis as BandAnalysis
from .report import MatchReport, compare_analyses
from .report import analyse as report_analyse

SPECTRUM_NPERSEG = 8192
SPECTRUM_POINTS = 160
SMOOTH_OCTAVES = 6  # 1/6-octave smoothing
SPECTRUM_F_LO, SPECTRUM_F_HI = 20.0, 20000.0
ENVELOPE_POINTS = 2000


@dataclass
class Measurement:
    """Loudness (LUFS), true peak (dBTP), AF features and a smoothed spectrum (dB) of one signal."""

    lufs: float
    true_peak: float
    crest_db: float
    width: float
    imbalance: float
    bark: np.ndarray  # (2, 24) log magnitude, mid and side, after loudness normalisation
    freqs: np.ndarray  # (SPECTRUM_POINTS,) Hz
    spectrum_db: np.ndarray  # (SPECTRUM_POINTS,) mid channel, after loudness normalisation
    bands: BandAnalysis | None = None  # the match report's analysis at REFERENCE_LUFS; None for silence


def _spectrum(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Welch spectrum of the mid signal with 1/SMOOTH_OCTAVES-octave smoothing, as engineers read it."""
    mid = 0.5 * (x[0] + x[1])
    nper = min(SPECTRUM_NPERSEG, max(256, mid.shape[0]))
    from scipy.signal import welch

    f, p = welch(mid, sr, nperseg=nper)
    centres = np.geomspace(SPECTRUM_F_LO, min(SPECTRUM_F_HI, sr / 2), SPECTRUM_POINTS)
    half = 2.0 ** (0.5 / SMOOTH_OCTAVES)
    lo, hi = np.searchsorted(f, centres / half), np.searchsorted(f, centres * half)
    sums = np.concatenate([[0.0], np.cumsum(p)])
    count = hi - lo
    # where a band holds no FFT bin (lowest frequencies), read the spectrum between bins instead
    power = np.where(count > 0, (sums[hi] - sums[lo]) / np.maximum(count, 1), np.interp(centres, f, p))
    return centres, 10 * np.log10(np.maximum(power, 1e-20))


def measure(x: np.ndarray, sr: int) -> Measurement:
    """Measure a stereo signal ``x`` (2, T)."""
    x = np.asarray(x, dtype=np.float32)
    try:
        bands = report_analyse(x, sr, target_lufs=REFERENCE_LUFS)
    except ValueError:  # silence (or nothing to measure)
        bands = None
    if bands is not None:  # the report measured loudness and true peak already
        lufs, peak = bands.lufs, bands.plr_db + bands.lufs
        norm = x * np.float32(10.0 ** ((REFERENCE_LUFS - lufs) / 20.0))
    else:
        lufs, peak = integrated_lufs(x, sr), true_peak_dbtp(x, sr)
        norm, _ = loudness_normalize(x, sr, REFERENCE_LUFS) if math.isfinite(lufs) else (x, 0.0)
    f = af_features_np(norm, sr)
    freqs, spec = _spectrum(norm, sr)
    return Measurement(lufs, peak, float(np.mean(f["crest_db"])), float(f["width"]), float(f["imbalance"]),
                       np.asarray(f["bark"]), freqs, spec, bands)


def spectral_distance(a: Measurement, b: Measurement) -> float:
    """Mean squared difference of the bark spectra (the AF loss's spectral term, unweighted)."""
    return float(np.mean((a.bark - b.bark) ** 2))


def region_frames(region: tuple[float, float] | None, sr: int, total: int) -> tuple[int, int]:
    if region is None:
        return 0, total
    a = int(max(0, min(total, round(region[0] * sr))))
    b = int(max(a + 1, min(total, round(region[1] * sr))))
    return a, b


def render(inputs, params, mute=None, solo=None, region=None, fx_mute: bool = False) -> np.ndarray:
    """The mix over ``region`` (seconds) by the streaming console: (2, T) float32 (``fx_mute``: the FX
    return muted)."""
    a, b = region_frames(region, inputs.sample_rate, inputs.frames)
    return render_stream(inputs.section(a, b), inputs.stereo, params.tracks, params.master,
                         inputs.sample_rate, mute=mute, solo=solo, fx_mute=fx_mute, threads=2)


def envelope(x: np.ndarray, points: int = ENVELOPE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Min/max overview of a signal's mid channel: two (points,) arrays."""
    mid = 0.5 * (x[0] + x[1]) if x.ndim == 2 else x
    n = max(1, mid.shape[0] // points)
    usable = mid[: (mid.shape[0] // n) * n].reshape(-1, n)
    return usable.min(axis=1), usable.max(axis=1)


def loudness_gain_db(a: np.ndarray, b: np.ndarray, sr: int) -> float:
    """Gain (dB) that brings ``b`` to the integrated loudness of ``a`` (0 when either is silent)."""
    la, lb = integrated_lufs(a, sr), integrated_lufs(b, sr)
    return float(la - lb) if math.isfinite(la) and math.isfinite(lb) else 0.0


@dataclass
class Analysis:
    """One analysis pass: the mix over ``region`` (seconds, None = whole song) against the reference."""

    mix: Measurement
    reference: Measurement | None
    envelope_lo: np.ndarray
    envelope_hi: np.ndarray
    duration: float
    region: tuple[float, float] | None
    match: MatchReport | None = None  # mix vs reference; None without a reference or for silence

    def terms(self) -> list[tuple[str, str, float, float | None]]:
        """Rows for the bar display: (name, unit, mix value, reference value or None)."""
        m, r = self.mix, self.reference
        rows = [("Loudness", "LUFS", m.lufs, r.lufs if r else None),
                ("Crest factor", "dB", m.crest_db, r.crest_db if r else None),
                ("Width", "", m.width, r.width if r else None),
                ("Imbalance", "", m.imbalance, r.imbalance if r else None)]
        if r is not None:
            rows.append(("Spectral distance", "", spectral_distance(m, r), 0.0))
        return rows


def analyse(inputs, params, mute, solo, region, reference: Measurement | None,
            fx_mute: bool = False) -> Analysis:
    """Render the whole mix (for the overview), measure the region, pair with the reference's measurement
    (``fx_mute``: the FX return muted, as heard)."""
    full = render(inputs, params, mute, solo, None, fx_mute=fx_mute)
    lo, hi = envelope(full)
    a, b = region_frames(region, inputs.sample_rate, inputs.frames)
    mix = measure(full[:, a:b], inputs.sample_rate)
    match = None
    if reference is not None and mix.bands is not None and reference.bands is not None:
        match = compare_analyses(mix.bands, reference.bands, region)
    return Analysis(mix, reference, lo, hi, inputs.duration, region, match)
