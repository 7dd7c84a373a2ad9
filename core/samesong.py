"""Same-song references: detect when the reference contains the stems, and fit the mix to it.

A user's reference is often not another record but a mix of *this* song: an artist's rough mix, or the
finished mix of one section to be extended to the rest. Then the reference holds the stems themselves and
their balance can be read from it directly, instead of matching the style of an unrelated record.

:func:`detect` decides between the two from two kinds of evidence, both required:

* **temporal**: the stems' band envelopes (1/6-octave bands, 20 ms frames, amplitude) cross-correlated with
  the reference's over every lag (FFT); for each stem the correlation is averaged over its bands (weighted
  by the stem's energy in them); the lag where the mean over stems peaks is the alignment. A reference of
  the same audio scores high at one lag; another section of the same song still scores, because parts
  repeat on the bar grid; an unrelated song scores only when its drums share the tempo.
* **pitch**: the stems' summed long-term spectrum (1/36 octave, 100 Hz-8 kHz, whitened by subtracting its
  1/3-octave moving average, so EQ does not matter) correlated with the reference's, at the stems' own
  pitch minus the best correlation at any transposition of 1..6 semitones. The same song (any section)
  plays in the same key with the same instruments; an unrelated song with the same groove does not.

``score = min(temporal / TEMPORAL_UNIT, pitch / PITCH_UNIT)``; the reference is the same song when the
score reaches :data:`THRESHOLD` (1.0). The units were chosen from measurements on generated songs
(docs/same-song.md).

:func:`fit_same_song` then fits each track's fader, pan and low/high shelf to the reference by
non-negative least squares of band powers (DESIGN.md, docs/same-song.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft
from scipy.ndimage import uniform_filter1d
from scipy.optimize import nnls

from .paramfile import MixParams
from .params import TRACK

FRAME_S = 0.02
ENV_PER_OCTAVE = 6
ENV_EDGES_HZ = 40.0 * 2.0 ** (np.arange(9 * ENV_PER_OCTAVE + 1) / ENV_PER_OCTAVE)  # 54 bands, 40 Hz-20 kHz
FINE_N_FFT = 16384
FINE_RANGE_HZ = (40.0, 16000.0)
FINE_PER_OCTAVE = 36
WHITEN_OCT = 1 / 3


def _frames(x: np.ndarray, n: int, hop: int) -> np.ndarray:
    t = x.shape[-1]
    if t < n:
        x = np.pad(x, ((0, 0), (0, n - t)))
        t = n
    k = 1 + (t - n) // hop
    return np.lib.stride_tricks.sliding_window_view(x, n, axis=-1)[:, ::hop][:, :k]


def _power(frames: np.ndarray) -> np.ndarray:
    win = np.hanning(frames.shape[-1]).astype(np.float32)
    spec = scipy.fft.rfft(frames * win, axis=-1)
    return spec.real ** 2 + spec.imag ** 2


def _band_matrix(n_fft: int, sr: int, edges: np.ndarray) -> np.ndarray:
    f = np.arange(n_fft // 2 + 1) * sr / n_fft
    m = np.zeros((f.size, len(edges) - 1), np.float32)
    for b in range(len(edges) - 1):
        inside = (f >= edges[b]) & (f < edges[b + 1])
        if inside.any():
            m[inside, b] = 1.0
        elif edges[b] < f[-1]:  # narrower than a bin: the nearest bin
            m[np.argmin(np.abs(f - np.sqrt(edges[b] * edges[b + 1]))), b] = 1.0
    return m


def fine_grid() -> np.ndarray:
    lo, hi = FINE_RANGE_HZ
    return lo * 2.0 ** (np.arange(int(np.log2(hi / lo) * FINE_PER_OCTAVE) + 1) / FINE_PER_OCTAVE)


def analyse(rows: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Band power envelopes (R, K, B) and long-term fine power spectrum (R, M) of rows (R, T)."""
    x = np.ascontiguousarray(rows, dtype=np.float32)
    out = [analyse_row(lambda a, n, r=r: _padded(r, a, n), x.shape[-1], sr) for r in x]
    return np.stack([e for e, _ in out]), np.stack([f for _, f in out])


