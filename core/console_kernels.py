"""Compiled CPU kernels and hand-written adjoints of the torch console (:mod:`core.console`).

:mod:`core.console` states the console as readable torch operations; this module holds what makes it
fast on a CPU without changing its results: numba kernels (float64 inside) and the
``torch.autograd.Function`` classes whose backward passes are written out by hand, so that a step keeps
a few arrays instead of dozens of full-length temporaries. Each is held to its torch formulation by
tests (``tests/test_console.py``: values and ``gradcheck``).

* :class:`_CascadeResponse` -- the EQ cascade's frequency response and its adjoint;
* :class:`_RowFilter` -- FFT filtering of channel rows and its adjoint (two correlations);
* :func:`gain_computer_db` and :class:`_TargetGain` -- the compressor's static curve, in torch and as
  a fused pass with an explicit derivative;
* :class:`_LinkedGainCPU`, :class:`_CompressMixCPU` -- detector, curve, ballistics (and the mix) as
  fused passes with their adjoints;
* :func:`_gain_kernel` -- the compressor gain without gradients, for the chunked console.

Nothing here knows the parameter schema: callers pass per-row arrays in a fixed order.
"""

from __future__ import annotations

import contextlib
import math

import numba
import numpy as np
import torch

from .dsp import LEVEL_FLOOR


@contextlib.contextmanager
def _kernel_threads():
    """The compiled kernels run on as many threads as torch's operations (at most numba's maximum).

    Starting numba's thread pool can reset the thread count that OpenMP reports to torch; it is put
    back, so that torch's own operations keep their setting (and their results) from call to call.
    """
    torch_count = torch.get_num_threads()
    before = numba.get_num_threads()
    count = max(1, min(torch_count, numba.config.NUMBA_NUM_THREADS))
    if count != before:
        numba.set_num_threads(count)
    try:
        yield
    finally:
        if count != before:
            numba.set_num_threads(before)
        if torch.get_num_threads() != torch_count:
            torch.set_num_threads(torch_count)


# The same evaluation as fused CPU kernels: the torch version streams a dozen (rows x bins) float64
# temporaries per section through memory, these keep everything in registers (an order of magnitude
# faster on a CPU, and nothing to store for the backward pass). Each bin's cos/sin is shared by all rows.
_BLOCK = 2048


@numba.njit(parallel=True, cache=True)
def _response_kernel(b, a, n_freqs):  # pragma: no cover - compiled
    rows, sections = b.shape[0], b.shape[1]
    out = np.empty((rows, n_freqs), np.complex128)
    step = np.pi / max(n_freqs - 1, 1)
    n_blocks = (n_freqs + _BLOCK - 1) // _BLOCK
    for blk in numba.prange(n_blocks):
        for k in range(blk * _BLOCK, min((blk + 1) * _BLOCK, n_freqs)):
            c, s = np.cos(k * step), np.sin(k * step)
            for r in range(rows):
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
        acc = part[blk]
        for k in range(blk * _BLOCK, min((blk + 1) * _BLOCK, n_freqs)):
            c, s = np.cos(k * step), np.sin(k * step)
            for r in range(rows):
                num = 1.0 + 0.0j
                den = 1.0 + 0.0j
                for i in range(sections):
                    ns[i] = complex(b[r, i, 1] + (b[r, i, 0] + b[r, i, 2]) * c, (b[r, i, 0] - b[r, i, 2]) * s)
                    ds[i] = complex(a[r, i, 1] + (a[r, i, 0] + a[r, i, 2]) * c, (a[r, i, 0] - a[r, i, 2]) * s)
                    num *= ns[i]
                    den *= ds[i]
                # grad * conj(H / z) = grad * conj(H) * z / |z|^2: one product per section, no division
                gh = grad[r, k] * np.conj(num / den)
                gr, gi = gh.real, gh.imag
                for i in range(sections):
                    # dH/d(b0, b1, b2) = H / ns * (e^{jw}, 1, e^{-jw}); likewise -H / ds for a
                    zr, zi = ns[i].real, ns[i].imag
                    inv = 1.0 / (zr * zr + zi * zi)
                    ur, ui = (gr * zr - gi * zi) * inv, (gr * zi + gi * zr) * inv
                    zr, zi = ds[i].real, ds[i].imag
                    inv = -1.0 / (zr * zr + zi * zi)
                    vr, vi = (gr * zr - gi * zi) * inv, (gr * zi + gi * zr) * inv
                    acc[r, i, 0] += ur * c + ui * s
                    acc[r, i, 1] += ur
                    acc[r, i, 2] += ur * c - ui * s
                    acc[r, i, 3] += vr * c + vi * s
                    acc[r, i, 4] += vr
                    acc[r, i, 5] += vr * c - vi * s
    return part.sum(axis=0)


