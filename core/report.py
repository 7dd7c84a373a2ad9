"""Match report: how a mix differs from a reference, as an engineer reads it (no Qt, no torch).

Both signals are loudness-matched (integrated loudness, BS.1770) and analysed over the whole song or a
region:

* **tonal balance**: long-term average power of mid ``(L+R)/2`` and side ``(L-R)/2`` in 1/3-octave bands
  (ISO centres 31.5 Hz-16 kHz), the mix's level minus the reference's per band (dB; positive = the mix
  has too much there). The *tonal deviation* is the RMS of the mid difference over the bands
  40 Hz-16 kHz; the *worst octave* is the largest absolute difference over the nine octaves
  40 Hz-16 kHz (three 1/3-octave bands each). A side band more than :data:`WIDTH_FLOOR_DB` below the
  mid band reads as that floor (a mono signal's side is silence, not -inf);
* **width**: side/mid power ratio (dB, floored at :data:`WIDTH_FLOOR_DB`) in low / mid / high ranges;
  the *width deviation* is the RMS of the three differences;
* **dynamics**: crest factor (median over 1 s windows of peak/RMS, dB), loudness range (EBU Tech 3342:
  10th-95th percentile of gated short-term loudness, LU) and peak-to-loudness ratio (true peak minus
  integrated loudness, dB); the *dynamics deviation* is the RMS of the three differences;
* **low end** (mid power below 100 Hz relative to the whole, dB) and **air** (above 10 kHz).

A mono signal (one channel) is read as played on both speakers (L = R), so a mono file and its
two-channel copy read the same.

Band definitions (:func:`band_matrix`) are shared with refinement's objective (:mod:`core.objective`),
so the fit and the report measure the same thing.
"""

from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

try:  # the torch-free loudness meter, where the tree has it (core.features re-exports it with torch)
    from .meter import integrated_lufs, short_term_lufs, true_peak_dbtp, window_stats
except ImportError:
    from .features import integrated_lufs, short_term_lufs, true_peak_dbtp

    window_stats = None

#: Exact 1/3-octave centres (base 2, 1 kHz reference) for the ISO nominal bands 31.5 Hz ... 16 kHz.
CENTRES_HZ = 1000.0 * 2.0 ** (np.arange(-15, 13) / 3.0)
#: ISO nominal labels of :data:`CENTRES_HZ`.
NOMINAL_HZ = (31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500, 630, 800, 1000, 1250, 1600,
              2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000, 12500, 16000)


def short_hz(hz: float) -> str:
    """A frequency in compact form for tables and labels: ``"63"``, ``"2.5k"``."""
    return f"{hz / 1000:g}k" if hz >= 1000 else f"{hz:g}"


def band_label(hz: float) -> str:
    """A band's nominal centre as engineers write it: ``"63 Hz"``, ``"2.5 kHz"``."""
    return f"{hz / 1000:g} kHz" if hz >= 1000 else f"{hz:g} Hz"


EDGES_HZ = np.append(CENTRES_HZ * 2.0 ** (-1 / 6), CENTRES_HZ[-1] * 2.0 ** (1 / 6))
#: Bands in the tonal metrics: 40 Hz ... 16 kHz (the 31.5 Hz band is shown, not scored).
SCORED = slice(1, len(CENTRES_HZ))
#: Octaves of the worst-octave metric: three scored 1/3-octave bands each, (index of first band, label).
OCTAVES = tuple((1 + 3 * k, f"{short_hz(NOMINAL_HZ[1 + 3 * k])}-{short_hz(NOMINAL_HZ[3 + 3 * k])} Hz")
                for k in range(9))
#: Width ranges (Hz) of the side/mid ratio.
WIDTH_RANGES = (("low", 20.0, 250.0), ("mid", 250.0, 4000.0), ("high", 4000.0, 16000.0))
#: Side/mid ratios below this read as this (a mono signal has -inf); dB.
WIDTH_FLOOR_DB = -30.0
#: Band levels more than this below the loudest band read as that floor, so an empty band is not -inf; dB.
BAND_FLOOR_DB = 60.0
LOW_END_HZ = 100.0
AIR_HZ = 10000.0


