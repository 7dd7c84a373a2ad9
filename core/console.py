"""The torch mixing console: batched, differentiable, no latency.

Implements the signal flow of ``docs/console-spec.md`` exactly. Per track: trim -> 6-band EQ ->
compressor -> fader -> pan; the unmasked tracks are summed; each track also feeds a post-fader,
post-pan send (``send_db``) to one shared reverb (:mod:`core.reverb`), whose FX return is added to
the stereo sum; the master bus applies EQ -> compressor -> master fader to that sum. When every send
is off (and no gradient is asked of the reverb's controls) the reverb is skipped: the mix is then
bit-identical to a console without it. Parameters are *physical* values (dB, Hz, ms, ratio, pan position)
in the order of :data:`core.params.TRACK` / :data:`core.params.MASTER` along the last axis; nothing
here repeats a key's range or position -- every value is looked up by key.

Two entry points:

* :func:`render` -- one pass over the whole signal, differentiable with respect to the parameters and
  the stems (training, prediction, refinement);
* :func:`render_long` -- the same console, without gradients, in chunks of bounded memory (whole songs:
  export, CLI). It agrees with :func:`render` to better than -80 dB.

On the CPU, :func:`render` filters channels as rows with a hand-written FFT adjoint, and runs each
compressor (detector, static curve, ballistics) together with the faders, pans and the sum as compiled
passes with explicit adjoints (float64 inside): the same console as the torch formulation, which other
devices use, without its dozens of full-length temporaries per step (those compiled passes and their
hand-written adjoints live in :mod:`core.console_kernels`). :class:`TrackSpectra` prepares
stems that are rendered many times (refinement): their spectra are computed once, and a mono stem's
channel is filtered once.

Building blocks (pure functions, usable on their own):

* EQ: :func:`biquad_coeffs` designs the six sections in float64 with :func:`dasp_pytorch.signal.biquad`
  (RBJ Audio-EQ-Cookbook); :func:`eq_response` gives the cascade's frequency response;
  :func:`apply_eq` multiplies the signal's spectrum, on an FFT grid zero-padded by the length of the
  impulse response (:data:`EQ_TAIL` samples, beyond which it has decayed below -120 dB), by the
  cascade's response: a linear, not circular, convolution that equals the causal IIR filter
  (``scipy.signal.sosfilt`` from zero state). dasp-pytorch's own FFT filtering is not used: it
  convolves circularly, which is wrong on short windows.
* :func:`compressor` -- feed-forward, RMS detector, mean-linked stereo, soft knee (Giannoulis,
  Massberg & Reiss, "Digital Dynamic Range Compressor Design -- A Tutorial and Analysis", JAES 2012),
  attack/release gain ballistics through :func:`torchcomp.compressor_core` (differentiable recursion;
  on the CPU the same recursions as compiled passes).
* :func:`pan_gains` -- constant power, -3 dB at centre; balance for stereo stems.

Shapes: ``B`` batch, ``N`` tracks, ``C`` channels (2: L, R), ``T`` samples, ``F`` rfft bins.
"""

from __future__ import annotations

import contextlib
import math
import threading

import numpy as np
import torch
from dasp_pytorch.signal import biquad
from scipy.fft import next_fast_len
from torchcomp import compressor_core, ms2coef
from torchlpc import sample_wise_lpc

from . import reverb
from .console_kernels import (  # the compiled CPU passes and hand-written adjoints
    _CascadeResponse,
    _CompressMixCPU,
    _CompressMixSendCPU,
    _gain_kernel,
    _kernel_threads,
    _LinkedGainCPU,
    _RowFilter,
    _TargetGain,
    gain_computer_db,  # noqa: F401 (re-exported)
)
from .dsp import EQ, LEVEL_FLOOR, MAX_FREQ_FRACTION, RMS_MS  # noqa: F401 (re-exported)
from .params import EQ_BAND_KEYS, EQ_BAND_TYPES, MASTER, RETURN, TRACK, Schema

#: Length (samples) of the EQ's impulse response that is applied, and so the zero padding of its FFT
#: grid. The slowest-decaying response the schema allows (a +12 dB, Q 8 peak at 40 Hz) keeps -122 dB
#: of its energy beyond 2**16 samples at 48 kHz (-75 dB beyond 2**15).
EQ_TAIL = 2**16

#: Default chunk length (samples) of :func:`render_long`.
LONG_CHUNK = 2**17


#: The EQ and compressor controls, as sub-schemas of the track strip (same keys on the master bus).
COMP = Schema("comp", tuple(p for p in TRACK if p.group == "dynamics"))


def _indices(schema: Schema, keys) -> list[int]:
    return [schema.index(k) for k in keys]


_TRACK_EQ = _indices(TRACK, EQ.keys)
_MASTER_EQ = _indices(MASTER, EQ.keys)
_SEND = TRACK.index("send_db")
_MASTER_RETURN = _indices(MASTER, RETURN.keys)  # the FX return's controls, in core.reverb's order
# The gain computer's arguments in call order (the makeup gain is applied after it), schema keys.
_DETECTOR_ARGS = ("comp_threshold_db", "comp_ratio", "comp_attack_ms", "comp_release_ms", "comp_knee_db")
if set(_DETECTOR_ARGS) | {"comp_makeup_db"} != set(COMP.keys):
    raise RuntimeError("the console's compressor arguments do not match the schema's dynamics group")


# --- small helpers ---------------------------------------------------------------------------------


