"""Loudness, true peak and levels in NumPy with compiled kernels (no torch).

ITU-R BS.1770-4 / EBU R 128 loudness (integrated, short-term, momentary), true peak (4x oversampled
below 96 kHz), sample peak, frame activity and the Diff-MST audio features of one signal, for meters,
import trims, the output stage and ``stylemix analyze``. :mod:`core.features` re-exports them next to
the differentiable (torch) features.

The sample loops are numba kernels compiled with ``nogil`` (threads run them in parallel) and cached
on disk. They work on chunks with their state carried, so a whole song never needs a float64 copy:
:class:`LoudnessMeter` filters chunks in order and keeps only one value per 100 ms, and
:func:`peak_envelope` / :func:`true_peak_dbtp` oversample chunks with a few samples of context.
pyloudnorm's K-weighting design is the reference; tests compare against pyloudnorm and the EBU Tech
3341 cases.
"""

from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit, prange

# --- bark scale --------------------------------------------------------------------------------------

BARK_BANDS = 24
BARK_F_MIN_HZ = 20.0
BARK_F_MAX_HZ = 20000.0
BARK_N_FFT = 32768
BARK_HOP = 8192

def hz_to_bark(f_hz):
    """Traunmüller (1990) bark value of a frequency in Hz: ``26.81 f / (1960 + f) - 0.53``."""
    f = np.asarray(f_hz, dtype=np.float64)
    return 26.81 * f / (1960.0 + f) - 0.53


def bark_to_hz(z):
    """Inverse of :func:`hz_to_bark` (Hz)."""
    z = np.asarray(z, dtype=np.float64)
    return 1960.0 * (z + 0.53) / (26.28 - z)


def bark_band_points_hz(
    n_bands: int = BARK_BANDS, f_min: float = BARK_F_MIN_HZ, f_max: float = BARK_F_MAX_HZ
) -> np.ndarray:
    """Corner frequencies (Hz) of the triangular bands, shape (n_bands + 2,).

    The points are equally spaced on the bark scale. Band ``i`` rises from ``pts[i]``, peaks at
    ``pts[i + 1]`` (its centre) and falls to zero at ``pts[i + 2]``; ``pts[0] = f_min``, ``pts[-1] = f_max``.
    """
    z = np.linspace(hz_to_bark(f_min), hz_to_bark(f_max), n_bands + 2)
    pts = bark_to_hz(z)
    pts[0], pts[-1] = f_min, f_max  # exact despite round-off
    return pts


def bark_band_centres_hz(n_bands: int = BARK_BANDS) -> np.ndarray:
    """Centre frequency (Hz) of each bark band, shape (n_bands,)."""
    return bark_band_points_hz(n_bands)[1:-1]


@functools.lru_cache(maxsize=8)
def _bark_filterbank_np(sample_rate: int, n_fft: int, n_bands: int) -> np.ndarray:
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    z = hz_to_bark(freqs)
    zp = hz_to_bark(bark_band_points_hz(n_bands))
    lo, mid, hi = zp[:-2, None], zp[1:-1, None], zp[2:, None]
    rise = (z[None, :] - lo) / (mid - lo)
    fall = (hi - z[None, :]) / (hi - mid)
    fb = np.clip(np.minimum(rise, fall), 0.0, None)
    fb[:, (freqs < BARK_F_MIN_HZ) | (freqs > BARK_F_MAX_HZ)] = 0.0
    fb.setflags(write=False)
    return fb


def bark_filterbank(sample_rate: int, n_fft: int = BARK_N_FFT, n_bands: int = BARK_BANDS) -> np.ndarray:
    """Triangular bark filterbank, shape (n_bands, n_fft // 2 + 1), peak weight 1, read-only.

    Triangles are linear in bark; bins below 20 Hz or above 20 kHz get no weight. Bands above the
    Nyquist frequency (low sample rates) are empty. Built once per (sample_rate, n_fft, n_bands).
    """
    return _bark_filterbank_np(int(sample_rate), int(n_fft), int(n_bands))



