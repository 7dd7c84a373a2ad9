"""The torch mixing console: batched, differentiable, no latency.

Implements the signal flow of ``docs/console-spec.md`` exactly. Per track: trim -> 6-band EQ ->
compressor -> fader -> pan; the unmasked tracks are summed; the master bus applies EQ -> compressor
-> master fader to the stereo sum. Parameters are *physical* values (dB, Hz, ms, ratio, pan position)
in the order of :data:`core.params.TRACK` / :data:`core.params.MASTER` along the last axis; nothing
here repeats a key's range or position -- every value is looked up by key.

Two entry points:

* :func:`render` -- one pass over the whole signal, differentiable with respect to the parameters and
  the stems (training, prediction, refinement);
* :func:`render_long` -- the same console, without gradients, in chunks of bounded memory (whole songs:
  export, CLI). It agrees with :func:`render` to better than -80 dB.

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
  attack/release gain ballistics through :func:`torchcomp.compressor_core` (differentiable recursion).
* :func:`pan_gains` -- constant power, -3 dB at centre; balance for stereo stems.

Shapes: ``B`` batch, ``N`` tracks, ``C`` channels (2: L, R), ``T`` samples, ``F`` rfft bins.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from dasp_pytorch.signal import biquad
from scipy.fft import next_fast_len
from torchcomp import compressor_core, ms2coef
from torchlpc import sample_wise_lpc

from .params import EQ_BAND_KEYS, EQ_BAND_TYPES, MASTER, TRACK, Schema

#: Time constant of the compressor's RMS detector, ms (``ms2coef`` convention: 10-90 % rise time).
RMS_MS = 5.0

#: Floor added to the detector power before taking its level, so silence reads -100 dB, not -inf.
LEVEL_FLOOR = 1e-10

#: Length (samples) of the EQ's impulse response that is applied, and so the zero padding of its FFT
#: grid. The slowest-decaying response the schema allows (a +12 dB, Q 8 peak at 40 Hz) keeps -122 dB
#: of its energy beyond 2**16 samples at 48 kHz (-75 dB beyond 2**15).
EQ_TAIL = 2**16

#: Default chunk length (samples) of :func:`render_long`.
LONG_CHUNK = 2**17

#: Highest centre frequency the EQ designs, as a fraction of the sample rate (only binds below
#: about 36 kHz, where a band's range could reach Nyquist and the RBJ design breaks down).
MAX_FREQ_FRACTION = 0.45

#: The EQ and compressor controls, as sub-schemas of the track strip (same keys on the master bus).
EQ = Schema("eq", tuple(p for p in TRACK if p.group == "eq"))
COMP = Schema("comp", tuple(p for p in TRACK if p.group == "dynamics"))


def _indices(schema: Schema, keys) -> list[int]:
    return [schema.index(k) for k in keys]


_TRACK_EQ = _indices(TRACK, EQ.keys)
_MASTER_EQ = _indices(MASTER, EQ.keys)
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
    for band, kind in zip(EQ_BAND_KEYS, EQ_BAND_TYPES, strict=True):
        b, a = biquad(named[f"{band}_gain_db"], named[f"{band}_freq_hz"].clamp(max=f_max),
                      named[f"{band}_q"], float(sample_rate), kind)  # (M, 3) each
        bs.append(b)
        as_.append(a)
    b = torch.stack(bs, dim=-2).reshape(*lead, len(EQ_BAND_KEYS), 3)
    a = torch.stack(as_, dim=-2).reshape(*lead, len(EQ_BAND_KEYS), 3)
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


# The same evaluation as fused CPU kernels: the torch version streams a dozen (rows x bins) float64
# temporaries per section through memory, these keep everything in registers (an order of magnitude
# faster on a CPU, and nothing to store for the backward pass).
_BLOCK = 2048


@numba.njit(parallel=True, cache=True)
def _response_kernel(b, a, n_freqs):  # pragma: no cover - compiled
    rows, sections = b.shape[0], b.shape[1]
    out = np.empty((rows, n_freqs), np.complex128)
    step = np.pi / max(n_freqs - 1, 1)
    n_blocks = (n_freqs + _BLOCK - 1) // _BLOCK
    for blk in numba.prange(n_blocks):
        for r in range(rows):
            for k in range(blk * _BLOCK, min((blk + 1) * _BLOCK, n_freqs)):
                c, s = np.cos(k * step), np.sin(k * step)
                num = 1.0 + 0.0j
                den = 1.0 + 0.0j
                for i in range(sections):
                    num *= complex(b[r, i, 1] + (b[r, i, 0] + b[r, i, 2]) * c, (b[r, i, 0] - b[r, i, 2]) * s)
                    den *= complex(a[r, i, 1] + (a[r, i, 0] + a[r, i, 2]) * c, (a[r, i, 0] - a[r, i, 2]) * s)
                out[r, k] = num / den
    return out


@numba.njit(parallel=True, cache=True)
def _response_grad_kernel(b, a, grad):  # pragma: no cover - compiled
    # grad: the incoming gradient of H in autograd's convention for complex tensors, under which a real
    # coefficient p receives Re(sum over bins of grad * conj(dH/dp)).
    rows, sections = b.shape[0], b.shape[1]
    n_freqs = grad.shape[1]
    step = np.pi / max(n_freqs - 1, 1)
    n_blocks = (n_freqs + _BLOCK - 1) // _BLOCK
    part = np.zeros((n_blocks, rows, sections, 6))
    for blk in numba.prange(n_blocks):
        ns = np.empty(sections, np.complex128)
        ds = np.empty(sections, np.complex128)
        for r in range(rows):
            for k in range(blk * _BLOCK, min((blk + 1) * _BLOCK, n_freqs)):
                c, s = np.cos(k * step), np.sin(k * step)
                num = 1.0 + 0.0j
                den = 1.0 + 0.0j
                for i in range(sections):
                    ns[i] = complex(b[r, i, 1] + (b[r, i, 0] + b[r, i, 2]) * c, (b[r, i, 0] - b[r, i, 2]) * s)
                    ds[i] = complex(a[r, i, 1] + (a[r, i, 0] + a[r, i, 2]) * c, (a[r, i, 0] - a[r, i, 2]) * s)
                    num *= ns[i]
                    den *= ds[i]
                h = num / den
                g = grad[r, k]
                for i in range(sections):
                    # dH/d(b0, b1, b2) = H / ns * (e^{jw}, 1, e^{-jw}); likewise -H / ds for a
                    u = g * np.conj(h / ns[i])
                    v = -g * np.conj(h / ds[i])
                    part[blk, r, i, 0] += u.real * c + u.imag * s
                    part[blk, r, i, 1] += u.real
                    part[blk, r, i, 2] += u.real * c - u.imag * s
                    part[blk, r, i, 3] += v.real * c + v.imag * s
                    part[blk, r, i, 4] += v.real
                    part[blk, r, i, 5] += v.real * c - v.imag * s
    return part.sum(axis=0)


class _CascadeResponse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, b, a, n_freqs):
        ctx.save_for_backward(b, a)
        lead = b.shape[:-2]
        out = _response_kernel(_rows_np(b), _rows_np(a), n_freqs)
        return torch.from_numpy(out).reshape(*lead, n_freqs)

    @staticmethod
    def backward(ctx, grad):
        b, a = ctx.saved_tensors
        g = grad.detach().to(torch.complex128).reshape(-1, grad.shape[-1]).contiguous().numpy()
        grads = torch.from_numpy(_response_grad_kernel(_rows_np(b), _rows_np(a), g))  # (R, S, 6)
        return grads[..., :3].reshape(b.shape), grads[..., 3:].reshape(a.shape), None


def _rows_np(coeffs: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(coeffs.detach().reshape(-1, *coeffs.shape[-2:]).numpy())


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


def _rms_coef(sample_rate: float) -> float:
    return 1.0 - math.exp(-2200.0 / (RMS_MS * float(sample_rate)))


def gain_computer_db(level_db: torch.Tensor, threshold_db, ratio, knee_db) -> torch.Tensor:
    """Static curve ``Y - L`` (dB, <= 0) of a soft-knee compressor (Giannoulis et al. 2012, eq. 4).

    Knee 0 is the hard knee; every branch stays finite, so gradients never become NaN.
    """
    over = level_db - threshold_db
    slope = 1.0 / ratio - 1.0
    safe_knee = torch.where(knee_db > 0, knee_db, torch.ones_like(knee_db))
    soft = slope * (over + knee_db / 2) ** 2 / (2 * safe_knee)
    below = torch.zeros_like(soft)
    return torch.where(2 * over > knee_db, slope * over, torch.where(2 * over < -knee_db, below, soft))


_NEPER_PER_DB = math.log(10.0) / 20.0  # amplitude: exp(_NEPER_PER_DB * dB)


class _TargetGain(torch.autograd.Function):
    """Detector envelope -> target gain, ``db_to_amp(gain_computer_db(10 * log10(env + LEVEL_FLOOR), ...))``.

    One function with an explicit derivative, so that only the envelope and the result are kept for
    the backward pass instead of every intermediate of the piecewise static curve.
    Shapes: ``env (R, T)``; ``threshold_db``, ``ratio``, ``knee_db`` ``(R, 1)``.
    """

    @staticmethod
    def forward(ctx, env, threshold_db, ratio, knee_db):
        level = 10 * torch.log10(env + LEVEL_FLOOR)
        target = torch.exp(_NEPER_PER_DB * gain_computer_db(level, threshold_db, ratio, knee_db))
        ctx.save_for_backward(env, target, threshold_db, ratio, knee_db)
        return target

    @staticmethod
    def backward(ctx, grad):
        env, target, threshold_db, ratio, knee_db = ctx.saved_tensors
        over = 10 * torch.log10(env + LEVEL_FLOOR) - threshold_db
        slope = 1.0 / ratio - 1.0
        safe_knee = torch.where(knee_db > 0, knee_db, torch.ones_like(knee_db))
        pos = (over + knee_db / 2) / safe_knee  # position in the knee, 0..1
        hard = 2 * over > knee_db
        soft = (2 * over >= -knee_db) & (knee_db > 0) & ~hard
        zero = torch.zeros_like(over)
        # the static curve is slope * f(over): f = over above the knee, (over + W/2)^2 / (2W) in it
        curve = torch.where(hard, over, torch.where(soft, pos * pos * safe_knee / 2, zero))
        d_over = torch.where(hard, 1.0, torch.where(soft, pos, zero))  # df/d(over)
        d_knee = torch.where(soft, pos * (1 - pos) / 2, zero)  # df/d(knee)
        g = grad * target * _NEPER_PER_DB  # d(loss)/d(gain in dB)
        g_over = g * slope * d_over
        grad_env = g_over * (10 / math.log(10.0)) / (env + LEVEL_FLOOR)
        grad_thr = -g_over.sum(-1, keepdim=True)
        grad_ratio = (g * curve).sum(-1, keepdim=True) * (-1.0 / ratio**2)
        grad_knee = (g * slope * d_knee).sum(-1, keepdim=True)
        return grad_env, grad_thr, grad_ratio, grad_knee


def _detector_gain(power, threshold_db, ratio, attack_ms, release_ms, knee_db, sample_rate, state=None):
    """Detector, static curve and gain ballistics on rows.

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


