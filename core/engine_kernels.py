"""The streaming console's compiled kernels (numba): biquads, compressor, sums, per block.

:mod:`core.engine` designs the parameters (numpy, float64) and keeps the state; these kernels carry
that state through a block of samples. Every kernel is compiled ``nogil`` (tracks render in parallel
threads, and a busy GUI thread does not stall a render thread), except the ``_held`` wrappers that
playback uses (see below). Output is identical for any block size: every sample goes through the
same arithmetic in the same order.
"""

from __future__ import annotations

import math
import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_LN10_OVER_20 = math.log(10.0) / 20.0
_FM = {"contract"}  # fused multiply-add only: every other IEEE rule stays, so results are reproducible

#: Compressor constants per strip, in this order (see :func:`core.engine._comp_constants`).
_C_RMS, _C_ONSET, _C_THR, _C_KNEE, _C_SLOPE, _C_ATT, _C_REL, _C_MAKEUP = range(8)
_N_COMP = 8


# --- kernels -------------------------------------------------------------------------------------------
# Measured on the 2-core development machine (one core, CPU cycles per frame of a stereo strip): six
# biquads 22, static curve 4.5, gain ballistics 7.5, input gather 1.7; a mono strip costs about two
# thirds; fader/pan/sum 2.5 per track. Two things matter: one long loop that filters, takes a
# logarithm and an exponential and smooths the gain per sample is three times slower than three short
# loops (the dependency chain of one sample outgrows what the CPU can overlap), and libm's log/exp
# cannot be vectorised, so the static curve uses the inline versions below.


@intrinsic
def _f64_bits(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _bits_f64(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


def _mxcsr_call(builder, name, ptr):
    fnty = ir.FunctionType(ir.VoidType(), [ir.PointerType(ir.IntType(8))])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    builder.call(fn, [builder.bitcast(ptr, ir.PointerType(ir.IntType(8)))])


_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


@intrinsic
def _denormals_off(typingctx):
    """Flush denormals to zero in this thread (x86 MXCSR FTZ and DAZ); returns the previous MXCSR.

    Filters ringing out into silence otherwise spend their time in denormal arithmetic (half the
    speed here). Values below 2e-308 are far under any audible or measurable level."""

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        if not _X86:
            return ir.Constant(i32, 0)
        ptr = cgutils.alloca_once(builder, i32)
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", ptr)
        old = builder.load(ptr)
        builder.store(builder.or_(old, ir.Constant(i32, 0x8040)), ptr)
        _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", ptr)
        return old

    return types.int32(), codegen


@intrinsic
def _denormals_restore(typingctx, old):
    def codegen(context, builder, signature, args):
        if _X86:
            ptr = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(args[0], ptr)
            _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", ptr)
        return context.get_dummy_value()

    return types.void(types.int32), codegen


_LN2 = math.log(2.0)
_SQRT2 = math.sqrt(2.0)
_MANTISSA = (1 << 52) - 1
_EXP_ONE = 1023 << 52
_DB_PER_LN = 10.0 / math.log(10.0)  # 10 log10(x) = _DB_PER_LN * ln(x)


@njit(inline="always", fastmath=_FM, error_model="numpy")
def _ln(x):
    """Natural logarithm of a positive normal float64 (absolute error < 1e-12)."""
    bits = _f64_bits(x)
    ex = (bits >> 52) - 1023
    m = _bits_f64((bits & _MANTISSA) | _EXP_ONE)  # [1, 2)
    hi = m > _SQRT2
    m = m * 0.5 if hi else m
    ex = ex + 1 if hi else ex
    s = (m - 1.0) / (m + 1.0)  # ln m = 2 atanh(s), |s| < 0.172
    s2 = s * s
    p = 1.0 + s2 * (1 / 3 + s2 * (1 / 5 + s2 * (1 / 7 + s2 * (1 / 9 + s2 * (1 / 11 + s2 / 13)))))
    return 2.0 * s * p + ex * _LN2


@njit(inline="always", fastmath=_FM, error_model="numpy")
def _exp(x):
    """Exponential for -700 < x < 700 (relative error < 1e-12)."""
    k = math.floor(x * (1.0 / _LN2) + 0.5)
    r = x - k * _LN2  # |r| <= ln2 / 2
    p = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (
        1 / 720 + r * (1 / 5040 + r * (1 / 40320 + r * (1 / 362880 + r / 3628800)))))))))
    return p * _bits_f64((np.int64(k) + 1023) << 52)