# --- dB helpers -------------------------------------------------------------------------------------


def db_to_amp(db):
    """dB -> linear amplitude, ``10 ** (db / 20)``."""
    return np.power(10.0, np.asarray(db, dtype=np.float64) / 20.0)


def amp_to_db(amp, floor_db: float = -math.inf):
    """Linear amplitude -> dB, ``20 log10(|amp|)``, never below ``floor_db`` (zero gives -inf by default)."""
    a = np.abs(np.asarray(amp, dtype=np.float64))
    with np.errstate(divide="ignore"):
        return np.maximum(20.0 * np.log10(a), floor_db)


def _threads() -> int:
    try:
        return max(1, min(8, len(os.sched_getaffinity(0))))
    except (AttributeError, OSError):
        return max(1, min(8, os.cpu_count() or 1))


# --- loudness (BS.1770-4) ---------------------------------------------------------------------------

LUFS_ABS_GATE = -70.0
LUFS_REL_GATE = -10.0
_CHANNEL_GAINS = (1.0, 1.0, 1.0, 1.41, 1.41)  # BS.1770 order: L, R, C, Ls, Rs
_PARALLEL_MIN = 1 << 20  # frames: below this, one thread is quicker than starting others


def _as_channels(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] > len(_CHANNEL_GAINS):
        raise ValueError(f"expected audio shaped (C, T) with C <= 5, got {x.shape}")
    return x


@functools.lru_cache(maxsize=16)
def k_weighting_sos(sample_rate: int) -> np.ndarray:
    """K-weighting (pre-filter shelf, then RLB high-pass) as second-order sections ``(2, 6)``
    ``[b0 b1 b2 1 a1 a2]``: pyloudnorm's design (RBJ shelf of +4 dB at 1500 Hz, Q 1/sqrt 2; RBJ
    high-pass at 38 Hz, Q 0.5), without importing it (a test holds them equal)."""
    from .dsp import rbj_biquad

    stages = (rbj_biquad(4.0, 1500.0, 1.0 / math.sqrt(2.0), sample_rate, "high_shelf"),
              rbj_biquad(0.0, 38.0, 0.5, sample_rate, "high_pass"))
    sos = np.stack([np.concatenate([b, a]) for b, a in stages])
    sos.setflags(write=False)
    return sos


@njit(nogil=True, cache=True, error_model="numpy")
def _k_hops(x, sos, z, acc, hop, out):
    """K-weight one channel ``x (n,)`` (state ``z (2, 2)``, carried) and sum its power over
    consecutive ``hop``-sample segments. ``acc = [partial sum, samples in it]`` carries an unfinished
    segment between calls. Writes finished segment sums to ``out`` and returns how many."""
    b10, b11, b12, a11, a12 = sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 4], sos[0, 5]
    b20, b21, b22, a21, a22 = sos[1, 0], sos[1, 1], sos[1, 2], sos[1, 4], sos[1, 5]
    z1, z2, z3, z4 = z[0, 0], z[0, 1], z[1, 0], z[1, 1]
    s = acc[0]
    k = int(acc[1])
    m = 0
    for i in range(x.shape[0]):
        v = np.float64(x[i])
        u = b10 * v + z1
        z1 = b11 * v - a11 * u + z2
        z2 = b12 * v - a12 * u
        y = b20 * u + z3
        z3 = b21 * u - a21 * y + z4
        z4 = b22 * u - a22 * y
        s += y * y
        k += 1
        if k == hop:
            out[m] = s
            m += 1
            s = 0.0
            k = 0
    z[0, 0], z[0, 1], z[1, 0], z[1, 1] = z1, z2, z3, z4
    acc[0] = s
    acc[1] = k
    return m