def render(tracks: torch.Tensor, track_params: torch.Tensor, master_params: torch.Tensor,
           sample_rate: float, *, stereo=None, mask=None, return_tracks: bool = False):
    """Mix stems through the console in one differentiable pass.

    Args:
        tracks: ``(B, N, 2, T)`` float stems (a mono stem is two identical channels), any ``N >= 1``.
        track_params: ``(B, N, len(TRACK))`` physical values in TRACK order.
        master_params: ``(B, len(MASTER))`` physical values in MASTER order.
        sample_rate: Hz.
        stereo: ``(B, N)`` bool, True for stereo stems (pan acts as balance); default all True.
        mask: ``(B, N)`` bool, False for padding or muted tracks, which contribute exactly nothing;
            default all True.
        return_tracks: also return each track after its pan ``(B, N, 2, T)`` (zero where masked).

    Returns:
        ``mix (B, 2, T)``, or ``(mix, tracks_out)``. Differentiable with respect to ``tracks``,
        ``track_params`` and ``master_params``; permutation-equivariant over tracks; no latency.
    """
    stereo, mask = _check_inputs(tracks, track_params, master_params, stereo, mask)
    named = split_params(track_params, TRACK)
    m_named = split_params(master_params, MASTER)

    b, a = biquad_coeffs(track_params[..., _TRACK_EQ], sample_rate)  # (B, N, 6, 3)
    x = _filter_fft(tracks, _eq_fir(b, a, EQ_TAIL, gain=db_to_amp(named["trim_db"])))  # trim folded in
    gain, _ = _linked_gain(x, *_comp_args(named), sample_rate)  # (B, N, T)
    per_track = x * gain.unsqueeze(-2) * _output_gains(named, stereo, mask, x.dtype)
    bus = per_track.sum(dim=1)  # (B, 2, T)

    b, a = biquad_coeffs(master_params[..., _MASTER_EQ], sample_rate)  # (B, 6, 3)
    bus = _filter_fft(bus, _eq_fir(b, a, EQ_TAIL))
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