def db_to_amp(db):
    """Decibels -> linear amplitude, ``10 ** (db / 20)`` (floats, numpy arrays or tensors)."""
    return 10 ** (db / 20)


def split_params(vector: torch.Tensor, schema: Schema) -> dict[str, torch.Tensor]:
    """Named views of a parameter tensor.

    Args:
        vector: ``(..., len(schema))`` values in schema order along the last axis.
        schema: the :class:`~core.params.Schema` that orders them.

    Returns:
        ``{key: tensor (...)}`` for every key of ``schema`` (views; gradients flow through).
    """
    if vector.shape[-1] != len(schema):
        raise ValueError(f"{schema.name} parameters have {vector.shape[-1]} values on the last axis, "
                         f"schema has {len(schema)}")
    return {key: vector[..., schema.index(key)] for key in schema.keys}


def _complex_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


# --- EQ ----------------------------------------------------------------------------------------------


_BANDS_BY_TYPE = tuple(
    (kind, tuple(band for band, k in zip(EQ_BAND_KEYS, EQ_BAND_TYPES, strict=True) if k == kind))
    for kind in dict.fromkeys(EQ_BAND_TYPES)
)
# position of each band (schema order) among the bands grouped by type
_BAND_ORDER = torch.tensor([[band for _, bands in _BANDS_BY_TYPE for band in bands].index(band)
                            for band in EQ_BAND_KEYS])