@njit(inline="always", fastmath=_FM, error_model="numpy")
def _bq(x, c, z1, z2):
    """One direct-form-II-transposed biquad step; ``c = (b0, b1, b2, a1, a2)``."""
    y = c[0] * x + z1
    return y, c[1] * x - c[3] * y + z2, c[2] * x - c[4] * y


@njit(inline="always", fastmath=_FM, error_model="numpy")
def _bq1(x, c, z1, z2):
    """:func:`_bq` for a section normalised to ``b0 = 1`` (see :func:`design_sos`)."""
    y = x + z1
    return y, c[1] * x - c[3] * y + z2, c[2] * x - c[4] * y


@njit(inline="always")
def _sec(sos, t, s):
    return (sos[t, s, 0], sos[t, s, 1], sos[t, s, 2], sos[t, s, 3], sos[t, s, 4])


@njit(inline="always", fastmath=_FM, error_model="numpy")
def _targets(env, n, cp):
    """In place over ``env[:n]``: detector envelope -> target gain of the static curve (linear).

    Soft knee of width W around threshold T (Giannoulis et al. 2012): gain change ``delta`` (dB) is 0
    below ``T - W/2``, ``slope (L - T + W/2)**2 / (2W)`` inside the knee, ``slope (L - T)`` above.
    Branch-free, so the loop vectorises.
    """
    slope, thr, knee = cp[_C_SLOPE], cp[_C_THR], cp[_C_KNEE]
    inv_2knee = 0.5 / knee if knee > 0.0 else 0.0
    for i in range(n):
        over = _DB_PER_LN * _ln(env[i] + 1e-10) - thr
        q = over + 0.5 * knee
        soft = slope * q * q * inv_2knee if 2.0 * over >= -knee else 0.0
        delta = slope * over if 2.0 * over > knee else soft
        env[i] = _exp(delta * _LN10_OVER_20)


@njit(inline="always", fastmath=_FM, error_model="numpy")
def _ballistics(x, nch, tgt, n, g, cp, fader0, fader1, ramp, out):
    """Gain ballistics (attack when the target is below the gain, else release) and output.

    ``out[c, i] = x[c, i] * g[i] * makeup * fader[i]`` for ``c < nch``; ``x`` and ``out`` may be the
    same array. Returns (gain after the block, smallest gain).
    """
    att, rel, mk = cp[_C_ATT], cp[_C_REL], cp[_C_MAKEUP]
    gmin = g
    for i in range(n):
        tg = tgt[i]
        g += (att if tg < g else rel) * (tg - g)
        gmin = min(gmin, g)
        m = g * mk * _ramp(i, fader0, fader1, ramp)
        for c in range(nch):
            out[c, i] = x[c, i] * m
    return g, gmin


@njit(inline="always", fastmath=_FM, error_model="numpy")
def _dynamics(x, nch, env, n, cp, cst, fader0, fader1, ramp, out):
    """Compressor after the detector pass: ``env`` holds the envelope, ``cst`` the (envelope, gain)
    state. Returns the smallest gain of the block."""
    g = cst[1]
    if cp[_C_SLOPE] == 0.0 and g == 1.0:  # ratio 1: unity gain, exactly
        _ones(env, n)
    else:
        _targets(env, n, cp)
    g, gmin = _ballistics(x, nch, env, n, g, cp, fader0, fader1, ramp, out)
    cst[1] = g
    return gmin


@njit(inline="always")
def _ones(a, n):
    for i in range(n):
        a[i] = 1.0


@njit(inline="always")
def _comp_tuple(comp, t):
    return (comp[t, 0], comp[t, 1], comp[t, 2], comp[t, 3], comp[t, 4], comp[t, 5], comp[t, 6], comp[t, 7])


@njit(inline="always")
def _gather(src, t, nch, idx, tidx, tw, out):
    """Input block of track ``t`` into ``out[t, :nch]``: song frame ``idx[i]`` (silence where < 0),
    cross-faded with frame ``tidx[i]`` by weight ``tw[i]`` where ``tidx[i] >= 0`` (loop wrap). A loop
    of its own: branches inside the filter loop would cost more than the filters."""
    for c in range(nch):
        for i in range(idx.shape[0]):
            p, q = idx[i], tidx[i]
            x = src[t, c, p] if p >= 0 else np.float32(0.0)
            if q >= 0:
                x = np.float32(x * (1.0 - tw[i]) + src[t, c, q] * tw[i])
            out[t, c, i] = x


@njit(inline="always")
def _ramp(i, g0, g1, ramp):
    return g0 + (g1 - g0) * ((i + 1) / ramp) if i < ramp else g1


