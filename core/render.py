"""Whole-song rendering and the output stage shared by ``mix``, ``render`` and export.

The output stage matches loudness with the master fader (so a saved parameter set reproduces the
output) and then keeps the true peak under a ceiling with a transparent look-ahead limiter. Rendering
is offline, so the look-ahead reads the future directly: the output stays sample-aligned with the
stems (no latency).

Everything here works in chunks over a :class:`core.stream_io.FrameStore` (memory for a song, a
temporary file for hours of audio), so memory does not grow with the song's length: the mix's
true-peak envelope (4x oversampled) and loudness are measured once; a loudness target is met by
scaling (exactly, while the limiter has nothing to do) or by limiter passes that only measure; the
last pass writes the output. The limiter's gain at each sample depends only on a few milliseconds
around it and on the release state carried from the chunk before, so it equals a whole-signal
computation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numba import njit

from .meter import TP_MARGIN, LoudnessMeter, _pool, db_to_amp, peak_envelope
from .params import MASTER
from .stream_io import FrameStore

LIMITER_LOOKAHEAD_MS = 1.5
LIMITER_RELEASE_MS = 60.0
#: Safety margin under the ceiling that the limiter aims for, dB.
LIMITER_MARGIN_DB = 0.05
#: Frames per chunk of the output stage.
CHUNK = 1 << 18


def render_mix(inputs, params, engine: str = "stream") -> np.ndarray:
    """Render the whole song: (2, T) float32. ``engine`` picks the renderer."""
    if engine == "stream":
        from .engine import render_stream

        return render_stream(inputs.stems, inputs.stereo, params.tracks, params.master, inputs.sample_rate)
    if engine != "torch":
        raise ValueError(f"unknown engine '{engine}'")
    import torch

    from .console import render_long

    with torch.no_grad():
        mix = render_long(
            torch.from_numpy(inputs.stems).unsqueeze(0),
            torch.from_numpy(params.tracks).float().unsqueeze(0),
            torch.from_numpy(params.master).float().unsqueeze(0),
            inputs.sample_rate,
            stereo=torch.from_numpy(np.asarray(inputs.stereo, bool)).unsqueeze(0),
        )
    return mix[0].numpy().astype(np.float32)


@njit(nogil=True, cache=True)
def _release(gain: np.ndarray, coef: float, g: float, out: np.ndarray) -> None:
    """Instant attack, one-pole release towards 1 starting from ``g``, never above the requested gain."""
    for i in range(gain.shape[0]):
        g = g + coef * (1.0 - g)
        if gain[i] < g:
            g = gain[i]
        out[i] = g


@njit(nogil=True, cache=True)
def _running_min(x: np.ndarray, half: int, out: np.ndarray) -> None:
    """``out[i] = min(x[i - half .. i + half])`` over the part of the window inside ``x`` (as
    ``scipy.ndimage.minimum_filter1d(x, 2 * half + 1, mode="nearest")``), van Herk / Gil-Werman:
    three passes whatever the window."""
    n = x.shape[0]
    w = 2 * half + 1
    m = n + 2 * half
    pad = np.empty(m)
    for i in range(m):
        j = i - half
        pad[i] = x[j] if 0 <= j < n else np.inf
    g = np.empty(m)
    h = np.empty(m)
    for i in range(m):
        g[i] = pad[i] if i % w == 0 else min(g[i - 1], pad[i])
    for i in range(m - 1, -1, -1):
        h[i] = pad[i] if (i % w == w - 1 or i == m - 1) else min(h[i + 1], pad[i])
    for i in range(n):
        out[i] = min(h[i], g[i + w - 1])


def _chunks(frames: int, size: int = CHUNK):
    for s in range(0, frames, size):
        yield s, min(frames, s + size)


def _measure_chunk(src: FrameStore, s: int, e: int, sample_rate: int, loudness: LoudnessMeter | None,
                   env: FrameStore) -> float:
    """The true-peak envelope of ``src`` over ``[s, e)`` into ``env`` (half on a worker thread), feeding
    ``loudness`` those frames; returns the envelope's maximum. Needs ``src`` written up to
    ``e + TP_MARGIN`` (or its end)."""
    x = src.read(s - TP_MARGIN, e - s + 2 * TP_MARGIN)
    n, m = e - s, TP_MARGIN
    v = np.empty(n)
    pool = _pool()
    if pool is None:
        peak_envelope(x, sample_rate, m, m + n, v)
        if loudness is not None:
            loudness.add(x[:, m:m + n])
    else:  # half the envelope on a worker while this thread meters loudness and does the rest
        half = n // 2
        job = pool.submit(peak_envelope, x, sample_rate, m, m + half, v[:half])
        if loudness is not None:
            loudness.add(x[:, m:m + n])
        peak_envelope(x, sample_rate, m + half, m + n, v[half:])
        job.result()
    env.write(s, v[None].astype(np.float32))
    return float(v.max(initial=0.0))


def _envelope_pass(src: FrameStore, sample_rate: int, loudness: LoudnessMeter | None = None,
                   folder: str | None = None) -> tuple[FrameStore, float]:
    """The true-peak envelope of ``src`` (see :func:`core.meter.peak_envelope`) as a ``(1, T)`` store,
    and its maximum; feeds ``loudness`` the signal on the way."""
    env = FrameStore(1, src.frames, folder)
    top = 0.0
    for s, e in _chunks(src.frames):
        top = max(top, _measure_chunk(src, s, e, sample_rate, loudness, env))
    return env, top


class MeasuredStore:
    """A signal written block by block, in order, into a :class:`FrameStore` and measured as it
    arrives: the output stage's true-peak envelope and loudness of it (what
    :func:`output_stage_store` would otherwise measure in a pass of its own after the render), the
    same numbers chunk for chunk. Use :meth:`write` as a render's sink, then :meth:`measured`."""

    def __init__(self, channels: int, frames: int, sample_rate: int, folder: str | None = None):
        self.store = FrameStore(channels, frames, folder)
        self.sample_rate = int(sample_rate)
        self.loudness = LoudnessMeter(self.sample_rate, channels)
        self.env = FrameStore(1, frames, folder)
        self.top = 0.0
        self._written = 0
        self._chunks = list(_chunks(frames))
        self._next = 0  # the next chunk to measure

    def write(self, start: int, block: np.ndarray) -> None:
        if start != self._written:
            raise ValueError(f"blocks come in order: expected frame {self._written}, got {start}")
        self.store.write(start, block)
        self._written = start + block.shape[-1]
        self._measure(min(self._written - TP_MARGIN, self.store.frames) if self._written < self.store.frames
                      else self.store.frames)

    def _measure(self, upto: int) -> None:
        while self._next < len(self._chunks) and self._chunks[self._next][1] <= upto:
            s, e = self._chunks[self._next]
            self.top = max(self.top, _measure_chunk(self.store, s, e, self.sample_rate, self.loudness,
                                                    self.env))
            self._next += 1

    def measured(self) -> tuple[FrameStore, float, LoudnessMeter]:
        """``(envelope store, its maximum, loudness meter)`` of the whole signal (written in full)."""
        if self._written != self.store.frames:
            raise ValueError(f"{self._written} of {self.store.frames} frames written")
        self._measure(self.store.frames)
        return self.env, self.top, self.loudness

    def close(self) -> None:
        self.store.close()
        self.env.close()


