"""Live playback of the streaming console: transport, loop, A/B, meters. No Qt.

(About 700 lines: the three threads' hand-offs below are one protocol and read best in one place;
metering, the publication ring and reference matching live in ``playback_meters``, ``playback_ring`` and
``reference_match``.)

Three threads meet here:

* the **audio callback** (:meth:`Player.callback`, called by PortAudio through ``sounddevice``, or by a
  test at a simulated pace) only copies prepared blocks into the device buffer: no torch, no Qt, no
  file I/O, no locks, no audio-sized allocation;
* the **render thread** keeps a ring of :attr:`Player.ring_blocks` blocks ahead of the playhead. Each
  ring slot keeps what is needed to render it again: every track's output after its compressor (so
  fader, pan, mute, solo and master edits need no filtering), and a checkpoint of all filter,
  compressor, A/B and meter states at the block's start. On an edit it takes back the blocks not yet
  played, restores the checkpoint and renders them again, so an edit is heard from the next block
  whatever the ring depth;
* the **caller** (GUI thread, CLI, tests) edits by swapping immutable :class:`core.engine.Snapshot`
  objects (one reference assignment) and polls :meth:`Player.meters` and :attr:`Player.position`.

Blocks are published to the callback through physical buffers that are never rewritten while they
can be read: a re-rendered block goes to a free buffer and the slot's mapping is switched in one
store; a version number per buffer (odd while written) lets the callback detect the rare torn copy.
The ring's two halves live in :mod:`core.playback_ring` (:class:`~core.playback_ring.Lane`, one per
console; :class:`~core.playback_ring.BlockRing`, the published blocks), the meters in
:mod:`core.playback_meters`, the reference's loudness matching in :mod:`core.reference_match`.

A/B: B is the reference song (loudness-matched to the mix over the loop region or the whole song,
looping with it) or the console with other parameters (the prediction, while A holds the user's
edits). Switching cross-fades at the playhead in :data:`AB_XFADE_S`. The loop wraps seamlessly: the
filters keep their state and the first :data:`LOOP_XFADE_S` after the wrap cross-fade from the audio
past the loop end into the loop start.

Without the PortAudio library or an output device, starting the audio raises :class:`NoAudioError`
(one line, for the app and CLI to show); rendering, export and everything else keep working.

A program that plays while another of its threads runs Python (a GUI) calls
:func:`use_short_switch_interval` once before playback starts (the app does at start-up).
"""

from __future__ import annotations

import math
import sys
import threading
import time

import numpy as np
from numba import njit

from .engine import Snapshot, as_stems
from .params import MASTER, TRACK
from .playback_meters import (  # noqa: F401 (re-exported)
    METER_FLOOR,
    MOMENTARY_S,
    RMS_S,
    SHORT_TERM_S,
    BlockMeters,
    Meters,
)
from .playback_ring import BlockRing, Lane
from .reference_match import MATCH_DEBOUNCE_S, ReferenceMatcher, reference_gain_db  # noqa: F401

#: Default frames per block (11.6 ms at 44.1 kHz).
BLOCK = 512
#: The ring holds about this much audio ahead of the playhead (at least 4 blocks).
RING_S = 0.1
#: Pre-roll from the initial state before a seek target, so filters and detectors have settled.
PREROLL_S = 0.15
#: Cross-fade at a loop wrap, at a seek and between A and B.
LOOP_XFADE_S = 0.005
SEEK_XFADE_S = 0.005
AB_XFADE_S = 0.02
#: GIL switch interval (s) for live playback; see :func:`use_short_switch_interval`. The render thread
#: gives the GIL up at each FFT of the reverb and each kernel outside the hold-GIL path; with a busy GUI
#: thread it waits up to this long to get it back each time: at 1 ms a block of 256 frames with open
#: sends took longer than its 5.8 ms to render (hundreds of underruns a minute), at 0.1 ms none.
SWITCH_INTERVAL_S = 0.0001


class NoAudioError(RuntimeError):
    """Playback cannot start: no PortAudio library or no output device. The message is one line."""


def _sounddevice():
    try:
        import sounddevice
    except (OSError, ImportError) as exc:  # sounddevice raises OSError when libportaudio is missing
        raise NoAudioError("no audio output: the PortAudio library is not installed "
                           "(install libportaudio2); export still works") from exc
    return sounddevice