@njit(nogil=True, cache=True, fastmath=_FM, error_model="numpy")
def _eq_stereo(t, n, pre_gain, sos, zi, a_rms, e, out, env):
    """Trim and EQ (``pre_gain`` = trim x EQ gain) of a stereo strip, in place on its input in
    ``out[t]`` (float32); detector envelope into ``env``. Returns the envelope after the block."""
    c0, c1, c2 = _sec(sos, t, 0), _sec(sos, t, 1), _sec(sos, t, 2)
    c3, c4, c5 = _sec(sos, t, 3), _sec(sos, t, 4), _sec(sos, t, 5)
    z = zi[t]
    a0, b0, a1, b1, a2, b2 = z[0, 0, 0], z[0, 0, 1], z[1, 0, 0], z[1, 0, 1], z[2, 0, 0], z[2, 0, 1]
    a3, b3, a4, b4, a5, b5 = z[3, 0, 0], z[3, 0, 1], z[4, 0, 0], z[4, 0, 1], z[5, 0, 0], z[5, 0, 1]
    d0, f0, d1, f1, d2, f2 = z[0, 1, 0], z[0, 1, 1], z[1, 1, 0], z[1, 1, 1], z[2, 1, 0], z[2, 1, 1]
    d3, f3, d4, f4, d5, f5 = z[3, 1, 0], z[3, 1, 1], z[4, 1, 0], z[4, 1, 1], z[5, 1, 0], z[5, 1, 1]
    k = pre_gain[t]
    for i in range(n):
        xl = out[t, 0, i] * k
        xr = out[t, 1, i] * k
        xl, a0, b0 = _bq1(xl, c0, a0, b0)
        xr, d0, f0 = _bq1(xr, c0, d0, f0)
        xl, a1, b1 = _bq1(xl, c1, a1, b1)
        xr, d1, f1 = _bq1(xr, c1, d1, f1)
        xl, a2, b2 = _bq1(xl, c2, a2, b2)
        xr, d2, f2 = _bq1(xr, c2, d2, f2)
        xl, a3, b3 = _bq1(xl, c3, a3, b3)
        xr, d3, f3 = _bq1(xr, c3, d3, f3)
        xl, a4, b4 = _bq1(xl, c4, a4, b4)
        xr, d4, f4 = _bq1(xr, c4, d4, f4)
        xl, a5, b5 = _bq1(xl, c5, a5, b5)
        xr, d5, f5 = _bq1(xr, c5, d5, f5)
        e += a_rms * (0.5 * (xl * xl + xr * xr) - e)
        env[i] = e
        out[t, 0, i] = xl
        out[t, 1, i] = xr
    z[0, 0, 0], z[0, 0, 1], z[1, 0, 0], z[1, 0, 1], z[2, 0, 0], z[2, 0, 1] = a0, b0, a1, b1, a2, b2
    z[3, 0, 0], z[3, 0, 1], z[4, 0, 0], z[4, 0, 1], z[5, 0, 0], z[5, 0, 1] = a3, b3, a4, b4, a5, b5
    z[0, 1, 0], z[0, 1, 1], z[1, 1, 0], z[1, 1, 1], z[2, 1, 0], z[2, 1, 1] = d0, f0, d1, f1, d2, f2
    z[3, 1, 0], z[3, 1, 1], z[4, 1, 0], z[4, 1, 1], z[5, 1, 0], z[5, 1, 1] = d3, f3, d4, f4, d5, f5
    return e


@njit(nogil=True, cache=True, fastmath=_FM, error_model="numpy")
def _eq_mono(t, n, pre_gain, sos, zi, a_rms, e, out, env):
    """As :func:`_eq_stereo` for a mono stem (two identical channels): filtered once, channel 0 only."""
    c0, c1, c2 = _sec(sos, t, 0), _sec(sos, t, 1), _sec(sos, t, 2)
    c3, c4, c5 = _sec(sos, t, 3), _sec(sos, t, 4), _sec(sos, t, 5)
    z = zi[t]
    a0, b0, a1, b1, a2, b2 = z[0, 0, 0], z[0, 0, 1], z[1, 0, 0], z[1, 0, 1], z[2, 0, 0], z[2, 0, 1]
    a3, b3, a4, b4, a5, b5 = z[3, 0, 0], z[3, 0, 1], z[4, 0, 0], z[4, 0, 1], z[5, 0, 0], z[5, 0, 1]
    k = pre_gain[t]
    for i in range(n):
        x = out[t, 0, i] * k
        x, a0, b0 = _bq1(x, c0, a0, b0)
        x, a1, b1 = _bq1(x, c1, a1, b1)
        x, a2, b2 = _bq1(x, c2, a2, b2)
        x, a3, b3 = _bq1(x, c3, a3, b3)
        x, a4, b4 = _bq1(x, c4, a4, b4)
        x, a5, b5 = _bq1(x, c5, a5, b5)
        e += a_rms * (x * x - e)
        env[i] = e
        out[t, 0, i] = x
    z[0, 0, 0], z[0, 0, 1], z[1, 0, 0], z[1, 0, 1], z[2, 0, 0], z[2, 0, 1] = a0, b0, a1, b1, a2, b2
    z[3, 0, 0], z[3, 0, 1], z[4, 0, 0], z[4, 0, 1], z[5, 0, 0], z[5, 0, 1] = a3, b3, a4, b4, a5, b5
    return e