class _CascadeResponse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, b, a, n_freqs):
        ctx.save_for_backward(b, a)
        lead = b.shape[:-2]
        with _kernel_threads():
            out = _response_kernel(_rows_np(b), _rows_np(a), n_freqs)
        return torch.from_numpy(out).reshape(*lead, n_freqs)

    @staticmethod
    def backward(ctx, grad):
        b, a = ctx.saved_tensors
        g = grad.detach().to(torch.complex128).reshape(-1, grad.shape[-1]).contiguous().numpy()
        with _kernel_threads():
            grads = torch.from_numpy(_response_grad_kernel(_rows_np(b), _rows_np(a), g))  # (R, S, 6)
        return grads[..., :3].reshape(b.shape), grads[..., 3:].reshape(a.shape), None


def _rows_np(coeffs: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(coeffs.detach().reshape(-1, *coeffs.shape[-2:]).numpy())


class _RowFilter(torch.autograd.Function):
    """Rows ``x (U, T)`` convolved with FIRs ``fir (M, L)`` -- row ``u`` with ``fir[owner[u]]`` -- on an
    ``n_fft``-point grid (``n_fft >= T + L - 1``: linear convolution), cut to ``T`` samples.

    ``spec``, if given, is ``rfft(x, n_fft)`` computed beforehand (``x`` then gets no gradient). The
    FIR (designed in float64) is transformed in the signal's precision: for float32 signals that adds
    an error below -135 dB to the response, the level of the float32 filtering itself. The backward
    pass is two correlations on the same grid: ``d/dx = g (*) fir`` and ``d/dfir = g (*) x`` (summed
    over the rows that share a FIR), one FFT of the gradient for both.
    """

    @staticmethod
    def forward(ctx, x, fir, owner, n_fft, spec=None):
        n_samples = x.shape[-1]
        resp = torch.fft.rfft(fir.to(x.dtype), n=n_fft)  # (M, F)
        if spec is None:
            spec = torch.fft.rfft(x, n=n_fft)
        y = torch.fft.irfft(spec * resp.index_select(0, owner), n=n_fft)[..., :n_samples]
        ctx.save_for_backward(spec if ctx.needs_input_grad[1] else None,
                              resp if ctx.needs_input_grad[0] else None, owner)
        ctx.shape = n_fft, fir.shape, fir.dtype
        return y.contiguous()

    @staticmethod
    def backward(ctx, grad):
        spec, resp, owner = ctx.saved_tensors
        n_fft, fir_shape, fir_dtype = ctx.shape
        g = torch.fft.rfft(grad, n=n_fft)  # (U, F)
        grad_x = grad_fir = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.fft.irfft(g * resp.index_select(0, owner).conj(), n=n_fft)[..., : grad.shape[-1]]
        if ctx.needs_input_grad[1]:
            cross = g.mul_(spec.conj())
            n_fir = fir_shape[0]
            if owner.shape[0] != n_fir or not torch.equal(owner, torch.arange(n_fir, device=owner.device)):
                shared = torch.zeros(n_fir, cross.shape[-1], dtype=cross.dtype, device=cross.device)
                cross = shared.index_add_(0, owner, cross)
            grad_fir = torch.fft.irfft(cross, n=n_fft)[..., : fir_shape[-1]].to(fir_dtype)
        return grad_x, grad_fir, None, None, None


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
_DB_PER_NEPER = 10.0 / math.log(10.0)  # power: 10 log10(p) = _DB_PER_NEPER * ln(p)


# --- the static curve and its derivative, per sample (float64), shared by the CPU kernels below ---


@numba.njit(cache=True)
def _curve_gain(e, threshold_db, knee_db, slope, safe_knee):  # pragma: no cover - compiled
    """Target gain (linear) of detector power ``e`` (floor included): ``db_to_amp(gain_computer_db)``."""
    over = _DB_PER_NEPER * np.log(e) - threshold_db
    if 2.0 * over > knee_db:
        return np.exp(_NEPER_PER_DB * slope * over)
    if 2.0 * over < -knee_db:
        return 1.0
    half = over + 0.5 * knee_db
    return np.exp(_NEPER_PER_DB * slope * half * half / (2.0 * safe_knee))


@numba.njit(cache=True)
def _curve_grad(e, target, grad, threshold_db, knee_db, slope):  # pragma: no cover - compiled
    """Derivative of :func:`_curve_gain` at power ``e``, given ``grad`` = d(loss)/d(target).

    Returns ``(d/de, d/d threshold, d/d curve-without-slope, d/d knee)``; the ratio's derivative is the
    third value times ``-1 / ratio**2``. The static curve is ``slope * f(over)`` with ``f = over`` above
    the knee and ``(over + W/2)**2 / (2W)`` in it; a hard knee (W = 0) has no knee region.
    """
    over = _DB_PER_NEPER * np.log(e) - threshold_db
    if 2.0 * over > knee_db:
        curve, d_over, d_knee = over, 1.0, 0.0
    elif 2.0 * over >= -knee_db and knee_db > 0.0:
        pos = (over + 0.5 * knee_db) / knee_db  # position in the knee, 0..1
        curve, d_over, d_knee = 0.5 * pos * pos * knee_db, pos, 0.5 * pos * (1.0 - pos)
    else:
        return 0.0, 0.0, 0.0, 0.0
    g = grad * target * _NEPER_PER_DB  # d(loss)/d(gain in dB)
    g_over = g * slope * d_over
    return g_over * _DB_PER_NEPER / e, -g_over, g * curve, g * slope * d_knee


@numba.njit(cache=True)
def _quiet_power(threshold_db, knee_db):  # pragma: no cover - compiled
    """Detector power (floor included) below which the static curve is flat at 0 dB (a little margin
    keeps every sample that the exact test would put in the knee)."""
    return 10.0 ** ((threshold_db - 0.5 * knee_db) / 10.0) * (1.0 - 1e-9)


@numba.njit(parallel=True, cache=True)
def _target_kernel(env, threshold_db, ratio, knee_db, out):  # pragma: no cover - compiled
    rows, n = env.shape
    for r in numba.prange(rows):
        thr, w, slope = threshold_db[r], knee_db[r], 1.0 / ratio[r] - 1.0
        safe, quiet = (w if w > 0.0 else 1.0), _quiet_power(thr, w)
        for t in range(n):
            e = np.float64(env[r, t]) + LEVEL_FLOOR
            out[r, t] = _curve_gain(e, thr, w, slope, safe) if e >= quiet else 1.0


@numba.njit(parallel=True, cache=True)
def _target_grad_kernel(env, target, grad, threshold_db, ratio, knee_db, grad_env, grads):  # pragma: no cover
    rows, n = env.shape
    for r in numba.prange(rows):
        thr, w, slope = threshold_db[r], knee_db[r], 1.0 / ratio[r] - 1.0
        quiet = _quiet_power(thr, w)
        g_thr = g_curve = g_knee = 0.0
        for t in range(n):
            e = np.float64(env[r, t]) + LEVEL_FLOOR
            d_env = 0.0
            if e >= quiet:
                f, g = np.float64(target[r, t]), np.float64(grad[r, t])
                d_env, d_thr, d_curve, d_knee = _curve_grad(e, f, g, thr, w, slope)
                g_thr += d_thr
                g_curve += d_curve
                g_knee += d_knee
            grad_env[r, t] = d_env
        grads[r, 0], grads[r, 1], grads[r, 2] = g_thr, -g_curve / (ratio[r] * ratio[r]), g_knee


def _row_values(t: torch.Tensor) -> np.ndarray:
    """Float64 numpy copy of a per-row parameter tensor, flattened."""
    return np.ascontiguousarray(t.detach().to(torch.float64).reshape(-1).cpu().numpy())


class _TargetGain(torch.autograd.Function):
    """Detector envelope -> target gain, ``db_to_amp(gain_computer_db(10 * log10(env + LEVEL_FLOOR), ...))``.

    One function with an explicit derivative, so that only the envelope and the result are kept for
    the backward pass instead of every intermediate of the piecewise static curve; on the CPU both
    directions are single fused passes (float64 inside, the envelope's dtype outside).
    Shapes: ``env (R, T)``; ``threshold_db``, ``ratio``, ``knee_db`` ``(R, 1)``.
    """

    @staticmethod
    def forward(ctx, env, threshold_db, ratio, knee_db):
        if env.device.type == "cpu":
            rows = env.detach().contiguous().numpy()
            out = np.empty_like(rows)
            params = [_row_values(p.expand(env.shape[0], 1)) for p in (threshold_db, ratio, knee_db)]
            with _kernel_threads():
                _target_kernel(rows, *params, out)
            target = torch.from_numpy(out)
        else:
            level = 10 * torch.log10(env + LEVEL_FLOOR)
            target = torch.exp(_NEPER_PER_DB * gain_computer_db(level, threshold_db, ratio, knee_db))
        ctx.save_for_backward(env, target, threshold_db, ratio, knee_db)
        return target

    @staticmethod
    def backward(ctx, grad):
        env, target, threshold_db, ratio, knee_db = ctx.saved_tensors
        if env.device.type == "cpu":
            rows = env.detach().contiguous().numpy()
            grad_env = np.empty_like(rows)
            grads = np.empty((rows.shape[0], 3))
            params = [_row_values(p.expand(env.shape[0], 1)) for p in (threshold_db, ratio, knee_db)]
            with _kernel_threads():
                _target_grad_kernel(rows, target.contiguous().numpy(), grad.detach().contiguous().numpy(),
                                    *params, grad_env, grads)
            out = [torch.from_numpy(grad_env)]
            for i, p in enumerate((threshold_db, ratio, knee_db)):
                g = torch.from_numpy(grads[:, i : i + 1]).to(p.dtype)
                out.append(g if p.shape[0] == env.shape[0] else g.sum(0, keepdim=True))
            return tuple(out)
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


# --- the whole compressor gain as fused CPU passes -------------------------------------------------------
#
# Rows ``r`` of a compressor are linked channels ``x[chan[r, c]]`` of a signal stored as rows ``x (U, T)``
# (a mono stem may list the same row twice). Forward: one pass per row runs the RMS detector, the static
# curve and the ballistics in float64 and keeps the envelope, the target and the gain for the backward
# pass, which runs the adjoints of the two recursions and of the curve in one reverse pass. The results
# are those of the torch formulation (torchlpc's one-pole, ``_TargetGain``, torchcomp's
# ``compressor_core``, whose attack/release choice ``target < previous gain`` it shares) in float64.


@numba.njit(parallel=True, cache=True)
def _comp_forward_kernel(x, chan, threshold_db, ratio, knee_db, attack, release, coef, env0, gain0,
                         env, target, gain):  # pragma: no cover - compiled
    rows, chans = chan.shape
    n = x.shape[1]
    for r in numba.prange(rows):
        thr, w, slope = threshold_db[r], knee_db[r], 1.0 / ratio[r] - 1.0
        safe, quiet = (w if w > 0.0 else 1.0), _quiet_power(thr, w)
        att, rel = attack[r], release[r]
        e, g = env0[r], gain0[r]
        for t in range(n):
            p = 0.0
            for c in range(chans):
                v = np.float64(x[chan[r, c], t])
                p += v * v
            e = coef * (p / chans) + (1.0 - coef) * e  # RMS detector (one-pole on the power)
            env[r, t] = e
            ef = e + LEVEL_FLOOR
            f = _curve_gain(ef, thr, w, slope, safe) if ef >= quiet else 1.0
            target[r, t] = f
            k = att if f < g else rel  # attack while the gain falls
            g = g * (1.0 - k) + k * f
            gain[r, t] = g


@numba.njit(parallel=True, cache=True)
def _comp_backward_kernel(x, chan, threshold_db, ratio, knee_db, attack, release, coef, gain0,
                          env, target, gain, grad_gain, grad_x, grads):  # pragma: no cover - compiled
    """Adds the detector's share of d(loss)/dx to ``grad_x``; ``grads (R, 7)``: threshold, ratio, knee,
    attack and release coefficients, initial envelope, initial gain."""
    rows, chans = chan.shape
    n = x.shape[1]
    for r in numba.prange(rows):
        thr, w, slope = threshold_db[r], knee_db[r], 1.0 / ratio[r] - 1.0
        quiet = _quiet_power(thr, w)
        att, rel = attack[r], release[r]
        g_thr = g_curve = g_knee = g_att = g_rel = 0.0
        lam_next = 0.0  # (1 - k[t+1]) * lambda[t+1], lambda = d(loss)/d(gain[t]) through the recursion
        mu_next = 0.0  # (1 - coef) * mu[t+1], mu = d(loss)/d(env[t]) through the recursion
        for t in range(n - 1, -1, -1):
            g_prev = gain[r, t - 1] if t > 0 else gain0[r]
            f = target[r, t]
            lam = grad_gain[r, t] + lam_next
            if f < g_prev:
                k = att
                g_att += lam * (f - g_prev)
            else:
                k = rel
                g_rel += lam * (f - g_prev)
            lam_next = (1.0 - k) * lam
            ef = env[r, t] + LEVEL_FLOOR
            d_env = 0.0
            if ef >= quiet:
                d_env, d_thr, d_curve, d_knee = _curve_grad(ef, f, k * lam, thr, w, slope)
                g_thr += d_thr
                g_curve += d_curve
                g_knee += d_knee
            mu = d_env + mu_next
            mu_next = (1.0 - coef) * mu
            d_x = 2.0 * coef * mu / chans  # d(loss)/dx = d(loss)/d(power) * 2x / C
            for c in range(chans):
                u = chan[r, c]
                grad_x[u, t] += d_x * np.float64(x[u, t])
        grads[r, 0], grads[r, 1], grads[r, 2] = g_thr, -g_curve / (ratio[r] * ratio[r]), g_knee
        grads[r, 3], grads[r, 4], grads[r, 5], grads[r, 6] = g_att, g_rel, mu_next, lam_next


_MIX_BLOCK = 4096


@numba.njit(parallel=True, cache=True)
def _mix_kernel(x, chan, gain, out_gain, group, out):  # pragma: no cover - compiled
    """``out[group[r], c] = sum over rows r of x[chan[r, c]] * gain[r] * out_gain[r, c]`` (float64 sums)."""
    rows, chans = chan.shape
    n = x.shape[1]
    n_blocks = (n + _MIX_BLOCK - 1) // _MIX_BLOCK
    for blk in numba.prange(n_blocks):
        t0 = blk * _MIX_BLOCK
        t1 = min(n, t0 + _MIX_BLOCK)
        acc = np.zeros((out.shape[0], chans, t1 - t0))
        for r in range(rows):
            for c in range(chans):
                u, w, dst = chan[r, c], out_gain[r, c], acc[group[r], c]
                for t in range(t0, t1):
                    dst[t - t0] += np.float64(x[u, t]) * gain[r, t] * w
        for i in range(out.shape[0]):
            for c in range(chans):
                for t in range(t0, t1):
                    out[i, c, t] = acc[i, c, t - t0]


@numba.njit(parallel=True, cache=True)
def _mix_grad_kernel(x, chan, gain, out_gain, group, grad, grad_x, grad_gain, part):  # pragma: no cover
    """Adjoint of :func:`_mix_kernel`: sets ``grad_x`` and ``grad_gain``; ``part (blocks, R, C)`` gets
    each block's share of d(loss)/d(out_gain)."""
    rows, chans = chan.shape
    n = x.shape[1]
    n_blocks = (n + _MIX_BLOCK - 1) // _MIX_BLOCK
    for blk in numba.prange(n_blocks):
        t0 = blk * _MIX_BLOCK
        t1 = min(n, t0 + _MIX_BLOCK)
        for r in range(rows):
            for t in range(t0, t1):
                grad_gain[r, t] = 0.0
            for c in range(chans):
                u, w, src = chan[r, c], out_gain[r, c], grad[group[r], c]
                s = 0.0
                for t in range(t0, t1):
                    go = np.float64(src[t])
                    xv = np.float64(x[u, t])
                    grad_x[u, t] += go * gain[r, t] * w
                    grad_gain[r, t] += go * xv * w
                    s += go * xv * gain[r, t]
                part[blk, r, c] = s


def _comp_inputs(x: torch.Tensor, chan: torch.Tensor, params) -> tuple:
    xs = x.detach().contiguous().numpy()
    return xs, np.ascontiguousarray(chan.numpy()), [_row_values(p) for p in params]


def _param_grads(grads: np.ndarray, params) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(grads[:, i])).to(p.dtype).reshape(p.shape)
            for i, p in enumerate(params)]