def analysis_fft(sample_rate: int) -> int:
    """FFT length of the long-term spectra: about 2.7 Hz resolution (the 31.5 Hz band spans ~7 Hz)."""
    return 16384 if sample_rate <= 48000 else 32768


@functools.lru_cache(maxsize=16)
def band_matrix(sample_rate: int, n_fft: int) -> np.ndarray:
    """``(n_fft // 2 + 1, len(CENTRES_HZ))`` weights: power in band b = ``power_bins @ M[:, b]``.

    Each bin stands for the frequency interval ``[f - df/2, f + df/2)``; its weight in a band is the
    fraction of that interval inside the band's edges, so the bands partition the spectrum exactly
    (a bin on an edge is shared) and a band narrower than a bin still gets its share.
    """
    df = sample_rate / n_fft
    f = np.arange(n_fft // 2 + 1) * df
    lo, hi = f - df / 2, f + df / 2
    m = np.zeros((f.size, len(CENTRES_HZ)))
    for b in range(len(CENTRES_HZ)):
        overlap = np.minimum(hi, EDGES_HZ[b + 1]) - np.maximum(lo, EDGES_HZ[b])
        m[:, b] = np.clip(overlap / df, 0.0, 1.0)
    return m


def cross_spectra(x: np.ndarray, sample_rate: int, n_fft: int | None = None, chunk: int = 8) -> np.ndarray:
    """Long-term average power spectra of a stereo signal: ``(3, F)`` = (|L|^2, |R|^2, Re L R*).

    Welch's method: Hann windows of ``n_fft`` samples every ``n_fft / 2``, the mean of the periodograms,
    scaled so that ``sum`` over bins of ``|L|^2`` is the mean square of L (Parseval, one-sided). A signal
    shorter than one window is zero-padded to it. ``chunk`` frames are transformed at a time, so memory
    stays small for whole songs. x: (2, T) or (1, T) / (T,) (mono reads as L = R).
    """
    x = np.asarray(x)
    x = x if x.dtype.kind == "f" else x.astype(np.float64)  # float32 stays: each frame is windowed in float64
    x = np.stack([x, x]) if x.ndim == 1 else (np.concatenate([x, x]) if x.shape[0] == 1 else x[:2])
    n_fft = n_fft or analysis_fft(sample_rate)
    hop = n_fft // 2
    if x.shape[1] < n_fft:
        x = np.pad(x, ((0, 0), (0, n_fft - x.shape[1])))
    window = np.hanning(n_fft + 1)[:-1]
    n_frames = 1 + (x.shape[1] - n_fft) // hop
    acc = np.zeros((3, n_fft // 2 + 1))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft, axis=-1)[:, ::hop]  # a view, no copy
    for start in range(0, n_frames, chunk):
        spec = np.fft.rfft(frames[:, start:start + chunk] * window, axis=-1)  # (2, frames, F)
        acc[0] += np.sum(spec[0].real ** 2 + spec[0].imag ** 2, axis=0)
        acc[1] += np.sum(spec[1].real ** 2 + spec[1].imag ** 2, axis=0)
        acc[2] += np.sum((spec[0] * spec[1].conj()).real, axis=0)
    scale = 2.0 / (n_frames * np.sum(window ** 2) * n_fft)
    acc *= scale
    acc[:, 0] *= 0.5
    acc[:, -1] *= 0.5
    return acc


def mid_side(cross: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Power spectra of mid ``(L+R)/2`` and side ``(L-R)/2`` from :func:`cross_spectra`."""
    ll, rr, lr = cross
    return (ll + rr + 2 * lr) / 4.0, np.maximum((ll + rr - 2 * lr) / 4.0, 0.0)


def band_levels_db(power: np.ndarray, sample_rate: int, n_fft: int) -> np.ndarray:
    """Power per 1/3-octave band (dB) of a power spectrum on the rfft grid of ``n_fft``."""
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(power @ band_matrix(sample_rate, n_fft) + 1e-30)


def _floored(levels: np.ndarray) -> np.ndarray:
    return np.maximum(levels, levels[SCORED].max() - BAND_FLOOR_DB)


def _side_floored(a: Analysis) -> np.ndarray:
    """Side levels, none below :data:`WIDTH_FLOOR_DB` under the (floored) mid band."""
    return np.maximum(a.side_db, _floored(a.mid_db) + WIDTH_FLOOR_DB)


def octave_levels_db(levels: np.ndarray) -> np.ndarray:
    """Nine octave levels (dB) from 1/3-octave levels, 40 Hz-16 kHz (power sums of three bands)."""
    p = 10.0 ** (np.asarray(levels) / 10.0)
    return np.array([10.0 * np.log10(p[i:i + 3].sum()) for i, _ in OCTAVES])


def smooth_bands(diff: np.ndarray) -> np.ndarray:
    """A difference curve smoothed over neighbouring bands (1-2-1), for display."""
    d = np.asarray(diff, dtype=np.float64)
    padded = np.concatenate([d[:1], d, d[-1:]])
    return (padded[:-2] + 2 * padded[1:-1] + padded[2:]) / 4.0


def _range_power(power: np.ndarray, sample_rate: int, n_fft: int, lo: float, hi: float) -> float:
    f = np.arange(power.shape[-1]) * sample_rate / n_fft
    return float(power[(f >= lo) & (f < hi)].sum())


def width_db(mid: np.ndarray, side: np.ndarray, sample_rate: int, n_fft: int) -> dict[str, float]:
    """Side/mid power ratio (dB, floored) in each of :data:`WIDTH_RANGES`."""
    out = {}
    for name, lo, hi in WIDTH_RANGES:
        m = _range_power(mid, sample_rate, n_fft, lo, hi)
        s = _range_power(side, sample_rate, n_fft, lo, hi)
        out[name] = WIDTH_FLOOR_DB if m <= 0 or s <= 0 else max(WIDTH_FLOOR_DB, 10 * math.log10(s / m))
    return out


def _power_to_lufs(z):
    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(z)


def loudness_range(x: np.ndarray | None, sample_rate: int, short_term: np.ndarray | None = None) -> float:
    """Loudness range (EBU Tech 3342), LU: spread of the gated short-term loudness (10th-95th percentile).
    ``short_term``: the short-term loudness of ``x`` every 0.1 s when already measured."""
    st = short_term_lufs(x, sample_rate, hop_s=0.1) if short_term is None else np.asarray(short_term)
    st = st[st > -70.0]
    if st.size < 2:
        return 0.0
    mean_power = np.mean(10.0 ** ((st + 0.691) / 10.0))
    st = st[st > float(_power_to_lufs(mean_power)) - 20.0]
    if st.size < 2:
        return 0.0
    lo, hi = np.percentile(st, [10, 95])
    return float(hi - lo)


def crest_factor_db(x: np.ndarray, sample_rate: int, window_s: float = 1.0) -> float:
    """Median over ``window_s`` windows (those within 20 dB of the loudest) of peak/RMS, dB."""
    x = np.asarray(x)
    x = x[None] if x.ndim == 1 else x
    w = max(1, int(window_s * sample_rate))
    if window_stats is not None:  # one compiled pass, no float64 copy of the song
        peak, power = window_stats(x, w)
        rms = np.sqrt(power)
    else:
        x = x.astype(np.float64)
        n = x.shape[1] // w
        frames = x[:, None, :] if n == 0 else x[:, : n * w].reshape(x.shape[0], n, w)
        peak = np.abs(frames).max(axis=(0, 2))
        rms = np.sqrt(np.mean(np.square(frames), axis=(0, 2)))
    ok = rms > 0
    if not ok.any():
        return 0.0
    rms_db = 20 * np.log10(rms[ok])
    keep = rms_db > rms_db.max() - 20.0
    return float(np.median(20 * np.log10(peak[ok][keep] / rms[ok][keep])))


@dataclass
class Analysis:
    """Everything the report compares, for one loudness-normalised signal."""

    lufs: float  # before normalisation
    mid_db: np.ndarray  # (bands,) 1/3-octave levels of mid, at the common loudness
    side_db: np.ndarray
    width_db: dict[str, float]
    crest_db: float
    lra_lu: float
    plr_db: float
    low_end_db: float
    air_db: float


def analyse(x: np.ndarray, sample_rate: int, target_lufs: float = -16.0,
            region: tuple[float, float] | None = None, measured: dict | None = None) -> Analysis:
    """Measure ``x`` (C, T) as the report reads it; band levels as if ``x`` were at ``target_lufs``.

    A mono ``x`` ((T,) or (1, T)) is read as L = R. region: (start, end) seconds to measure. Raises
    ValueError (a short message, no file name) for a silent signal or a region outside it.
    ``measured``: what the caller has already measured of the same signal (no region), reused instead
    of measured again: ``cross`` (:func:`cross_spectra` of ``x`` as given, stereo), and of the stereo
    signal ``lufs`` (integrated), ``true_peak_dbtp``, ``short_term`` (LUFS every 0.1 s). Otherwise the
    spectra are computed on a worker thread while this one measures the rest.
    """
    x = np.asarray(x)
    x = x if x.dtype.kind == "f" else x.astype(np.float64)
    x = x[None] if x.ndim == 1 else x
    if x.shape[0] == 1:
        x = np.concatenate([x, x])
    if region is not None:
        start, end = (float(t) for t in region)
        duration = x.shape[1] / sample_rate
        if not (0.0 <= start < end):
            raise ValueError(f"region {start:g}-{end:g} s: the start must be >= 0 and before the end")
        if start >= duration:
            raise ValueError(f"region {start:g}-{end:g} s starts after the end ({duration:.1f} s)")
        x = x[:, int(round(start * sample_rate)):int(round(end * sample_rate))]
    known = {} if measured is None or region is not None else measured
    lufs = known["lufs"] if "lufs" in known else integrated_lufs(x, sample_rate)
    if not math.isfinite(lufs):
        raise ValueError("silent (no loudness to match)")
    gain_db = target_lufs - lufs
    n_fft = analysis_fft(sample_rate)
    with ThreadPoolExecutor(1) as worker:
        job = None if "cross" in known else worker.submit(cross_spectra, x, sample_rate, n_fft)
        crest = crest_factor_db(x, sample_rate)
        lra = loudness_range(x, sample_rate, known.get("short_term"))
        peak = known["true_peak_dbtp"] if "true_peak_dbtp" in known else true_peak_dbtp(x, sample_rate)
        mid, side = mid_side(known["cross"] if job is None else job.result())
    mid, side = mid * 10 ** (gain_db / 10), side * 10 ** (gain_db / 10)
    total = float(mid.sum()) or 1e-30
    with np.errstate(divide="ignore"):
        low = 10 * math.log10(max(_range_power(mid, sample_rate, n_fft, 0.0, LOW_END_HZ), 1e-30) / total)
        air = 10 * math.log10(max(_range_power(mid, sample_rate, n_fft, AIR_HZ, sample_rate), 1e-30) / total)
    return Analysis(
        lufs=float(lufs), mid_db=band_levels_db(mid, sample_rate, n_fft),
        side_db=band_levels_db(side, sample_rate, n_fft), width_db=width_db(mid, side, sample_rate, n_fft),
        crest_db=crest, lra_lu=lra, plr_db=float(peak - lufs), low_end_db=float(low), air_db=float(air))


@dataclass
class MatchReport:
    """How a mix differs from a reference (mix minus reference, loudness-matched)."""

    centres_hz: np.ndarray
    mid_diff_db: np.ndarray  # per 1/3-octave band
    side_diff_db: np.ndarray
    octave_diff_db: np.ndarray  # per octave of OCTAVES
    tonal_deviation_db: float
    worst_octave_db: float
    worst_octave: str
    width_mix_db: dict[str, float]
    width_ref_db: dict[str, float]
    width_deviation_db: float
    dynamics_mix: dict[str, float]
    dynamics_ref: dict[str, float]
    dynamics_deviation: float
    low_end_db: tuple[float, float]  # (mix, reference)
    air_db: tuple[float, float]
    mix_lufs: float
    ref_lufs: float
    region: tuple[float, float] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def smoothed_mid_diff_db(self) -> np.ndarray:
        return smooth_bands(self.mid_diff_db)

    def worst_bands(self, count: int = 3, min_db: float = 0.0) -> list[tuple[float, float]]:
        """The scored 1/3-octave bands farthest from the reference: [(nominal Hz, mid diff dB)], worst first.

        One band per region: after a band is taken, its neighbours within 2/3 octave are not, so three
        bands of the same bump do not crowd out a second problem. Bands within ``min_db`` of the
        reference are left out; at most ``count`` bands.
        """
        d = self.mid_diff_db[SCORED]
        nominal = NOMINAL_HZ[SCORED]
        taken: list[int] = []
        for i in np.argsort(-np.abs(d), kind="stable"):
            if len(taken) == count or abs(d[i]) <= min_db:
                break
            if all(abs(int(i) - j) > 2 for j in taken):
                taken.append(int(i))
        return [(float(nominal[i]), float(d[i])) for i in taken]

    def worst_bands_text(self, count: int = 3, min_db: float = 1.0) -> str:
        """``"too much 63 Hz (+5.2 dB), too little 2.5 kHz (-3.1 dB)"``; ``"none"`` when all are close."""
        parts = [f"too {'much' if v > 0 else 'little'} {band_label(hz)} ({v:+.1f} dB)"
                 for hz, v in self.worst_bands(count, min_db)]
        return ", ".join(parts) or f"none (every band within {min_db:g} dB)"

    def summary(self) -> dict[str, float]:
        """The headline numbers (dB unless named otherwise)."""
        return {"tonal_deviation_db": self.tonal_deviation_db, "worst_octave_db": self.worst_octave_db,
                "width_deviation_db": self.width_deviation_db, "dynamics_deviation": self.dynamics_deviation}

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, np.ndarray):
                d[k] = [round(float(a), 3) for a in v]
        d["nominal_hz"] = list(NOMINAL_HZ)
        d["octaves"] = [label for _, label in OCTAVES]
        d["worst_bands"] = self.worst_bands()
        return d


def _rms(values) -> float:
    v = np.asarray(list(values), dtype=np.float64)
    return float(np.sqrt(np.mean(v ** 2))) if v.size else 0.0


def compare_analyses(mix: Analysis, ref: Analysis, region=None) -> MatchReport:
    """The report from two :func:`analyse` results (made at the same ``target_lufs``)."""
    mid = _floored(mix.mid_db) - _floored(ref.mid_db)
    side = _side_floored(mix) - _side_floored(ref)
    octs = octave_levels_db(mix.mid_db) - octave_levels_db(ref.mid_db)
    worst = int(np.argmax(np.abs(octs)))
    dyn_m = {"crest_db": mix.crest_db, "lra_lu": mix.lra_lu, "plr_db": mix.plr_db}
    dyn_r = {"crest_db": ref.crest_db, "lra_lu": ref.lra_lu, "plr_db": ref.plr_db}
    return MatchReport(
        centres_hz=CENTRES_HZ.copy(), mid_diff_db=mid, side_diff_db=side, octave_diff_db=octs,
        tonal_deviation_db=_rms(mid[SCORED]), worst_octave_db=float(abs(octs[worst])),
        worst_octave=OCTAVES[worst][1], width_mix_db=mix.width_db, width_ref_db=ref.width_db,
        width_deviation_db=_rms(mix.width_db[k] - ref.width_db[k] for k in mix.width_db),
        dynamics_mix=dyn_m, dynamics_ref=dyn_r, dynamics_deviation=_rms(dyn_m[k] - dyn_r[k] for k in dyn_m),
        low_end_db=(mix.low_end_db, ref.low_end_db), air_db=(mix.air_db, ref.air_db),
        mix_lufs=mix.lufs, ref_lufs=ref.lufs, region=region)


def compare(mix: np.ndarray, reference: np.ndarray, sample_rate: int,
            region: tuple[float, float] | None = None, reference_region: tuple[float, float] | None = None
            ) -> MatchReport:
    """The match report of ``mix`` against ``reference`` (each (C, T) at ``sample_rate``).

    region: part of the mix to analyse (seconds); reference_region: part of the reference (default:
    the whole reference). Raises ValueError naming "mix" or "reference" for a silent signal or a
    region outside it.
    """
    analyses = []
    for name, x, r in (("mix", mix, region), ("reference", reference, reference_region)):
        try:
            analyses.append(analyse(x, sample_rate, region=r))
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return compare_analyses(*analyses, region)
