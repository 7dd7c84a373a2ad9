"""A parametric stereo reverb for the console's FX return: one impulse response, two renderers.

The reverb is a *fixed-seed filtered-noise* impulse response whose envelope is a deterministic,
differentiable function of six controls (:data:`RETURN`): decay time RT60, pre-delay, high-frequency
decay ratio, low cut, width and return level. Each track reaches it through a post-fader send
(:data:`SEND`, with an "off" floor that is exactly zero). One reverb is shared by all tracks: the
sends are summed into one stereo send bus, which is convolved once.

Model (``sr`` the sample rate, ``n`` the sample index):

* two independent white Gaussian noises (seeds fixed), each split into ``K = 10`` octave bands
  (centres 31.25 Hz ... 16 kHz) by zero-phase triangular weights in log-frequency that sum to one, so
  the bands add back to the white noise (:func:`band_noise`, cached per sample rate);
* band ``k`` decays exponentially from the onset ``n0 = predelay_ms * sr / 1000``:
  amplitude ``exp(-delta_k (n - n0))``, ``delta_k = 3 ln 10 / (RT60_k sr)`` so that its energy falls by
  60 dB in ``RT60_k = RT60 * hf_ratio ** w_k`` seconds, with ``w_k = clip(log2(f_k / 1 kHz) / 3, 0, 1)``
  (bands up to 1 kHz decay in RT60, 8 kHz and above in ``hf_ratio * RT60``: damping);
* an onset ramp ``clip((n - n0 + 1) / ONSET, 0, 1)`` (1 ms): the impulse response is exactly zero
  before sample ``floor(n0)`` and non-zero from there on, and it depends continuously on the
  pre-delay (so the pre-delay has a gradient);
* low cut: band ``k`` is scaled by the magnitude of a second-order Butterworth high-pass at ``f_k``;
* scale ``sqrt(1 - exp(-2 delta_0))``: without damping or low cut, each channel has unit energy;
* length ``floor(n0) + ceil(RT60 sr)`` samples (the undamped envelope is then 60 dB down);
* width ``w``: with ``h1, h2`` the responses built from the two noises,
  ``L = ((1 + w) h1 + (1 - w) h2) / (sqrt(2) sqrt(1 + w**2))`` and ``R`` likewise with ``h1, h2``
  swapped: ``w = 0`` gives identical channels, ``w = 1`` gives ``L = h1, R = h2`` (uncorrelated);
  each channel keeps its energy. The inter-channel correlation is ``(1 - w**2) / (1 + w**2)``.

The input is mono: the send bus's ``(L + R) / sqrt(2)``. A mono-in, stereo-out reverb needs two
convolutions (a "true stereo" one needs four) and makes *width* the one control of the return's image.

Renderers:

* :func:`render_return` (torch): builds the impulse responses in torch from the parameters
  (:func:`impulse_response`, batched, differentiable with respect to every control) and convolves the
  summed send bus with them by FFT. :func:`send_bus` sums the post-fader track outputs by send level.
* :class:`StreamingReverb` (numpy, real time): the same impulse response (:func:`impulse_response_np`,
  the same formula) by non-uniformly partitioned overlap-save convolution on a fixed grid of absolute
  time: a direct-form head (:data:`HEAD` taps, compiled) and levels of block size 64, 512, 4096 and
  32768 samples, each starting at its own block size (so a block's contribution is only ever needed
  after it is complete; partitions that are all zero are skipped, and a level no response uses stops
  transforming its input). No latency, output identical for any block size, and a parameter change
  cross-fades linearly from the old to the new impulse response over :data:`XFADE_MS`.

The controls are defined in the schema (``core.params``): :data:`SEND` is the track strip's
``send_db``, :data:`RETURN` the master bus's ``"reverb"`` group. The torch console
(:func:`core.console.render`) adds :func:`render_return` of the post-fader track outputs to the stereo
sum before the master bus; the streaming engine does the same with :class:`StreamingReverb` on the
summed send bus (``docs/reverb.md``).

Shapes: ``B`` batch, ``N`` tracks, ``T`` samples, ``L`` impulse-response length.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from numba import njit

from .params import RETURN, SEND, SEND_FADE_DB, SEND_OFF_DB  # noqa: F401 (the schema's; re-exported)

_RT60, _PRE, _HF, _LOWCUT, _WIDTH, _RETURN = (RETURN.index(k) for k in RETURN.keys)

# --- model constants -----------------------------------------------------------------------------------

#: Octave-band centres (Hz) of the noise bands.
BAND_HZ = tuple(31.25 * 2.0**k for k in range(10))
#: Per band, the exponent of the HF ratio in its RT60: 0 up to 1 kHz, 1 from 8 kHz.
BAND_DAMPING = tuple(min(max(math.log2(f / 1000.0) / 3.0, 0.0), 1.0) for f in BAND_HZ)
_DAMPING_GROUPS = tuple((w, tuple(k for k, v in enumerate(BAND_DAMPING) if v == w))
                        for w in dict.fromkeys(BAND_DAMPING))
#: Onset ramp (ms): the reverb reaches full density this long after the pre-delay.
ONSET_MS = 1.0
NOISE_SEED = 20261129
_DECAY = 3.0 * math.log(10.0)  # amplitude falls by 60 dB when delta * n reaches this


def ir_length(rt60_s: float, predelay_ms: float, sample_rate: int) -> int:
    """Length (samples) of the impulse response: onset plus the time the envelope takes to fall 60 dB."""
    return int(math.floor(predelay_ms * sample_rate / 1000.0)) + int(math.ceil(rt60_s * sample_rate))


def max_ir_length(sample_rate: int) -> int:
    """The longest impulse response the ranges allow."""
    return ir_length(RETURN["reverb_rt60_s"].max, RETURN["reverb_predelay_ms"].max, sample_rate)


def _band_weights(n_fft: int, sample_rate: int) -> np.ndarray:
    """``(K, n_fft // 2 + 1)`` triangular weights in log2-frequency, summing to one at every bin."""
    f = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    pos = np.log2(np.maximum(f, 1e-3) / BAND_HZ[0])  # band k sits at pos == k
    pos = np.clip(pos, 0.0, len(BAND_HZ) - 1.0)
    k = np.arange(len(BAND_HZ))[:, None]
    return np.maximum(0.0, 1.0 - np.abs(pos[None] - k))


@functools.lru_cache(maxsize=4)
def band_noise(sample_rate: int) -> np.ndarray:
    """``(2, K, max_ir_length)`` float32: two fixed-seed white noises split into the octave bands.

    Summing over the bands gives back each unit-variance white noise. Read-only and cached.
    """
    n = max_ir_length(sample_rate)
    noise = np.random.default_rng(NOISE_SEED).standard_normal((2, n), dtype=np.float32)
    spec = sfft.rfft(noise, axis=-1)  # (2, F) complex64
    weights = _band_weights(n, sample_rate).astype(np.float32)  # (K, F)
    bands = np.empty((2, len(BAND_HZ), n), np.float32)
    for k in range(len(BAND_HZ)):
        bands[:, k] = sfft.irfft(spec * weights[k], n=n, axis=-1)
    bands.setflags(write=False)
    return bands


def _lowcut_gain(xp, lowcut_hz):
    """Butterworth second-order high-pass magnitude at each band centre: ``(..., K)``."""
    if xp is np:
        f = np.asarray(BAND_HZ)
    else:
        f = _torch().tensor(BAND_HZ, dtype=lowcut_hz.dtype, device=lowcut_hz.device)
    r = (f / lowcut_hz[..., None]) ** 2
    return r / xp.sqrt(1.0 + r * r)


def _ir_formula(xp, p, noise, sample_rate: int, length: int):
    """The impulse response, written once for numpy and torch (``xp``).

    ``p``: ``(B, len(RETURN))`` physical values; ``noise``: ``(2, K, >= length)``;
    returns ``(B, 2, length)``. Samples beyond each item's own :func:`ir_length` are zero.
    """
    torch = None if xp is np else _torch()
    rt60, pre, hf, lowcut, width = (p[:, i, None] for i in (_RT60, _PRE, _HF, _LOWCUT, _WIDTH))
    sr = float(sample_rate)
    if torch is None:
        n = np.arange(length, dtype=np.float64)
    else:
        n = torch.arange(length, dtype=p.dtype, device=p.device)
    n0 = pre * (sr / 1000.0)  # (B, 1) onset, samples
    age = xp.clip(n - n0, 0.0, None)  # (B, L) samples since the onset
    onset = xp.clip((n - n0 + 1.0) / (ONSET_MS * sr / 1000.0), 0.0, 1.0)
    delta0 = _DECAY / (rt60 * sr)  # (B, 1) amplitude decay per sample, undamped
    scale = xp.sqrt(-xp.expm1(-2.0 * delta0)) * onset  # (B, L); expm1: exact for long decays in float32
    gains = _lowcut_gain(xp, lowcut[:, 0])  # (B, K)
    h1 = h2 = 0.0
    for w_k, bands in _DAMPING_GROUPS:  # bands that share a decay share one envelope
        delta = delta0 / hf**w_k if w_k else delta0  # (B, 1)
        env = xp.exp(-delta * age) * scale  # (B, L)
        tone1 = tone2 = 0.0
        for k in bands:
            tone1 = tone1 + gains[:, k, None] * noise[0, k, :length]
            tone2 = tone2 + gains[:, k, None] * noise[1, k, :length]
        h1 = h1 + env * tone1
        h2 = h2 + env * tone2
    # each item ends at its own length (items of a batch share the longest)
    ends = [ir_length(float(r), float(d), sample_rate)
            for r, d in zip(rt60[:, 0].tolist(), pre[:, 0].tolist(), strict=True)]
    if torch is None:
        live = n[None] < np.asarray(ends, dtype=np.float64)[:, None]
    else:
        live = n[None] < torch.tensor(ends, dtype=p.dtype, device=p.device)[:, None]
    norm = math.sqrt(2.0) * xp.sqrt(1.0 + width * width)  # (B, 1)
    a, b = (1.0 + width) / norm, (1.0 - width) / norm
    left = (a * h1 + b * h2) * live
    right = (b * h1 + a * h2) * live
    return xp.stack([left, right], 1)


def _torch():
    import torch

    return torch


@functools.lru_cache(maxsize=4)
def _torch_noise(sample_rate: int, dtype, device):
    torch = _torch()
    return torch.tensor(band_noise(sample_rate), dtype=dtype, device=device)


def _as_batch_np(params) -> tuple[np.ndarray, bool]:
    p = np.asarray(params, dtype=np.float64)
    if p.shape[-1] != len(RETURN):
        raise ValueError(f"reverb parameters have {p.shape[-1]} values on the last axis, "
                         f"expected {len(RETURN)}")
    return RETURN.clip(p.reshape(-1, len(RETURN))), p.ndim == 1


def impulse_response_np(params, sample_rate: int) -> np.ndarray:
    """The reverb's impulse response in numpy float64 (the streaming renderer's).

    Args:
        params: ``(len(RETURN),)`` or ``(B, len(RETURN))`` physical values (clipped to their ranges).
        sample_rate: Hz.

    Returns:
        ``(2, L)`` or ``(B, 2, L)`` float64, ``L`` the longest :func:`ir_length` of the batch; the return
        level is not applied.
    """
    p, single = _as_batch_np(params)
    length = max(ir_length(r, d, sample_rate) for r, d in zip(p[:, _RT60], p[:, _PRE], strict=True))
    h = _ir_formula(np, p, band_noise(sample_rate), sample_rate, length)
    return h[0] if single else h


def impulse_response(params, sample_rate: int):
    """The reverb's impulse response in torch, differentiable with respect to every control.

    Args:
        params: tensor ``(B, len(RETURN))`` or ``(len(RETURN),)`` of physical values (clamped to their
            ranges, differentiably inside them); float32 or float64.
        sample_rate: Hz.

    Returns:
        ``(B, 2, L)`` (or ``(2, L)``), same dtype as ``params``; ``L`` the longest :func:`ir_length`.
    """
    torch = _torch()
    p = torch.as_tensor(params)
    if not p.is_floating_point():
        p = p.to(torch.float32)
    single = p.ndim == 1
    p = RETURN.clip(p.reshape(-1, len(RETURN)))
    d = p.detach().to(torch.float64).cpu().numpy()
    length = max(ir_length(r, q, sample_rate) for r, q in zip(d[:, _RT60], d[:, _PRE], strict=True))
    noise = _torch_noise(sample_rate, p.dtype, p.device)
    h = _ir_formula(torch, p, noise, sample_rate, length)
    return h[0] if single else h


# --- sends and the torch renderer -----------------------------------------------------------------------


def send_gain(send_db):
    """Linear gain of a send level (float, numpy array or tensor): exactly 0 at or below the floor,
    ``10 ** (db / 20)`` from ``SEND_OFF_DB + SEND_FADE_DB`` up, a linear fade-in between."""
    if type(send_db).__module__.startswith("torch"):
        fade = ((send_db - SEND_OFF_DB) / SEND_FADE_DB).clamp(0.0, 1.0)
    else:
        fade = np.clip((np.asarray(send_db, dtype=np.float64) - SEND_OFF_DB) / SEND_FADE_DB, 0.0, 1.0)
    return 10 ** (send_db / 20) * fade


def send_bus(track_out, send_db):
    """Sum post-fader track outputs into the stereo send bus.

    Args:
        track_out: ``(B, N, 2, T)`` each track after its fader and pan (what it adds to the stereo sum).
        send_db: ``(B, N)`` send levels, dB.

    Returns:
        ``(B, 2, T)``; exactly zero where every send is off.
    """
    return (track_out * send_gain(send_db)[..., None, None]).sum(1)


def render_return(bus, params, sample_rate: int, tail: bool = False):
    """The FX return: the send bus through the reverb, times the return level (torch, differentiable).

    Args:
        bus: ``(B, 2, T)`` send bus (:func:`send_bus`).
        params: ``(B, len(RETURN))`` physical values.
        sample_rate: Hz.
        tail: also return the reverb's tail beyond ``T`` (for rendering in chunks: overlap-add each
            chunk's output, tail included, at the chunk's offset).

    Returns:
        ``(B, 2, T)`` wet signal (``(B, 2, T + L - 1)`` with ``tail``), to add to the stereo sum before
        the master bus. Linear convolution by FFT (no wrap-around). Exactly zero for a silent bus.
    """
    torch = _torch()
    params = RETURN.clip(torch.as_tensor(params, dtype=bus.dtype).reshape(-1, len(RETURN)))
    h = impulse_response(params, sample_rate)  # (B, 2, L)
    n_samples = bus.shape[-1]
    n_fft = sfft.next_fast_len(n_samples + h.shape[-1] - 1, real=True)
    mono = (bus[:, 0] + bus[:, 1]) * (1.0 / math.sqrt(2.0))  # (B, T)
    spec = torch.fft.rfft(mono, n=n_fft)[:, None] * torch.fft.rfft(h, n=n_fft)  # (B, 2, F)
    wet = torch.fft.irfft(spec, n=n_fft)[..., :n_samples + h.shape[-1] - 1 if tail else n_samples]
    gain = 10 ** (params[:, _RETURN] / 20)
    return wet * gain[:, None, None]


# --- the streaming renderer -----------------------------------------------------------------------------

#: Direct-form taps at the head of the impulse response (zero latency); the FFT levels start here.
HEAD = 64
#: Block sizes of the partitioned levels; level ``j`` covers ``[N_j, N_{j+1})`` (the last: to the end).
LEVELS = (64, 512, 4096, 32768)
#: Cross-fade between the old and the new impulse response after an edit.
XFADE_MS = 10.0
#: At most this many impulse responses sound at once (edits faster than the cross-fade).
MAX_VOICES = 4
#: Longest block processed in one pass (longer calls are split).
MAX_CHUNK = 8192


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _fir_head(buf, taps, k0, out):
    """``out[c, i] += sum_k taps[c, k] * buf[K - 1 + i - k]`` for ``k = k0 .. K - 1`` (direct form).

    Each output sample sums its taps in the same order (fused multiply-adds, no other reordering)
    whatever the block, so the result does not depend on how the stream is cut; the loop over samples
    is the inner one, over contiguous views (vectorised).
    """
    n_taps = taps.shape[1]
    n = out.shape[1]
    for c in range(taps.shape[0]):
        row = out[c]
        for k in range(k0, n_taps):
            tap = taps[c, k]
            src = buf[n_taps - 1 - k:n_taps - 1 - k + n]
            for i in range(n):
                row[i] += tap * src[i]


@njit(cache=True, nogil=True)
def _spectral_mac(fdl, first, last, parts, spectra, acc):
    """``acc[b, c] = sum over p in parts of fdl[(first + b - p) mod S] * spectra[p, c]``.

    One pass, partitions summed in a fixed order (so grouping blocks differently changes nothing).
    """
    size = fdl.shape[0]
    n_bins = fdl.shape[1]
    for b in range(last - first + 1):
        for p in parts:
            row = (first + b - p) % size
            for c in range(spectra.shape[1]):
                for f in range(n_bins):
                    acc[b, c, f] += fdl[row, f] * spectra[p, c, f]


@dataclass(frozen=True, eq=False)
class ReverbKernel:
    """One impulse response prepared for :class:`StreamingReverb` (immutable; build off the audio path).

    ``head``: ``(2, HEAD)`` taps, or ``None`` when they are all zero (pre-delay >= HEAD samples).
    ``spectra[j]``: ``(P_j, 2, N_j + 1)`` complex64 spectra of level ``j``'s partitions (``None`` when the
    level is silent); ``parts[j]``: indices of its non-zero partitions. The return level is not part
    of the kernel (it is a gain ramp of the stream).
    """

    params: np.ndarray  # (len(RETURN),) physical, clipped
    sample_rate: int
    head: np.ndarray | None
    head_first: int  # first non-zero head tap
    spectra: tuple
    parts: tuple

    @classmethod
    def build(cls, params, sample_rate: int) -> ReverbKernel:
        p = _as_batch_np(params)[0][0]
        h = impulse_response_np(p, sample_rate)  # (2, L)
        head = np.zeros((2, HEAD), np.float32)  # float32 like the FFT levels: twice the SIMD width
        head[:, :min(HEAD, h.shape[1])] = h[:, :HEAD]
        live = np.flatnonzero(np.any(head, axis=0))
        head_first = int(live[0]) if live.size else HEAD
        spectra, parts = [], []
        for start, size, count in _level_layout(sample_rate):
            seg = h[:, start:start + size * count]
            if seg.shape[1] == 0 or not np.any(seg):
                spectra.append(None)
                parts.append(())
                continue
            flat = np.zeros((2, size * count))
            flat[:, :seg.shape[1]] = seg
            padded = np.zeros((count, 2, 2 * size), np.float32)  # each partition, then N zeros
            padded[:, :, :size] = flat.reshape(2, count, size).transpose(1, 0, 2)
            spectra.append(sfft.rfft(padded, axis=-1))
            parts.append(np.flatnonzero(np.any(padded, axis=(1, 2))).astype(np.int64))
        return cls(params=p, sample_rate=int(sample_rate), head=head if live.size else None,
                   head_first=head_first, spectra=tuple(spectra), parts=tuple(parts))

    def same_response(self, params) -> bool:
        """Whether ``params`` give this impulse response (they may differ in return level)."""
        p = _as_batch_np(params)[0][0]
        return bool(np.array_equal(p[:_RETURN], self.params[:_RETURN]))


@functools.lru_cache(maxsize=8)
def _level_layout(sample_rate: int) -> tuple[tuple[int, int, int], ...]:
    """Per level: (first impulse-response sample, block size N, partition count P)."""
    total = max_ir_length(sample_rate)
    out = []
    for j, size in enumerate(LEVELS):
        end = LEVELS[j + 1] if j + 1 < len(LEVELS) else max(total, 2 * size)
        out.append((size, size, -(-(end - size) // size)))
    return tuple(out)


class _Voice:
    """One impulse response sounding: its pending level outputs and its cross-fade weight ramp."""

    def __init__(self, kernel: ReverbKernel, rings: list, start: int, ramp: int, w0: float, w1: float):
        self.kernel, self.rings = kernel, rings
        self.start, self.ramp, self.w0, self.w1 = start, ramp, w0, w1

    def weights(self, t: int, n: int) -> np.ndarray:
        """Weight of each sample ``t .. t + n - 1``: linear from ``w0`` to ``w1`` over ``ramp`` samples."""
        return _ramp(self.w0, self.w1, self.start, self.ramp, t, n)

    def weight_before(self, t: int) -> float:
        """Weight of sample ``t - 1``."""
        return float(np.atleast_1d(self.weights(t - 1, 1))[0])


def _ramp(v0: float, v1: float, start: int, length: int, t: int, n: int):
    """Values at samples ``t .. t + n - 1`` of a line from ``v0`` (before ``start``) to ``v1`` (from
    ``start + length - 1`` on); a float when constant over the block."""
    if t >= start + length - 1 or v0 == v1:
        return float(v1)
    frac = np.clip((np.arange(t, t + n) - start + 1) / length, 0.0, 1.0)
    return v0 + (v1 - v0) * frac


class StreamingReverb:
    """The reverb in real time: feed the stereo send bus block by block, get the wet return.

    Non-uniformly partitioned overlap-save convolution on a fixed grid of absolute time (see the
    module docstring): no latency, identical output for any sequence of block sizes. The input spectra
    are shared by every impulse response, so an edit (:meth:`set_params`) only computes the new
    response's pending blocks, then cross-fades linearly from the old output to the new over
    :data:`XFADE_MS`; a return-level change alone ramps the gain over the same time.
    """

    def __init__(self, sample_rate: int, params=None, kernel: ReverbKernel | None = None):
        self.sample_rate = int(sample_rate)
        self.layout = _level_layout(self.sample_rate)
        self.xfade = max(1, int(round(XFADE_MS * self.sample_rate / 1000.0)))
        top_size = self.layout[-1][1]
        self._in_size = -(-(2 * top_size + MAX_CHUNK) // top_size) * top_size  # whole blocks of every level
        # per level: input spectra for one chunk's blocks, the partitions, and the blocks whose output
        # is still pending when an edit arrives
        self._fdl_size = [MAX_CHUNK // size + count + start // size + 3 for start, size, count in self.layout]
        self._out_size = [-(-(MAX_CHUNK + start + size) // size) * size for start, size, _ in self.layout]
        # a level no response uses stops transforming its input; the input ring must then hold enough
        # to fill its spectra again when an edit needs it (see _fill_spectra)
        if any((s + 1) * lay[1] > self._in_size
               for s, lay in zip(self._fdl_size[:-1], self.layout[:-1], strict=True)):
            raise RuntimeError("reverb input ring too short for its levels")
        params = RETURN.defaults() if params is None else params
        if kernel is not None and kernel.sample_rate != self.sample_rate:
            raise ValueError(f"reverb kernel is for {kernel.sample_rate} Hz, the stream runs at "
                             f"{self.sample_rate} Hz")
        # a prebuilt kernel (``kernel``, e.g. from a snapshot) must be the response of ``params``
        self._kernel0 = kernel if kernel is not None else ReverbKernel.build(params, self.sample_rate)
        self._gain0 = _return_gain(params)
        self.reset()

    def reset(self, kernel: ReverbKernel | None = None, gain: float | None = None, t: int = 0) -> None:
        """Silence at time ``t`` (e.g. after a seek), keeping the current impulse response and level, or
        starting with ``kernel`` and linear return ``gain`` (no cross-fade: nothing sounds yet).

        The state is then exactly that of a stream fed silence from time 0 to ``t``: the output does
        not depend on where a stream that starts in silence was reset."""
        if hasattr(self, "voices"):
            self._kernel0, self._gain0 = self.kernel, self._g1
        if kernel is not None:
            self._kernel0 = kernel
        if gain is not None:
            self._gain0 = float(gain)
        self.t = 0
        self._input = np.zeros(self._in_size, np.float32)
        self._hist = np.zeros(HEAD - 1, np.float32)
        self._fdl = [np.zeros((s, lay[1] + 1), np.complex64) for s, lay in zip(self._fdl_size, self.layout,
                                                                                   strict=True)]
        self._live = [True] * len(self.layout)  # level spectra up to date (trivially: all zero)
        self._g0 = self._g1 = self._gain0
        self._gstart = 0
        self.voices = [self._voice(self._kernel0, 1.0, 1.0)]
        self.t = int(t)  # everything above is silent at any time: only the block grid's phase moves

    def checkpoint(self) -> dict:
        """A copy of the whole state (about 6 MB at 44.1 kHz), for :meth:`restore`: the engine re-renders
        blocks that were not played yet after an edit by going back to a checkpoint. The copies hold the
        GIL (:func:`_clone`): playback makes them next to a busy GUI thread."""
        voices = [(v.kernel, [None if r is None else _clone(r) for r in v.rings], v.start, v.ramp, v.w0, v.w1)
                  for v in self.voices]
        return {"t": self.t, "input": _clone(self._input), "hist": self._hist.copy(),
                "fdl": [_clone(f) for f in self._fdl], "live": list(self._live), "voices": voices,
                "gain": (self._g0, self._g1, self._gstart)}

    def restore(self, state: dict) -> None:
        """Go back to a :meth:`checkpoint` (its arrays are copied, so it can be restored again)."""
        self.t = state["t"]
        _copy_held(self._input, state["input"])
        self._hist = state["hist"].copy()
        for f, saved in zip(self._fdl, state["fdl"], strict=True):
            _copy_held(f, saved)
        self._live = list(state["live"])
        self.voices = [_Voice(k, [None if r is None else _clone(r) for r in rings], start, ramp, w0, w1)
                       for k, rings, start, ramp, w0, w1 in state["voices"]]
        self._g0, self._g1, self._gstart = state["gain"]

    @property
    def kernel(self) -> ReverbKernel:
        """The impulse response playing (or being faded in)."""
        return self.voices[-1].kernel

    @property
    def params(self) -> np.ndarray:
        out = self.kernel.params.copy()
        out[_RETURN] = 20 * math.log10(self._g1) if self._g1 > 0 else RETURN["reverb_return_db"].min
        return out

    def set_params(self, params) -> None:
        """Change the reverb: physical values in :data:`RETURN` order (or a dict by key), heard from the
        next block. A new impulse response is built here; :meth:`set_kernel` takes a prebuilt one."""
        if isinstance(params, dict):
            params = RETURN.to_vector({**RETURN.to_dict(self.params), **params})
        if not self.kernel.same_response(params):
            self.set_kernel(ReverbKernel.build(params, self.sample_rate))
        self.set_return_gain(_return_gain(params))

    @property
    def return_gain(self) -> float:
        """The linear return level (the target of a ramp in progress)."""
        return self._g1

    def set_return_gain(self, gain: float) -> None:
        """Ramp the return level (linear gain) to ``gain`` over the cross-fade time."""
        self._g0 = float(np.atleast_1d(_ramp(self._g0, self._g1, self._gstart, self.xfade, self.t - 1, 1))[0])
        self._g1, self._gstart = float(gain), self.t

    def set_kernel(self, kernel: ReverbKernel) -> None:
        """Cross-fade to a prepared impulse response (:meth:`ReverbKernel.build`, e.g. on a render thread)."""
        if kernel.sample_rate != self.sample_rate:
            raise ValueError(f"reverb kernel is for {kernel.sample_rate} Hz, the stream runs at "
                             f"{self.sample_rate} Hz")
        for v in self.voices:  # every sounding response fades out from where it is
            v.w0, v.w1, v.start, v.ramp = v.weight_before(self.t), 0.0, self.t, self.xfade
        self.voices.append(self._voice(kernel, 0.0, 1.0))
        if len(self.voices) > MAX_VOICES:  # edits faster than the cross-fade: drop the faintest
            faintest = min(self.voices[:-1], key=lambda v: v.w0)
            self.voices.remove(faintest)

    def _voice(self, kernel: ReverbKernel, w0: float, w1: float) -> _Voice:
        """A voice for ``kernel`` at time ``t``, with the output of blocks already complete filled in."""
        rings = [None if kernel.spectra[j] is None else np.zeros((2, size), np.float32)
                 for j, size in enumerate(self._out_size)]
        voice = _Voice(kernel, rings, self.t, self.xfade, w0, w1)
        for j, (start, size, _) in enumerate(self.layout):
            if rings[j] is None:
                continue
            if not self._live[j]:
                self._fill_spectra(j)
            first = max(0, -(-(self.t - start + 1) // size) - 1)  # the block whose output reaches t
            last = self.t // size - 1
            if last >= first:
                self._level_blocks(voice, j, first, last)
        return voice

    def _fill_spectra(self, j: int) -> None:
        """Recompute level ``j``'s input spectra (all the ring holds) from the stored input."""
        size, fdl = self.layout[j][1], self._fdl[j]
        fdl[:] = 0.0
        last = self.t // size - 1
        first = max(0, last - fdl.shape[0] + 1)
        if last >= first:
            rows = self._input.reshape(-1, size)
            windows = np.concatenate([_rows(rows, first - 1, last - 1), _rows(rows, first, last)], axis=-1)
            _put_rows(fdl, first, sfft.rfft(windows, axis=-1))
        self._live[j] = True

    # processing ------------------------------------------------------------------------------------------
    def process(self, bus: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``bus``: ``(2, n)`` send bus; returns the ``(2, n)`` float64 wet return (into ``out`` if given)."""
        bus = np.asarray(bus)
        if bus.ndim != 2 or bus.shape[0] != 2:
            raise ValueError(f"send bus must be (2, n), got {bus.shape}")
        n = bus.shape[-1]
        out = np.empty((2, n), np.float64) if out is None else out
        for i in range(0, n, MAX_CHUNK):
            self._chunk(bus[:, i:i + MAX_CHUNK], out[:, i:i + MAX_CHUNK])
        return out

    def _chunk(self, bus: np.ndarray, out: np.ndarray) -> None:
        n, t = bus.shape[-1], self.t
        mono = (bus[0].astype(np.float64) + bus[1]) * (1.0 / math.sqrt(2.0))
        _ring_put(self._input, t, mono)
        self.t = t + n
        for j, (_, size, _) in enumerate(self.layout):  # level blocks completed by this chunk
            first, last = t // size, (t + n) // size - 1
            if last < first:
                continue
            if j < len(self.layout) - 1 and all(v.rings[j] is None for v in self.voices):
                self._live[j] = False  # no response uses this level now: skip its transforms
                continue
            rows = self._input.reshape(-1, size)  # (R / N, N): block c of the input is row c mod R/N
            windows = np.concatenate([_rows(rows, first - 1, last - 1), _rows(rows, first, last)], axis=-1)
            _put_rows(self._fdl[j], first, sfft.rfft(windows, axis=-1))  # (m, N + 1)
            for v in self.voices:
                if v.rings[j] is not None:
                    self._level_blocks(v, j, first, last)
        buf = np.concatenate([self._hist, mono.astype(np.float32)])  # the input the levels see
        self._hist = buf[n:].copy()
        out[:] = 0.0
        for v in self.voices:
            y = self._voice_out(v, buf, t, n)
            w = v.weights(t, n)
            if isinstance(w, float) and w == 1.0:
                out += y
            else:
                out += y * w
        out *= _ramp(self._g0, self._g1, self._gstart, self.xfade, t, n)
        self.voices = [v for v in self.voices if v.w1 > 0.0 or t + n < v.start + v.ramp]

    def _voice_out(self, v: _Voice, buf: np.ndarray, t: int, n: int) -> np.ndarray:
        """The voice's output for samples ``t .. t + n - 1`` (before weight and return level)."""
        if v.kernel.head is not None:
            head = np.zeros((2, n), np.float32)
            _fir_head(buf, v.kernel.head, v.kernel.head_first, head)
            y = head.astype(np.float64)
        else:
            y = np.zeros((2, n), np.float64)
        for ring in v.rings:
            if ring is not None:
                _ring_add(ring, t, y)
        return y

    def _level_blocks(self, v: _Voice, j: int, first: int, last: int) -> None:
        """Overlap-save output of level ``j``, complete blocks ``first .. last``, into the voice's ring."""
        start, size, _ = self.layout[j]
        acc = np.zeros((last - first + 1, 2, size + 1), np.complex64)
        _spectral_mac(self._fdl[j], first, last, v.kernel.parts[j], v.kernel.spectra[j], acc)
        z = sfft.irfft(acc, n=2 * size, axis=-1)[..., size:]  # (m, 2, N): the valid half
        # the ring as (rows, 2, N): output block c lands in row c + start / N
        rows = v.rings[j].reshape(2, -1, size).transpose(1, 0, 2)
        _put_rows(rows, first + start // size, z)


@njit(cache=True)  # holds the GIL: a numpy copy of megabytes gives it up, and with a busy GUI thread
def _copy_held(dst, src):  # playback's render thread then waits up to a switch interval to get it back
    """``dst[...] = src`` (same shape and dtype, 1-D or 2-D, C-contiguous)."""
    a = dst.reshape(-1)
    b = src.reshape(-1)
    for i in range(b.shape[0]):
        a[i] = b[i]


def _clone(x: np.ndarray) -> np.ndarray:
    """A copy of ``x`` made without giving up the GIL (:func:`_copy_held`)."""
    out = np.empty_like(x)
    _copy_held(out, x)
    return out


def _put_rows(a: np.ndarray, first: int, values: np.ndarray) -> None:
    """Rows ``first ..`` (modulo the length of axis 0) of ``a`` = ``values``."""
    size = a.shape[0]
    lo = first % size
    k = min(values.shape[0], size - lo)
    a[lo:lo + k] = values[:k]
    a[:values.shape[0] - k] = values[k:]


def _rows(a: np.ndarray, first: int, last: int) -> np.ndarray:
    """Rows ``first .. last`` of a ring of rows (indices modulo its length; a view when they do not wrap)."""
    size = a.shape[0]
    lo, hi = first % size, last % size
    if last - first + 1 <= size and lo <= hi:
        return a[lo:hi + 1]
    return a[np.arange(first, last + 1) % size]


def _ring_put(ring: np.ndarray, t: int, x: np.ndarray) -> None:
    """Write ``x`` at times ``t ..`` of a 1-D ring."""
    lo = t % ring.shape[-1]
    k = min(x.shape[-1], ring.shape[-1] - lo)
    ring[lo:lo + k] = x[:k]
    ring[:x.shape[-1] - k] = x[k:]


def _ring_add(ring: np.ndarray, t: int, y: np.ndarray) -> None:
    """``y += ring`` at times ``t .. t + n - 1`` of a ``(2, R)`` ring."""
    n = y.shape[-1]
    lo = t % ring.shape[-1]
    k = min(n, ring.shape[-1] - lo)
    y[:, :k] += ring[:, lo:lo + k]
    if k < n:
        y[:, k:] += ring[:, :n - k]


def _return_gain(params) -> float:
    return float(10 ** (_as_batch_np(params)[0][0, _RETURN] / 20))


def render_stream_return(bus: np.ndarray, params, sample_rate: int, block: int = MAX_CHUNK) -> np.ndarray:
    """Whole send bus ``(2, T)`` through :class:`StreamingReverb` in blocks of ``block``: ``(2, T)``."""
    rev = StreamingReverb(sample_rate, params)
    out = np.empty((2, bus.shape[-1]), np.float64)
    for i in range(0, bus.shape[-1], block):
        rev.process(bus[:, i:i + block], out[:, i:i + block])
    return out
