"""The ring of blocks that live playback renders ahead of the playhead. No Qt.

Two halves of :class:`core.playback.Player`'s ring (see :mod:`core.playback` for the threads):

* :class:`Lane` -- one console being played (A, or a console as B): its streaming engine and, per ring
  slot, every track's output after its compressor, the FX return's wet output (for its meter) and a
  checkpoint of the engine's state at the block's start, so that an edit re-renders only what it
  changes. The reverb's state (several MB) is checkpointed every few blocks instead, with the send
  bus of each block: going back to a block restores the checkpoint before it and feeds the reverb the
  blocks in between again;
* :class:`BlockRing` -- the finished blocks as the audio callback reads them, published without locks.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .engine import EngineState, Snapshot, StreamingConsole

# --- one console being played ---------------------------------------------------------------------------


class Lane:
    """A console in the ring: its engine, each slot's strip cache, output and state checkpoint.

    ``valid[t]``: blocks below it hold track ``t``'s strip output for the current snapshot and the
    engine holds its state at that block. ``front``: blocks below it are mixed (master state there).
    """

    def __init__(self, stems, stereo, sample_rate, snapshot: Snapshot, slots: int, block: int):
        self.con = StreamingConsole(stems, stereo, sample_rate, threads=1, hold_gil=True)
        self.con.snapshot = snapshot
        n = self.con.n_tracks
        self.snapshot = snapshot
        self.cache = np.zeros((slots, n, 2, block), np.float32)
        self.out = np.zeros((slots, 2, block), np.float32)
        # the FX return's output per slot, as it reaches the master bus (wet_on False: the reverb rested)
        self.wet = np.zeros((slots, 2, block))
        self.wet_on = np.zeros(slots, bool)
        self.ck = [EngineState(n) for _ in range(slots)]
        self.mixed_with: list[Snapshot] = [snapshot] * slots
        self.mixed_block = np.full(slots, -1, np.int64)
        self.gmin = np.ones((slots, n))
        self.mgmin = np.ones(slots)
        self.valid = np.zeros(n, np.int64)
        self.front = 0
        self.slots = slots
        self._preroll_cache = np.zeros((n, 2, 0), np.float32)
        self._preroll_out = np.zeros((2, 0), np.float32)
        # the FX return: a checkpoint every `fx_every` blocks, and the send bus and snapshot of the last
        # `fx_keep` blocks, so that any block that can be taken back is reached from a checkpoint
        self.fx_every = max(1, slots // 2)
        self.fx_keep = slots + self.fx_every
        self.fx_ck: dict[int, tuple] = {}
        self.fx_in = np.zeros((self.fx_keep, 2, block))
        self.fx_on = np.zeros(self.fx_keep, bool)
        self.fx_snap: list[Snapshot | None] = [None] * self.fx_keep
        self.fx_n = np.zeros(self.fx_keep, np.int64)
        self.fx_clock = np.zeros(self.fx_keep, np.int64)

    def take_back(self, j0: int, tracks: np.ndarray) -> None:
        """Blocks from ``j0`` on must be mixed again, and ``tracks`` (bool mask) filtered again."""
        ck = self.ck[j0 % self.slots]
        again = np.flatnonzero(tracks & (self.valid > j0))
        if len(again):
            self.con.state.copy_from(ck, tracks=again, master=False)
        self.valid[tracks] = np.minimum(self.valid[tracks], j0)
        if self.front > j0:
            self.con.state.mz[:] = ck.mz
            self.con.state.mc[:] = ck.mc
            self._fx_back(j0)
            self.front = j0

    def _fx_back(self, j0: int) -> None:
        """The reverb's state at the start of block ``j0`` (< ``front``): the checkpoint before it, then
        the blocks in between fed again (with the snapshots they were mixed with)."""
        for c in [c for c in self.fx_ck if c > j0]:
            del self.fx_ck[c]
        c = max(self.fx_ck)  # render() keeps one at or before every block that can be taken back
        fx = self.con.fx
        fx.restore(self.fx_ck[c])
        # consecutive blocks fed alike (the same snapshot, sends on or off in both, adjoining frames) go
        # in one call: the reverb's output and state do not depend on how its input is cut in blocks,
        # and one call gives up the GIL far fewer times than one per block
        j = c
        while j < j0:
            k = j % self.fx_keep
            run = [k]
            while j + len(run) < j0:
                k2, last = (j + len(run)) % self.fx_keep, run[-1]
                if (self.fx_snap[k2] is not self.fx_snap[k] or self.fx_on[k2] != self.fx_on[k]
                        or self.fx_clock[k2] != self.fx_clock[last] + self.fx_n[last]):
                    break
                run.append(k2)
            n = int(sum(int(self.fx_n[r]) for r in run))
            bus = None
            if self.fx_on[k]:
                bus = self.fx_in[k, :, :self.fx_n[k]] if len(run) == 1 else \
                    np.concatenate([self.fx_in[r, :, :self.fx_n[r]] for r in run], axis=1)
            fx.process(bus, n, self.fx_snap[k], int(self.fx_clock[k]))
            j += len(run)

    def restart(self, j0: int, idx: np.ndarray) -> None:
        """Initial state, then pre-roll through the song frames ``idx`` (output discarded)."""
        self.con.state.reset()
        self.con.fx.reset()
        self.fx_ck.clear()
        n = idx.shape[0]
        if n:
            if self._preroll_cache.shape[2] < n:
                self._preroll_cache = np.zeros((self.con.n_tracks, 2, n), np.float32)
                self._preroll_out = np.zeros((2, n), np.float32)
            self.con.render_strips(idx, self._preroll_cache, snapshot=self.snapshot)
            self.con.mix(self._preroll_cache, n, self._preroll_out, snapshot=self.snapshot,
                         clock=max(int(idx[0]), 0))
        self.valid[:] = j0
        self.front = j0

    def render(self, j: int, idx, tidx, tw) -> None:
        """Block ``j`` (== ``front``): filter the tracks that need it, mix everything."""
        slot = j % self.slots
        need = np.flatnonzero(self.valid <= j)
        self.ck[slot].copy_from(self.con.state, tracks=need, master=True)
        if len(need):
            self.con.render_strips(idx, self.cache[slot], tracks=need, snapshot=self.snapshot, tidx=tidx,
                                   tw=tw, gmin=self.gmin[slot])
            self.valid[need] = j + 1
        prev = (j - 1) % self.slots  # fader/pan/mute changes ramp from the gains of the block before
        ramp = None
        if j > 0 and self.mixed_block[prev] == j - 1:
            before = self.mixed_with[prev]
            ramp = (before.out_gain, before.m_gain, before.send_out)
        if not self.fx_ck or j % self.fx_every == 0:
            self.fx_ck[j] = self.con.fx.checkpoint()
            for c in [c for c in self.fx_ck if c <= j - self.fx_keep]:
                del self.fx_ck[c]
        n = idx.shape[0]
        clock = max(int(idx[0]), 0)
        self.mgmin[slot] = self.con.mix(self.cache[slot], n, self.out[slot],
                                        snapshot=self.snapshot, from_gains=ramp, clock=clock)
        k = j % self.fx_keep
        fed = self.con.fx.fed
        self.fx_on[k], self.fx_snap[k], self.fx_n[k] = fed is not None, self.snapshot, n
        self.fx_clock[k] = clock
        if fed is not None:
            self.fx_in[k, :, :n] = fed
        wet = self.con.fx.wet
        self.wet_on[slot] = wet is not None
        if wet is not None:
            self.wet[slot, :, :n] = wet
        self.mixed_with[slot] = self.snapshot
        self.mixed_block[slot] = j
        self.front = j + 1




# --- the published blocks ---------------------------------------------------------------------------------


class BlockRing:
    """The blocks published to the callback: ``slots`` ring slots mapped onto ``buffers`` physical
    buffers ``(block, 2)``.

    A buffer is never rewritten while the callback may read it: a block (rendered again or new) goes
    to a free buffer and its slot's mapping is switched in one store. ``ver[p]`` is odd while buffer
    ``p`` is written, so that the callback detects the rare torn copy. With each block: the song frame
    after it, the seek it belongs to, whether playback stops there, and the version of A it carries.
    """

    def __init__(self, slots: int, buffers: int, block: int):
        self.slots = slots
        self.buf = np.zeros((buffers, block, 2), np.float32)
        self.ver = np.zeros(buffers, np.int64)
        self.bno = np.full(buffers, -1, np.int64)  # block number held
        self.map = np.full(slots, -1, np.int64)  # slot -> buffer
        self.end = np.zeros(buffers, np.int64)  # song frame after the block
        self.epoch = np.zeros(buffers, np.int64)  # seek number the block belongs to
        self.stop = np.zeros(buffers, bool)  # block lies wholly past the end (no loop): stop there
        self.version_a = np.zeros(buffers, np.int64)  # snapshot version of A in the block
        self.free = deque(range(buffers))

    def current(self, j: int) -> int:
        """The buffer holding block ``j``, or -1."""
        p = self.map[j % self.slots]
        return p if p >= 0 and self.bno[p] == j else -1

    def copy(self, j: int, off: int, dst: np.ndarray) -> int:
        """(Callback) frames ``off ..`` of block ``j`` into ``dst``; the buffer read, or -1 when the
        block is not there or was being rewritten on every try."""
        m = dst.shape[0]
        for _ in range(3):  # a re-rendered block may replace this one meanwhile: copy again
            p = self.map[j % self.slots]
            v = self.ver[p]
            if v & 1 or self.bno[p] != j:
                continue
            dst[:] = self.buf[p, off:off + m]
            if self.ver[p] == v:
                return p
        return -1

    def begin(self, j: int, out: np.ndarray, end: int, stop: bool, epoch: int, version: int) -> int:
        """(Render thread) write block ``j`` into a free buffer, not yet visible; returns the buffer."""
        p = self.free.popleft()
        self.ver[p] += 1  # odd: being written
        self.buf[p] = out
        self.bno[p] = j
        self.end[p] = end
        self.stop[p] = stop
        self.epoch[p] = epoch
        self.version_a[p] = version
        return p

    def commit(self, j: int, p: int) -> None:
        """Make buffer ``p`` (from :meth:`begin`) block ``j``'s; its previous buffer becomes free."""
        self.ver[p] += 1  # even: complete
        slot = j % self.slots
        old = self.map[slot]
        self.map[slot] = p
        if old >= 0:
            self.free.append(old)