class LoudnessMeter:
    """Integrated, momentary and short-term loudness of a signal fed in chunks, in order.

    Keeps the K-weighting filters' state and one channel-weighted power sum per 100 ms, so memory
    does not grow with the chunk size (8 bytes per 100 ms of audio). ``add`` takes ``(C, n)`` float
    chunks; channels are filtered in parallel threads when the chunk is long.
    """

    def __init__(self, sample_rate: int, channels: int, hop_s: float = 0.1):
        if not 1 <= channels <= len(_CHANNEL_GAINS):
            raise ValueError(f"loudness takes 1 to {len(_CHANNEL_GAINS)} channels, got {channels}")
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.hop = max(1, round(hop_s * self.sample_rate))
        self._sos = np.ascontiguousarray(k_weighting_sos(self.sample_rate))
        self._z = np.zeros((channels, 2, 2))
        self._acc = np.zeros((channels, 2))
        self._gains = np.asarray(_CHANNEL_GAINS[:channels], dtype=np.float64)
        self._parts: list[np.ndarray] = []
        self._frames = 0

    @property
    def frames(self) -> int:
        return self._frames

    def _channel(self, x, c, out):
        return _k_hops(x[c], self._sos, self._z[c], self._acc[c], self.hop, out)

    def add(self, x: np.ndarray, pool: ThreadPoolExecutor | None = None) -> None:
        x = _as_channels(x)
        if x.shape[0] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {x.shape[0]}")
        n = x.shape[1]
        if n == 0:
            return
        outs = np.zeros((self.channels, n // self.hop + 2))
        if pool is not None and self.channels > 1 and n >= _PARALLEL_MIN // 8:
            counts = list(pool.map(lambda c: self._channel(x, c, outs[c]), range(self.channels)))
        else:
            counts = [self._channel(x, c, outs[c]) for c in range(self.channels)]
        m = counts[0]
        self._parts.append(self._gains @ outs[:, :m])
        self._frames += n

    def hop_sums(self) -> np.ndarray:
        """Channel-weighted K-power summed over each finished hop, ``(frames // hop,)``."""
        return np.concatenate(self._parts) if self._parts else np.zeros(0)

    def _tail_power(self) -> float:
        return float(self._gains @ self._acc[:, 0])

    def windows(self, window_s: float) -> np.ndarray:
        """Mean K-power over whole ``window_s`` windows every hop; one window over everything if
        the signal is shorter than a window."""
        per = max(1, round(window_s * self.sample_rate / self.hop))
        sums = self.hop_sums()
        if self._frames < per * self.hop:
            if self._frames == 0:
                return np.zeros(1)
            return np.array([(sums.sum() + self._tail_power()) / self._frames])
        cs = np.concatenate([[0.0], np.cumsum(sums)])
        return np.maximum(cs[per:] - cs[:-per], 0.0) / (per * self.hop)

    def integrated(self, gain_db: float = 0.0) -> float:
        """Integrated loudness (gated), LUFS, of the signal scaled by ``gain_db``; -inf for silence."""
        return gated_lufs(self.windows(0.4) * 10.0 ** (gain_db / 10.0))

    def momentary(self, floor_lufs: float = -120.0) -> np.ndarray:
        return np.maximum(power_to_lufs(self.windows(0.4)), floor_lufs)

    def short_term(self, floor_lufs: float = -120.0) -> np.ndarray:
        return np.maximum(power_to_lufs(self.windows(3.0)), floor_lufs)


def power_to_lufs(z):
    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(z)


def gated_lufs(z: np.ndarray) -> float:
    """BS.1770-4 two-stage gating of 400 ms block powers ``z``; -inf when no block passes."""
    lk = power_to_lufs(z)
    above = lk > LUFS_ABS_GATE
    if not above.any():
        return -math.inf
    rel_gate = power_to_lufs(z[above].mean()) + LUFS_REL_GATE
    keep = above & (lk > rel_gate)
    return float(power_to_lufs(z[keep].mean()))


_CHUNK = 1 << 18
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor | None:
    global _POOL
    if _threads() < 2:
        return None
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_threads(), thread_name_prefix="stylemix-meter")
    return _POOL


def meter(x: np.ndarray, sample_rate: int, hop_s: float = 0.1) -> LoudnessMeter:
    """A :class:`LoudnessMeter` fed the whole of ``x`` (C, T)."""
    x = _as_channels(x)
    m = LoudnessMeter(sample_rate, x.shape[0], hop_s)
    pool = _pool() if x.shape[1] >= _PARALLEL_MIN else None
    for start in range(0, x.shape[1], 1 << 22):
        m.add(x[:, start:start + (1 << 22)], pool)
    return m


def gating_blocks(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean K-weighted power of each 400 ms gating block (100 ms hop)."""
    return meter(x, sample_rate).windows(0.4)


def integrated_lufs(x: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, gated), LUFS.

    x: (C, T) or (T,), C <= 5 in BS.1770 order. Returns ``-inf`` for silence (no block above the
    -70 LUFS absolute gate), so compare with ``math.isfinite`` before using it as a gain. A signal
    shorter than the 400 ms block is measured as one block over its whole length (no warning).
    """
    return gated_lufs(gating_blocks(x, sample_rate))


def loudness_normalize(x: np.ndarray, sample_rate: int, target_lufs: float) -> tuple[np.ndarray, float]:
    """Scale ``x`` (C, T) to ``target_lufs`` integrated loudness. Returns (y, gain_db).

    The gain is solved on the gated block powers (a few exact updates, since the gates move with
    the level), so the result hits the target to well under 0.01 LU. Silence is returned unchanged
    with gain 0 dB. ``y`` keeps ``x``'s float dtype.
    """
    z = gating_blocks(x, sample_rate)
    gain_db = 0.0
    for _ in range(4):
        level = gated_lufs(z * 10.0 ** (gain_db / 10.0))
        if not math.isfinite(level) or abs(level - target_lufs) < 1e-6:
            break
        gain_db += target_lufs - level
    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    return (x * db_to_amp(gain_db)).astype(dtype, copy=False), float(gain_db)


def _block_means(p: np.ndarray, window: int, hop: int) -> np.ndarray:
    if p.size < window:
        return np.array([p.mean()]) if p.size else np.zeros(1)
    cs = np.concatenate([[0.0], np.cumsum(p)])
    starts = np.arange((p.size - window) // hop + 1) * hop
    return np.maximum(cs[starts + window] - cs[starts], 0.0) / window


def _windowed_lufs(x, sample_rate, window_s, hop_s, floor_lufs) -> np.ndarray:
    hop = max(1, round(hop_s * sample_rate))
    window = round(window_s * sample_rate)
    if window % hop == 0:
        return np.maximum(power_to_lufs(meter(x, sample_rate, hop_s).windows(window_s)), floor_lufs)
    # a window that is not a whole number of hops: per-sample power (short signals, odd hops)
    import scipy.signal

    x = _as_channels(x).astype(np.float64)
    y = scipy.signal.sosfilt(np.array(k_weighting_sos(int(sample_rate))), x, axis=-1)
    p = np.asarray(_CHANNEL_GAINS[: x.shape[0]]) @ np.square(y)
    return np.maximum(power_to_lufs(_block_means(p, window, hop)), floor_lufs)


def momentary_lufs(
    x: np.ndarray, sample_rate: int, hop_s: float = 0.1, floor_lufs: float = -120.0
) -> np.ndarray:
    """Momentary loudness (400 ms windows, ungated), LUFS, shape (n,).

    Value ``k`` covers samples ``[k hop, k hop + 0.4 s)``; only whole windows (one value over the
    whole signal if it is shorter). Silence reads ``floor_lufs``.
    """
    return _windowed_lufs(x, sample_rate, 0.4, hop_s, floor_lufs)


def short_term_lufs(
    x: np.ndarray, sample_rate: int, hop_s: float = 0.1, floor_lufs: float = -120.0
) -> np.ndarray:
    """Short-term loudness (3 s windows, ungated), LUFS, shape (n,); layout as :func:`momentary_lufs`."""
    return _windowed_lufs(x, sample_rate, 3.0, hop_s, floor_lufs)


# --- true peak ----------------------------------------------------------------------------------------

#: Input samples of context a chunk needs on each side for the oversampling interpolator.
TP_MARGIN = 16


def oversampling(sample_rate: int) -> int:
    """True-peak oversampling factor: 4x below 96 kHz, 2x below 192 kHz, else none."""
    return 4 if sample_rate < 96000 else 2 if sample_rate < 192000 else 1


@functools.lru_cache(maxsize=4)
def _polyphase(up: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The interpolator of ``scipy.signal.resample_poly(x, up, 1)`` (Kaiser-windowed sinc, 20 taps per
    phase) split into phases: coefficients and input offsets, each ``(phases, taps)``.

    Output sample ``up * n + p`` is ``sum_j coef[p, j] * x[n + off[p, j]]`` (zero outside the signal).
    Phase 0 is the input sample times a gain (returned third, at least 1) and is not listed.
    """
    half = 10 * up
    # scipy.signal.firwin(2 * half + 1, 1 / up, window=("kaiser", 5.0)), scaled to unit DC gain, times up
    m = np.arange(2 * half + 1) - half
    h = np.sinc(m / up) / up * np.kaiser(2 * half + 1, 5.0)
    h = h / h.sum() * up
    coefs, offs = [], []
    for p in range(up):
        ks = [k for k in range(h.size) if (p + half - k) % up == 0]
        coefs.append([h[k] for k in ks])
        offs.append([(p + half - k) // up for k in ks])
    # phase 0 is the input sample scaled by the centre tap (the sinc's zeros fall on the other taps):
    # the kernel takes it as |x| times that gain instead of 21 multiply-adds
    gain0 = 1.0
    centre = offs[0].index(0)
    if np.all(np.abs(np.delete(np.asarray(coefs[0]), centre)) < 1e-12):
        gain0 = max(1.0, float(coefs[0][centre]))
        coefs, offs = coefs[1:], offs[1:]
    up = len(coefs)
    width = max(len(c) for c in coefs)
    coef = np.zeros((up, width))
    off = np.zeros((up, width), np.int64)
    for p in range(up):
        coef[p, : len(coefs[p])] = coefs[p]
        off[p, : len(offs[p])] = offs[p]
    return coef, off, gain0


_TP_BLOCK = 512


@njit(nogil=True, cache=True, error_model="numpy")
def _tp_envelope(x, start, stop, coef, off, gain0, env):
    """``env[i - start]`` = largest magnitude of the oversampled signal (and of the sample itself,
    times ``gain0``) over the output phases of input sample ``i``, all channels, for ``i`` in
    ``[start, stop)``. ``x (C, n)`` holds the context; samples outside it count as zero.

    Each block of ``_TP_BLOCK`` samples is copied with its context into a float64 row, and the
    taps are accumulated across the block one tap at a time (contiguous slices: vectorised).
    """
    n = x.shape[1]
    up, taps = coef.shape
    lo = 0
    hi = 0
    for p in range(up):
        for j in range(taps):
            lo = min(lo, off[p, j])
            hi = max(hi, off[p, j])
    left, right = -lo, hi
    row = np.empty(_TP_BLOCK + left + right)
    acc = np.empty(_TP_BLOCK)
    for i in range(stop - start):
        env[i] = 0.0
    for c in range(x.shape[0]):
        for i0 in range(start, stop, _TP_BLOCK):
            m = min(_TP_BLOCK, stop - i0)
            for k in range(m + left + right):
                j = i0 - left + k
                row[k] = np.float64(x[c, j]) if 0 <= j < n else 0.0
            for i in range(m):
                a = abs(row[left + i]) * gain0
                if a > env[i0 - start + i]:
                    env[i0 - start + i] = a
            for p in range(up):
                for i in range(m):
                    acc[i] = 0.0
                for j in range(taps):
                    cj = coef[p, j]
                    o = left + off[p, j]
                    seg = row[o:o + m]
                    for i in range(m):
                        acc[i] += cj * seg[i]
                for i in range(m):
                    a = abs(acc[i])
                    if a > env[i0 - start + i]:
                        env[i0 - start + i] = a


def peak_envelope(x: np.ndarray, sample_rate: int, start: int = 0, stop: int | None = None,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Per-sample true-peak envelope of ``x (C, T)`` over ``[start, stop)``: the largest magnitude
    of the oversampled signal within each input sample's output phases, or of the sample itself,
    over all channels. ``x`` may be a chunk with :data:`TP_MARGIN` samples of context on each side;
    what lies outside ``x`` counts as zero (as at the ends of a signal)."""
    x = _as_channels(x)
    stop = x.shape[1] if stop is None else stop
    out = np.empty(stop - start) if out is None else out
    up = oversampling(sample_rate)
    if up == 1:
        out[:] = np.abs(x[:, start:stop]).max(axis=0)
        return out
    coef, off, gain0 = _polyphase(up)
    _tp_envelope(x, start, stop, coef, off, gain0, out)
    return out


def _chunk_peak(x, sample_rate, lo, hi) -> float:
    a, b = max(0, lo - TP_MARGIN), min(x.shape[1], hi + TP_MARGIN)
    env = peak_envelope(x[:, a:b], sample_rate, lo - a, hi - a)
    return float(env.max(initial=0.0))


def true_peak_dbtp(x: np.ndarray, sample_rate: int) -> float:
    """True peak over all channels, dBTP (BS.1770-4 Annex 2 style), ``-inf`` for silence.

    Oversamples 4x below 96 kHz, 2x below 192 kHz, with ``scipy.signal.resample_poly``'s polyphase
    interpolator, as a compiled kernel over chunks (in parallel threads for long signals).
    """
    x = _as_channels(x)
    t = x.shape[1]
    if t == 0:
        return -math.inf
    bounds = [(s, min(t, s + _CHUNK)) for s in range(0, t, _CHUNK)]
    pool = _pool() if t >= _PARALLEL_MIN else None
    if pool is None:
        peaks = [_chunk_peak(x, sample_rate, a, b) for a, b in bounds]
    else:
        peaks = list(pool.map(lambda ab: _chunk_peak(x, sample_rate, *ab), bounds))
    return float(amp_to_db(max(peaks)))


def sample_peak_dbfs(x: np.ndarray) -> float:
    """Largest absolute sample value over all channels, dBFS; ``-inf`` for silence."""
    return float(amp_to_db(np.abs(np.asarray(x)).max(initial=0.0)))


def activity_frames(x: np.ndarray, sample_rate: int, frame_s: float) -> np.ndarray:
    """Per-frame RMS (linear, over all channels) of consecutive ``frame_s`` frames, shape (n,).

    x: (C, T) or (T,). The last, partial frame is measured over its own length. Used to choose the
    most active analysis sections.
    """
    x = np.asarray(x, dtype=np.float64)
    p = np.square(x).mean(axis=0) if x.ndim == 2 else np.square(x)
    frame = max(1, round(frame_s * sample_rate))
    if p.size == 0:
        return np.zeros(0)
    starts = np.arange(0, p.size, frame)
    sums = np.add.reduceat(p, starts)
    counts = np.diff(np.append(starts, p.size))
    return np.sqrt(sums / counts)


# --- AF features of one signal (numpy) -------------------------------------------------------------------

_EPS = 1e-8
_POWER_EPS = 1e-12


@njit(parallel=True, cache=True)
def _frame_stats(x, out):
    """Per channel: sum of squares and peak magnitude; and sums of (L-R)^2, (L+R)^2 -> out (6,)."""
    n = x.shape[1]
    parts = 8
    acc = np.zeros((parts, 6))
    for q in prange(parts):
        a, b = q * n // parts, (q + 1) * n // parts
        s0 = s1 = p0 = p1 = sd = ss = 0.0
        for i in range(a, b):
            left, right = np.float64(x[0, i]), np.float64(x[1, i])
            s0 += left * left
            s1 += right * right
            p0 = max(p0, abs(left))
            p1 = max(p1, abs(right))
            d = left - right
            m = left + right
            sd += d * d
            ss += m * m
        acc[q, 0], acc[q, 1], acc[q, 2], acc[q, 3], acc[q, 4], acc[q, 5] = s0, s1, p0, p1, sd, ss
    for k in (0, 1, 4, 5):
        out[k] = acc[:, k].sum()
    out[2] = acc[:, 2].max()
    out[3] = acc[:, 3].max()


@njit(nogil=True, cache=True)
def _window_stats(x, w, n, peak, power):
    """For each of ``n`` consecutive windows of ``w`` samples of ``x (C, >= n w)``: the largest magnitude
    over the channels into ``peak[k]`` and the mean square over channels and samples into ``power[k]``
    (float64)."""
    for k in range(n):
        p = 0.0
        s = 0.0
        for c in range(x.shape[0]):
            for i in range(k * w, (k + 1) * w):
                v = np.float64(x[c, i])
                s += v * v
                p = max(p, abs(v))
        peak[k] = p
        power[k] = s / (x.shape[0] * w)


def window_stats(x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Peak magnitude and mean square (over all channels) of each whole ``window``-sample window of
    ``x (C, T)``; one window over everything when ``x`` is shorter than one. ``(peak, power)``, (n,)."""
    x = _as_channels(x)
    w = max(1, int(window))
    n = x.shape[1] // w
    if n == 0:
        w, n = x.shape[1], 1 if x.shape[1] else 0
    peak, power = np.zeros(n), np.zeros(n)
    if n:
        _window_stats(np.ascontiguousarray(x), w, n, peak, power)
    return peak, power


def bark_spectrum_np(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """:func:`core.features.bark_spectrum` of one stereo signal in NumPy: ``(2, 24)`` (mid, side)."""
    import scipy.fft

    x = np.asarray(x)
    t = x.shape[1]
    n_fft, hop = BARK_N_FFT, BARK_HOP
    pad = n_fft // 2
    n_frames = 1 + t // hop  # centred frames of a zero-padded signal
    window = 0.5 - 0.5 * np.cos(2.0 * math.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    total = np.zeros((2, n_fft // 2 + 1))
    batch = 8  # small batches: their buffers are reused instead of fresh pages each time
    for row, sign in enumerate((1.0, -1.0)):
        sig = np.zeros(t + 2 * pad)
        np.add(x[0], sign * np.asarray(x[1], dtype=np.float64), out=sig[pad:pad + t])
        frames = np.lib.stride_tricks.sliding_window_view(sig, n_fft)[::hop]  # a view, no copy
        for f0 in range(0, n_frames, batch):
            spec = scipy.fft.rfft(frames[f0:f0 + batch] * window, axis=-1, workers=_threads())
            total[row] += np.abs(spec).sum(axis=0)
        del sig
    mag = total / n_frames
    fb = bark_filterbank(sample_rate, n_fft)
    return np.log(mag @ fb.T + _EPS)


def af_features_np(x: np.ndarray, sample_rate: int) -> dict[str, float | np.ndarray]:
    """Diff-MST audio features of one stereo signal ``x (2, T)``, in NumPy (no torch).

    ``rms``/``crest_db`` are (2,) arrays (L, R), ``width``/``imbalance`` floats, ``bark`` (2, 24)
    (mid, side); the same definitions as :func:`core.features.af_features`, computed in float64.
    """
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] != 2:
        raise ValueError(f"expected stereo audio shaped (2, T), got {x.shape}")
    t = x.shape[1]
    stats = np.zeros(6)
    _frame_stats(np.ascontiguousarray(x), stats)
    power = stats[:2] / max(t, 1)
    rms = np.sqrt(power + _POWER_EPS)
    peak = stats[2:4]
    crest = 20.0 * np.log10((peak + _EPS) / (rms + _EPS))
    side, mid = stats[4] / max(t, 1), stats[5] / max(t, 1)
    return {
        "rms": rms,
        "crest_db": crest,
        "width": float(side / (mid + _EPS)),
        "imbalance": float((power[1] - power[0]) / (power[1] + power[0] + _EPS)),
        "bark": bark_spectrum_np(x, sample_rate),
    }
