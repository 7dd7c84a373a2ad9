"""Meters of live playback: peak, RMS, momentary and short-term loudness, gain reduction. No Qt.

:class:`core.playback.Player` meters every block it renders (before the device plays it) and keeps the
values with the block, so that :meth:`Player.meters` reads the levels of what is being heard. The
meters follow the player's ring: their filter states are checkpointed with each block and restored
when blocks are rendered again after an edit (:meth:`BlockMeters.checkpoint`, :meth:`~BlockMeters.restore`).

Loudness is K-weighted as in ITU-R BS.1770 (:func:`core.meter.k_weighting_sos`), over the momentary
(400 ms) and short-term (3 s) windows; RMS over :data:`RMS_S` like a VU-speed meter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from .engine_kernels import _bq

#: Meter windows (BS.1770 momentary and short-term; RMS like a VU-speed meter).
MOMENTARY_S, SHORT_TERM_S, RMS_S = 0.4, 3.0, 0.3
#: Meters floor (dB, LUFS).
METER_FLOOR = -120.0


@dataclass(frozen=True)
class Meters:
    """Levels at the playhead. Rows ``0..N-1`` are the strips (after fader and pan), row ``N`` the
    master (what is heard, after A/B); ``fx_*`` the FX return (the reverb's output after its return
    level and mute: what it adds to the master bus). dBFS / LUFS, floored at :data:`METER_FLOOR`."""

    peak_db: np.ndarray  # (N+1, 2) largest sample of the last block
    rms_db: np.ndarray  # (N+1, 2) over RMS_S
    momentary_lufs: np.ndarray  # (N+1,) over 400 ms
    short_term_lufs: np.ndarray  # (N+1,) over 3 s
    gain_reduction_db: np.ndarray  # (N+1,) compressor, largest in the last block (>= 0)
    position: int  # frame at the playhead
    fx_peak_db: np.ndarray = None  # (2,) FX return: largest sample of the last block
    fx_rms_db: np.ndarray = None  # (2,) FX return: over RMS_S


# --- meter kernels ------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")  # holds the GIL: see core.engine_kernels._strips_held
def _meter_strips(cache, stereo, gains, n, ks, kz, peak, sq, kp):
    """Per strip after fader/pan: block peak and sum of squares per channel, K-weighted power sum."""
    c1 = (ks[0, 0], ks[0, 1], ks[0, 2], ks[0, 3], ks[0, 4])
    c2 = (ks[1, 0], ks[1, 1], ks[1, 2], ks[1, 3], ks[1, 4])
    for t in range(cache.shape[0]):
        src_r = 1 if stereo[t] else 0
        kp[t] = 0.0
        for c in range(2):
            g = gains[t, c]
            sc = c if c == 0 else src_r
            if g == 0.0:
                peak[t, c] = 0.0
                sq[t, c] = 0.0
                kz[t, c, :, :] = 0.0
                continue
            z1, z2, z3, z4 = kz[t, c, 0, 0], kz[t, c, 0, 1], kz[t, c, 1, 0], kz[t, c, 1, 1]
            pk = 0.0
            s = 0.0
            k = 0.0
            for i in range(n):
                y = g * cache[t, sc, i]
                pk = max(pk, abs(y))
                s += y * y
                u, z1, z2 = _bq(y, c1, z1, z2)
                u, z3, z4 = _bq(u, c2, z3, z4)
                k += u * u
            kz[t, c, 0, 0], kz[t, c, 0, 1], kz[t, c, 1, 0], kz[t, c, 1, 1] = z1, z2, z3, z4
            peak[t, c] = pk
            sq[t, c] = s
            kp[t] += k


@njit(cache=True, error_model="numpy")  # holds the GIL: see core.engine_kernels._strips_held
def _meter_frames(buf, n, ks, kz, peak, sq):
    """Master meter on the output block ``buf (n, 2)``; returns the K-weighted power sum."""
    c1 = (ks[0, 0], ks[0, 1], ks[0, 2], ks[0, 3], ks[0, 4])
    c2 = (ks[1, 0], ks[1, 1], ks[1, 2], ks[1, 3], ks[1, 4])
    total = 0.0
    for c in range(2):
        z1, z2, z3, z4 = kz[c, 0, 0], kz[c, 0, 1], kz[c, 1, 0], kz[c, 1, 1]
        pk = 0.0
        s = 0.0
        for i in range(n):
            y = np.float64(buf[i, c])
            pk = max(pk, abs(y))
            s += y * y
            u, z1, z2 = _bq(y, c1, z1, z2)
            u, z3, z4 = _bq(u, c2, z3, z4)
            total += u * u
        kz[c, 0, 0], kz[c, 0, 1], kz[c, 1, 0], kz[c, 1, 1] = z1, z2, z3, z4
        peak[c] = pk
        sq[c] = s
    return total


@njit(cache=True, error_model="numpy")  # holds the GIL: see core.engine_kernels._strips_held
def _meter_plain(x, n, peak, sq):
    """Peak and sum of squares per channel of ``x (2, >= n)`` (no weighting: the FX return)."""
    for c in range(2):
        pk = 0.0
        s = 0.0
        for i in range(n):
            y = x[c, i]
            pk = max(pk, abs(y))
            s += y * y
        peak[c] = pk
        sq[c] = s


def _k_sections(sample_rate: int) -> np.ndarray:
    from .meter import k_weighting_sos

    sos = k_weighting_sos(int(sample_rate))  # (2, 6) [b0 b1 b2 1 a1 a2]
    return np.ascontiguousarray(np.concatenate([sos[:, :3], sos[:, 4:]], axis=1))


# --- the meters of a ring of blocks ------------------------------------------------------------------------


class BlockMeters:
    """Meters measured block by block, in the render thread, and published with each block.

    Args:
        n_tracks: strips metered (row ``n_tracks`` is the master; peak and RMS have one row more, the
            FX return).
        sample_rate: Hz. block: frames per block.
        ring_blocks: blocks the ring holds ahead of the playhead (one checkpoint each).
        buffers: physical buffers the blocks are published in (one row of published values each).

    The render thread calls :meth:`measure` for block ``j`` and then :meth:`publish` into the
    block's buffer; the caller reads a buffer's values with :meth:`read`. A buffer's values are
    written only while the buffer cannot be read (see :mod:`core.playback`).
    """

    def __init__(self, n_tracks: int, sample_rate: int, block: int, ring_blocks: int, buffers: int):
        n1 = n_tracks + 1
        self.n_tracks, self.block = n_tracks, block
        self._ks = _k_sections(sample_rate)
        self._kz_s = np.zeros((n_tracks, 2, 2, 2))  # K-weighting filter states: strips, master
        self._kz_m = np.zeros((2, 2, 2))
        self._ck_kz_s = np.zeros((ring_blocks, n_tracks, 2, 2, 2))
        self._ck_kz_m = np.zeros((ring_blocks, 2, 2, 2))
        hist = math.ceil(SHORT_TERM_S * sample_rate / block) + ring_blocks + 1
        n2 = n1 + 1  # peak and RMS: strips, master, FX return
        self._hist_sq = np.zeros((hist, n2, 2))  # per block: sum of squares, K-weighted power sum
        self._hist_k = np.zeros((hist, n1))
        self._win = {name: max(1, round(sec * sample_rate / block))
                     for name, sec in (("rms", RMS_S), ("mom", MOMENTARY_S), ("short", SHORT_TERM_S))}
        self._sq = np.zeros((n2, 2))
        self._pk = np.zeros((n2, 2))
        self._kp = np.zeros(n1)
        self._gr = np.ones(n1)
        # published, one row per physical buffer
        self._peak = np.zeros((buffers, n2, 2))
        self._rms = np.zeros((buffers, n2, 2))
        self._mom = np.zeros((buffers, n1))
        self._short = np.zeros((buffers, n1))
        self._gain_red = np.zeros((buffers, n1))

    def checkpoint(self, slot: int) -> None:
        """Keep the filter states at the start of the block in ring slot ``slot``."""
        self._ck_kz_s[slot] = self._kz_s
        self._ck_kz_m[slot] = self._kz_m

    def restore(self, slot: int) -> None:
        """Back to the states kept by :meth:`checkpoint` (the block is rendered again)."""
        self._kz_s[:] = self._ck_kz_s[slot]
        self._kz_m[:] = self._ck_kz_m[slot]

    def measure(self, j: int, strips: np.ndarray, stereo: np.ndarray, gains: np.ndarray, out: np.ndarray,
                strip_gain: np.ndarray, master_gain: float, wet: np.ndarray | None = None) -> None:
        """Meter block ``j``: ``strips (N, 2, block)`` after the compressors with output ``gains (N, 2)``
        (fader x pan), ``out (block, 2)`` as heard; smallest compressor gains of strips and master;
        ``wet (2, block)`` the FX return's output (None: the reverb rested, silence)."""
        n, b = self.n_tracks, self.block
        _meter_strips(strips, stereo, gains, b, self._ks, self._kz_s, self._pk[:n], self._sq[:n],
                      self._kp[:n])
        self._kp[n] = _meter_frames(out, b, self._ks, self._kz_m, self._pk[n], self._sq[n])
        if wet is None:
            self._pk[n + 1] = 0.0
            self._sq[n + 1] = 0.0
        else:
            _meter_plain(wet, b, self._pk[n + 1], self._sq[n + 1])
        h = j % self._hist_sq.shape[0]
        self._hist_sq[h] = self._sq
        self._hist_k[h] = self._kp
        self._gr[:n] = strip_gain
        self._gr[n] = master_gain

    def _window(self, hist: np.ndarray, j: int, blocks: int) -> np.ndarray:
        rows = (j - np.arange(blocks)) % hist.shape[0]
        return hist[rows].sum(axis=0) / (blocks * self.block)

    def publish(self, p: int, j: int) -> None:
        """The levels of the last block measured (``j``), in dB, into buffer ``p``'s row."""
        win, floor = self._win, METER_FLOOR
        with np.errstate(divide="ignore"):
            self._peak[p] = np.maximum(20 * np.log10(self._pk), floor)
            self._rms[p] = np.maximum(10 * np.log10(self._window(self._hist_sq, j, win["rms"])), floor)
            for dst, key in ((self._mom, "mom"), (self._short, "short")):
                dst[p] = np.maximum(-0.691 + 10 * np.log10(self._window(self._hist_k, j, win[key])), floor)
            self._gain_red[p] = np.maximum(-20 * np.log10(np.maximum(self._gr, 1e-12)), 0.0)

    def read(self, p: int, position: int) -> Meters:
        """The values published in buffer ``p`` (-1: nothing played yet, every meter at the floor)."""
        if p < 0:
            n1 = self.n_tracks + 1
            floor = np.full((n1, 2), METER_FLOOR)
            return Meters(floor, floor.copy(), floor[:, 0].copy(), floor[:, 0].copy(), np.zeros(n1), position,
                          floor[0].copy(), floor[0].copy())
        n1 = self.n_tracks + 1
        peak, rms = self._peak[p], self._rms[p]
        return Meters(peak[:n1].copy(), rms[:n1].copy(), self._mom[p].copy(), self._short[p].copy(),
                      self._gain_red[p].copy(), position, peak[n1].copy(), rms[n1].copy())