class _Limiter:
    """The look-ahead limiter over a signal in chunks (see :func:`limit` for the gain law)."""

    def __init__(self, env: FrameStore, sample_rate: int, ceiling_amp: float, scale: float):
        self.env, self.frames = env, env.frames
        self.ceiling, self.scale = ceiling_amp, scale
        self.look = max(1, int(round(LIMITER_LOOKAHEAD_MS * 1e-3 * sample_rate)))
        self.coef = 1.0 - math.exp(-1.0 / (LIMITER_RELEASE_MS * 1e-3 * sample_rate))
        self.left = self.look // 2  # the box filter's reach before and after a sample
        self.right = self.look - 1 - self.left
        self._g = 1.0  # release state after the last finished chunk
        self._tail = np.zeros(0)  # released gain of the last `left` samples of that chunk

    def _need(self, a: int, b: int) -> np.ndarray:
        v = self.env.read(a, b - a)[0].astype(np.float64) * self.scale
        return np.minimum(1.0, self.ceiling / np.maximum(v, 1e-12))

    def gain(self, s: int, e: int) -> np.ndarray:
        """Gain for frames ``[s, e)``; chunks must come in order."""
        t, look = self.frames, self.look
        end = min(t, e + self.right)  # released gain is needed up to here
        a, b = max(0, s - look), min(t, end + look)
        need = self._need(a, b)
        held = np.empty(need.shape[0])
        _running_min(need, look, held)
        held = held[s - a:end - a]
        released = np.empty(end - s)
        _release(held, self.coef, self._g, released)
        self._g = float(released[e - 1 - s])
        before = self._tail if s > 0 else np.full(self.left, released[0])
        after = np.full(e + self.right - end, released[-1])
        ext = np.concatenate([before, released, after])
        cs = np.concatenate([[0.0], np.cumsum(ext)])
        smooth = (cs[look:] - cs[:-look])[: e - s] / look
        self._tail = released[e - s - self.left:e - s] if self.left else np.zeros(0)
        return np.minimum(smooth, need[s - a:e - a])