def check_audio(device=None) -> str | None:
    """None when an output device can be opened, else the one-line reason (for disabling Play)."""
    try:
        sd = _sounddevice()
        sd.check_output_settings(device=device, channels=2, dtype="float32")
    except NoAudioError as exc:
        return str(exc)
    except Exception as exc:  # PortAudioError, ValueError (no such device)
        return _no_device_message(exc)
    return None


def _no_device_message(exc: Exception) -> str:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return f"no audio output device ({reason}); export still works"


def use_short_switch_interval() -> None:
    """Let Python threads take turns every :data:`SWITCH_INTERVAL_S` (0.1 ms) instead of the default 5 ms.

    Process-wide (``sys.setswitchinterval``), so it is not a side effect of making a :class:`Player`:
    a program that plays audio while another of its threads runs Python (a GUI redrawing) calls it
    once before playback starts -- the app does at start-up -- so that the render thread, which
    needs the GIL between its kernels, is not held off for a whole 5 ms switch interval.
    """
    sys.setswitchinterval(SWITCH_INTERVAL_S)


# --- what the caller asks for ------------------------------------------------------------------------------


class _Requests:
    """The caller's requests to the render thread, a mailbox without locks: each field is replaced
    whole by one reference store (never mutated in place), and the render thread compares them with
    what it has applied."""

    __slots__ = ("a", "b", "ref", "ref_gain", "ab", "loop", "seek")

    def __init__(self, a: Snapshot):
        self.a = a  # console A (the user's mix)
        self.b: Snapshot | None = None  # console B, or None
        self.ref: tuple | None = None  # (array or None,): a new reference song (None: remove it)
        self.ref_gain = 1.0  # the reference's loudness-matching gain (linear)
        self.ab = 0  # 1: hear B
        self.loop: tuple[int, int] | None = None
        self.seek = (0, 0)  # (sequence, frame)


# --- the player --------------------------------------------------------------------------------------------