@njit(nogil=True, cache=True, fastmath=_FM, error_model="numpy")
def _strips(src, stereo, tracks, idx, tidx, tw, pre_gain, sos, comp, zi, cst, out, env, gmin):
    """Render the strips of ``tracks`` for one block: trim, EQ and compressor (with makeup) into
    ``out[t]`` (float32; a mono strip fills channel 0). ``env (N, >= n)`` is scratch, ``gmin (N,)``
    receives each strip's smallest compressor gain. Three passes per strip (filters and detector;
    static curve; ballistics) keep each loop short enough to pipeline."""
    n = idx.shape[0]
    mxcsr = _denormals_off()
    for j in range(tracks.shape[0]):
        t = tracks[j]
        cp = _comp_tuple(comp, t)
        _gather(src, t, 2 if stereo[t] else 1, idx, tidx, tw, out)
        if stereo[t]:
            cst[t, 0] = _eq_stereo(t, n, pre_gain, sos, zi, cp[_C_RMS], cst[t, 0], out, env[t])
        else:
            cst[t, 0] = _eq_mono(t, n, pre_gain, sos, zi, cp[_C_RMS], cst[t, 0], out, env[t])
        gmin[t] = _dynamics(out[t], 2 if stereo[t] else 1, env[t], n, cp, cst[t], 1.0, 1.0, 0, out[t])
    _denormals_restore(mxcsr)


@njit(nogil=True, cache=True, fastmath=_FM, error_model="numpy")
def _sum_bus(cache, stereo, g0, g1, ramp, n, scale, bus):
    """``bus (2, n)`` float64 = sum over tracks of the cached strip outputs x fader/pan gains x ``scale``.

    ``g0``/``g1``: ``(N, 2)`` gains before/after a change, ramped linearly over ``ramp`` samples.
    """
    bus[:, :n] = 0.0
    for t in range(cache.shape[0]):
        src_r = 1 if stereo[t] else 0
        for c in range(2):
            a, b = g0[t, c] * scale, g1[t, c] * scale
            if a == 0.0 and b == 0.0:
                continue
            sc = c if c == 0 else src_r
            if a == b:
                for i in range(n):
                    bus[c, i] += b * cache[t, sc, i]
            else:
                for i in range(n):
                    bus[c, i] += _ramp(i, a, b, ramp) * cache[t, sc, i]