def _scaled_pass(src: FrameStore, env: FrameStore, top: float, sample_rate: int, scale: float,
                 ceiling_amp: float | None, sink: Callable[[int, np.ndarray], None]) -> None:
    """``src`` times ``scale``, limited to ``ceiling_amp`` (true peak) when it reaches it, chunk by
    chunk into ``sink(start, block)``."""
    lim = None
    if ceiling_amp is not None and top * scale > ceiling_amp:
        lim = _Limiter(env, sample_rate, ceiling_amp, scale)
    for s, e in _chunks(src.frames):
        x = src.read(s, e - s)
        if scale != 1.0:
            x *= np.float32(scale)
        if lim is not None:
            x = (x * lim.gain(s, e)[None, :]).astype(np.float32)
        sink(s, x)


def _ceiling_amp(ceiling_dbtp: float) -> float:
    return float(db_to_amp(ceiling_dbtp) * db_to_amp(-LIMITER_MARGIN_DB))


class StageResult:
    """What the output stage made: the output store, the master fader that reaches the loudness,
    and the output's integrated loudness (LUFS) and true peak (dBTP)."""

    def __init__(self, out: FrameStore, gain_db: float, loudness_lufs: float, true_peak_dbtp: float):
        self.out, self.gain_db = out, gain_db
        self.loudness_lufs, self.true_peak_dbtp = loudness_lufs, true_peak_dbtp