class Player:
    """Plays the console live. See the module docstring for the threads involved.

    Args:
        stems: float32 ``(N, 2, T)`` (or see :func:`core.engine.as_stems`); stereo: ``(N,)`` bool.
        sample_rate: Hz.
        track_params: ``(N, len(TRACK))`` physical (None: defaults); master_params likewise.
        block: frames per block (and per device callback).
        audio: open a sounddevice output stream on :meth:`play` (False: the caller drives
            :meth:`callback` itself, as tests do).
        device: sounddevice output device (None: default).
        render_thread: start the render thread (False only for tests of the callback alone).

    Positions are in frames. Methods may be called from any one thread (the GUI thread).
    """

    def __init__(self, stems, stereo=None, sample_rate: int = 44100, track_params=None, master_params=None,
                 *, block: int = BLOCK, audio: bool = True, device=None, render_thread: bool = True):
        self.stems, self.stereo = as_stems(stems, stereo)
        self.sample_rate = int(sample_rate)
        self.block = int(block)
        self.n_tracks, self.n_frames = self.stems.shape[0], self.stems.shape[2]
        sr, b = self.sample_rate, self.block
        self.ring_blocks = k = max(4, math.ceil(RING_S * sr / b))
        self._audio, self._device, self._stream = audio, device, None

        tp = np.tile(TRACK.defaults(), (self.n_tracks, 1)) if track_params is None else track_params
        mp = MASTER.defaults() if master_params is None else master_params
        snap = Snapshot.build(tp, mp, sr, self.stereo)
        self._req = _Requests(snap)
        # what the render thread has applied of the requests
        self._lane_a = Lane(self.stems, self.stereo, sr, snap, k, b)
        self._lane_b: Lane | None = None
        self._ref: np.ndarray | None = None  # (2, Tr) float32
        self._ref_gain = 1.0
        self._ref_gain_db = 0.0
        self._ab = 0
        self._loop: tuple[int, int] | None = None
        self._seek_done = 0

        # published to the callback (see the module docstring), and the callback's own state
        self._ring = BlockRing(k, k + 4, b)
        self._meters = BlockMeters(self.n_tracks, sr, b, k, k + 4)
        self._read = 0  # next block the callback plays (written by the callback only)
        self._avail = 0  # blocks below it may be played
        self._off = 0  # frames of block ``_read`` already played (callbacks of another size)
        self._last_phys = -1
        self._playing = False
        self._position = 0
        self.underruns = 0
        self.device_underflows = 0
        self.played_version = -1
        self._cb_time = 0.0  # when the last callback started (perf_counter)
        self._period = b / sr

        # render thread state
        self._front = 0  # blocks below it are published and current
        self._desc = (0, -1, 0)  # next block: (song frame, loop-tail frame, tail frames left)
        self._w = 0.0  # A/B weight (0 = A) at the start of block ``_front``
        self._ck_desc = [(0, -1, 0)] * k
        self._ck_w = np.zeros(k)
        self._fade = np.zeros((k, max(1, round(SEEK_XFADE_S * sr)), 2), np.float32)
        self._fade_block = np.full(k, -1, np.int64)  # the block that cross-fades from the old ring
        self._epoch = 0  # seek number of the blocks being rendered
        self._out_tmp = np.zeros((b, 2), np.float32)
        self._xf_loop = max(1, round(LOOP_XFADE_S * sr))
        self._xf_ab = max(1, round(AB_XFADE_S * sr))

        self._wake = threading.Event()
        self._quit = False
        self._busy = False
        self._error: BaseException | None = None
        self._thread = None
        self._matcher = ReferenceMatcher(self._measure_reference_gain, self._set_ref_gain)
        if render_thread:
            self._thread = threading.Thread(target=self._run, name="stylemix-render", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------------------------------------
    # caller API

    @property
    def snapshot(self) -> Snapshot:
        """The latest parameters of A (what edits are made against)."""
        return self._req.a

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def position(self) -> int:
        """Song frame at the playhead (after the last block handed to the device; at most the end)."""
        return min(self._position, self.n_frames)

    @property
    def loop(self) -> tuple[int, int] | None:
        return self._req.loop

    @property
    def ab(self) -> str:
        return "B" if self._req.ab else "A"

    @property
    def reference_gain_db(self) -> float:
        """Gain applied to the reference so that it matches the mix's loudness."""
        return self._ref_gain_db

    def play(self) -> None:
        """Start (or resume) playback; opens the audio stream on first use (may raise NoAudioError)."""
        self._check_thread()
        if self._audio and self._stream is None:
            self._open_stream()
        if self.position >= self.n_frames and self._req.loop is None:
            self.seek(0)
        if self._thread is not None:  # start with blocks queued (the first render loads the kernels)
            deadline = time.monotonic() + 2.0
            while self._avail < self._read + 2 and time.monotonic() < deadline:
                time.sleep(0.001)
        self._playing = True

    def pause(self) -> None:
        self._playing = False

    def stop(self) -> None:
        """Pause and return to the loop start (or the song start)."""
        self._playing = False
        self.seek(self._req.loop[0] if self._req.loop else 0)

    def seek(self, frame: int) -> None:
        """Move the playhead to ``frame`` (clipped to the song). Heard within about one block."""
        frame = int(min(max(0, frame), self.n_frames))
        self._req.seek = (self._req.seek[0] + 1, frame)
        self._position = frame
        self._wake.set()

    def set_loop(self, start: int | None, end: int | None = None) -> None:
        """Loop ``[start, end)`` frames (None: no loop). At least one block long."""
        if start is None:
            self._req.loop = None
        else:
            start, end = int(max(0, start)), int(min(end, self.n_frames))
            if end - start < max(self.block, 2 * self._xf_loop):
                raise ValueError("the loop region must be at least one block long")
            self._req.loop = (start, end)
        self._request_match()
        self._wake.set()

    def set_params(self, track_params=None, master_params=None, mute=None, solo=None,
                   fx_mute: bool | None = None) -> Snapshot:
        """Edit A (None keeps a part). Returns the new snapshot; heard from the next block rendered.
        Mute, solo and the FX return's mute (``fx_mute``) are monitoring states: a console as B
        follows them."""
        prev = self._req.a
        snap = prev.replace(track_params, master_params, mute, solo, fx_mute)
        self._req.a = snap
        flags = not (np.array_equal(snap.mute, prev.mute) and np.array_equal(snap.solo, prev.solo)
                     and snap.fx_mute == prev.fx_mute)
        if self._req.b is not None and flags:
            self._req.b = self._req.b.replace(mute=snap.mute, solo=snap.solo, fx_mute=snap.fx_mute)
        self._request_match()
        self._wake.set()
        return snap

    def set_value(self, track: int, key: str, value: float) -> Snapshot:
        """Edit one control of A (``track`` -1: the master bus). See :meth:`set_values`."""
        return self.set_values(((track, key, value),))

    def set_values(self, items) -> Snapshot:
        """Edit a few controls of A: ``[(track, key, value), ...]``, physical values. Only what they
        change is designed again (:meth:`core.engine.Snapshot.edit`), and only the strips whose
        filters changed are filtered again; heard from the next block rendered."""
        snap = self._req.a.edit(items)
        self._req.a = snap
        self._wake.set()
        self._request_match()
        return snap

    def set_mute(self, track: int, on: bool) -> None:
        mute = self._req.a.mute.copy()
        mute[track] = bool(on)
        self.set_params(mute=mute)

    def set_solo(self, track: int, on: bool) -> None:
        solo = self._req.a.solo.copy()
        solo[track] = bool(on)
        self.set_params(solo=solo)

    def set_fx_mute(self, on: bool) -> None:
        """Mute the FX return: it adds nothing to the master bus (ramped, no click); the return level
        keeps its value."""
        self.set_params(fx_mute=bool(on))

    def set_b_params(self, track_params, master_params) -> None:
        """B = this console (e.g. the predicted parameters); replaces a reference as B."""
        a = self._req.a
        self._req.b = Snapshot.build(track_params, master_params, self.sample_rate, self.stereo, a.mute,
                                     a.solo, fx_mute=a.fx_mute)
        self._req.ref = (None,)
        self._wake.set()

    def set_reference(self, reference) -> None:
        """B = the reference song ``(C, Tr)``, loudness-matched to the mix (None removes it)."""
        ref = None
        if reference is not None:
            ref = np.asarray(reference, dtype=np.float32)
            ref = ref[None] if ref.ndim == 1 else ref
            ref = np.ascontiguousarray(np.repeat(ref, 2, axis=0) if ref.shape[0] == 1 else ref[:2])
        self._req.ref = (ref,)
        if ref is not None:
            self._req.b = None
        self._request_match()
        self._wake.set()

    def set_ab(self, which: str) -> None:
        """Hear ``"A"`` (the mix) or ``"B"``; cross-fades at the playhead."""
        if which not in ("A", "B"):
            raise ValueError("which must be 'A' or 'B'")
        self._req.ab = 1 if which == "B" else 0
        self._wake.set()

    def toggle_ab(self) -> str:
        self.set_ab("A" if self._req.ab else "B")
        return self.ab

    def meters(self) -> Meters:
        """Meter values of the block last handed to the device (call from a GUI timer)."""
        return self._meters.read(self._last_phys, self.position)

    def match_region(self) -> tuple[int, int]:
        """Frames over which the reference is loudness-matched: the loop, else the whole song."""
        return self._req.loop if self._req.loop is not None else (0, self.n_frames)

    def update_reference_gain(self) -> float:
        """Measure now (in this thread) and apply the reference gain; returns it in dB."""
        gain_db = self._measure_reference_gain()
        self._set_ref_gain(gain_db)
        return gain_db

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every request has been applied and the ring is full (for tests and tools)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_thread()
            if not self._busy and not self._pending() and self._front >= self._read + self.ring_blocks:
                return True
            self._wake.set()
            time.sleep(0.0005)
        return False

    def close(self) -> None:
        """Stop audio and threads. The player cannot be used afterwards."""
        self._playing = False
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            finally:
                self._stream = None
        self._quit = True
        self._wake.set()
        self._matcher.close()
        th = self._thread
        if th is not None and th is not threading.current_thread():
            th.join(timeout=5)
        for lane in (self._lane_a, self._lane_b):
            if lane is not None:
                lane.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------------------------------------
    # the audio callback

    def callback(self, outdata, frames, time_info, status) -> None:
        """sounddevice callback: copy prepared frames into ``outdata (frames, 2)`` float32."""
        self._cb_time = time.perf_counter()
        if status is not None and getattr(status, "output_underflow", False):
            self.device_underflows += 1
        if not self._playing:
            outdata.fill(0)
            return
        done, b, ring = 0, self.block, self._ring
        while done < frames:
            r = self._read
            if r >= self._avail:
                outdata[done:].fill(0)
                self.underruns += 1
                return
            off = self._off
            m = min(frames - done, b - off)
            phys = ring.copy(r, off, outdata[done:done + m])
            if phys < 0:
                outdata[done:done + m].fill(0)
                self.underruns += 1
            done += m
            off += m
            if off == b:
                off = 0
                self._read = r + 1
                if phys >= 0:
                    self._last_phys = phys
                    self.played_version = ring.version_a[phys]
                    if ring.epoch[phys] == self._req.seek[0]:  # not a block from before a seek
                        self._position = ring.end[phys]
                    if ring.stop[phys]:
                        self._playing = False
                        outdata[done:].fill(0)
                        self._off = 0
                        return
            self._off = off

    # ------------------------------------------------------------------------------------------------
    # audio stream

    def _open_stream(self) -> None:
        sd = _sounddevice()
        try:
            stream = sd.OutputStream(samplerate=self.sample_rate, blocksize=self.block, channels=2,
                                     dtype="float32", callback=self.callback, device=self._device,
                                     latency="low")
            stream.start()
        except Exception as exc:  # PortAudioError or ValueError: no (such) device
            raise NoAudioError(_no_device_message(exc)) from exc
        self._stream = stream

    # ------------------------------------------------------------------------------------------------
    # render thread

    def _check_thread(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"playback stopped: {self._error}") from self._error

    def _pending(self) -> bool:
        return (self._req.a is not self._lane_a.snapshot
                or (self._req.b is not None) != (self._lane_b is not None)
                or (self._lane_b is not None and self._req.b is not self._lane_b.snapshot)
                or self._req.ref is not None or self._req.ab != self._ab or self._req.loop != self._loop
                or self._req.seek[0] != self._seek_done or self._req.ref_gain != self._ref_gain)

    def _run(self) -> None:
        period = self.block / self.sample_rate
        try:
            while not self._quit:
                self._busy = True
                self._apply_requests()
                if self._front < self._read + self.ring_blocks:
                    self._render_block(self._front)
                    continue
                self._busy = False
                self._wake.wait(timeout=period / 4)
                self._wake.clear()
        except BaseException as exc:  # surfaced to the caller by _check_thread
            self._error = exc
            self._playing = False
        finally:
            self._busy = False

    def _take_back_point(self) -> int:
        """First block that may be rendered again: the block the device plays next when its callback
        is at least half a block period away and has not started it, else the one after."""
        first = self._read
        if self._playing and (self._off or time.perf_counter() - self._cb_time > 0.5 * self._period):
            first += 1
        return max(min(self._front, first), 0)

    def _take_back_final(self, j0: int) -> None:
        """The cross-fade, meters and publication of blocks from ``j0`` on are redone."""
        if self._front > j0:
            slot = j0 % self.ring_blocks
            self._w = self._ck_w[slot]
            self._meters.restore(slot)
            self._desc = self._ck_desc[slot]
            self._front = j0

    def _apply_requests(self) -> None:
        lane_a = self._lane_a
        seek_seq, seek_to = self._req.seek
        if seek_seq != self._seek_done:
            self._loop = self._req.loop
            self._epoch = seek_seq
            self._seek(seek_to)
            self._seek_done = seek_seq
        if self._req.loop != self._loop:
            j0 = self._take_back_point()
            self._take_back_final(j0)
            self._loop = self._req.loop
            everything = np.ones(self.n_tracks, bool)
            for lane in (lane_a, self._lane_b):
                if lane is not None:
                    lane.take_back(j0, everything)
        snap = self._req.a
        if snap is not lane_a.snapshot:
            j0 = self._take_back_point()
            self._take_back_final(j0)
            lane_a.take_back(j0, snap.strips_since(lane_a.snapshot))
            lane_a.snapshot = snap
        self._apply_b_requests()
        if self._req.ab != self._ab or self._req.ref_gain != self._ref_gain:
            self._take_back_final(self._take_back_point())
            self._ab = self._req.ab
            self._ref_gain = self._req.ref_gain

    def _apply_b_requests(self) -> None:
        ref_req = self._req.ref
        if ref_req is not None:
            self._req.ref = None
            self._ref = ref_req[0]
            if self._ref is not None:
                self._lane_b = None
            self._take_back_final(self._take_back_point())
        snap_b = self._req.b
        if snap_b is None:
            if self._lane_b is not None:
                self._lane_b = None
                self._take_back_final(self._take_back_point())
            return
        lane_b = self._lane_b
        if lane_b is None:
            j0 = self._take_back_point()
            self._take_back_final(j0)
            lane_b = Lane(self.stems, self.stereo, self.sample_rate, snap_b, self.ring_blocks, self.block)
            lane_b.restart(j0, self._preroll_indices(self._desc[0]))
            self._lane_b = lane_b
        elif snap_b is not lane_b.snapshot:
            j0 = self._take_back_point()
            self._take_back_final(j0)
            lane_b.take_back(j0, snap_b.strips_since(lane_b.snapshot))
            lane_b.snapshot = snap_b

    def _preroll_indices(self, frame: int) -> np.ndarray:
        n = round(PREROLL_S * self.sample_rate)
        idx = np.arange(frame - n, frame, dtype=np.int64)
        idx[(idx < 0) | (idx >= self.n_frames)] = -1
        return idx

    def _seek(self, frame: int) -> None:
        """Restart every console ``PREROLL_S`` before ``frame``; the old ring keeps playing meanwhile,
        and the first new block cross-fades from the old block it replaces."""
        pre = self._preroll_indices(frame)
        for lane in (self._lane_a, self._lane_b):
            if lane is not None:
                lane.restart(0, pre)
        j0 = self._take_back_point()
        self._take_back_final(j0)
        slot = j0 % self.ring_blocks
        old = self._ring.current(j0)
        self._fade_block[slot] = -1
        if self._playing and j0 < self._avail and old >= 0:
            self._fade[slot] = self._ring.buf[old, : self._fade.shape[1]]
            self._fade_block[slot] = j0
        for lane in (self._lane_a, self._lane_b):
            if lane is not None:
                lane.valid[:] = j0
                lane.front = j0
        self._desc = (frame, -1, 0)
        self._render_block(j0)
        self._avail = j0 + 1  # the old blocks after it are from the old position

    def _positions(self, desc):
        """Song frames of the block starting at ``desc`` = (frame, loop-tail frame, tail frames left).

        Returns ``idx`` (-1 outside the song), the loop-wrap cross-fade ``tidx``/``tw`` (see
        :meth:`core.engine.StreamingConsole.render_strips`), the next block's ``desc`` and the song frame
        after the block."""
        b, total, loop, xf = self.block, self.n_frames, self._loop, self._xf_loop
        pos, tail, left = desc
        idx = np.empty(b, np.int64)
        tidx = np.full(b, -1, np.int64)
        tw = np.zeros(b)
        i = 0
        while i < b:
            if loop is not None and pos == loop[1]:  # wrap; the audio past the end fades out
                pos, tail, left = loop[0], loop[1], xf
            stop = min(b, i + loop[1] - pos) if loop is not None and pos < loop[1] else b
            m = stop - i
            idx[i:stop] = np.arange(pos, pos + m)
            if left > 0:
                k = min(m, left)
                done = xf - left
                tidx[i:i + k] = np.arange(tail, tail + k)
                tw[i:i + k] = 1.0 - (np.arange(done, done + k) + 1.0) / (xf + 1.0)
                tail += k
                left -= k
            pos += m
            i = stop
        idx[(idx < 0) | (idx >= total)] = -1
        tidx[tidx >= total] = -1
        return idx, tidx, tw, (pos, tail, left), pos

    def _render_block(self, j: int) -> None:
        slot = j % self.ring_blocks
        self._ck_desc[slot] = self._desc
        self._ck_w[slot] = self._w
        self._meters.checkpoint(slot)
        start = self._desc[0]
        idx, tidx, tw, self._desc, end = self._positions(self._desc)
        lane_a, lane_b = self._lane_a, self._lane_b
        for lane in (lane_a, lane_b):
            if lane is not None and lane.front == j:
                lane.render(j, idx, tidx, tw)
        out = self._out_tmp
        a = lane_a.out[slot]
        b_sig = self._b_block(slot, idx, tidx, tw)
        target = float(self._ab) if b_sig is not None else 0.0
        self._w = _crossfade(a, b_sig, self._w, target, 1.0 / self._xf_ab, out)
        if self._fade_block[slot] == j:
            f = self._fade.shape[1]
            r = ((np.arange(f) + 1.0) / (f + 1.0))[:, None]
            out[:f] = out[:f] * r + self._fade[slot] * (1.0 - r)
        self._meters.measure(j, lane_a.cache[slot], self.stereo, lane_a.mixed_with[slot].out_gain, out,
                             lane_a.gmin[slot], lane_a.mgmin[slot],
                             lane_a.wet[slot] if lane_a.wet_on[slot] else None)
        self._publish(j, out, end, stop=self._loop is None and start >= self.n_frames)

    def _b_block(self, slot, idx, tidx, tw):
        if self._lane_b is not None:
            return self._lane_b.out[slot]
        ref = self._ref
        if ref is None:
            return None
        n = ref.shape[1]
        take = np.where((idx >= 0) & (idx < n), idx, -1)
        blk = np.where(take >= 0, ref[:, np.maximum(take, 0)], 0.0)
        if (tidx >= 0).any():
            tk = np.where((tidx >= 0) & (tidx < n), tidx, -1)
            tail = np.where(tk >= 0, ref[:, np.maximum(tk, 0)], 0.0)
            blk = blk * (1.0 - tw) + tail * tw
        return (blk * self._ref_gain).astype(np.float32)

    def _publish(self, j: int, out: np.ndarray, end: int, stop: bool) -> None:
        ring = self._ring
        version = self._lane_a.mixed_with[j % self.ring_blocks].version
        p = ring.begin(j, out, end, stop, self._epoch, version)
        self._meters.publish(p, j)
        ring.commit(j, p)
        self._front = j + 1
        if self._avail < j + 1:
            self._avail = j + 1

    # ------------------------------------------------------------------------------------------------
    # reference loudness matching

    def _request_match(self) -> None:
        if self._req.ref is None and self._ref is None:
            return
        self._matcher.request()

    def _measure_reference_gain(self) -> float:
        """Integrated loudness of the mix minus that of the reference over :meth:`match_region`
        (:func:`core.reference_match.reference_gain_db`: the loop region as heard on its second pass)."""
        ref = self._req.ref[0] if self._req.ref is not None else self._ref
        if ref is None:
            return 0.0
        return reference_gain_db(self.stems, self.stereo, self.sample_rate, self._req.a, ref,
                                 self.match_region(), looped=self._req.loop is not None,
                                 preroll=round(PREROLL_S * self.sample_rate))

    def _set_ref_gain(self, gain_db: float) -> None:
        self._ref_gain_db = gain_db
        self._req.ref_gain = float(10 ** (gain_db / 20))
        self._wake.set()


@njit(cache=True, error_model="numpy")  # holds the GIL: see core.engine_kernels._strips_held
def _crossfade_kernel(a, b, w, target, step, out):
    n = out.shape[0]
    for i in range(n):
        if w < target:
            w = min(target, w + step)
        elif w > target:
            w = max(target, w - step)
        for c in range(2):
            out[i, c] = a[c, i] * (1.0 - w) + b[c, i] * w if w > 0.0 else a[c, i]
    return w


def _crossfade(a: np.ndarray, b: np.ndarray | None, w: float, target: float, step: float,
               out: np.ndarray) -> float:
    """``out (n, 2) = (1 - w) a + w b`` with ``w`` moving linearly towards ``target``; returns ``w``."""
    if b is None:
        out[:] = a.T
        return max(0.0, w - step * out.shape[0]) if w > 0 else 0.0
    return _crossfade_kernel(a, b, w, target, step, out)