@numba.njit(parallel=True, fastmath=True, cache=True)
def _gain_kernel(x, threshold_db, ratio, attack, release, knee_db, coef, env, gain, out):  # pragma: no cover
    """Detector, static curve and ballistics of :func:`_detector_gain`, without gradients.

    ``x (R, C, T)``; parameters ``(R,)`` (attack/release as coefficients); ``env``, ``gain`` ``(R,)``
    float64 states, updated in place; ``out (R, T)`` receives the gain. Three passes per row keep the
    two recursions free of the transcendental functions in between.
    """
    rows, chans, n = x.shape
    work = np.empty((rows, n))
    db_per_neper = 10.0 / np.log(10.0)
    for r in numba.prange(rows):
        e = env[r]
        for t in range(n):  # RMS detector
            p = 0.0
            for ch in range(chans):
                v = np.float64(x[r, ch, t])
                p += v * v
            e += coef * (p / chans - e)
            work[r, t] = e
        env[r] = e
        thr, w, slope = threshold_db[r], knee_db[r], 1.0 / ratio[r] - 1.0
        quiet = 10.0 ** ((thr - 0.5 * w) / 10.0)  # below this power the level is under the knee
        for t in range(n):  # static curve -> target gain
            e = work[r, t] + LEVEL_FLOOR
            target = 1.0
            if e >= quiet:
                over = db_per_neper * np.log(e) - thr
                if 2.0 * over > w:
                    target = np.exp(slope * over / (2.0 * db_per_neper))
                elif w > 0.0 and 2.0 * over >= -w:
                    target = np.exp(slope * (over + 0.5 * w) ** 2 / (2.0 * w) / (2.0 * db_per_neper))
            work[r, t] = target
        g, att, rel = gain[r], attack[r], release[r]
        for t in range(n):  # gain ballistics
            target = work[r, t]
            g += (att if target < g else rel) * (target - g)
            out[r, t] = g
        gain[r] = g


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

    mix = torch.empty(n_batch, 2, n_samples, dtype=dtype, device=device)
    per_track = torch.empty(shape, dtype=dtype, device=device) if return_tracks else None
    for start in range(0, n_samples, chunk):
        stop = min(start + chunk, n_samples)
        x = track_eq(_chunk_tensor(tracks, start, stop, device, dtype))
        x = x * track_comp(x).unsqueeze(-2)
        x *= out_gains
        if per_track is not None:
            per_track[..., start:stop] = x
        bus = master_eq(x.sum(dim=1))
        mix[..., start:stop] = _master_stage(bus, m_named, master_comp(bus))
    return (mix, per_track) if return_tracks else mix
