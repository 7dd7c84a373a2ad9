"""The streaming console: the console of ``docs/console-spec.md`` rendered block by block.

The torch console (:mod:`core.console`) filters whole signals and is differentiable; this renderer
carries every filter and compressor state from one block to the next, so it can play while the user
edits, and it is what export writes. Both implement the same signal flow, the same float64 biquad
designs (:func:`core.console.biquad_coeffs`) and the same compressor, so what you hear is what you
export and what the model was trained on.

Per track: trim -> six biquads (direct form II transposed, float64 state) -> compressor (RMS
detector, mean-linked stereo, soft knee, attack/release gain ballistics, makeup) -> *cache* ->
fader and pan -> sum, and by the track's send level into the send bus. FX return: the send bus
through the shared reverb (:class:`core.reverb.StreamingReverb`: partitioned convolution, no latency,
cross-fades on edits), added to the sum. Master bus: six biquads -> compressor -> master fader.
While every send is off and the reverb's tail has died away, the reverb is not run at all. Each track's output
after its compressor is kept per block (``cache``), so fader, pan, mute, solo and every master
control can be changed without filtering any track again.

Kernels are compiled with numba (``nogil``: tracks render in parallel threads, and a busy GUI thread
does not stall a render thread); they live in :mod:`core.engine_kernels`, this module designs their
parameters and keeps their state. Output is identical for any block size: all state is carried and
every sample goes through the same arithmetic in the same order.

Shapes: ``N`` tracks, ``T`` frames, ``n`` frames per block. Stems are float32 ``(N, 2, T)``; a mono
stem holds two identical channels and is flagged ``stereo=False`` (it is then filtered once).
"""

from __future__ import annotations

import math
import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .engine_kernels import (
    _C_ATT,
    _C_KNEE,
    _C_MAKEUP,
    _C_ONSET,
    _C_REL,
    _C_RMS,
    _C_SLOPE,
    _C_THR,
    _N_COMP,
    _master,
    _mix_held,
    _strips,
    _strips_held,
    _sum_bus,
    _track_out,
)
from .params import COMP_KEYS, EQ_BAND_KEYS, EQ_KEYS, MASTER, RETURN, TRACK
from .reverb import MAX_CHUNK, ReverbKernel, StreamingReverb, max_ir_length, send_gain

N_BANDS = len(EQ_BAND_KEYS)

#: Fader/pan/mute changes ramp over this many samples (at most one block) instead of stepping.
GAIN_RAMP = 64

#: Block length used by :func:`render_stream` (frames).
EXPORT_BLOCK = 32768


# Columns of the schema's EQ and compressor controls (core.params.EQ_KEYS, COMP_KEYS).
_T_EQ = [TRACK.index(k) for k in EQ_KEYS]
_T_COMP = [TRACK.index(k) for k in COMP_KEYS]
_T_TRIM, _T_GAIN, _T_PAN = TRACK.index("trim_db"), TRACK.index("gain_db"), TRACK.index("pan")
#: Track controls that change what a track's filters and compressor compute (the cached signal).
_T_STRIP = [_T_TRIM] + _T_EQ + _T_COMP
_M_EQ = [MASTER.index(k) for k in EQ_KEYS]
_M_COMP = [MASTER.index(k) for k in COMP_KEYS]
# The compressor controls that _comp_constants reads, as positions in COMP_KEYS (checked at import).
_THR, _RATIO, _ATT, _REL, _KNEE, _MAKEUP = (COMP_KEYS.index(k) for k in (
    "comp_threshold_db", "comp_ratio", "comp_attack_ms", "comp_release_ms", "comp_knee_db", "comp_makeup_db"))
_M_GAIN = MASTER.index("gain_db")
_T_SEND = TRACK.index("send_db")
_M_RETURN = [MASTER.index(k) for k in RETURN.keys]  # in core.reverb's order
_M_RETURN_DB = MASTER.index("reverb_return_db")
_T_STRIP_SET, _M_EQ_SET, _M_COMP_SET = frozenset(_T_STRIP), frozenset(_M_EQ), frozenset(_M_COMP)
_M_RETURN_SET = frozenset(_M_RETURN)


# --- parameter design (numpy, float64) -----------------------------------------------------------------