class _LinkedGainCPU(torch.autograd.Function):
    """Compressor gain of linked rows (see above) -> ``(gain (R, T), env_last (R,), gain_last (R,))``.

    Inputs: ``x (U, T)``; ``threshold_db, ratio, knee_db, attack, release, env0, gain0`` ``(R,)``
    (attack/release as ``ms2coef`` coefficients); ``chan (R, C)`` long; ``coef`` the detector's. The
    gain comes out in ``x``'s dtype; the final states (float64) carry no gradient.
    """

    @staticmethod
    def forward(ctx, x, threshold_db, ratio, knee_db, attack, release, env0, gain0, chan, coef):
        params = (threshold_db, ratio, knee_db, attack, release, env0, gain0)
        xs, chan_np, values = _comp_inputs(x, chan, params)
        rows, n = chan_np.shape[0], xs.shape[1]
        env, target, gain = np.empty((rows, n)), np.empty((rows, n)), np.empty((rows, n))
        with _kernel_threads():
            _comp_forward_kernel(xs, chan_np, *values[:5], coef, *values[5:], env, target, gain)
        ctx.save_for_backward(x, *params)
        ctx.arrays = chan_np, env, target, gain
        ctx.coef = coef
        last_env = torch.from_numpy(env[:, -1].copy() if n else values[5])
        last_gain = torch.from_numpy(gain[:, -1].copy() if n else values[6])
        ctx.mark_non_differentiable(last_env, last_gain)
        return torch.from_numpy(gain).to(x.dtype), last_env, last_gain

    @staticmethod
    def backward(ctx, grad_gain, _env, _gain):
        x, *params = ctx.saved_tensors
        chan_np, env, target, gain = ctx.arrays
        xs, _, values = _comp_inputs(x, torch.from_numpy(chan_np), params)
        grad_x = np.zeros(xs.shape)
        grads = np.empty((chan_np.shape[0], 7))
        gg = np.ascontiguousarray(grad_gain.detach().to(torch.float64).numpy())
        with _kernel_threads():
            _comp_backward_kernel(xs, chan_np, *values[:5], ctx.coef, values[6], env, target, gain, gg,
                                  grad_x, grads)
        return (torch.from_numpy(grad_x).to(x.dtype), *_param_grads(grads, params), None, None)