@njit(nogil=True, cache=True, fastmath=_FM, error_model="numpy")
def _master(bus, n, sos, comp, zi, cst, fader0, fader1, ramp, env, out):
    """Master EQ -> compressor -> fader on ``bus (2, n)`` (float64, filtered in place) into
    ``out (2, n)`` float32. ``env (>= n,)`` is scratch. Returns the compressor's smallest gain."""
    c0 = (sos[0, 0], sos[0, 1], sos[0, 2], sos[0, 3], sos[0, 4])
    c1 = (sos[1, 0], sos[1, 1], sos[1, 2], sos[1, 3], sos[1, 4])
    c2 = (sos[2, 0], sos[2, 1], sos[2, 2], sos[2, 3], sos[2, 4])
    c3 = (sos[3, 0], sos[3, 1], sos[3, 2], sos[3, 3], sos[3, 4])
    c4 = (sos[4, 0], sos[4, 1], sos[4, 2], sos[4, 3], sos[4, 4])
    c5 = (sos[5, 0], sos[5, 1], sos[5, 2], sos[5, 3], sos[5, 4])
    a0, b0, a1, b1, a2, b2 = zi[0, 0, 0], zi[0, 0, 1], zi[1, 0, 0], zi[1, 0, 1], zi[2, 0, 0], zi[2, 0, 1]
    a3, b3, a4, b4, a5, b5 = zi[3, 0, 0], zi[3, 0, 1], zi[4, 0, 0], zi[4, 0, 1], zi[5, 0, 0], zi[5, 0, 1]
    d0, f0, d1, f1, d2, f2 = zi[0, 1, 0], zi[0, 1, 1], zi[1, 1, 0], zi[1, 1, 1], zi[2, 1, 0], zi[2, 1, 1]
    d3, f3, d4, f4, d5, f5 = zi[3, 1, 0], zi[3, 1, 1], zi[4, 1, 0], zi[4, 1, 1], zi[5, 1, 0], zi[5, 1, 1]
    cp = (comp[0], comp[1], comp[2], comp[3], comp[4], comp[5], comp[6], comp[7])
    a_rms = cp[_C_RMS]
    e = cst[0]
    mxcsr = _denormals_off()
    for i in range(n):
        xl, a0, b0 = _bq1(bus[0, i], c0, a0, b0)
        xr, d0, f0 = _bq1(bus[1, i], c0, d0, f0)
        xl, a1, b1 = _bq1(xl, c1, a1, b1)
        xr, d1, f1 = _bq1(xr, c1, d1, f1)
        xl, a2, b2 = _bq1(xl, c2, a2, b2)
        xr, d2, f2 = _bq1(xr, c2, d2, f2)
        xl, a3, b3 = _bq1(xl, c3, a3, b3)
        xr, d3, f3 = _bq1(xr, c3, d3, f3)
        xl, a4, b4 = _bq1(xl, c4, a4, b4)
        xr, d4, f4 = _bq1(xr, c4, d4, f4)
        xl, a5, b5 = _bq1(xl, c5, a5, b5)
        xr, d5, f5 = _bq1(xr, c5, d5, f5)
        e += a_rms * (0.5 * (xl * xl + xr * xr) - e)
        env[i] = e
        bus[0, i] = xl
        bus[1, i] = xr
    zi[0, 0, 0], zi[0, 0, 1], zi[1, 0, 0], zi[1, 0, 1], zi[2, 0, 0], zi[2, 0, 1] = a0, b0, a1, b1, a2, b2
    zi[3, 0, 0], zi[3, 0, 1], zi[4, 0, 0], zi[4, 0, 1], zi[5, 0, 0], zi[5, 0, 1] = a3, b3, a4, b4, a5, b5
    zi[0, 1, 0], zi[0, 1, 1], zi[1, 1, 0], zi[1, 1, 1], zi[2, 1, 0], zi[2, 1, 1] = d0, f0, d1, f1, d2, f2
    zi[3, 1, 0], zi[3, 1, 1], zi[4, 1, 0], zi[4, 1, 1], zi[5, 1, 0], zi[5, 1, 1] = d3, f3, d4, f4, d5, f5
    cst[0] = e
    gmin = _dynamics(bus, 2, env, n, cp, cst, fader0, fader1, ramp, out)
    _denormals_restore(mxcsr)
    return gmin


@njit(nogil=True, cache=True)
def _track_out(cache, t, stereo, g0, g1, ramp, n, out):
    """One track after fader and pan (what it adds to the sum): ``out (2, n)`` float32."""
    src_r = 1 if stereo else 0
    for c in range(2):
        sc = c if c == 0 else src_r
        for i in range(n):
            out[c, i] = _ramp(i, g0[t, c], g1[t, c], ramp) * cache[t, sc, i]


# --- holding the GIL (playback) ----------------------------------------------------------------------


# Playback renders from one thread next to a busy GUI thread: there every release of the GIL costs up
# to a switch interval to take it back, several times per block. These wrappers run the same kernels
# holding the GIL (a block takes a fraction of a millisecond), so a block is rendered in one go.


@njit(cache=True)
def _strips_held(src, stereo, tracks, idx, tidx, tw, pre_gain, sos, comp, zi, cst, out, env, gmin):
    _strips(src, stereo, tracks, idx, tidx, tw, pre_gain, sos, comp, zi, cst, out, env, gmin)


@njit(cache=True)
def _mix_held(cache, stereo, g0, g1, ramp, n, scale, bus, sos, comp, zi, cst, fader0, fader1, env, out):
    _sum_bus(cache, stereo, g0, g1, ramp, n, scale, bus)
    return _master(bus, n, sos, comp, zi, cst, fader0, fader1, ramp, env, out)