def design_sos(eq_params: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """EQ controls -> biquad cascade ``(..., 6, 5)`` = ``[1, b1/b0, b2/b0, a1, a2]`` and its gain
    ``(...,)`` = the product of the six ``b0``.

    ``eq_params``: ``(..., 18)`` physical values in :data:`core.params.EQ_KEYS` order (gain, freq, Q
    per band).
    The design is :func:`core.dsp.eq_coeffs` (float64), the torch console's design without torch, so
    both renderers filter identically.
    Taking each section's ``b0`` out as one gain turns a multiply-add per section into an add, which
    the CPU runs on otherwise idle units (a fifth faster).
    """
    from .dsp import eq_coeffs

    b, a = eq_coeffs(eq_params, sample_rate)
    b0 = b[..., :1]
    sos = np.concatenate([b / b0, a[..., 1:]], axis=-1)
    return np.ascontiguousarray(sos), np.prod(b0[..., 0], axis=-1)


def _comp_constants(comp: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(..., 6)`` compressor controls in :data:`core.params.COMP_KEYS` order -> ``(..., 8)``.

    Columns: RMS detector coefficient, onset power (below it the static curve is unity gain, so the
    per-sample log/exp can be skipped), threshold dB, knee dB, slope ``1/R - 1``, attack and release
    coefficients (torchcomp ``ms2coef``: ``1 - exp(-2200 / (ms * fs))``), makeup (linear).
    """
    from .dsp import LEVEL_FLOOR, RMS_MS

    comp = np.asarray(comp, dtype=np.float64)
    thr, ratio, att, rel, knee, makeup = (comp[..., i] for i in (_THR, _RATIO, _ATT, _REL, _KNEE, _MAKEUP))
    out = np.empty(comp.shape[:-1] + (_N_COMP,), dtype=np.float64)
    out[..., _C_RMS] = 1.0 - math.exp(-2200.0 / (RMS_MS * sample_rate))
    # 2 (L - T) < -W  <=>  e + floor < 10 ** ((T - W/2) / 10): unity gain there
    out[..., _C_ONSET] = 10.0 ** ((thr - knee / 2.0) / 10.0) - LEVEL_FLOOR
    out[..., _C_THR] = thr
    out[..., _C_KNEE] = knee
    out[..., _C_SLOPE] = 1.0 / ratio - 1.0
    out[..., _C_ATT] = 1.0 - np.exp(-2200.0 / (att * sample_rate))
    out[..., _C_REL] = 1.0 - np.exp(-2200.0 / (rel * sample_rate))
    out[..., _C_MAKEUP] = 10.0 ** (makeup / 20.0)
    return out


def pan_law(pan, stereo) -> np.ndarray:
    """Constant-power pan (console-spec 5) as ``(..., 2)`` left/right gains, float64."""
    theta = (np.asarray(pan, dtype=np.float64) + 1.0) * (math.pi / 4.0)
    scale = np.where(np.asarray(stereo, dtype=bool), math.sqrt(2.0), 1.0)
    return np.stack([np.cos(theta), np.sin(theta)], axis=-1) * scale[..., None]


def audible(mute: np.ndarray, solo: np.ndarray) -> np.ndarray:
    """Tracks that reach the sum: not muted and, when any track is soloed, soloed."""
    mute, solo = np.asarray(mute, bool), np.asarray(solo, bool)
    return ~mute & (solo if solo.any() else True)


def _out_gain(track: np.ndarray, stereo, mute, solo) -> np.ndarray:
    """(N, 2) fader x pan x audible."""
    gain = 10.0 ** (track[:, _T_GAIN] / 20.0) * audible(mute, solo)
    return pan_law(track[:, _T_PAN], stereo) * gain[:, None]


def _send_out(track: np.ndarray, out_gain: np.ndarray) -> np.ndarray:
    """(N, 2) post-fader, post-pan send gains: the output gains x each track's send level."""
    return out_gain * send_gain(track[:, _T_SEND])[:, None]


def _return_kernel(master: np.ndarray, send_out: np.ndarray, sample_rate: int,
                   previous: ReverbKernel | None) -> ReverbKernel | None:
    """The reverb's impulse response for the return's controls: ``previous`` when they give the same
    one; built when a send is open or a reverb was already in use (its tail may still ring); else None
    (every send off: nothing to build)."""
    params = master[_M_RETURN]
    if previous is not None and previous.same_response(params):
        return previous
    if previous is None and not np.any(send_out):
        return None
    return ReverbKernel.build(params, sample_rate)


def _return_level(master: np.ndarray, fx_mute: bool) -> float:
    """The return's linear gain into the master bus: its level control, or exactly 0 while muted (the
    reverb then ramps to silence like any return-level change, see :meth:`FxReturn.process`)."""
    return 0.0 if fx_mute else float(10.0 ** (master[_M_RETURN_DB] / 20.0))


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Snapshot:
    """One immutable state of every control, with the filter designs it implies.

    Playback swaps whole snapshots (one reference assignment), so a render thread never sees half an
    edit. Build with :meth:`build`; derive an edited one with :meth:`replace`, which redesigns only the
    tracks whose strip controls changed.
    """

    track: np.ndarray  # (N, len(TRACK)) physical
    master: np.ndarray  # (len(MASTER),) physical
    stereo: np.ndarray  # (N,) bool
    mute: np.ndarray  # (N,) bool
    solo: np.ndarray  # (N,) bool
    sample_rate: int
    pre_gain: np.ndarray  # (N,) trim x EQ gain (linear), applied before the EQ sections
    eq_gain: np.ndarray  # (N,) EQ gain alone (product of the sections' b0)
    sos: np.ndarray  # (N, 6, 5) normalised sections (see design_sos)
    comp: np.ndarray  # (N, 8)
    out_gain: np.ndarray  # (N, 2) fader x pan x audible
    m_sos: np.ndarray  # (6, 5)
    m_eq_gain: float  # master EQ gain, applied to the sum
    m_comp: np.ndarray  # (8,)
    m_gain: float  # master fader, linear
    send_out: np.ndarray = None  # (N, 2) post-fader send gains (0: send off)
    reverb: ReverbKernel | None = None  # the return's impulse response (None: every send off, none yet)
    return_gain: float = 1.0  # the return level, linear (0 while the return is muted)
    fx_mute: bool = False  # the FX return muted: it adds nothing to the master bus
    version: int = 0
    #: what :meth:`edit` derived this snapshot from (weak) and which strips it filters differently
    parent: object = field(default=None, repr=False)
    changed: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_tracks(self) -> int:
        return int(self.track.shape[0])

    @classmethod
    def build(cls, track_params, master_params, sample_rate: int, stereo, mute=None, solo=None,
              version: int = 0, fx_mute: bool = False) -> Snapshot:
        track = np.array(track_params, dtype=np.float64, ndmin=2)
        master = np.array(master_params, dtype=np.float64).reshape(-1)
        n = track.shape[0]
        if track.shape[1] != len(TRACK):
            raise ValueError(f"track parameters must be (N, {len(TRACK)}), got {track.shape}")
        if master.shape[0] != len(MASTER):
            raise ValueError(f"master parameters must have {len(MASTER)} values, got {master.shape[0]}")
        stereo = np.broadcast_to(np.asarray(stereo, dtype=bool), (n,))
        mute = np.zeros(n, bool) if mute is None else np.broadcast_to(np.asarray(mute, bool), (n,))
        solo = np.zeros(n, bool) if solo is None else np.broadcast_to(np.asarray(solo, bool), (n,))
        sos, eq_gain = design_sos(track[:, _T_EQ], sample_rate)
        comp = _comp_constants(track[:, _T_COMP], sample_rate)
        return cls._assemble(track, master, stereo, mute, solo, sample_rate, sos, eq_gain, comp, version,
                             fx_mute=bool(fx_mute))

    @classmethod
    def _assemble(cls, track, master, stereo, mute, solo, sample_rate, sos, eq_gain, comp, version,
                  reverb=None, fx_mute=False):
        trim = 10.0 ** (track[:, _T_TRIM] / 20.0)
        out_gain = _out_gain(track, stereo, mute, solo)
        send_out = _send_out(track, out_gain)
        m_sos, m_eq_gain = design_sos(master[_M_EQ], sample_rate)
        return cls(
            track=_frozen(track), master=_frozen(master), stereo=_frozen(stereo), mute=_frozen(mute),
            solo=_frozen(solo), sample_rate=int(sample_rate), pre_gain=_frozen(trim * eq_gain),
            eq_gain=_frozen(eq_gain), sos=_frozen(sos), comp=_frozen(comp), out_gain=_frozen(out_gain),
            m_sos=_frozen(m_sos), m_eq_gain=float(m_eq_gain),
            m_comp=_frozen(_comp_constants(master[_M_COMP], sample_rate)),
            m_gain=float(10.0 ** (master[_M_GAIN] / 20.0)), send_out=_frozen(send_out),
            reverb=_return_kernel(master, send_out, sample_rate, reverb),
            return_gain=_return_level(master, fx_mute), fx_mute=bool(fx_mute), version=int(version),
        )

    def replace(self, track_params=None, master_params=None, mute=None, solo=None,
                fx_mute: bool | None = None) -> Snapshot:
        """A new snapshot with some controls changed (``None`` keeps them); version + 1."""
        track = self.track if track_params is None else np.array(track_params, np.float64, ndmin=2)
        master = self.master if master_params is None else np.asarray(master_params, np.float64).reshape(-1)
        if track.shape != self.track.shape or master.shape != self.master.shape:
            raise ValueError("a snapshot cannot change the number of tracks or parameters")
        mute = self.mute if mute is None else np.broadcast_to(np.asarray(mute, bool), self.mute.shape)
        solo = self.solo if solo is None else np.broadcast_to(np.asarray(solo, bool), self.solo.shape)
        changed = self.strip_changes(track)
        sos, eq_gain, comp = self.sos, self.eq_gain, self.comp
        if changed.any():
            sos, eq_gain, comp = sos.copy(), eq_gain.copy(), comp.copy()
            sos[changed], eq_gain[changed] = design_sos(track[changed][:, _T_EQ], self.sample_rate)
            comp[changed] = _comp_constants(track[changed][:, _T_COMP], self.sample_rate)
        fx_mute = self.fx_mute if fx_mute is None else bool(fx_mute)
        return self._assemble(track, master, self.stereo, mute, solo, self.sample_rate, sos, eq_gain, comp,
                              self.version + 1, self.reverb, fx_mute)

    def strip_changes(self, track_params) -> np.ndarray:
        """(N,) bool: tracks whose trim, EQ or compressor differ from this snapshot's."""
        track = np.asarray(track_params, dtype=np.float64)
        return np.any(track[:, _T_STRIP] != self.track[:, _T_STRIP], axis=1)

    def strips_since(self, other: Snapshot) -> np.ndarray:
        """(N,) bool: tracks this snapshot filters differently from ``other``. Free when this snapshot
        was made from ``other`` by :meth:`edit`; otherwise the strip controls are compared."""
        if self.changed is not None and self.parent is not None and self.parent() is other:
            return self.changed.copy()
        return other.strip_changes(self.track)

    def edit(self, items) -> Snapshot:
        """A new snapshot with a few controls changed: ``items`` = ``[(track, key, value), ...]``,
        track ``-1`` for the master bus; version + 1.

        Only what the changed controls imply is designed again: a fader or pan recomputes that
        track's output gains, an EQ or compressor control that track's filters, a master control the
        master's; nothing is compared with the rest of the console. Values are physical and, like
        :meth:`replace`'s, not clipped here."""
        track, master = self.track, self.master
        strips: set[int] = set()
        gains = new_m_eq = new_m_comp = new_m_gain = new_return = False
        for t, key, value in items:
            t = int(t)
            if t < 0:
                i = MASTER.index(key)
                if master is self.master:
                    master = self.master.copy()
                master[i] = value
                new_m_eq |= i in _M_EQ_SET
                new_m_comp |= i in _M_COMP_SET
                new_m_gain |= i == _M_GAIN
                new_return |= i in _M_RETURN_SET
            else:
                i = TRACK.index(key)
                if track is self.track:
                    track = self.track.copy()
                track[t, i] = value
                if i in _T_STRIP_SET:
                    strips.add(t)
                gains |= i in (_T_GAIN, _T_PAN, _T_SEND)
        sr = self.sample_rate
        sos, eq_gain, comp, pre_gain = self.sos, self.eq_gain, self.comp, self.pre_gain
        changed = np.zeros(self.n_tracks, bool)
        if strips:
            rows = np.array(sorted(strips))
            changed[rows] = True
            sos, eq_gain, comp, pre_gain = sos.copy(), eq_gain.copy(), comp.copy(), pre_gain.copy()
            sos[rows], eq_gain[rows] = design_sos(track[rows][:, _T_EQ], sr)
            comp[rows] = _comp_constants(track[rows][:, _T_COMP], sr)
            pre_gain[rows] = 10.0 ** (track[rows, _T_TRIM] / 20.0) * eq_gain[rows]
        out_gain, send_out, kernel, return_gain = self.out_gain, self.send_out, self.reverb, self.return_gain
        if gains:
            out_gain = _out_gain(track, self.stereo, self.mute, self.solo)
            send_out = _frozen(_send_out(track, out_gain))
        if gains or new_return:
            kernel = _return_kernel(master, send_out, sr, self.reverb)
            return_gain = _return_level(master, self.fx_mute)
        m_sos, m_eq_gain, m_comp, m_gain_lin = self.m_sos, self.m_eq_gain, self.m_comp, self.m_gain
        if new_m_eq:
            m_sos, m_eq_gain = design_sos(master[_M_EQ], sr)
            m_sos, m_eq_gain = _frozen(m_sos), float(m_eq_gain)
        if new_m_comp:
            m_comp = _frozen(_comp_constants(master[_M_COMP], sr))
        if new_m_gain:
            m_gain_lin = float(10.0 ** (master[_M_GAIN] / 20.0))
        return Snapshot(
            track=_frozen(track) if track is not self.track else track,
            master=_frozen(master) if master is not self.master else master, stereo=self.stereo,
            mute=self.mute, solo=self.solo, sample_rate=sr,
            pre_gain=_frozen(pre_gain) if strips else pre_gain,
            eq_gain=_frozen(eq_gain) if strips else eq_gain,
            sos=_frozen(sos) if strips else sos, comp=_frozen(comp) if strips else comp,
            out_gain=_frozen(out_gain) if gains else out_gain, m_sos=m_sos, m_eq_gain=m_eq_gain,
            m_comp=m_comp,
            m_gain=m_gain_lin, send_out=send_out, reverb=kernel, return_gain=return_gain,
            fx_mute=self.fx_mute, version=self.version + 1, parent=weakref.ref(self), changed=changed,
        )




# --- state -------------------------------------------------------------------------------------------


class EngineState:
    """Every filter and compressor state of a console; cheap to copy (a few hundred floats per track).

    ``tz (N, 6, 2, 2)``: per track, section, channel, the two DF2T states; ``tc (N, 2)``: detector
    envelope and gain; ``mz (6, 2, 2)``, ``mc (2,)``: the master bus's. The reverb's state (megabytes)
    is not here: :attr:`StreamingConsole.fx` has its own checkpoints (:meth:`FxReturn.checkpoint`).
    """

    __slots__ = ("tz", "tc", "mz", "mc")

    def __init__(self, n_tracks: int):
        self.tz = np.zeros((n_tracks, N_BANDS, 2, 2))
        self.tc = np.zeros((n_tracks, 2))
        self.mz = np.zeros((N_BANDS, 2, 2))
        self.mc = np.zeros(2)
        self.reset()

    def reset(self, tracks=None, master: bool = True) -> None:
        """Zero filters and detectors, unity gain (console-spec: the initial state)."""
        sel = slice(None) if tracks is None else tracks
        self.tz[sel] = 0.0
        self.tc[sel, 0] = 0.0
        self.tc[sel, 1] = 1.0
        if master:
            self.mz[:] = 0.0
            self.mc[:] = (0.0, 1.0)

    def copy_from(self, other: EngineState, tracks=None, master: bool = True) -> None:
        """Copy ``other`` into this state (all tracks, or the ``tracks`` index array; master too)."""
        if tracks is None:
            np.copyto(self.tz, other.tz)
            np.copyto(self.tc, other.tc)
        elif len(tracks):
            self.tz[tracks] = other.tz[tracks]
            self.tc[tracks] = other.tc[tracks]
        if master:
            np.copyto(self.mz, other.mz)
            np.copyto(self.mc, other.mc)

    def copy(self) -> EngineState:
        new = EngineState(self.tz.shape[0])
        new.copy_from(self)
        return new


class FxReturn:
    """The FX return of a streaming console: the send bus through the shared reverb.

    The reverb (:class:`core.reverb.StreamingReverb`) is made when a send first opens and runs while
    a send is open or its tail may still ring; once every send has been off for longer than the
    longest impulse response, its output is exactly zero and it is not run (:meth:`process` returns
    None), so a console whose sends are off costs nothing more and mixes bit-identically to one
    without a reverb. Edits of the return's controls reach it through the snapshot
    (:attr:`Snapshot.reverb`, :attr:`Snapshot.return_gain`) and cross-fade; muting the return
    (:attr:`Snapshot.fx_mute`) sets its gain to 0, ramped the same way, while the reverb keeps running
    (unmuted, its tail is there as if it had never stopped).

    :attr:`wet` is the block last returned (what the return adds to the master bus, after its level
    and mute; None when the reverb rested), for the return's meter.
    """

    def __init__(self, sample_rate: int):
        self.sample_rate = int(sample_rate)
        self.reverb: StreamingReverb | None = None
        self.limit = max_ir_length(self.sample_rate) + 2 * MAX_CHUNK  # silent input after which it rests
        self.idle = self.limit  # frames of silent input fed (at rest: nothing sounds)
        self.fed: np.ndarray | None = None  # the send bus of the last block mixed (None: sends off)
        self.wet: np.ndarray | None = None  # the wet return of the last block mixed (None: at rest)

    @property
    def resting(self) -> bool:
        return self.idle >= self.limit

    def process(self, bus: np.ndarray | None, n: int, snap: Snapshot, clock: int = 0) -> np.ndarray | None:
        """The wet return ``(2, n)`` float64 for send bus ``bus (2, n)`` (None: every send off in this
        block); None when the reverb rests (its output would be exactly zero).

        ``clock``: the block's first frame on the timeline the console renders (the song frame). A
        reverb at rest wakes there, as if it had been fed silence until then, so that where a render
        starts, or in which blocks, does not change its output.
        """
        self.fed = bus
        self.wet = None
        silent = bus is None or not np.any(bus)
        if silent:
            if self.resting:
                return None
            if bus is None:
                bus = np.zeros((2, n))
        kernel = snap.reverb
        if kernel is None:  # sends off and no response built: only a ringing reverb keeps going
            if self.reverb is None:
                return None
            kernel = self.reverb.kernel
        if self.reverb is None:
            self.reverb = StreamingReverb(self.sample_rate, snap.master[_M_RETURN], kernel=kernel)
            if snap.return_gain != self.reverb.return_gain:  # muted from the start: silent, no ramp
                self.reverb.reset(kernel, snap.return_gain, t=int(clock))
            self.reverb.t = int(clock)  # silent so far: only the block grid's phase is set
        elif self.resting:  # waking up: nothing sounds, so start afresh with the current settings
            self.reverb.reset(kernel, snap.return_gain, t=int(clock))
        else:
            if kernel is not self.reverb.kernel:
                self.reverb.set_kernel(kernel)
            if snap.return_gain != self.reverb.return_gain:
                self.reverb.set_return_gain(snap.return_gain)
        self.idle = self.idle + n if silent else 0
        self.wet = self.reverb.process(bus)
        return self.wet

    def reset(self) -> None:
        """At rest (after a seek: silence before the new position)."""
        self.idle = self.limit

    def checkpoint(self):
        """The state, for :meth:`restore` (the reverb's whole state while it is not at rest: ~6 MB)."""
        if self.reverb is None or self.resting:
            return (self.limit, None)
        return (self.idle, self.reverb.checkpoint())

    def restore(self, state) -> None:
        self.idle, saved = state
        if saved is not None:
            self.reverb.restore(saved)


# --- the engine ------------------------------------------------------------------------------------------


def as_stems(stems, stereo=None) -> tuple[np.ndarray, np.ndarray]:
    """Stems as C-contiguous float32 ``(N, 2, T)`` plus ``(N,)`` stereo flags.

    Accepts an ``(N, 2, T)`` array or a list of ``(C, T)``/``(T,)`` arrays (mono is duplicated). When
    ``stereo`` is None a stem is stereo unless its two channels are identical.
    """
    if isinstance(stems, np.ndarray) and stems.ndim == 3:
        arr = stems
    else:
        items = [np.asarray(s) for s in stems]
        if not items:
            raise ValueError("no stems")
        items = [s[None] if s.ndim == 1 else s for s in items]
        if stereo is None:
            stereo = [s.shape[0] == 2 for s in items]
        length = max(s.shape[-1] for s in items)
        arr = np.zeros((len(items), 2, length), np.float32)
        for i, s in enumerate(items):
            arr[i, :, : s.shape[-1]] = s if s.shape[0] == 2 else s[:1]
    if arr.ndim != 3 or arr.shape[1] != 2:
        raise ValueError(f"stems must be (N, 2, T), got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if stereo is None:
        stereo = [not np.array_equal(arr[i, 0], arr[i, 1]) for i in range(arr.shape[0])]
    stereo = np.array(np.broadcast_to(np.asarray(stereo, dtype=bool), (arr.shape[0],)))
    return arr, stereo


def frame_indices(start: int, n: int, n_frames: int) -> np.ndarray:
    """Song frames ``start .. start + n`` as an int64 index array, ``-1`` (silence) outside the song."""
    idx = np.arange(start, start + n, dtype=np.int64)
    idx[(idx < 0) | (idx >= n_frames)] = -1
    return idx


def default_threads() -> int:
    """Worker threads for rendering: the cores this process may use (at most 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


class StreamingConsole:
    """The console, rendered block by block with all state carried.

    Args:
        stems: float32 ``(N, 2, T)`` (or see :func:`as_stems`), 1 to 64 tracks, not copied when
            already C-contiguous float32.
        stereo: ``(N,)`` bool (None: detected from the channels).
        sample_rate: Hz.
        track_params: ``(N, len(TRACK))`` physical (None: schema defaults).
        master_params: ``(len(MASTER),)`` physical (None: defaults).
        mute, solo: ``(N,)`` bool. fx_mute: the FX return muted (it adds nothing to the master bus).
        threads: worker threads for the strips (tracks are split between them; 1 = the calling thread
            only). Parallel rendering pays off for blocks of a few thousand frames and more.
        hold_gil: render each block without releasing the GIL (playback: one thread, small blocks,
            next to a busy GUI thread); only with ``threads=1``.

    The simple use is :meth:`process` (advance the playhead by ``n`` frames, get the mix). Playback
    uses the pieces: :meth:`render_strips` (into a per-track cache), :meth:`mix` (cache -> output),
    and :class:`EngineState` checkpoints.
    """

    MAX_TRACKS = 64

    def __init__(self, stems, stereo=None, sample_rate: int = 44100, track_params=None, master_params=None,
                 *, mute=None, solo=None, fx_mute: bool = False, threads: int = 1, hold_gil: bool = False):
        self.stems, self.stereo = as_stems(stems, stereo)
        n = self.stems.shape[0]
        if not 1 <= n <= self.MAX_TRACKS:
            raise ValueError(f"the console takes 1 to {self.MAX_TRACKS} tracks, got {n}")
        self.sample_rate = int(sample_rate)
        tp = np.tile(TRACK.defaults(), (n, 1)) if track_params is None else track_params
        mp = MASTER.defaults() if master_params is None else master_params
        self.snapshot = Snapshot.build(tp, mp, self.sample_rate, self.stereo, mute, solo, fx_mute=fx_mute)
        self.state = EngineState(n)
        self.position = 0
        self.threads = max(1, int(threads))
        if hold_gil and self.threads != 1:
            raise ValueError("hold_gil renders in the calling thread only (threads=1)")
        self.hold_gil = bool(hold_gil)
        self._pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None
        self._all = np.arange(n, dtype=np.int64)
        self._gmin = np.ones(n)
        self._bus = np.zeros((2, 0))
        self._env = np.zeros((n, 0))  # detector scratch, one row per track (threads never share one)
        self._menv = np.zeros(0)
        self._no_tail = (np.zeros(0, np.int64), np.zeros(0))
        self._send = np.zeros((2, 0))
        self.fx = FxReturn(self.sample_rate)
        self._applied_gain = self._gains(self.snapshot)

    # -- sizes ---------------------------------------------------------------------------------------
    @property
    def n_tracks(self) -> int:
        return int(self.stems.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.stems.shape[2])

    # -- parameters ----------------------------------------------------------------------------------
    def set_params(self, track_params=None, master_params=None, mute=None, solo=None,
                   fx_mute: bool | None = None) -> Snapshot:
        """Change controls (None keeps them); effective from the next block. Returns the snapshot."""
        self.snapshot = self.snapshot.replace(track_params, master_params, mute, solo, fx_mute)
        return self.snapshot

    def reset(self, position: int = 0) -> None:
        """Initial state (silence before ``position``) and move the playhead to ``position``."""
        self.state.reset()
        self.fx.reset()
        self.position = int(position)
        self._applied_gain = self._gains(self.snapshot)

    @staticmethod
    def _gains(snap: Snapshot) -> tuple:
        """What :meth:`mix` ramps from in the next block: ``(out_gain, master fader, send gains)``."""
        return snap.out_gain, snap.m_gain, snap.send_out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    # -- building blocks -------------------------------------------------------------------------------
    def _tails(self, n, tidx, tw):
        if tidx is None:
            if self._no_tail[0].shape[0] < n:
                self._no_tail = (np.full(n, -1, np.int64), np.zeros(n))
            return self._no_tail[0][:n], self._no_tail[1][:n]
        return tidx, tw

    def render_strips(self, idx: np.ndarray, cache: np.ndarray, *, tracks=None, snapshot=None,
                      state: EngineState | None = None, tidx=None, tw=None, gmin=None) -> None:
        """Trim, EQ and compress ``tracks`` (default all) for one block into ``cache``.

        Args:
            idx: ``(n,)`` int64 song frame of each output frame (``-1``: silence).
            cache: float32 ``(N, 2, >= n)``; row ``t`` receives track ``t`` after its compressor
                (mono stems: channel 0 only).
            tidx, tw: optional loop-wrap cross-fade, ``(n,)`` int64 second source frame (``-1``: none)
                and ``(n,)`` float64 weight of that source.
            gmin: optional ``(N,)`` receiving each rendered track's smallest compressor gain.
        """
        snap = self.snapshot if snapshot is None else snapshot
        st = self.state if state is None else state
        tracks = self._all if tracks is None else np.asarray(tracks, dtype=np.int64)
        n = idx.shape[0]
        tidx, tw = self._tails(n, tidx, tw)
        gm = self._gmin if gmin is None else gmin
        if self._env.shape[1] < n:
            self._env = np.zeros((self.n_tracks, n))
        args = (idx, tidx, tw, snap.pre_gain, snap.sos, snap.comp, st.tz, st.tc, cache, self._env, gm)
        if self.hold_gil:
            _strips_held(self.stems, self.stereo, tracks, *args)
            return
        if self._pool is None or len(tracks) < 2 or n < 1024:
            _strips(self.stems, self.stereo, tracks, *args)
            return
        parts = _balanced_split(tracks, self.stereo, self.threads)
        futures = [self._pool.submit(_strips, self.stems, self.stereo, p, *args) for p in parts[1:]]
        _strips(self.stems, self.stereo, parts[0], *args)
        for f in futures:
            f.result()

    def mix(self, cache: np.ndarray, n: int, out: np.ndarray, *, snapshot=None,
            state: EngineState | None = None, from_gains=None, clock: int | None = None) -> float:
        """Sum the cached strips through fader/pan and the master bus into ``out (2, n)`` float32.

        ``from_gains``: ``(out_gain (N, 2), master fader[, send gains (N, 2)])`` in effect before this
        block; the change to the snapshot's gains is ramped over :data:`GAIN_RAMP` samples. The FX
        return (:attr:`fx`) advances by the block; ``clock``: the block's first song frame (default
        :attr:`position`), see :meth:`FxReturn.process`. Returns the master compressor's smallest gain
        in the block.
        """
        snap = self.snapshot if snapshot is None else snapshot
        st = self.state if state is None else state
        if self._bus.shape[1] < n:
            self._bus = np.zeros((2, n))
            self._menv = np.zeros(n)
        g0, f0 = (snap.out_gain, snap.m_gain) if from_gains is None else from_gains[:2]
        s0 = snap.send_out if from_gains is None or len(from_gains) < 3 else from_gains[2]
        ramp = min(GAIN_RAMP, n)
        self.fx.fed = self.fx.wet = None
        sends = bool(np.any(s0)) or bool(np.any(snap.send_out))
        if sends or not self.fx.resting:
            send = None
            if sends:
                if self._send.shape[1] < n:
                    self._send = np.zeros((2, n))
                _sum_bus(cache, self.stereo, s0, snap.send_out, ramp, n, 1.0, self._send)
                send = self._send[:, :n]
            wet = self.fx.process(send, n, snap, self.position if clock is None else clock)
            _sum_bus(cache, self.stereo, g0, snap.out_gain, ramp, n, snap.m_eq_gain, self._bus)
            if wet is not None:
                self._bus[:, :n] += wet * snap.m_eq_gain
            return _master(self._bus, n, snap.m_sos, snap.m_comp, st.mz, st.mc, f0, snap.m_gain, ramp,
                           self._menv, out)
        if self.hold_gil:
            return _mix_held(cache, self.stereo, g0, snap.out_gain, ramp, n, snap.m_eq_gain, self._bus,
                             snap.m_sos, snap.m_comp, st.mz, st.mc, f0, snap.m_gain, self._menv, out)
        _sum_bus(cache, self.stereo, g0, snap.out_gain, ramp, n, snap.m_eq_gain, self._bus)
        return _master(self._bus, n, snap.m_sos, snap.m_comp, st.mz, st.mc, f0, snap.m_gain, ramp,
                       self._menv, out)

    def track_output(self, cache: np.ndarray, t: int, n: int, out: np.ndarray, *, snapshot=None,
                     from_gains=None) -> None:
        """Track ``t`` after fader and pan for the cached block: ``out (2, n)`` float32."""
        snap = self.snapshot if snapshot is None else snapshot
        g0 = snap.out_gain if from_gains is None else from_gains[0]
        _track_out(cache, t, bool(self.stereo[t]), g0, snap.out_gain, min(GAIN_RAMP, n), n, out)

    # -- simple streaming ------------------------------------------------------------------------------
    def process(self, n: int, out: np.ndarray | None = None, cache: np.ndarray | None = None,
                clock: int | None = None) -> np.ndarray:
        """Render the next ``n`` frames of the mix (silence past the end of the stems): ``(2, n)``.
        ``clock``: see :meth:`mix`."""
        n = int(n)
        out = np.empty((2, n), np.float32) if out is None else out
        if cache is None or cache.shape[2] < n:
            cache = np.empty((self.n_tracks, 2, n), np.float32)
        idx = frame_indices(self.position, n, self.n_frames)
        snap = self.snapshot
        self.render_strips(idx, cache, snapshot=snap)
        self.mix(cache, n, out, snapshot=snap, from_gains=self._applied_gain, clock=clock)
        self._applied_gain = self._gains(snap)
        self.position += n
        return out


def _balanced_split(tracks: np.ndarray, stereo: np.ndarray, parts: int) -> list[np.ndarray]:
    """Split track indices into ``parts`` groups of about equal work (a stereo strip costs two)."""
    cost = np.where(stereo[tracks], 2, 1)
    bins: list[list[int]] = [[] for _ in range(parts)]
    load = [0] * parts
    for j in np.argsort(-cost, kind="stable"):
        k = int(np.argmin(load))
        bins[k].append(int(tracks[j]))
        load[k] += int(cost[j])
    return [np.array(sorted(b), dtype=np.int64) for b in bins if b] or [tracks[:0]]


def render_stream(stems, stereo, track_params, master_params, sample_rate: int, *, mute=None, solo=None,
                  fx_mute: bool = False, block: int = EXPORT_BLOCK, threads: int | None = None, progress=None,
                  on_block=None, sink=None) -> np.ndarray | None:
    """Render a whole song with the streaming console: ``(2, T)`` float32 (None with ``sink``).

    Args:
        stems: float32 ``(N, 2, T)``, or a block source such as :class:`core.stream_io.StemFiles`
            (``n_tracks``, ``frames``, ``read_block(start, n, out)``), read in order so that a song
            need never be in memory whole; stereo: ``(N,)`` bool (None: the source's);
            track_params: ``(N, len(TRACK))`` and master_params: ``(len(MASTER),)`` physical values;
            sample_rate: Hz.
        mute, solo: optional ``(N,)`` bool. fx_mute: the FX return muted (the dry mix, reverb unheard).
        block: frames per block (the result does not depend on it).
        threads: strip worker threads (default: :func:`default_threads`).
        progress: optional ``callable(done_frames, total_frames)``.
        on_block: optional ``callable(console, cache, start, n)`` after each block (e.g. to write each
            track's processed output with :meth:`StreamingConsole.track_output`).
        sink: optional ``callable(start, mix_block (2, n))``: each block of the mix goes there instead
            of into a returned array.
    """
    threads = default_threads() if threads is None else threads
    source = None if isinstance(stems, np.ndarray) or isinstance(stems, (list, tuple)) else stems
    if source is not None:
        total = int(source.frames)
        buf = np.zeros((source.n_tracks, 2, block), np.float32)
        stereo = source.stereo if stereo is None else stereo
        con = StreamingConsole(buf, stereo, sample_rate, track_params, master_params, mute=mute, solo=solo,
                               fx_mute=fx_mute, threads=threads)
    else:
        con = StreamingConsole(stems, stereo, sample_rate, track_params, master_params, mute=mute, solo=solo,
                               fx_mute=fx_mute, threads=threads)
        total = con.n_frames
    # Two stages: this thread reads the stems and renders the strips of block k (on the console's
    # threads) while a mixer thread sums block k - 1 through the bus, the FX return and the master and
    # hands it on. The stages touch disjoint state (strips vs bus), each in block order, so the result
    # is the same as rendering one block after the other.
    mixer = ThreadPoolExecutor(1, thread_name_prefix="stylemix-mix") if threads > 1 else None
    pending = None
    try:
        out = np.empty((2, total), np.float32) if sink is None else None
        tmps = [np.empty((2, block), np.float32) for _ in range(2)] if sink is not None else None
        caches = [np.empty((con.n_tracks, 2, block), np.float32) for _ in range(2 if mixer else 1)]
        snap = con.snapshot
        ahead = source is not None and getattr(source, "reads_ahead", False)
        block_idx = frame_indices(0, block, block) if source is not None else None

        def finish(cache, start, n, dest):
            con.mix(cache, n, dest, snapshot=snap, from_gains=con._applied_gain, clock=start)
            con._applied_gain = con._gains(snap)
            if on_block is not None:
                on_block(con, cache, start, n)
            if sink is not None:
                sink(start, dest)
            if progress is not None:
                progress(start + n, total)

        for k, start in enumerate(range(0, total, block)):
            n = min(block, total - start)
            if source is not None:
                if ahead:  # the next block decodes while this one renders
                    source.read_block(start, n, buf, ahead=min(block, total - start - n))
                else:
                    source.read_block(start, n, buf)
                idx = block_idx[:n]  # the console reads frames 0..n of the block buffer
            else:
                idx = frame_indices(start, n, total)
            cache = caches[k % len(caches)]
            con.render_strips(idx, cache, snapshot=snap)
            dest = out[:, start:start + n] if out is not None else tmps[k % 2][:, :n]
            if mixer is None:
                finish(cache, start, n, dest)
                continue
            if pending is not None:
                pending.result()  # block k - 1 is mixed: its cache and buffer are free again
            pending = mixer.submit(finish, cache, start, n, dest)
        if pending is not None:
            pending, job = None, pending
            job.result()
        con.position = total
        return out
    finally:
        if pending is not None:  # stopped by an error here: the mixer finishes before the console closes
            pending.exception()
        if mixer is not None:
            mixer.shutdown(wait=True)
        con.close()