class _CompressMixCPU(torch.autograd.Function):
    """Compressors on linked rows, then each row's channels scaled and summed into groups, in one step:
    ``out[group[r], c] += x[chan[r, c]] * gain[r] * out_gain[r, c]`` -> ``(n_groups, C, T)`` in ``x``'s
    dtype. The per-row gains are never materialised as tensors. Inputs as :class:`_LinkedGainCPU`
    (initial states: zero envelope, unity gain), plus ``out_gain (R, C)`` and ``group (R,)`` long.
    """

    @staticmethod
    def forward(ctx, x, threshold_db, ratio, knee_db, attack, release, out_gain, chan, group, n_groups, coef):
        params = (threshold_db, ratio, knee_db, attack, release)
        xs, chan_np, values = _comp_inputs(x, chan, params)
        rows, n = chan_np.shape[0], xs.shape[1]
        env, target, gain = np.empty((rows, n)), np.empty((rows, n)), np.empty((rows, n))
        og = np.ascontiguousarray(out_gain.detach().to(torch.float64).numpy())
        group_np = np.ascontiguousarray(group.numpy())
        out = np.empty((n_groups, chan_np.shape[1], n), xs.dtype)
        with _kernel_threads():
            _comp_forward_kernel(xs, chan_np, *values, coef, np.zeros(rows), np.ones(rows), env, target, gain)
            _mix_kernel(xs, chan_np, gain, og, group_np, out)
        ctx.save_for_backward(x, *params, out_gain)
        ctx.arrays = chan_np, group_np, og, env, target, gain
        ctx.coef = coef
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad):
        x, *params, out_gain = ctx.saved_tensors
        chan_np, group_np, og, env, target, gain = ctx.arrays
        xs, _, values = _comp_inputs(x, torch.from_numpy(chan_np), params)
        rows, n = gain.shape
        grad_x = np.zeros(xs.shape)
        grad_gain = np.empty((rows, n))
        part = np.empty(((n + _MIX_BLOCK - 1) // _MIX_BLOCK, rows, chan_np.shape[1]))
        grads = np.empty((rows, 7))
        with _kernel_threads():
            _mix_grad_kernel(xs, chan_np, gain, og, group_np, grad.detach().contiguous().numpy(), grad_x,
                             grad_gain, part)
            _comp_backward_kernel(xs, chan_np, *values, ctx.coef, np.ones(rows), env, target, gain,
                                  grad_gain, grad_x, grads)
        grad_out_gain = torch.from_numpy(part.sum(axis=0)).to(out_gain.dtype)
        return (torch.from_numpy(grad_x).to(x.dtype), *_param_grads(grads[:, :5], params), grad_out_gain,
                None, None, None, None)


class _CompressMixSendCPU(torch.autograd.Function):
    """:class:`_CompressMixCPU` with a second sum of the same compressed rows: ``(out, send)``, each
    ``(n_groups, C, T)``, ``send`` with its own gains ``send_gain (R, C)`` (the reverb's send bus: each
    strip's output times its send level). The compressors run once for both."""

    @staticmethod
    def forward(ctx, x, threshold_db, ratio, knee_db, attack, release, out_gain, send_gain, chan, group,
                n_groups, coef):
        params = (threshold_db, ratio, knee_db, attack, release)
        xs, chan_np, values = _comp_inputs(x, chan, params)
        rows, n = chan_np.shape[0], xs.shape[1]
        env, target, gain = np.empty((rows, n)), np.empty((rows, n)), np.empty((rows, n))
        ogs = [np.ascontiguousarray(g.detach().to(torch.float64).numpy()) for g in (out_gain, send_gain)]
        group_np = np.ascontiguousarray(group.numpy())
        outs = [np.empty((n_groups, chan_np.shape[1], n), xs.dtype) for _ in ogs]
        with _kernel_threads():
            _comp_forward_kernel(xs, chan_np, *values, coef, np.zeros(rows), np.ones(rows), env, target, gain)
            for og, out in zip(ogs, outs, strict=True):
                _mix_kernel(xs, chan_np, gain, og, group_np, out)
        ctx.save_for_backward(x, *params, out_gain, send_gain)
        ctx.arrays = chan_np, group_np, ogs, env, target, gain
        ctx.coef = coef
        return torch.from_numpy(outs[0]), torch.from_numpy(outs[1])

    @staticmethod
    def backward(ctx, grad, grad_send):
        x, *params, out_gain, send_gain = ctx.saved_tensors
        chan_np, group_np, ogs, env, target, gain = ctx.arrays
        xs, _, values = _comp_inputs(x, torch.from_numpy(chan_np), params)
        rows, n = gain.shape
        grad_x = np.zeros(xs.shape)  # the mix adjoint adds into it, both sums in turn
        grad_gain, grad_part = np.zeros((rows, n)), np.empty((rows, n))
        n_blocks = (n + _MIX_BLOCK - 1) // _MIX_BLOCK
        grads_og = []
        with _kernel_threads():
            for og, g in zip(ogs, (grad, grad_send), strict=True):
                if g is None:
                    grads_og.append(None)
                    continue
                part = np.empty((n_blocks, rows, chan_np.shape[1]))
                _mix_grad_kernel(xs, chan_np, gain, og, group_np, g.detach().contiguous().numpy(), grad_x,
                                 grad_part, part)
                grad_gain += grad_part
                grads_og.append(part.sum(axis=0))
            grads = np.empty((rows, 7))
            _comp_backward_kernel(xs, chan_np, *values, ctx.coef, np.ones(rows), env, target, gain,
                                  grad_gain, grad_x, grads)
        out_grads = [None if g is None else torch.from_numpy(g).to(t.dtype)
                     for g, t in zip(grads_og, (out_gain, send_gain), strict=True)]
        return (torch.from_numpy(grad_x).to(x.dtype), *_param_grads(grads[:, :5], params), *out_grads,
                None, None, None, None)


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