def _padded(x: np.ndarray, start: int, n: int) -> np.ndarray:
    """``x[start:start + n]`` with zeros past the end."""
    if start + n <= x.shape[-1]:
        return x[start:start + n]
    out = np.zeros(n, x.dtype)
    out[:max(0, x.shape[-1] - start)] = x[start:]
    return out


#: Envelope frames analysed at a time (bounded memory for songs of any length).
_CHUNK_FRAMES = 4096


def analyse_row(read, total: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Band power envelope (K, B) and long-term fine power spectrum (M,) of one signal of ``total``
    frames read through ``read(start, n)`` (``(n,)``, zeros past the end) a stretch at a time."""
    hop = int(round(FRAME_S * sr))
    n_fft = 1 << int(np.ceil(np.log2(2 * hop)))
    bands = _band_matrix(n_fft, sr, ENV_EDGES_HZ)
    t = max(total, n_fft)
    k = 1 + (t - n_fft) // hop
    env = np.empty((k, bands.shape[1]), np.float32)
    for k0 in range(0, k, _CHUNK_FRAMES):
        k1 = min(k, k0 + _CHUNK_FRAMES)
        x = np.asarray(read(k0 * hop, (k1 - 1 - k0) * hop + n_fft), dtype=np.float32)
        env[k0:k1] = np.einsum("rkf,fb->rkb", _power(_frames(x[None], n_fft, hop)), bands, optimize=True)[0]
    t = max(total, FINE_N_FFT)
    k = 1 + (t - FINE_N_FFT) // FINE_N_FFT
    step = _CHUNK_FRAMES // 16
    if k <= step:  # one stretch: the mean as analyse has always taken it (float32)
        x = np.asarray(read(0, k * FINE_N_FFT), dtype=np.float32)
        p = _power(_frames(x[None], FINE_N_FFT, FINE_N_FFT)).mean(axis=1)[0]
    else:
        acc = np.zeros(FINE_N_FFT // 2 + 1)
        for k0 in range(0, k, step):
            m = min(k, k0 + step) - k0
            x = np.asarray(read(k0 * FINE_N_FFT, m * FINE_N_FFT), dtype=np.float32)
            acc += _power(_frames(x[None], FINE_N_FFT, FINE_N_FFT))[0].sum(axis=0, dtype=np.float64)
        p = acc / k
    f = np.arange(FINE_N_FFT // 2 + 1) * sr / FINE_N_FFT
    grid = fine_grid()
    idx = np.clip(np.searchsorted(f, grid), 1, f.size - 1)
    w = (grid - f[idx - 1]) / (f[idx] - f[idx - 1])
    fine = p[idx - 1] * (1 - w) + p[idx] * w
    return env, fine.astype(np.float64)


def whiten(p: np.ndarray) -> np.ndarray:
    lp = np.log(p + 1e-10 * p.max(axis=-1, keepdims=True) + 1e-30)
    return lp - uniform_filter1d(lp, int(FINE_PER_OCTAVE * WHITEN_OCT) | 1, axis=-1, mode="nearest")


# --- detection ------------------------------------------------------------------------------------------

PITCH_RANGE_HZ = (100.0, 8000.0)
TEMPORAL_UNIT = 0.135  # temporal evidence that counts as 1 (measured, docs/same-song.md)
PITCH_UNIT = 0.14  # pitch evidence that counts as 1
THRESHOLD = 1.0
MIN_SECONDS = 1.0  # shorter stems or reference: no decision possible
KINDS = ("same-song", "other")


@dataclass
class _Analysis:
    """What detection measured, kept for the fit (stems already trimmed).

    Each analysed stem has one envelope row per channel (a mono stem one, used for both channels):
    ``row_env[pairs[j, c]]`` is stem ``j``'s channel ``c``, so a mono stem's envelope is stored once
    and nothing is copied for a long song until it is used.
    """

    live: np.ndarray  # indices of the stems analysed (not silent)
    row_env: list  # (K, B) band power per frame of each analysed channel
    pairs: np.ndarray  # (n, 2) row of each stem's left and right channel
    fine: np.ndarray  # (n, M) long-term power, mono
    fine_ch: np.ndarray  # (n, 2, M)
    ref_env: np.ndarray  # (2, Kr, B)
    ref_fine: np.ndarray  # (2, M)
    lag_frames: int

    def channel_env(self, j: int, c: int) -> np.ndarray:
        """(K, B) band power of channel ``c`` of analysed stem ``j``, trimmed."""
        return self.row_env[self.pairs[j, c]]

    def stem_env(self, j: int) -> np.ndarray:
        """(K, B) band power of analysed stem ``j``, mono (mean of its channels' power), trimmed."""
        a, b = self.pairs[j]
        left = self.channel_env(j, 0)
        return left if a == b else (left + self.channel_env(j, 1)) / 2


@dataclass
class Detection:
    """Whether the reference is a mix of the stems' own song, and how sure that is.

    kind: "same-song" or "other"; score: ``min(temporal / TEMPORAL_UNIT, pitch / PITCH_UNIT)``, compared
    with ``threshold``; stem_scores: each stem's temporal correlation at the best alignment (0..1);
    lag_s: where the stems' start sits in the reference (seconds, positive = later in the reference);
    aligned: the reference holds the stems' own audio at that lag (not only the same song);
    forced: the kind was set by the user, not detected.
    """

    kind: str
    score: float
    threshold: float = THRESHOLD
    temporal: float = 0.0
    pitch: float = 0.0
    stem_scores: dict[str, float] = field(default_factory=dict)
    lag_s: float = 0.0
    aligned: bool = False
    forced: bool = False
    _analysis: _Analysis | None = field(default=None, repr=False, compare=False)

    @property
    def same_song(self) -> bool:
        return self.kind == "same-song"

    def describe(self) -> str:
        """One line for the CLI and the app."""
        found = sum(v >= 0.5 * TEMPORAL_UNIT for v in self.stem_scores.values())
        what = "same song" if self.same_song else "another song"
        how = "set by the user" if self.forced else f"score {self.score:.2f}, threshold {self.threshold:.2f}"
        text = f"Reference: {what} ({how}"
        if self.same_song and self.stem_scores:
            where = (f"aligned at {self.lag_s:+.2f} s" if self.aligned else "another section")
            text += f"; {where}, {found}/{len(self.stem_scores)} stems found"
        return text + ")"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "text": self.describe(), "score": round(self.score, 4),
                "threshold": self.threshold,
                "temporal": round(self.temporal, 4), "pitch": round(self.pitch, 4),
                "lag_s": round(self.lag_s, 3), "aligned": self.aligned, "forced": self.forced,
                "stem_scores": {k: round(v, 4) for k, v in self.stem_scores.items()}}


def _check(inputs) -> None:
    if inputs.reference is None:
        raise ValueError("same-song detection needs a reference")
    if np.all(np.asarray(inputs.silent, bool)):
        raise ValueError("all stems are silent: nothing to compare with the reference")
    sr = inputs.sample_rate
    if inputs.frames < MIN_SECONDS * sr or inputs.reference.shape[-1] < MIN_SECONDS * sr:
        raise ValueError(f"stems and reference must be at least {MIN_SECONDS:g} s long")


def _stem_rows(inputs) -> dict[int, list[tuple[np.ndarray, np.ndarray]]]:
    """Per stem (not silent), the (envelope, fine spectrum) of each channel (one for a mono stem) with
    the import trim applied, each read a stretch at a time; cached on the inputs."""
    trim = np.asarray(inputs.trim_db, np.float64)

    def compute():
        stereo = np.asarray(inputs.stereo, bool)
        amp = (10.0 ** (trim / 20.0)).astype(np.float32)
        out = {}
        for i in np.flatnonzero(~np.asarray(inputs.silent, bool)):
            out[int(i)] = [analyse_row(lambda a, n, i=i, c=c: inputs.read_stem(i, a, n)[c] * amp[i],
                                       inputs.frames, inputs.sample_rate)
                           for c in ((0, 1) if stereo[i] else (0,))]
        return out

    return inputs.cached(("same_song_rows", trim.tobytes()), compute)


def _analyse_inputs(inputs) -> _Analysis:
    live = np.flatnonzero(~np.asarray(inputs.silent, bool))
    rows = _stem_rows(inputs)
    # one analysis per channel of a stereo stem, one per mono stem (its channels are the same)
    pairs, env, fine = [], [], []
    for i in live:
        chans = rows[int(i)]
        first = len(env)
        env += [e for e, _ in chans]
        fine += [f for _, f in chans]
        pairs.append((first, first + len(chans) - 1))
    pairs = np.array(pairs).reshape(-1, 2)
    fine_ch = np.stack(fine)[pairs]  # (n, 2, M)
    r_env, r_fine = analyse(inputs.reference, inputs.sample_rate)
    return _Analysis(live, env, pairs, fine_ch.mean(axis=1), fine_ch, r_env, r_fine, 0)


def _evidence(an: _Analysis) -> tuple[float, float, float, int, np.ndarray]:
    """(score, temporal, pitch, lag in frames, per-stem temporal) of an analysis."""
    temporal, lag, per = _temporal([an.stem_env(j) for j in range(len(an.live))], an.ref_env.sum(axis=0))
    pitch = _pitch(an.fine, an.ref_fine.sum(axis=0))
    return min(temporal / TEMPORAL_UNIT, pitch / PITCH_UNIT), temporal, pitch, lag, per


def _temporal(env, ref_env: np.ndarray) -> tuple[float, int, np.ndarray]:
    """Best-lag mean over stems of each stem's band-envelope correlation with the reference.

    env: (n, K, B) or a sequence of n (K, B) band powers; ref_env (Kr, B). Returns (evidence, lag in
    frames, per-stem (n,)). One stem at a time, so memory does not grow with the number of stems."""
    zr = np.sqrt(ref_env)
    zr = zr - zr.mean(axis=0, keepdims=True)
    k, kr = env[0].shape[0], zr.shape[0]
    size = scipy.fft.next_fast_len(k + kr, real=True)
    ref_spec = scipy.fft.rfft(zr, size, axis=0)[None]
    ref_norm = np.linalg.norm(zr, axis=0)[None, None, :]
    parts = []
    for e in env:
        e = e[None]  # (1, K, B)
        zs = np.sqrt(e)
        zs = zs - zs.mean(axis=1, keepdims=True)
        spec = np.conj(scipy.fft.rfft(zs, size, axis=1)) * ref_spec
        cross = scipy.fft.irfft(spec, size, axis=1)  # [i, lag, b] = sum_t zs[i, t, b] zr[t + lag, b]
        rho = cross / np.maximum(np.linalg.norm(zs, axis=1)[:, None, :] * ref_norm, 1e-30)
        share = e.mean(axis=1)
        share = share / np.maximum(share.sum(axis=1, keepdims=True), 1e-30)  # (1, B)
        parts.append(np.einsum("ilb,ib->il", np.maximum(rho, 0.0), share))
        del zs, spec, cross, rho
    per = np.concatenate(parts)
    mean = per.mean(axis=0)
    lag = int(np.argmax(mean))
    return float(mean[lag]), (lag if lag < size // 2 else lag - size), per[:, lag]


def _pitch(fine: np.ndarray, ref_fine: np.ndarray) -> float:
    """Whitened-spectrum correlation at the stems' own pitch minus the best over transpositions."""
    grid = fine_grid()
    lo, hi = PITCH_RANGE_HZ
    a, b = whiten(fine.sum(axis=0)), whiten(ref_fine)
    step = FINE_PER_OCTAVE // 12
    inside = (grid >= lo) & (grid <= hi)
    corr = {}
    for shift in range(-6, 7):
        k = shift * step
        sa = slice(max(0, k), len(a) + min(0, k))
        sb = slice(max(0, -k), len(b) + min(0, -k))
        m = inside[sa]
        corr[shift] = float(np.corrcoef(a[sa][m], b[sb][m])[0, 1])
    return corr[0] - max(v for s, v in corr.items() if s != 0)


def detect(inputs, kind: str = "auto") -> Detection:
    """Is ``inputs.reference`` a mix of the stems' own song (aligned, or another section of it)?

    kind: "auto" decides from the audio; "same-song" or "other" force the answer (the measurements are
    still made, for the fit and the report). Raises ValueError without a reference, when every stem is
    silent, or when stems or reference are shorter than :data:`MIN_SECONDS`.
    """
    if kind not in ("auto",) + KINDS:
        raise ValueError(f"unknown reference kind '{kind}' (auto, same-song or other)")
    _check(inputs)
    an = _analyse_inputs(inputs)
    score, temporal, pitch, lag, per = _evidence(an)
    an.lag_frames = lag
    detected = "same-song" if score >= THRESHOLD else "other"
    names = [inputs.names[i] for i in an.live]
    return Detection(
        kind=detected if kind == "auto" else kind, score=float(score), temporal=temporal, pitch=pitch,
        stem_scores={n: float(v) for n, v in zip(names, per, strict=True)}, lag_s=lag * FRAME_S,
        aligned=bool(temporal >= ALIGNED_TEMPORAL and score >= THRESHOLD), forced=kind != "auto",
        _analysis=an)


ALIGNED_TEMPORAL = 0.3  # temporal evidence of the same audio at one lag (not only the same song)


# --- fit ------------------------------------------------------------------------------------------------

FADER_FLOOR_DB = -30.0  # no stem is pulled below this unless it is absent from an aligned reference
MIN_SHARE_DB = -25.0  # lowest share of the mix's power (dB) that a present stem is given
SHELF_LIMIT_DB = 9.0  # broad EQ stays within what engineers use
#: Typical error (dB) of a stem level read from another section of the song: the fitted level differences
#: are shrunk toward their mean by 1 - SECTION_NOISE_DB^2 / (their variance), so a wide spread of fitted
#: levels (a rough mix far from equal loudness) is mostly kept and a narrow one mostly discarded.
SECTION_NOISE_DB = 3.0
SHELF_RIDGE = 0.05  # pull of the shelves toward 0 dB, relative to the fit's weight
DOMINANCE_FLOOR = 0.1  # weight of an octave where the stem is a small part of the reference
LOW_SHELF_HZ = (100.0, 200.0, 400.0)
HIGH_SHELF_HZ = (2500.0, 5000.0, 8000.0)
_SHELF_TRY_DB = 6.0
_EQ_KEYS = [k for k in TRACK.keys if k.startswith("eq_")]


def _eq_power(eq_rows: np.ndarray, sr: int, freqs: np.ndarray) -> np.ndarray:
    """|H|^2 of the console's EQ (:func:`core.dsp.eq_coeffs`, the same biquads as the console) for rows
    (..., len(EQ keys)) of physical values, at ``freqs`` (Hz) -> (..., len(freqs))."""
    from .dsp import eq_coeffs

    b, a = eq_coeffs(eq_rows, sr)  # (..., 6, 3)
    z = np.exp(-2j * np.pi * np.asarray(freqs, np.float64) / sr)
    powers = np.stack([np.ones_like(z), z, z * z])  # (3, F)
    h = (b @ powers) / (a @ powers)  # (..., 6, F)
    return np.prod(np.abs(h) ** 2, axis=-2)


def _octave_groups() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Envelope-band and fine-grid indices of each octave band of the fit."""
    n_env = len(ENV_EDGES_HZ) - 1
    env = [np.arange(o, min(o + ENV_PER_OCTAVE, n_env)) for o in range(0, n_env, ENV_PER_OCTAVE)]
    grid = fine_grid()
    fine = [np.flatnonzero((grid >= ENV_EDGES_HZ[g[0]]) & (grid < ENV_EDGES_HZ[g[-1] + 1])) for g in env]
    return env, fine


def _band_nnls(blocks: list[tuple[np.ndarray, np.ndarray, float]]) -> np.ndarray:
    """Non-negative a with y ~ A a over stacked blocks (A (rows, n), y (rows,), weight), each block
    scaled to unit norm of y times its weight."""
    mats, rhs = [], []
    for a_mat, y, w in blocks:
        scale = float(np.linalg.norm(y))
        if w <= 0 or scale <= 0 or y.size == 0:
            continue
        mats.append(a_mat * (w / scale))
        rhs.append(y * (w / scale))
    if not mats:
        return np.zeros(blocks[0][0].shape[1])
    coef, _ = nnls(np.concatenate(mats), np.concatenate(rhs), maxiter=50 * blocks[0][0].shape[1])
    return coef


def alignment_weight(temporal: float) -> float:
    """Weight of the time-aligned envelope rows in the fit (0: long-term spectra only)."""
    return float(np.clip((temporal - 0.1) / 0.2, 0.0, 1.0))


def fit_same_song(inputs, init: MixParams, detection: Detection | None = None) -> MixParams:
    """Faders, pans and low/high shelves of ``init`` fitted to a reference of the same song.

    For each octave band and reference channel, the reference's band power is fitted as a non-negative
    combination of the stems' band powers (time-aligned envelopes at the detected lag, weighted by how well
    they align, stacked with the long-term 1/36-octave spectrum in that band). Each stem's per-band gain
    then gives its fader and a low and a high shelf (weighted least squares with a pull toward 0 dB, shelf
    frequencies from a short list), and its left/right split gives the pan. Faders are shifted together
    so that the mix keeps the level of the equal-loudness sum, and stay at or above
    :data:`FADER_FLOOR_DB` unless the stem is absent from an aligned reference; a stem the fit does not
    find sits at the floor (aligned reference) or at the mean level (another section), and no present
    stem gets less than :data:`MIN_SHARE_DB` of the mix's power. Trims, compressors,
    the peaking bands and the master bus stay as in ``init`` (the peaking bands are taken into account).
    Silent stems keep their ``init`` values.
    """
    if detection is None or detection._analysis is None:
        detection = detect(inputs, "same-song")
    an = detection._analysis
    sr = inputs.sample_rate
    out = init.copy()
    live = an.live
    n = len(live)
    stereo = np.asarray(inputs.stereo, bool)[live]
    ti = TRACK.index
    # the stems as the console will see them: init's trims and peaking bands (shelves are fitted)
    trim_gain = 10.0 ** ((init.tracks[live, ti("trim_db")] - np.asarray(inputs.trim_db)[live]) / 10.0)
    eq = init.tracks[live][:, [ti(k) for k in _EQ_KEYS]].copy()
    shelf_cols = [_EQ_KEYS.index(k) for k in ("eq_low_shelf_gain_db", "eq_high_shelf_gain_db")]
    eq[:, shelf_cols] = 0.0
    grid = fine_grid()
    env_idx, fine_idx = _octave_groups()
    centres = np.sqrt(ENV_EDGES_HZ[:-1] * ENV_EDGES_HZ[1:])
    h_env = _eq_power(eq, sr, centres)  # (n, B)
    h_fine = _eq_power(eq, sr, grid)  # (n, M)
    scale = (trim_gain[:, None] * h_env).astype(np.float32)  # (n, B)
    fine_ch = an.fine_ch * (trim_gain[:, None, None] * h_fine[:, None, :])
    n_oct = len(env_idx)
    # each stem's envelope summed per octave band (a sixth of the envelope's size), one stem at a time
    k = an.row_env[0].shape[0] if n else 0
    env_oct = np.empty((n, 2, k, n_oct), np.float32)
    for j in range(n):
        for c in range(2):
            e = an.channel_env(j, c) * scale[j]
            for o, eb in enumerate(env_idx):
                env_oct[j, c, :, o] = e[:, eb].sum(-1)

    # stem frames matched to reference frames at the detected lag
    kr = an.ref_env.shape[1]
    lag = an.lag_frames
    t0, t1 = max(0, -lag), min(k, kr - lag)
    matches = [(np.arange(t0, t1), np.arange(t0, t1) + lag, alignment_weight(detection.temporal))]
    gains = np.zeros((n, 2, n_oct))  # a[i, c, o]: reference power per unit of stem power
    for o in range(n_oct):
        eb, fb = env_idx[o], fine_idx[o]
        for c in range(2):
            blocks = []
            rows = [(w * env_oct[:, c, ts, o].T, w * an.ref_env[c, tr][:, eb].sum(-1))
                    for ts, tr, w in matches if w > 0 and ts.size > 10]
            if rows:
                weight = float(np.mean([w for *_, w in matches]))
                blocks.append((np.concatenate([r[0] for r in rows]).astype(np.float64),
                               np.concatenate([r[1] for r in rows]).astype(np.float64), weight))
            if fb.size:
                blocks.append((fine_ch[:, c, fb].T, an.ref_fine[c, fb], 1.0))
            if blocks:
                gains[:, c, o] = _band_nnls(blocks)

    power = env_oct.mean(axis=2)  # (n, 2, O)
    mono_power = power.mean(axis=1)  # (n, O)
    g_band = gains.sum(axis=1) / np.where(stereo, 2.0, 1.0)[:, None]  # fader x EQ power gain per octave
    contrib = g_band * mono_power

    # pan from the left/right split of each stem's contribution
    left = (gains[:, 0] * power[:, 0]).sum(-1)
    right = (gains[:, 1] * power[:, 1]).sum(-1)
    for j, i in enumerate(live):
        if left[j] + right[j] <= 0:
            continue
        # mono: the contribution splits cos^2 : sin^2; stereo (balance): each channel's gain does
        if stereo[j]:
            r_gain = right[j] / max(power[j, 1].sum(), 1e-30)
            ratio = r_gain / max(left[j] / max(power[j, 0].sum(), 1e-30), 1e-30)
        else:
            ratio = right[j] / max(left[j], 1e-30)
        theta = math.atan(math.sqrt(ratio))
        out.tracks[i, ti("pan")] = TRACK["pan"].clip(4.0 * theta / math.pi - 1.0)

    # fader and shelves per stem
    levels = np.full(n, np.nan)
    # a stem's gain in an octave is trusted as far as the stem holds energy there and explains the band
    dominance = contrib / np.maximum(contrib.sum(axis=0, keepdims=True), 1e-30)
    for j, i in enumerate(live):
        w = mono_power[j] / max(mono_power[j].sum(), 1e-30) * (DOMINANCE_FLOOR + dominance[j])
        use = w > 1e-3
        if not (use & (g_band[j] > 0)).any():
            continue
        peak = 10 * np.log10(g_band[j][use & (g_band[j] > 0)].max())
        db = np.maximum(10 * np.log10(np.maximum(g_band[j], 1e-30)), peak - 30.0)
        spectrum = fine_ch[j].mean(axis=0)
        level, low, high, lf, hf = _fit_shelves(db, w * use, eq[j], spectrum, sr, grid, fine_idx)
        levels[j] = level
        for key, v in (("eq_low_shelf_gain_db", low), ("eq_high_shelf_gain_db", high),
                       ("eq_low_shelf_freq_hz", lf), ("eq_high_shelf_freq_hz", hf)):
            out.tracks[i, ti(key)] = TRACK[key].clip(v)
    fitted = np.isfinite(levels)
    if not fitted.any():
        return out
    # keep the level of the equal-loudness sum: shift all faders by one offset
    total_fit = contrib[fitted].sum()
    total_sum = mono_power[fitted].sum()
    offset = 10 * np.log10(max(total_fit, 1e-30) / max(total_sum, 1e-30))
    absent = _absent(detection, contrib, mono_power, an)
    mean = np.average(levels[fitted], weights=mono_power[fitted].sum(-1))
    if not detection.aligned:  # another section: the estimate is uncertain, keep part of it
        levels[fitted] = mean + section_shrink(levels[fitted]) * (levels[fitted] - mean)
    # a stem the fit did not find: at the floor when the reference holds the stems' own audio (it is
    # at most faint there), else at the mean level (the other section may simply not have it)
    levels[~fitted] = FADER_FLOOR_DB + offset if detection.aligned else mean
    # below MIN_SHARE_DB of the mix a stem hides under louder ones in every band it shares: band powers
    # cannot tell its level there, so a present stem is not put lower than that
    power_j = mono_power.sum(axis=-1)
    for _ in range(3):
        share = 10 * np.log10(np.maximum(power_j * 10 ** (levels / 10), 1e-30)
                              / max((power_j * 10 ** (levels / 10)).sum(), 1e-30))
        low = (share < MIN_SHARE_DB) & ~absent
        if not low.any():
            break
        levels[low] += MIN_SHARE_DB - share[low]
    fader = TRACK["gain_db"]
    for j, i in enumerate(live):
        value = fader.min if absent[j] else fader.clip(max(levels[j] - offset, FADER_FLOOR_DB))
        out.tracks[i, ti("gain_db")] = value
    return out


def section_shrink(levels_db: np.ndarray) -> float:
    """Share of the fitted level differences kept when the reference is another section of the song.

    An empirical-Bayes estimate: the fitted levels spread as the true balance plus the fit's error
    (:data:`SECTION_NOISE_DB`), so the share of the spread that is real is 1 - noise^2 / spread^2.
    """
    if levels_db.size < 2:
        return 0.0
    spread = float(np.var(levels_db))
    return float(np.clip(1.0 - SECTION_NOISE_DB ** 2 / max(spread, 1e-9), 0.0, 1.0))


def _absent(detection: Detection, contrib, mono_power, an) -> np.ndarray:
    """Stems that an aligned reference does not contain: no fitted contribution in any octave where
    the stem has a tenth of its energy, and no envelope correlation."""
    if not detection.aligned:
        return np.zeros(len(an.live), bool)
    names = list(detection.stem_scores)
    out = np.zeros(len(an.live), bool)
    for j in range(len(an.live)):
        strong = mono_power[j] >= 0.1 * mono_power[j].max()
        out[j] = bool(np.all(contrib[j][strong] <= 1e-6 * mono_power[j][strong])
                      and detection.stem_scores.get(names[j], 0.0) < 0.05)
    return out


def _fit_shelves(db, w, eq_row, spectrum, sr, grid, fine_idx):
    """Level (dB) and low/high shelf gains and frequencies that best explain per-octave gains ``db``."""
    best = None
    n_oct = len(db)
    wsum = max(w.sum(), 1e-30)
    lam = SHELF_RIDGE * wsum
    lo_g = _EQ_KEYS.index("eq_low_shelf_gain_db")
    hi_g = _EQ_KEYS.index("eq_high_shelf_gain_db")
    lo_f = _EQ_KEYS.index("eq_low_shelf_freq_hz")
    hi_f = _EQ_KEYS.index("eq_high_shelf_freq_hz")
    trials = []
    for lf in LOW_SHELF_HZ:
        for hf in HIGH_SHELF_HZ:
            base = eq_row.copy()
            base[lo_f], base[hi_f] = lf, hf
            lo, hi = base.copy(), base.copy()
            lo[lo_g] = _SHELF_TRY_DB
            hi[hi_g] = _SHELF_TRY_DB
            trials.append((lf, hf, base, lo, hi))
    rows = np.stack([r for t in trials for r in t[2:]])
    resp = _eq_power(rows, sr, grid).reshape(len(trials), 3, -1)
    for (lf, hf, *_), r in zip(trials, resp, strict=True):
        band = np.empty((3, n_oct))
        for o, fb in enumerate(fine_idx):
            sw = spectrum[fb] + 1e-30
            band[:, o] = 10 * np.log10((r[:, fb] * sw).sum(-1) / sw.sum()) if fb.size else 0.0
        s_low = (band[1] - band[0]) / _SHELF_TRY_DB
        s_high = (band[2] - band[0]) / _SHELF_TRY_DB
        x = np.stack([np.ones(n_oct), s_low, s_high], axis=1)
        lhs = x.T @ (x * w[:, None]) + np.diag([0.0, lam, lam])
        rhs = x.T @ (w * db)
        coef = np.linalg.solve(lhs + 1e-9 * np.eye(3), rhs)
        coef[1:] = np.clip(coef[1:], -SHELF_LIMIT_DB, SHELF_LIMIT_DB)
        coef[0] = (w * (db - x[:, 1:] @ coef[1:])).sum() / wsum
        cost = (w * (db - x @ coef) ** 2).sum() + lam * (coef[1:] ** 2).sum()
        if best is None or cost < best[0]:
            best = (cost, coef[0], coef[1], coef[2], lf, hf)
    return best[1:]