def biquad_coeffs(params_eq, sample_rate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Design the EQ's six biquads in float64 (RBJ cookbook, via :func:`dasp_pytorch.signal.biquad`).

    Args:
        params_eq: ``(..., len(EQ))`` physical values (dB, Hz, Q) in :data:`EQ` key order (tensor or
            array-like); band ``k`` has type ``EQ_BAND_TYPES[k]``.
        sample_rate: Hz.

    Returns:
        ``(b, a)``, each float64 ``(..., 6, 3)``, normalised so that ``a[..., 0] == 1``; differentiable
        with respect to ``params_eq``. ``torch.cat([b, a], -1)`` is the second-order-section array
        that ``scipy.signal.sosfilt`` takes.
    """
    p = torch.as_tensor(params_eq)
    p = p.to(torch.float64) if p.dtype != torch.float64 else p
    lead = p.shape[:-1]
    named = split_params(p.reshape(-1, p.shape[-1]), EQ)  # each (M,)
    f_max = MAX_FREQ_FRACTION * float(sample_rate)
    bs, as_ = [], []
    for kind, bands in _BANDS_BY_TYPE:  # bands of one type designed together (the design is elementwise)
        gain, freq, q = (torch.stack([named[f"{band}_{k}"] for band in bands], dim=-1).reshape(-1)
                         for k in ("gain_db", "freq_hz", "q"))
        b, a = biquad(gain, freq.clamp(max=f_max), q, float(sample_rate), kind)  # (M * K, 3) each
        bs.append(b.reshape(-1, len(bands), 3))
        as_.append(a.reshape(-1, len(bands), 3))
    order = _BAND_ORDER.to(p.device)
    b = torch.cat(bs, dim=-2).index_select(-2, order).reshape(*lead, len(EQ_BAND_KEYS), 3)
    a = torch.cat(as_, dim=-2).index_select(-2, order).reshape(*lead, len(EQ_BAND_KEYS), 3)
    return b, a


def biquad_sos(params_eq, sample_rate: float) -> torch.Tensor:
    """The EQ cascade as float64 second-order sections ``(..., 6, 6)`` = ``[b0 b1 b2 1 a1 a2]``."""
    b, a = biquad_coeffs(params_eq, sample_rate)
    return torch.cat([b, a], dim=-1)


def _cascade_response_torch(b: torch.Tensor, a: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """Complex response of cascaded biquads ``(..., S, 3)`` at ``n_freqs`` rfft bins -> ``(..., F)``.

    Each section is evaluated as ``(b0 e^{jw} + b1 + b2 e^{-jw}) / (a0 e^{jw} + a1 + a2 e^{-jw})``
    (numerator and denominator multiplied by ``e^{jw}``), which needs only real arithmetic against one
    shared cos/sin table before the complex products.
    """
    w = torch.arange(n_freqs, dtype=b.dtype, device=b.device) * (math.pi / max(n_freqs - 1, 1))
    cos_w, sin_w = torch.cos(w), torch.sin(w)
    num = den = None
    for s in range(b.shape[-2]):
        b0, b1, b2 = (b[..., s, i, None] for i in range(3))
        a0, a1, a2 = (a[..., s, i, None] for i in range(3))
        ns = torch.complex(b1 + (b0 + b2) * cos_w, (b0 - b2) * sin_w)
        ds = torch.complex(a1 + (a0 + a2) * cos_w, (a0 - a2) * sin_w)
        num = ns if num is None else num * ns
        den = ds if den is None else den * ds
    return num / den


def _cascade_response(b: torch.Tensor, a: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """Complex response (complex128 ``(..., F)``) of cascaded float64 biquads ``b, a (..., S, 3)`` on
    the ``n_freqs``-bin rfft grid; differentiable."""
    if b.device.type == "cpu" and b.numel() > 0:
        return _CascadeResponse.apply(b, a, n_freqs)
    return _cascade_response_torch(b, a, n_freqs)


def eq_response(params_eq, sample_rate: float, n_freqs: int) -> torch.Tensor:
    """Frequency response of the 6-band EQ on an rfft grid.

    Args:
        params_eq: ``(..., len(EQ))`` physical values in :data:`EQ` key order.
        sample_rate: Hz.
        n_freqs: number of bins ``F``; bin ``k`` is at ``k * sample_rate / (2 * (F - 1))`` Hz (the grid
            of ``torch.fft.rfft`` with ``n = 2 * (F - 1)``).

    Returns:
        complex128 ``(..., F)``, designed and evaluated in float64; differentiable.
    """
    b, a = biquad_coeffs(params_eq, sample_rate)
    return _cascade_response(b, a, n_freqs)


def _eq_fir(b: torch.Tensor, a: torch.Tensor, taps: int, gain=None) -> torch.Tensor:
    """The cascade's impulse response, first ``taps`` samples, float64 ``(..., taps)``.

    Sampling the response on a ``taps``-point grid folds the impulse response beyond ``taps`` samples
    onto the first ones; with ``taps >= EQ_TAIL`` that part is below -120 dB.
    """
    if taps % 2:
        raise ValueError("the EQ's FIR length must be even")
    fir = torch.fft.irfft(_cascade_response(b, a, taps // 2 + 1), n=taps)
    return fir if gain is None else fir * gain.to(torch.float64)[..., None]


def _filter_fft(x: torch.Tensor, fir: torch.Tensor) -> torch.Tensor:
    """Linear convolution of ``x (..., C, T)`` with ``fir (..., L)`` (float64), cut to ``T`` samples."""
    n_samples = x.shape[-1]
    n_fft = next_fast_len(n_samples + fir.shape[-1] - 1, real=True)
    resp = torch.fft.rfft(fir, n=n_fft).to(_complex_dtype(x.dtype)).unsqueeze(-2)  # (..., 1, F)
    spec = torch.fft.rfft(x, n=n_fft)  # (..., C, F)
    return torch.fft.irfft(spec * resp, n=n_fft)[..., :n_samples]


def apply_eq(x: torch.Tensor, eq_params, sample_rate: float, *, taps: int = EQ_TAIL) -> torch.Tensor:
    """Filter with the 6-band EQ, as the causal IIR cascade from zero state (``scipy.signal.sosfilt``).

    The cascade is designed in float64; its frequency response, sampled on a ``taps``-point grid, gives
    its impulse response (the part beyond ``taps`` samples is negligible, see :data:`EQ_TAIL`), whose
    spectrum on a zero-padded grid of at least ``T + taps - 1`` points (cast to the signal's precision)
    multiplies the signal's: a linear, not circular, convolution. No latency: output sample ``n``
    depends on input samples ``<= n`` only.

    Args:
        x: ``(..., C, T)`` signal.
        eq_params: ``(..., len(EQ))`` physical values in :data:`EQ` key order; leading dims equal to
            (or broadcastable to) ``x.shape[:-2]``.
        sample_rate: Hz.
        taps: length of the impulse response kept (even).

    Returns:
        ``(..., C, T)``, differentiable with respect to ``x`` and ``eq_params``.
    """
    b, a = biquad_coeffs(eq_params, sample_rate)
    return _filter_fft(x, _eq_fir(b, a, taps))


# --- compressor ----------------------------------------------------------------------------------------
#
# The static curve, :func:`gain_computer_db`, is defined in :mod:`core.console_kernels` beside its
# compiled form and explicit derivative (:class:`_TargetGain`), and re-exported here.


def _rms_coef(sample_rate: float) -> float:
    return 1.0 - math.exp(-2200.0 / (RMS_MS * float(sample_rate)))


def _coefs(attack_ms, release_ms, sample_rate):
    """Attack and release times (ms) as float64 ballistics coefficients (``ms2coef``)."""
    return tuple(ms2coef(ms.to(torch.float64), sample_rate) for ms in (attack_ms, release_ms))


def _detector_gain(power, threshold_db, ratio, attack_ms, release_ms, knee_db, sample_rate, state=None):
    """Detector, static curve and gain ballistics on rows (the torch formulation).

    Args:
        power: ``(R, T)`` detector input (mean square over the linked channels).
        threshold_db, ratio, attack_ms, release_ms, knee_db: ``(R,)``.
        state: ``(envelope (R,), gain (R,))`` at the sample before the first one, or None for the
            initial state (zero envelope, unity gain).

    Returns:
        ``gain (R, T)`` (linear, ballistic, without makeup) and the state after the last sample.
    """
    rows, _ = power.shape
    if state is None:
        env0, gain0 = power.new_zeros(rows), power.new_ones(rows)
    else:
        env0, gain0 = state
    coef = _rms_coef(sample_rate)
    # e[n] = e[n-1] + coef * (p[n] - e[n-1]) as the one-pole recursion y[n] = x[n] - (coef - 1) y[n-1]
    env = sample_wise_lpc(power * coef, power.new_full((1, 1, 1), coef - 1.0).expand(*power.shape, 1),
                          env0[:, None])
    target = _TargetGain.apply(env, threshold_db[:, None], ratio[:, None], knee_db[:, None])
    gain = compressor_core(target, gain0, ms2coef(attack_ms, sample_rate), ms2coef(release_ms, sample_rate))
    return gain, (env[:, -1], gain[:, -1])


def _as_param(value, like: torch.Tensor, shape) -> torch.Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device).broadcast_to(shape)


def _linked_gain(x, threshold_db, ratio, attack_ms, release_ms, knee_db, sample_rate, state=None):
    """Mean-linked gain of ``x (..., C, T)``; params broadcast to ``x.shape[:-2]``. -> ``(..., T)``."""
    lead, n_samples = x.shape[:-2], x.shape[-1]
    rows = [_as_param(v, x, lead).reshape(-1)
            for v in (threshold_db, ratio, attack_ms, release_ms, knee_db)]
    if x.device.type == "cpu" and (state is None or not any(s.requires_grad for s in state)):
        n_rows, chans = rows[0].shape[0], x.shape[-2]
        if state is None:
            env0, gain0 = torch.zeros(n_rows, dtype=torch.float64), torch.ones(n_rows, dtype=torch.float64)
        else:
            env0, gain0 = state
        chan = torch.arange(n_rows * chans).reshape(n_rows, chans)
        attack, release = _coefs(rows[2], rows[3], sample_rate)
        gain, last_env, last_gain = _LinkedGainCPU.apply(
            x.reshape(n_rows * chans, n_samples), rows[0], rows[1], rows[4], attack, release, env0, gain0,
            chan, _rms_coef(sample_rate))
        return gain.reshape(*lead, n_samples), (last_env.to(x.dtype), last_gain.to(x.dtype))
    power = x.square().mean(dim=-2).reshape(-1, n_samples)  # (R, T)
    gain, new_state = _detector_gain(power, *rows, sample_rate, state)
    return gain.reshape(*lead, n_samples), new_state


def compressor(x: torch.Tensor, threshold_db, ratio, attack_ms, release_ms, knee_db, makeup_db,
               sample_rate: float, return_gain: bool = False):
    """Feed-forward compressor with RMS detector and mean-linked channels (docs/console-spec.md, 3).

    Detector power is the mean over channels of ``x**2``, smoothed by a one-pole filter with a
    :data:`RMS_MS` rise time; its level in dB goes through the soft-knee static curve; the target gain
    is smoothed with attack (gain falling) / release (gain rising) ballistics (``torchcomp``'s
    ``compressor_core`` and ``ms2coef``: times are 10-90 % rise times); makeup is applied last.
    States start at zero (envelope) and unity (gain). No look-ahead.

    Args:
        x: ``(..., C, T)`` signal; all channels share one gain.
        threshold_db: dB. ratio: ``>= 1`` (1 is the identity). attack_ms, release_ms: ms.
        knee_db: knee width, dB (0 = hard knee). makeup_db: dB. Each a float or a tensor broadcastable
            to ``x.shape[:-2]``.
        sample_rate: Hz.
        return_gain: also return the ballistic gain ``(..., T)`` (linear, without makeup); the gain
            reduction shown to a user is ``-20 * log10(gain)``.

    Returns:
        ``y (..., C, T)``, or ``(y, gain)``; differentiable with respect to ``x`` and every parameter.
    """
    gain, _ = _linked_gain(x, threshold_db, ratio, attack_ms, release_ms, knee_db, sample_rate)
    makeup = db_to_amp(_as_param(makeup_db, x, x.shape[:-2]))
    y = x * (gain * makeup[..., None]).unsqueeze(-2)
    return (y, gain) if return_gain else y


# --- pan ----------------------------------------------------------------------------------------------


def pan_gains(pan, stereo) -> torch.Tensor:
    """Constant-power pan law (docs/console-spec.md, 5).

    ``theta = (pan + 1) * pi / 4``; a mono stem gets ``(cos theta, sin theta)`` (-3.01 dB each side
    at centre, unity on the hard side); a stereo stem is balanced with ``sqrt(2) * (cos, sin)``
    (unity at centre). Evaluated in float64, returned in ``pan``'s floating dtype.

    Args:
        pan: ``(...)`` in [-1, 1] (-1 = hard left).
        stereo: ``(...)`` bool (or a bool), broadcastable to ``pan``.

    Returns:
        ``(..., 2)`` gains for (left, right); differentiable with respect to ``pan``.
    """
    pan = torch.as_tensor(pan)
    out_dtype = pan.dtype if pan.is_floating_point() else torch.get_default_dtype()
    theta = (pan.to(torch.float64) + 1) * (math.pi / 4)
    stereo = torch.as_tensor(stereo, dtype=torch.bool, device=pan.device)
    scale = 1.0 + (math.sqrt(2.0) - 1.0) * stereo.to(torch.float64)  # sqrt(2) for stereo stems
    gains = torch.stack([torch.cos(theta), torch.sin(theta)], dim=-1) * scale[..., None]
    return gains.to(out_dtype)


# --- the console ----------------------------------------------------------------------------------------


def _check_inputs(tracks, track_params, master_params, stereo, mask):
    if tracks.ndim != 4 or tracks.shape[2] != 2:
        raise ValueError(f"tracks must be (B, N, 2, T), got {tuple(tracks.shape)}")
    n_batch, n_tracks = tracks.shape[:2]
    if tuple(track_params.shape) != (n_batch, n_tracks, len(TRACK)):
        raise ValueError(f"track_params must be ({n_batch}, {n_tracks}, {len(TRACK)}), "
                         f"got {tuple(track_params.shape)}")
    if tuple(master_params.shape) != (n_batch, len(MASTER)):
        raise ValueError(f"master_params must be ({n_batch}, {len(MASTER)}), "
                         f"got {tuple(master_params.shape)}")
    device = track_params.device
    stereo = (torch.ones(n_batch, n_tracks, dtype=torch.bool, device=device) if stereo is None
              else torch.as_tensor(stereo, dtype=torch.bool, device=device).broadcast_to(n_batch, n_tracks))
    mask = (None if mask is None
            else torch.as_tensor(mask, dtype=torch.bool, device=device).broadcast_to(n_batch, n_tracks))
    return stereo, mask


def _comp_args(named: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return [named[k] for k in _DETECTOR_ARGS]


def _output_gains(named, stereo, mask, dtype):
    """Per-channel gain after the compressor: makeup x fader x pan (x mask). -> ``(B, N, 2, 1)``."""
    level = db_to_amp(named["comp_makeup_db"] + named["gain_db"])
    gains = pan_gains(named["pan"], stereo).to(dtype) * level[..., None]
    if mask is not None:
        gains = torch.where(mask[..., None], gains, torch.zeros_like(gains))
    return gains[..., None]


def _master_stage(bus, named, gain):
    """Compressed and faded master bus from its EQ'd signal ``(B, 2, T)``."""
    level = db_to_amp(named["comp_makeup_db"] + named["gain_db"]).to(bus.dtype)
    return bus * (gain * level[:, None]).unsqueeze(-2)


class TrackSpectra:
    """Stems prepared for rendering them many times with different settings (refinement).

    Holds the spectrum of every distinct channel on the grid of the track EQ, so that :func:`render`
    only transforms back: the trim and the EQ come first in a strip and are linear, so the filtered
    spectrum is the stem's spectrum times the trimmed EQ's. A stem whose two channels are identical
    (a mono stem) is transformed and filtered once for both.

    Args:
        tracks: ``(B, N, 2, T)`` stems: the tensor later passed to :func:`render` with ``spectra=``
            (used only while that tensor is unchanged, and only when it needs no gradient).
        taps: FIR length of the EQ (:data:`EQ_TAIL`, as :func:`render` uses).
    """

    def __init__(self, tracks: torch.Tensor, taps: int = EQ_TAIL):
        if tracks.ndim != 4 or tracks.shape[2] != 2:
            raise ValueError(f"tracks must be (B, N, 2, T), got {tuple(tracks.shape)}")
        n_batch, n_tracks, chans, n_samples = tracks.shape
        flat = tracks.detach().reshape(n_batch * n_tracks, chans, n_samples)
        mono = (flat[:, 1] == flat[:, 0]).all(dim=-1).tolist()
        chan, owner, pick = [], [], []
        for r, same in enumerate(mono):
            first = len(pick)
            pick += [(r, 0)] if same else [(r, 0), (r, 1)]
            owner += [r] * (len(pick) - first)
            chan.append([first, first] if same else [first, first + 1])
        self.shape, self.taps = tuple(tracks.shape), taps
        self._source = tracks.data_ptr(), tracks.stride(), tracks.dtype, tracks.device, tracks._version
        self.n_fft = next_fast_len(n_samples + taps - 1, real=True)
        index = torch.tensor([r * chans + c for r, c in pick], dtype=torch.long, device=tracks.device)
        self.rows = flat.reshape(-1, n_samples).index_select(0, index)  # (U, T)
        self.chan = torch.tensor(chan, dtype=torch.long).reshape(-1, chans)  # (B * N, 2) -> row of rows
        self.owner = torch.tensor(owner, dtype=torch.long, device=tracks.device)  # (U,) -> strip
        self.spec = torch.fft.rfft(self.rows, n=self.n_fft)  # (U, F)

    def matches(self, tracks: torch.Tensor, taps: int = EQ_TAIL) -> bool:
        """Whether these are the spectra of ``tracks`` (the same, unmodified tensor) for ``taps``."""
        source = tracks.data_ptr(), tracks.stride(), tracks.dtype, tracks.device, tracks._version
        return tuple(tracks.shape) == self.shape and source == self._source and taps == self.taps


def _strip_rows(tracks: torch.Tensor, fir: torch.Tensor, spectra: TrackSpectra | None):
    """Trimmed, EQ'd channels as rows ``(U, T)`` and the row of each strip's channel ``(B * N, 2)``."""
    n_strips, chans, n_samples = tracks.shape[0] * tracks.shape[1], tracks.shape[2], tracks.shape[3]
    fir = fir.reshape(n_strips, fir.shape[-1])
    if spectra is not None:
        y = _RowFilter.apply(spectra.rows, fir, spectra.owner, spectra.n_fft, spectra.spec)
        return y, spectra.chan
    owner = torch.arange(n_strips).repeat_interleave(chans)
    n_fft = next_fast_len(n_samples + fir.shape[-1] - 1, real=True)
    y = _RowFilter.apply(tracks.reshape(n_strips * chans, n_samples), fir, owner, n_fft)
    return y, torch.arange(n_strips * chans).reshape(n_strips, chans)


def _compress_mix(x, chan, group, n_groups, named, out_gain, sample_rate):
    """:class:`_CompressMixCPU` with the strip's (or bus's) named parameters, each ``(R,)``."""
    thr, ratio, attack_ms, release_ms, knee = (named[k].reshape(-1) for k in _DETECTOR_ARGS)
    return _CompressMixCPU.apply(x, thr, ratio, knee, *_coefs(attack_ms, release_ms, sample_rate), out_gain,
                                 chan, group, n_groups, _rms_coef(sample_rate))


_REVERB_FIXED = threading.local()


@contextlib.contextmanager
def reverb_fixed():
    """Within this block, the reverb's controls are constants: no gradient is asked of them, so with
    every send off the reverb is skipped even while other controls are differentiated (refinement with
    the sends and the return locked)."""
    before = getattr(_REVERB_FIXED, "on", False)
    _REVERB_FIXED.on = True
    try:
        yield
    finally:
        _REVERB_FIXED.on = before


def reverb_active(track_params: torch.Tensor, master_params: torch.Tensor) -> bool:
    """Whether the FX return can change the mix or its gradient: a send is open, or a gradient is
    asked of a send or the return's controls (so that refinement can open a send that starts off;
    not inside :func:`reverb_fixed`)."""
    send = track_params[..., _SEND]
    if (torch.is_grad_enabled() and not getattr(_REVERB_FIXED, "on", False)
            and (track_params.requires_grad or master_params.requires_grad)):
        return True
    return bool((send > reverb.SEND_OFF_DB).any())


def _return_params(master_params: torch.Tensor) -> torch.Tensor:
    return master_params[..., _MASTER_RETURN]


def render(tracks: torch.Tensor, track_params: torch.Tensor, master_params: torch.Tensor,
           sample_rate: float, *, stereo=None, mask=None, return_tracks: bool = False,
           spectra: TrackSpectra | None = None):
    """Mix stems through the console in one differentiable pass.

    Args:
        tracks: ``(B, N, 2, T)`` float stems (a mono stem is two identical channels), any ``N >= 1``.
        track_params: ``(B, N, len(TRACK))`` physical values in TRACK order.
        master_params: ``(B, len(MASTER))`` physical values in MASTER order.
        sample_rate: Hz.
        stereo: ``(B, N)`` bool, True for stereo stems (pan acts as balance); default all True.
        mask: ``(B, N)`` bool, False for padding or muted tracks, which contribute exactly nothing
            (to the sum and to the reverb send); default all True.
        return_tracks: also return each track after its pan ``(B, N, 2, T)`` (zero where masked; the
            dry signal, without its share of the reverb).
        spectra: :class:`TrackSpectra` of these ``tracks``, to render the same stems again cheaply;
            ignored if it was made for another tensor or ``tracks`` requires a gradient.

    Returns:
        ``mix (B, 2, T)``, or ``(mix, tracks_out)``. Differentiable with respect to ``tracks``,
        ``track_params`` and ``master_params`` (the reverb's controls included, see
        :func:`reverb_active`); permutation-equivariant over tracks; no latency on the dry path. The
        reverb's tail beyond ``T`` is cut, like the filters'.
    """
    stereo, mask = _check_inputs(tracks, track_params, master_params, stereo, mask)
    named = split_params(track_params, TRACK)
    m_named = split_params(master_params, MASTER)
    n_strips = track_params.shape[0] * track_params.shape[1]
    eq = torch.cat([track_params[..., _TRACK_EQ].reshape(n_strips, -1).to(torch.float64),
                    master_params[..., _MASTER_EQ].to(torch.float64)])  # strips and buses designed together
    b, a = biquad_coeffs(eq, sample_rate)  # (B * N + B, 6, 3)
    gain = torch.cat([db_to_amp(named["trim_db"]).reshape(-1).to(torch.float64),
                      torch.ones(master_params.shape[0], dtype=torch.float64, device=b.device)])
    fir = _eq_fir(b, a, EQ_TAIL, gain=gain)  # trim folded in
    fir, m_fir = fir[:n_strips].reshape(*track_params.shape[:2], -1), fir[n_strips:]  # (B, N, L), (B, L)
    if tracks.device.type != "cpu":
        return _render_torch(tracks, fir, m_fir, named, m_named, stereo, mask, sample_rate, return_tracks,
                             master_params if reverb_active(track_params, master_params) else None)

    # CPU: FFT filtering on rows, then the compressors, faders and pans and the sum in fused passes
    n_batch, n_tracks, chans, n_samples = tracks.shape
    if spectra is not None and (tracks.requires_grad or not spectra.matches(tracks, EQ_TAIL)):
        spectra = None
    y, chan = _strip_rows(tracks, fir, spectra)
    out_gains = _output_gains(named, stereo, mask, torch.float64).reshape(n_batch * n_tracks, chans)
    group = torch.arange(n_batch).repeat_interleave(n_tracks)
    if reverb_active(track_params, master_params):
        # the compressed strips summed twice in one pass: into the stereo sum, and by their send levels
        # into the send bus
        sends = reverb.send_gain(named["send_db"].reshape(-1).to(torch.float64))[:, None]
        thr, ratio, attack_ms, release_ms, knee = (named[k].reshape(-1) for k in _DETECTOR_ARGS)
        coefs = _coefs(attack_ms, release_ms, sample_rate)
        bus, send = _CompressMixSendCPU.apply(y, thr, ratio, knee, *coefs, out_gains, out_gains * sends, chan,
                                              group, n_batch, _rms_coef(sample_rate))  # (B, 2, T) each
        bus = bus + reverb.render_return(send, _return_params(master_params), sample_rate)
    else:
        bus = _compress_mix(y, chan, group, n_batch, named, out_gains, sample_rate)  # (B, 2, T)
    per_track = None
    if return_tracks:  # the same strips once more, kept apart (the mix does not depend on this)
        x = y.index_select(0, chan.reshape(-1)).reshape(tracks.shape)
        gain, _ = _linked_gain(x, *_comp_args(named), sample_rate)  # (B, N, T)
        per_track = x * gain.unsqueeze(-2) * out_gains.reshape(n_batch, n_tracks, chans, 1).to(x.dtype)

    rows = bus.reshape(n_batch * chans, n_samples)
    n_fft = next_fast_len(n_samples + m_fir.shape[-1] - 1, real=True)
    rows = _RowFilter.apply(rows, m_fir, torch.arange(n_batch).repeat_interleave(chans), n_fft)
    level = db_to_amp(m_named["comp_makeup_db"] + m_named["gain_db"]).to(torch.float64)  # (B,)
    mix = _compress_mix(rows, torch.arange(n_batch * chans).reshape(n_batch, chans), torch.arange(n_batch),
                        n_batch, m_named, level[:, None].expand(n_batch, chans), sample_rate)
    return (mix, per_track) if return_tracks else mix


def _render_torch(tracks, fir, m_fir, named, m_named, stereo, mask, sample_rate, return_tracks,
                  master_params=None):
    """:func:`render` by torch operations on whole tensors (devices other than the CPU); the FX return
    when ``master_params`` is given."""
    x = _filter_fft(tracks, fir)
    gain, _ = _linked_gain(x, *_comp_args(named), sample_rate)  # (B, N, T)
    per_track = x * gain.unsqueeze(-2) * _output_gains(named, stereo, mask, x.dtype)
    bus = per_track.sum(dim=1)
    if master_params is not None:
        bus = bus + reverb.render_return(reverb.send_bus(per_track, named["send_db"]),
                                         _return_params(master_params), sample_rate)
    bus = _filter_fft(bus, m_fir)  # (B, 2, T)
    m_gain, _ = _linked_gain(bus, *_comp_args(m_named), sample_rate)
    mix = _master_stage(bus, m_named, m_gain)
    return (mix, per_track) if return_tracks else mix


# --- the chunked console (long signals) -------------------------------------------------------------------


#: Relative energy of the EQ impulse response that the chunked path may drop (-150 dB).
_FIR_TAIL_ENERGY = 1e-15


def _significant_length(fir: torch.Tensor) -> int:
    """Shortest length keeping all but ``_FIR_TAIL_ENERGY`` of every row's energy (rows ``(..., L)``)."""
    energy = fir.square().reshape(-1, fir.shape[-1])
    tail = energy.flip(-1).cumsum(-1).flip(-1)  # tail[:, n] = energy from sample n on
    needed = int((tail > _FIR_TAIL_ENERGY * tail[:, :1]).sum(-1).max()) if energy.numel() else 1
    return 1 if needed <= 1 else min(fir.shape[-1], -(-needed // 64) * 64)


class _OverlapAddEQ:
    """The EQ cascade as an FIR (its impulse response, cut where the rest holds less than -150 dB of
    its energy), applied chunk by chunk by FFT overlap-add; each chunk's convolution tail is carried
    into the next. A flat EQ (every gain 0 dB) is a pure gain and costs no FFT."""

    def __init__(self, b, a, chunk: int, taps: int, dtype, gain=None):
        fir = _eq_fir(b, a, taps, gain)
        self.taps = _significant_length(fir)
        fir = fir[..., : self.taps]
        self.scale = fir.to(dtype).unsqueeze(-2) if self.taps == 1 else None  # (..., 1, 1)
        self.n_fft = next_fast_len(chunk + self.taps - 1, real=True)
        if self.scale is None:
            self.resp = torch.fft.rfft(fir, n=self.n_fft).to(_complex_dtype(dtype)).unsqueeze(-2)
        self.carry = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is not None:
            return x * self.scale
        n = x.shape[-1]
        y = torch.fft.irfft(torch.fft.rfft(x, n=self.n_fft) * self.resp, n=self.n_fft)
        y = y[..., : n + self.taps - 1]  # the chunk's full linear convolution
        if self.carry is not None:
            y[..., : self.taps - 1] += self.carry
        self.carry = y[..., n:]
        return y[..., :n]


class _OverlapAddReturn:
    """The FX return chunk by chunk: ``fx(per_track (B, N, 2, n)) -> (B, 2, n)``. The impulse responses
    are built and transformed once; each chunk's tail is carried into the following chunks."""

    def __init__(self, sends: torch.Tensor, params: torch.Tensor, sample_rate: float, chunk: int):
        self.sends = sends[..., None, None]  # (B, N, 1, 1) linear
        h = reverb.impulse_response(params, int(sample_rate))  # (B, 2, L)
        self.taps = h.shape[-1]
        self.n_fft = next_fast_len(chunk + self.taps - 1, real=True)
        gain = db_to_amp(params[:, RETURN.index("reverb_return_db")])
        self.resp = torch.fft.rfft(h * gain[:, None, None], n=self.n_fft)  # (B, 2, F)
        self.carry = None

    def __call__(self, per_track: torch.Tensor) -> torch.Tensor:
        n = per_track.shape[-1]
        bus = (per_track * self.sends.to(per_track.dtype)).sum(1)  # (B, 2, n)
        mono = (bus[:, 0] + bus[:, 1]) * (1.0 / math.sqrt(2.0))
        y = torch.fft.irfft(torch.fft.rfft(mono, n=self.n_fft)[:, None] * self.resp, n=self.n_fft)
        y = y[..., :n + self.taps - 1]
        if self.carry is not None:
            y[..., :self.carry.shape[-1]] += self.carry
        self.carry = y[..., n:]
        return y[..., :n]


class _StreamingGain:
    """Mean-linked compressor gain with its state carried across calls, ``x (..., C, T) -> (..., T)``."""

    def __init__(self, threshold_db, ratio, attack_ms, release_ms, knee_db, sample_rate):
        self.sample_rate = sample_rate
        self.params = [threshold_db, ratio, attack_ms, release_ms, knee_db]
        rows = threshold_db.numel()
        np_rows = [p.detach().to(torch.float64).reshape(-1).cpu().numpy() for p in self.params]
        self.np_params = np_rows[:2] + [_ms2coef_np(np_rows[2], sample_rate),
                                        _ms2coef_np(np_rows[3], sample_rate), np_rows[4]]
        self.env, self.gain = np.zeros(rows), np.ones(rows)
        self.state = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            gain, self.state = _linked_gain(x, *self.params, self.sample_rate, self.state)
            return gain
        lead, n = x.shape[:-2], x.shape[-1]
        xs = x.detach().reshape(-1, *x.shape[-2:]).contiguous().numpy()
        out = np.empty((xs.shape[0], n), dtype=xs.dtype)
        with _kernel_threads():
            _gain_kernel(xs, *self.np_params[:4], self.np_params[4], _rms_coef(self.sample_rate),
                         self.env, self.gain, out)
        return torch.from_numpy(out).reshape(*lead, n)


def _ms2coef_np(ms: np.ndarray, sample_rate: float) -> np.ndarray:
    return -np.expm1(-2200.0 / (ms * float(sample_rate)))


def _chunk_tensor(tracks, start: int, stop: int, device, dtype) -> torch.Tensor:
    part = tracks[..., start:stop]
    if isinstance(part, torch.Tensor):
        return part.to(device=device, dtype=dtype)
    return torch.from_numpy(np.ascontiguousarray(part, dtype=np.float32)).to(device=device, dtype=dtype)


@torch.no_grad()
def render_long(tracks, track_params: torch.Tensor, master_params: torch.Tensor, sample_rate: float, *,
                stereo=None, mask=None, return_tracks: bool = False, chunk: int = LONG_CHUNK,
                taps: int = EQ_TAIL):
    """:func:`render` for long signals in bounded memory (no gradients).

    The EQ runs as FFT overlap-add with its impulse response truncated to ``taps`` samples; the
    compressors carry their detector and gain states from chunk to chunk, so the result does not
    depend on ``chunk`` and agrees with :func:`render` to better than -80 dB.

    The FX return is convolved chunk by chunk and overlap-added, so the reverb rings across chunk
    boundaries; its tail beyond ``T`` is cut, as in :func:`render`.

    Args:
        tracks: ``(B, N, 2, T)`` tensor or numpy array (a ``numpy.memmap`` keeps the stems on disk:
            only ``chunk`` samples of them are in memory at a time).
        track_params, master_params, sample_rate, stereo, mask, return_tracks: as in :func:`render`.
        chunk: samples per chunk (memory grows linearly with it).
        taps: FIR length of the EQ.

    Returns:
        ``mix (B, 2, T)`` in the stems' dtype (float32 for arrays), or ``(mix, tracks_out (B, N, 2, T))``.
    """
    if isinstance(tracks, torch.Tensor):
        shape, device, dtype = tuple(tracks.shape), tracks.device, tracks.dtype
    else:
        shape, device, dtype = tuple(tracks.shape), track_params.device, torch.float32
    if len(shape) != 4 or shape[2] != 2:
        raise ValueError(f"tracks must be (B, N, 2, T), got {shape}")
    stereo, mask = _check_inputs(torch.empty(shape[:3] + (0,), device="meta"), track_params, master_params,
                                 stereo, mask)
    n_batch, n_tracks, _, n_samples = shape
    chunk = max(1, min(int(chunk), n_samples))
    track_params = track_params.to(device)
    master_params = master_params.to(device)
    named = split_params(track_params.to(dtype), TRACK)
    m_named = split_params(master_params.to(dtype), MASTER)

    b, a = biquad_coeffs(track_params[..., _TRACK_EQ], sample_rate)
    trim = db_to_amp(track_params[..., TRACK.index("trim_db")])
    track_eq = _OverlapAddEQ(b, a, chunk, taps, dtype, gain=trim)
    b, a = biquad_coeffs(master_params[..., _MASTER_EQ], sample_rate)
    master_eq = _OverlapAddEQ(b, a, chunk, taps, dtype)
    out_gains = _output_gains(named, stereo.to(device), None if mask is None else mask.to(device), dtype)
    track_comp = _StreamingGain(*_comp_args(named), sample_rate)
    master_comp = _StreamingGain(*_comp_args(m_named), sample_rate)
    fx = (_OverlapAddReturn(reverb.send_gain(named["send_db"]), _return_params(master_params).to(dtype),
                            sample_rate, chunk) if reverb_active(track_params, master_params) else None)

    mix = torch.empty(n_batch, 2, n_samples, dtype=dtype, device=device)
    per_track = torch.empty(shape, dtype=dtype, device=device) if return_tracks else None
    for start in range(0, n_samples, chunk):
        stop = min(start + chunk, n_samples)
        x = track_eq(_chunk_tensor(tracks, start, stop, device, dtype))
        x = x * track_comp(x).unsqueeze(-2)
        x *= out_gains
        if per_track is not None:
            per_track[..., start:stop] = x
        bus = x.sum(dim=1)
        if fx is not None:
            bus = bus + fx(x)
        bus = master_eq(bus)
        mix[..., start:stop] = _master_stage(bus, m_named, master_comp(bus))
    return (mix, per_track) if return_tracks else mix