def output_stage_store(mix: FrameStore | MeasuredStore, sample_rate: int, master_gain_db: float,
                       loudness_lufs: float | None, ceiling_dbtp: float | None,
                       folder: str | None = None, progress: Callable[[float], None] | None = None
                       ) -> StageResult:
    """The output stage over a stored mix (see the module notes); ``mix`` is left as it is (a
    :class:`MeasuredStore` brings its measurements, which saves a pass).

    Args:
        master_gain_db: the master fader that produced ``mix``; the result's ``gain_db`` is the
            fader that reaches ``loudness_lufs`` (within the fader's range).
        loudness_lufs: integrated loudness target, or None to keep the level.
        ceiling_dbtp: true-peak ceiling, or None for no limiter.
        folder: where long signals' temporary files go (default: the system's temporary folder).
        progress: optional ``callable(fraction)`` between passes.
    """
    report = progress or (lambda f: None)
    sr = int(sample_rate)
    fader = MASTER["gain_db"]
    ceiling = _ceiling_amp(ceiling_dbtp) if ceiling_dbtp is not None else None
    if isinstance(mix, MeasuredStore):
        env, top, base = mix.measured()
        mix = mix.store
    else:
        base = LoudnessMeter(sr, mix.channels)
        env, top = _envelope_pass(mix, sr, base, folder)
    report(0.3)
    try:
        def loudness_at(scale: float) -> float:
            if ceiling is None or top * scale <= ceiling:  # plain scaling: exact from the measurement
                return base.integrated(gain_db=20.0 * math.log10(scale))
            m = LoudnessMeter(sr, mix.channels)
            _scaled_pass(mix, env, top, sr, scale, ceiling, lambda s, x: m.add(x))
            return m.integrated()

        gain_db, scale = master_gain_db, 1.0
        level = base.integrated()
        if loudness_lufs is not None and math.isfinite(level):
            # a few passes: the limiter takes a little loudness away from peaky material
            for _ in range(5):
                gain_db = fader.clip(master_gain_db + loudness_lufs - level)
                scale = float(db_to_amp(gain_db - master_gain_db))
                got = loudness_at(scale)
                if abs(got - loudness_lufs) < 0.05:
                    break
                level -= loudness_lufs - got
        report(0.6)
        stores: list = []  # what to close if this fails
        try:
            if loudness_lufs is None:  # the mix as it is (scale 1, no limiter): its measurements hold
                out, env2, peak, meter = mix, None, top, base  # copied below unless the limiter writes
            else:
                stage = MeasuredStore(mix.channels, mix.frames, sr, folder)
                stores += [stage.store, stage.env]
                _scaled_pass(mix, env, top, sr, scale, ceiling, stage.write)
                out = stage.store
                env2, peak, meter = stage.measured()
            if ceiling_dbtp is not None and 20.0 * math.log10(max(peak, 1e-300)) > ceiling_dbtp:
                limited = MeasuredStore(mix.channels, mix.frames, sr, folder)
                stores += [limited.store, limited.env]
                _scaled_pass(out, env2 if env2 is not None else env, peak, sr, 1.0, ceiling, limited.write)
                if out is not mix:
                    out.close()
                if env2 is not None:
                    env2.close()
                out = limited.store
                env2, peak, meter = limited.measured()
            if env2 is not None:
                env2.close()
            if out is mix:  # the caller keeps its mix: the output is a store of its own
                out = FrameStore(mix.channels, mix.frames, folder)
                stores.append(out)
                for s, e in _chunks(mix.frames):
                    out.write(s, mix.read(s, e - s))
        except BaseException:
            for st in stores:
                st.close()
            raise
        report(1.0)
        tp = 20.0 * math.log10(peak) if peak > 0 else -math.inf
        return StageResult(out, float(gain_db), meter.integrated(), float(tp))
    finally:
        env.close()


def limit(x: np.ndarray, sample_rate: int, ceiling_dbtp: float) -> np.ndarray:
    """Look-ahead true-peak limiter: (C, T) -> (C, T), peaks at most ``ceiling_dbtp``.

    Gain: required reduction from the 4x oversampled peak envelope, held over the look-ahead window
    (running minimum), released with a one-pole of LIMITER_RELEASE_MS, then smoothed by a box filter
    of the look-ahead length so that it is already down when the peak arrives. Below the ceiling the
    signal passes unchanged.
    """
    src = FrameStore.of(np.asarray(x, dtype=np.float32))
    env, top = _envelope_pass(src, sample_rate)
    ceiling = _ceiling_amp(ceiling_dbtp)
    if top <= ceiling:
        return x
    out = np.empty(src.array().shape, np.float32)

    def sink(s, block):
        out[:, s:s + block.shape[1]] = block

    _scaled_pass(src, env, top, sample_rate, 1.0, ceiling, sink)
    return out.astype(x.dtype, copy=False)


def output_stage(mix: np.ndarray, sample_rate: int, params, loudness_lufs: float | None,
                 ceiling_dbtp: float | None):
    """Match ``loudness_lufs`` (via the master fader) and limit to ``ceiling_dbtp``, in memory.

    Returns the output (2, T) float32 and the parameters with the master fader that produced it.
    """
    params = params.copy()
    gi = MASTER.index("gain_db")
    res = output_stage_store(FrameStore.of(mix), sample_rate, float(params.master[gi]), loudness_lufs,
                             ceiling_dbtp)
    params.master[gi] = res.gain_db
    out = res.out.array()
    return out.astype(np.float32, copy=False), params
