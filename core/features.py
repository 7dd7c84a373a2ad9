"""Audio features, losses, loudness and metering.

Two families live here:

* **Torch, differentiable, batched** -- the audio-feature (AF) style loss of Diff-MST and the
  multi-resolution STFT loss. Both compare a predicted mix with a reference (or target) mix and are
  used for training, evaluation and test-time refinement.
* **NumPy, float64** -- loudness (ITU-R BS.1770-4 / EBU R 128: integrated, short-term, momentary),
  true peak, sample peak, frame activity and the AF features of one signal, for the meters, the
  import trim and the CLI. They live in :mod:`core.meter` (no torch) and are re-exported here.

The AF loss follows Vanka, Steinmetz, Rolland, Reiss, Fazekas, "Diff-MST: Differentiable Mixing Style
Transfer", ISMIR 2024 (DESIGN.md section 1): RMS and crest factor per channel, stereo width and
imbalance, and a 24-band Traunmüller-bark spectrum of mid and side, combined as a weighted sum of mean
squared errors. The bark filterbank's top edge is 20 kHz.

Shapes: ``B`` batch, ``C`` channels (2 for stereo, L then R), ``T`` samples. Levels are linear
amplitude unless a name ends in ``_db``/``_dbfs``/``_dbtp``/``_lufs``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch

from .meter import (  # noqa: F401  (re-exported)
    BARK_BANDS,
    BARK_F_MAX_HZ,
    BARK_F_MIN_HZ,
    BARK_HOP,
    BARK_N_FFT,
    bark_band_centres_hz,
    bark_band_points_hz,
    bark_filterbank,
    bark_to_hz,
    hz_to_bark,
)

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

_EPS = 1e-8  # ratios, logs
_POWER_EPS = 1e-12  # added to mean-square before sqrt (finite gradient on silence)


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


# --- levels, loudness, peaks (numpy; defined in core.meter, which needs no torch) ----------------------

from .meter import (  # noqa: E402,F401  (re-exported)
    LUFS_ABS_GATE,
    LUFS_REL_GATE,
    activity_frames,
    af_features_np,
    amp_to_db,
    db_to_amp,
    integrated_lufs,
    loudness_normalize,
    momentary_lufs,
    sample_peak_dbfs,
    short_term_lufs,
    true_peak_dbtp,
)
from .meter import gated_lufs as _gated_lufs  # noqa: E402,F401  (older private names)
from .meter import gating_blocks as _gating_blocks  # noqa: E402,F401
from .meter import k_weighting_sos as _k_weighting_sos  # noqa: E402,F401
