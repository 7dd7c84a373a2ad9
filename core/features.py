"""Audio features, losses, loudness and metering.

Two families live here:

* **Torch, differentiable, batched** -- the audio-feature (AF) style loss of Diff-MST and the
  multi-resolution STFT loss. Both compare a predicted mix with a reference (or target) mix and are
  used for training, evaluation and test-time refinement.
* **NumPy, float64** -- loudness (ITU-R BS.1770-4 / EBU R 128: integrated, short-term, momentary),
  true peak, sample peak and frame activity, for the meters, the import trim and the CLI.

The AF loss follows Vanka, Steinmetz, Rolland, Reiss, Fazekas, "Diff-MST: Differentiable Mixing Style
Transfer", ISMIR 2024 (DESIGN.md section 1): RMS and crest factor per channel, stereo width and
imbalance, and a 24-band Traunmüller-bark spectrum of mid and side, combined as a weighted sum of mean
squared errors. The bark filterbank's top edge is 20 kHz.

Shapes: ``B`` batch, ``C`` channels (2 for stereo, L then R), ``T`` samples. Levels are linear
amplitude unless a name ends in ``_db``/``_dbfs``/``_dbtp``/``_lufs``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import numpy as np
import scipy.signal
import torch

# --- AF features (torch) ------------------------------------------------------------------------------

#: Weight of each AF term in the loss (the paper's values).
AF_WEIGHTS = {"rms": 0.1, "crest_db": 0.001, "width": 1.0, "imbalance": 1.0, "bark": 0.1}

#: Human-readable description of each AF feature, for display (CLI ``analyze``, app plots).
AF_LABELS = {
    "rms": "RMS level per channel (linear amplitude)",
    "crest_db": "Crest factor per channel, peak/RMS (dB)",
    "width": "Stereo width, E[(L-R)^2] / E[(L+R)^2] (0 = mono)",
    "imbalance": "Stereo imbalance, (E[R^2]-E[L^2]) / (E[R^2]+E[L^2]) (-1 = left, +1 = right)",
    "bark": "Bark spectrum of mid and side, 24 bands 20 Hz-20 kHz (log magnitude)",
}

BARK_BANDS = 24
BARK_F_MIN_HZ = 20.0
BARK_F_MAX_HZ = 20000.0
BARK_N_FFT = 32768
BARK_HOP = 8192

_EPS = 1e-8  # ratios, logs
_POWER_EPS = 1e-12  # added to mean-square before sqrt (finite gradient on silence)


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


@functools.lru_cache(maxsize=16)
def _bark_tensors(sample_rate: int, n_fft: int, device: str, dtype: torch.dtype):
    fb = torch.tensor(bark_filterbank(sample_rate, n_fft), dtype=dtype, device=device)
    window = torch.hann_window(n_fft, dtype=dtype, device=device)
    return fb, window


def _as_batch(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() != 3 or x.shape[1] != 2:
        raise ValueError(f"expected stereo audio shaped (B, 2, T) or (2, T), got {tuple(x.shape)}")
    return x


class _MeanMagnitude(torch.autograd.Function):
    """Mean over frames of the STFT magnitude, ``|torch.stft(x, n_fft, hop, window, center=True,
    pad_mode="constant")|.mean(-1)``: rows ``(R, T)`` -> ``(R, n_fft // 2 + 1)``.

    The same transform with a leaner backward pass: the adjoint of the real FFT is one inverse real
    FFT per frame (not a complex one), and the frames are overlap-added with ``n_fft // hop`` slice
    additions.
    """

    @staticmethod
    def forward(ctx, x, window, hop):
        n_fft = window.shape[0]
        pad = n_fft // 2
        frames = torch.nn.functional.pad(x, (pad, pad)).unfold(-1, n_fft, hop)  # (R, frames, n_fft)
        spec = torch.fft.rfft(frames * window, dim=-1)  # (R, frames, F)
        mag = spec.abs()
        ctx.save_for_backward(spec, window)
        ctx.meta = x.shape[-1], hop
        return mag.mean(dim=-2)

    @staticmethod
    def backward(ctx, grad):
        spec, window = ctx.saved_tensors
        n_samples, hop = ctx.meta
        n_fft, n_frames = window.shape[0], spec.shape[-2]
        # |S| -> S: grad * S / |S| (0 where S = 0), the mean's 1 / frames folded in
        g = torch.sgn(spec).mul_((grad / n_frames).unsqueeze(-2))
        # rfft -> frame: sample n gets Re(sum_k g_k e^{2 pi i k n / N}), an unnormalised inverse real
        # FFT once the bins that stand for two (all but 0 and N/2) are halved
        last = g.shape[-1] - 1 if n_fft % 2 == 0 else g.shape[-1]
        g[..., 1:last] *= 0.5
        frames = torch.fft.irfft(g, n=n_fft, dim=-1, norm="forward").mul_(window)  # (R, frames, n_fft)
        rows = frames.shape[0]
        if n_fft % hop == 0:
            k = n_fft // hop
            out = frames.new_zeros(rows, n_frames + k - 1, hop)
            parts = frames.reshape(rows, n_frames, k, hop)
            for j in range(k):
                out[:, j : j + n_frames] += parts[:, :, j]
            out = out.reshape(rows, -1)
        else:
            out = frames.new_zeros(rows, (n_frames - 1) * hop + n_fft)
            for f in range(n_frames):
                out[:, f * hop : f * hop + n_fft] += frames[:, f]
        pad = n_fft // 2
        return out[:, pad : pad + n_samples], None, None


def bark_spectrum(x: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Log bark spectrum of mid (L+R) and side (L-R).

    x: (B, 2, T). Returns (B, 2, 24): ``log(FB @ mean_t |STFT| + 1e-8)`` with a Hann STFT of
    n_fft 32768, hop 8192, centred with zero padding (so any T >= 1 works).
    """
    x = _as_batch(x)
    b, _, t = x.shape
    ms = torch.stack([x[:, 0] + x[:, 1], x[:, 0] - x[:, 1]], dim=1).reshape(b * 2, t)
    fb, window = _bark_tensors(int(sample_rate), BARK_N_FFT, str(x.device), x.dtype)
    mag = _MeanMagnitude.apply(ms, window, BARK_HOP)  # (B*2, F)
    return torch.log(mag @ fb.T + _EPS).reshape(b, 2, -1)


def af_features(x: torch.Tensor, sample_rate: int) -> dict[str, torch.Tensor]:
    """Diff-MST audio features of a stereo mix (differentiable).

    x: (B, 2, T) or (2, T), any float dtype, on any device.
    Returns a dict of tensors:

    * ``rms`` (B, 2): linear RMS per channel, ``sqrt(mean(x^2) + 1e-12)`` (as in the paper, not dB);
    * ``crest_db`` (B, 2): ``20 log10(peak / rms)`` per channel, dB;
    * ``width`` (B,): ``E[(L-R)^2] / (E[(L+R)^2] + 1e-8)``;
    * ``imbalance`` (B,): ``(E[R^2] - E[L^2]) / (E[R^2] + E[L^2] + 1e-8)``, in [-1, 1];
    * ``bark`` (B, 2, 24): see :func:`bark_spectrum` (mid, side).
    """
    x = _as_batch(x)
    left, right = x[:, 0], x[:, 1]
    power = x.square().mean(dim=-1)  # (B, 2)
    rms = torch.sqrt(power + _POWER_EPS)
    peak = x.abs().amax(dim=-1)
    crest_db = 20.0 * torch.log10((peak + _EPS) / (rms + _EPS))
    side = (left - right).square().mean(dim=-1)
    mid = (left + right).square().mean(dim=-1)
    width = side / (mid + _EPS)
    imbalance = (power[:, 1] - power[:, 0]) / (power[:, 1] + power[:, 0] + _EPS)
    return {
        "rms": rms,
        "crest_db": crest_db,
        "width": width,
        "imbalance": imbalance,
        "bark": bark_spectrum(x, sample_rate),
    }


def af_loss(
    pred: torch.Tensor,
    ref: torch.Tensor | Mapping[str, torch.Tensor],
    sample_rate: int,
    reduction: str = "mean",
    weights: Mapping[str, float] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """AF style loss: ``sum_k w_k * MSE(feature_k(pred), feature_k(ref))``.

    pred: (B, 2, T) or (2, T). ref: audio of the same layout (its length may differ; batch 1
    broadcasts) or a dict from :func:`af_features` (precompute it once when refining).
    weights default to :data:`AF_WEIGHTS`.
    reduction ``"mean"``: scalar total and scalar terms; ``"none"``: (B,) total and (B,) terms.
    The terms are the *weighted* values, so they sum to the total.
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    weights = AF_WEIGHTS if weights is None else weights
    fp = af_features(pred, sample_rate)
    fr = ref if isinstance(ref, Mapping) else af_features(ref, sample_rate)
    terms = {}
    for key, w in weights.items():
        err = (fp[key] - fr[key]).square()
        per_item = err.reshape(err.shape[0], -1).mean(dim=1)
        terms[key] = w * (per_item if reduction == "none" else per_item.mean())
    total = torch.stack(list(terms.values())).sum(dim=0)
    return total, terms


def af_features_np(x: np.ndarray, sample_rate: int) -> dict[str, float | np.ndarray]:
    """:func:`af_features` of one stereo signal ``x`` (2, T), as floats and NumPy arrays.

    ``rms``/``crest_db`` are (2,) arrays (L, R), ``width``/``imbalance`` floats, ``bark`` (2, 24)
    (mid, side). Computed in float64 without gradients.
    """
    with torch.no_grad():
        feats = af_features(torch.as_tensor(np.asarray(x, dtype=np.float64)), sample_rate)
    out: dict[str, float | np.ndarray] = {}
    for key, value in feats.items():
        arr = value[0].numpy()
        out[key] = float(arr) if arr.ndim == 0 else arr
    return out


# --- MRSTFT (torch) -----------------------------------------------------------------------------------

MRSTFT_FFT_SIZES = (512, 2048, 8192)


@functools.lru_cache(maxsize=1)
def _mrstft_module():
    import auraloss

    sizes = list(MRSTFT_FFT_SIZES)
    return auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=sizes, hop_sizes=[n // 2 for n in sizes], win_lengths=sizes
    )


def mrstft_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multi-resolution STFT loss (auraloss; FFT 512/2048/8192, hop = FFT/2), scalar.

    pred, target: (B, C, T) or (C, T), same shape. Channels are folded into the batch, so the result
    is the mean over channels and items (the spectral-convergence part is pooled over them). Computed
    in float32; signals shorter than 4097 samples are zero-padded.
    """
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.dim() == 2:
        pred, target = pred.unsqueeze(0), target.unsqueeze(0)
    pad = max(0, MRSTFT_FFT_SIZES[-1] // 2 + 1 - pred.shape[-1])
    pred, target = (torch.nn.functional.pad(s.float(), (0, pad)).contiguous() for s in (pred, target))
    return _mrstft_module()(pred, target)


# --- dB helpers (numpy) -------------------------------------------------------------------------------


def db_to_amp(db):
    """dB -> linear amplitude, ``10 ** (db / 20)``."""
    return np.power(10.0, np.asarray(db, dtype=np.float64) / 20.0)


def amp_to_db(amp, floor_db: float = -math.inf):
    """Linear amplitude -> dB, ``20 log10(|amp|)``, never below ``floor_db`` (zero gives -inf by default)."""
    a = np.abs(np.asarray(amp, dtype=np.float64))
    with np.errstate(divide="ignore"):
        return np.maximum(20.0 * np.log10(a), floor_db)


# --- loudness (numpy, BS.1770-4) ----------------------------------------------------------------------

LUFS_ABS_GATE = -70.0
LUFS_REL_GATE = -10.0
_CHANNEL_GAINS = (1.0, 1.0, 1.0, 1.41, 1.41)  # BS.1770 order: L, R, C, Ls, Rs


def _as_channels(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] > len(_CHANNEL_GAINS):
        raise ValueError(f"expected audio shaped (C, T) with C <= 5, got {x.shape}")
    return x


@functools.lru_cache(maxsize=16)
def _k_weighting_sos(sample_rate: int) -> np.ndarray:
    """K-weighting (pre-filter shelf, then RLB high-pass) as second-order sections, pyloudnorm's design."""
    from pyloudnorm.iirfilter import IIRfilter

    stages = (
        IIRfilter(4.0, 1.0 / math.sqrt(2.0), 1500.0, sample_rate, "high_shelf"),
        IIRfilter(0.0, 0.5, 38.0, sample_rate, "high_pass"),
    )
    return np.stack([np.concatenate([s.b, s.a]) / s.a[0] for s in stages])


def _k_power(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Channel-weighted K-weighted power, (T,)."""
    y = scipy.signal.sosfilt(_k_weighting_sos(int(sample_rate)), x, axis=-1)
    gains = np.asarray(_CHANNEL_GAINS[: x.shape[0]])
    return gains @ np.square(y)


def _block_means(p: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Mean of ``p`` over windows of ``window`` samples every ``hop``; one window over all if shorter."""
    if p.size < window:
        return np.array([p.mean()]) if p.size else np.zeros(1)
    cs = np.concatenate([[0.0], np.cumsum(p)])
    starts = np.arange((p.size - window) // hop + 1) * hop
    return np.maximum(cs[starts + window] - cs[starts], 0.0) / window


def _power_to_lufs(z):
    with np.errstate(divide="ignore"):
        return -0.691 + 10.0 * np.log10(z)


def _gated_lufs(z: np.ndarray) -> float:
    """BS.1770-4 two-stage gating of 400 ms block powers ``z``; -inf when no block passes."""
    lk = _power_to_lufs(z)
    above = lk > LUFS_ABS_GATE
    if not above.any():
        return -math.inf
    rel_gate = _power_to_lufs(z[above].mean()) + LUFS_REL_GATE
    keep = above & (lk > rel_gate)
    return float(_power_to_lufs(z[keep].mean()))


def _gating_blocks(x: np.ndarray, sample_rate: int) -> np.ndarray:
    return _block_means(
        _k_power(_as_channels(x), sample_rate), round(0.4 * sample_rate), round(0.1 * sample_rate)
    )


def integrated_lufs(x: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4, gated), LUFS.

    x: (C, T) or (T,), C <= 5 in BS.1770 order. Returns ``-inf`` for silence (no block above the
    -70 LUFS absolute gate), so compare with ``math.isfinite`` before using it as a gain. A signal
    shorter than the 400 ms block is measured as one block over its whole length (no warning).
    """
    return _gated_lufs(_gating_blocks(x, sample_rate))


def loudness_normalize(x: np.ndarray, sample_rate: int, target_lufs: float) -> tuple[np.ndarray, float]:
    """Scale ``x`` (C, T) to ``target_lufs`` integrated loudness. Returns (y, gain_db).

    The gain is solved on the gated block powers (a few exact updates, since the gates move with
    the level), so the result hits the target to well under 0.01 LU. Silence is returned unchanged
    with gain 0 dB. ``y`` keeps ``x``'s float dtype.
    """
    z = _gating_blocks(x, sample_rate)
    gain_db = 0.0
    for _ in range(4):
        level = _gated_lufs(z * 10.0 ** (gain_db / 10.0))
        if not math.isfinite(level) or abs(level - target_lufs) < 1e-6:
            break
        gain_db += target_lufs - level
    x = np.asarray(x)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    return (x * db_to_amp(gain_db)).astype(dtype, copy=False), float(gain_db)


def _windowed_lufs(x, sample_rate, window_s, hop_s, floor_lufs) -> np.ndarray:
    z = _block_means(
        _k_power(_as_channels(x), sample_rate),
        round(window_s * sample_rate),
        max(1, round(hop_s * sample_rate)),
    )
    return np.maximum(_power_to_lufs(z), floor_lufs)


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


# --- peaks and activity (numpy) -----------------------------------------------------------------------

_TP_CHUNK = 1 << 18
_TP_MARGIN = 64  # input samples of context around each chunk (the interpolator spans ~10)


def true_peak_dbtp(x: np.ndarray, sample_rate: int) -> float:
    """True peak over all channels, dBTP (BS.1770-4 Annex 2 style), ``-inf`` for silence.

    Oversamples 4x below 96 kHz, 2x below 192 kHz, with a polyphase low-pass interpolator
    (``scipy.signal.resample_poly``), in chunks so memory stays small for whole songs.
    """
    x = _as_channels(x)
    up = 4 if sample_rate < 96000 else 2 if sample_rate < 192000 else 1
    peak = np.abs(x).max(initial=0.0)
    if up > 1:
        for start in range(0, x.shape[1], _TP_CHUNK):
            lo, hi = max(0, start - _TP_MARGIN), min(x.shape[1], start + _TP_CHUNK + _TP_MARGIN)
            y = scipy.signal.resample_poly(x[:, lo:hi], up, 1, axis=-1)
            core = y[:, (start - lo) * up : (min(start + _TP_CHUNK, x.shape[1]) - lo) * up]
            peak = max(peak, np.abs(core).max(initial=0.0))
    return float(amp_to_db(peak))


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
