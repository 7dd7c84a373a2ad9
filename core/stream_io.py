"""Stems read block by block, and audio held in memory or in a temporary file.

A whole song never needs to be in memory for rendering: :class:`StemFiles` decodes every stem a block
at a time (the stems in parallel threads), resampled to the session rate with soxr's streaming
resampler (the same samples :func:`core.audio_io.load_audio` gives), mono stems duplicated to two
channels and short stems padded with silence. :class:`FrameStore` keeps a ``(C, T)`` float32 signal in
memory when it is small and in an anonymous temporary file (deleted by the system when closed, even
if the process is killed) when it is long, so the output stage can pass over it several times with
flat memory.

Mixing reads the stems many times and out of order (analysis sections, whole-song measurements, the
render): :class:`StemStore` decodes each stem once, with the same streaming reader, into a
:class:`FrameStore` at its own channel count, measuring its loudness, peak and DC on the way, and then
hands out any section.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .audio_io import (
    _MAX_CHANNELS,
    _RESAMPLE_QUALITY,
    AudioError,
    _check_readable_path,
    _fail,
    check_complete,
    check_sample_rate,
    expand_paths,
    unique_names,
)
from .pcm import raw_reader

#: Sample formats that cannot hold NaN or infinity (no check needed when decoding them).
_INTEGER_PCM = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "ALAW", "ULAW"})
#: Signals up to this size stay in memory in a :class:`FrameStore`; longer ones go to a temporary file.
MEMORY_STORE_BYTES = 256 << 20


class FrameStore:
    """A ``(channels, frames)`` float32 signal written and read in blocks.

    In memory up to :data:`MEMORY_STORE_BYTES`, else in an unnamed temporary file in ``folder``
    (default: the system's temporary folder). Reads outside ``[0, frames)`` give zeros.
    """

    def __init__(self, channels: int, frames: int, folder: str | None = None,
                 memory_limit: int | None = None):
        self.channels, self.frames = int(channels), int(frames)
        memory_limit = MEMORY_STORE_BYTES if memory_limit is None else memory_limit
        self._arr: np.ndarray | None = None
        self._file = None
        if self.channels * self.frames * 4 <= memory_limit:
            self._arr = np.zeros((self.channels, self.frames), np.float32)
        else:
            self._file = tempfile.TemporaryFile(prefix="stylemix-", suffix=".f32", dir=folder)

    @classmethod
    def of(cls, x: np.ndarray) -> FrameStore:
        """An in-memory store around ``x (C, T)`` float32 (not copied when it is already float32)."""
        store = cls.__new__(cls)
        store._arr = np.ascontiguousarray(x, dtype=np.float32)
        store._file = None
        store.channels, store.frames = store._arr.shape
        return store

    @property
    def in_memory(self) -> bool:
        return self._arr is not None

    def array(self) -> np.ndarray:
        """The whole signal ``(C, T)`` (read from the file when not in memory)."""
        return self._arr if self._arr is not None else self.read(0, self.frames)

    def write(self, start: int, block: np.ndarray) -> None:
        n = block.shape[-1]
        if start < 0 or start + n > self.frames:
            raise ValueError(f"block [{start}, {start + n}) outside the store's {self.frames} frames")
        if self._arr is not None:
            self._arr[:, start:start + n] = block
            return
        self._file.seek(start * self.channels * 4)
        self._file.write(np.ascontiguousarray(block.T, dtype=np.float32).tobytes())

    def read(self, start: int, n: int) -> np.ndarray:
        """Frames ``[start, start + n)`` as ``(C, n)`` float32, zeros outside the signal."""
        out = np.zeros((self.channels, n), np.float32)
        a, b = max(0, start), min(self.frames, start + n)
        if b <= a:
            return out
        if self._arr is not None:
            out[:, a - start:b - start] = self._arr[:, a:b]
            return out
        buf = np.empty((b - a, self.channels), np.float32)
        self._file.seek(a * self.channels * 4)
        got = self._file.readinto(memoryview(buf).cast("B"))
        if got != buf.nbytes:
            raise OSError("temporary audio file is shorter than written")
        out[:, a - start:b - start] = buf.T
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._arr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def session_frames(path: str, sample_rate: int) -> tuple[int, int]:
    """(channels, frames at ``sample_rate``) of an audio file from its header; (0, 0) if unreadable
    (reading it later gives the error)."""
    try:
        info = sf.info(path)
    except Exception:
        return 0, 0
    frames = int(np.floor(info.frames * sample_rate / info.samplerate + 0.5)) if info.samplerate else 0
    return int(info.channels), frames


def available_memory() -> int | None:
    """Bytes this process can still allocate without swapping: the system's available memory, or
    what the control group allows, whichever is less; None when not known (not Linux)."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        return None
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max" and avail is not None:
            avail = min(avail, int(limit) - used)
    except (OSError, ValueError):
        pass
    return avail


class _StemReader:
    """One stem file decoded sequentially at the session rate as ``(C, n)`` float32 blocks."""

    def __init__(self, path: str, sample_rate: int):
        self.path = path
        _check_readable_path(path)
        try:
            self.file = sf.SoundFile(path)
        except (sf.SoundFileError, OSError, RuntimeError, ValueError) as exc:
            reason = getattr(exc, "error_string", None) or str(exc) or type(exc).__name__
            raise _fail(path, f"not a readable audio file ({reason})") from exc
        if self.file.channels > _MAX_CHANNELS:
            self.file.close()
            raise _fail(path, f"has {self.file.channels} channels; only mono and stereo are supported")
        if self.file.frames == 0:
            self.file.close()
            raise _fail(path, "is empty (no audio frames)")
        check_complete(path, self.file)
        self.channels = int(self.file.channels)
        self.rate = int(self.file.samplerate)
        self.sample_rate = sample_rate
        if self.rate == sample_rate:
            self.frames = int(self.file.frames)
            self._stream = None
        else:
            # soxr's one-shot length: the input length scaled and rounded to nearest
            self.frames = int(np.floor(self.file.frames * sample_rate / self.rate + 0.5))
            self._stream = soxr.ResampleStream(self.rate, sample_rate, self.channels, dtype="float32",
                                               quality=_RESAMPLE_QUALITY)
        if self.frames == 0:
            self.file.close()
            raise _fail(path, f"too short ({self.file.frames} frames at {self.rate} Hz)")
        self._raw = raw_reader(self.file)  # None: libsndfile decodes (see core.pcm)
        self._pending = np.zeros((0, self.channels), np.float32)
        self._done = 0  # session-rate frames handed out
        self._eof = False

    def _decode(self, want: int) -> None:
        """Fill ``_pending`` with at least ``want`` frames (or up to the end)."""
        parts = [self._pending]
        have = self._pending.shape[0]
        while have < want and not self._eof:
            n = max(want - have, 1 << 14)
            if self._stream is not None:
                n = int(n * self.rate / self.sample_rate) + 64
            if self._raw is not None:
                raw = self._raw(n)
            else:
                raw = self.file.read(n, dtype="float32", always_2d=True)
            last = raw.shape[0] < n
            if self.file.subtype not in _INTEGER_PCM and not np.isfinite(raw).all():
                raise _fail(self.path, "contains NaN or infinite samples")
            block = raw if self._stream is None else self._stream.resample_chunk(raw, last=last)
            parts.append(np.asarray(block, dtype=np.float32).reshape(-1, self.channels))
            have += parts[-1].shape[0]
            self._eof = last
        self._pending = np.concatenate(parts) if len(parts) > 1 else self._pending

    def next(self, n: int) -> np.ndarray:
        """The next up to ``n`` frames at the file's own channel count, ``(C, m)`` float32 (m < n only
        at the end of the stem)."""
        self._decode(n)
        take = min(n, self._pending.shape[0], max(0, self.frames - self._done))
        block = self._pending[:take]
        self._pending = self._pending[take:]
        self._done += take
        return block.T

    def read(self, n: int, out: np.ndarray) -> None:
        """The next ``n`` frames into ``out (2, n)``: mono to both channels, zeros after the end."""
        self._decode(n)
        take = min(n, self._pending.shape[0], max(0, self.frames - self._done))
        block = self._pending[:take]
        out[0, :take] = block[:, 0]
        out[1, :take] = block[:, 1 if self.channels == 2 else 0]
        out[:, take:n] = 0.0
        self._pending = self._pending[take:]
        self._done += take

    def sampled_dc_share(self, blocks: int = 16, size: int = 1 << 15) -> float:
        """Share of the energy that is DC, estimated from ``blocks`` stretches spread over the file
        (the exact figure, :func:`core.audio_io.dc_share`, needs the whole file)."""
        total = self.file.frames
        sums = np.zeros(self.channels)
        energy = 0.0
        count = 0
        for k in range(blocks):
            start = int((total - size) * k / max(1, blocks - 1)) if total > size else 0
            self.file.seek(start)
            if self._raw is not None:
                x = self._raw(min(size, total)).astype(np.float64)
            else:
                x = self.file.read(min(size, total), dtype="float64", always_2d=True)
            sums += x.sum(axis=0)
            energy += float(np.square(x).sum())
            count += x.shape[0]
            if total <= size:
                break
        self.file.seek(0)
        if count == 0 or energy <= 0:
            return 0.0
        return float(np.square(sums / count).sum() / (energy / count))

    def close(self) -> None:
        self.file.close()


class _ArrayReader:
    """A stem already in memory (``(C, T)`` at the session rate), read like a :class:`_StemReader`."""

    def __init__(self, path: str, data: np.ndarray):
        self.path, self.data = path, data
        self.channels, self.frames = data.shape
        self._done = 0

    def read(self, n: int, out: np.ndarray) -> None:
        take = min(n, max(0, self.frames - self._done))
        out[0, :take] = self.data[0, self._done:self._done + take]
        out[1, :take] = self.data[1 if self.channels == 2 else 0, self._done:self._done + take]
        out[:, take:n] = 0.0
        self._done += take

    def close(self) -> None:
        self.data = None


class StemFiles:
    """Stem files (or folders, see :func:`core.audio_io.expand_paths`) as a block source for
    :func:`core.engine.render_stream`: ``(N, 2, n)`` float32 blocks in order at ``sample_rate``,
    every stem padded with silence to the longest. Headers are checked when it is built; each block is
    decoded in parallel threads (libsndfile and soxr release the GIL)."""

    def __init__(self, paths, sample_rate: int, threads: int | None = None):
        sample_rate = check_sample_rate(sample_rate)
        self.sample_rate = sample_rate
        self.paths = expand_paths(paths)
        self.readers: list[_StemReader] = []
        try:
            for p in self.paths:
                self.readers.append(_StemReader(p, sample_rate))
        except Exception:
            self.close()
            raise
        # a stem that is mostly DC is high-passed at import (core.audio_io.load_audio), which needs
        # the whole file: a quick estimate picks the suspects, which are loaded and checked exactly
        self.dc_removed: list[tuple[str, float]] = []
        from .audio_io import load_audio

        for i, r in enumerate(self.readers):
            if isinstance(r, _StemReader) and r.sampled_dc_share() > 0.25:
                a = load_audio(r.path, sample_rate, remove_mostly_dc=True)
                if a.dc_removed:
                    self.dc_removed.append((r.path, a.dc_removed))
                    r.close()
                    self.readers[i] = _ArrayReader(r.path, a.data)
        self.names = unique_names(Path(p).stem for p in self.paths)
        self.stereo = np.array([r.channels == 2 for r in self.readers])
        self.frames = max(r.frames for r in self.readers)
        self.n_tracks = len(self.readers)
        threads = threads or min(len(self.readers), max(1, len(os.sched_getaffinity(0))
                                                        if hasattr(os, "sched_getaffinity") else 1))
        self._pool = ThreadPoolExecutor(threads) if threads > 1 and len(self.readers) > 1 else None
        self._position = 0
        self._ahead = None  # (start, n, jobs) of the block decoding in the background
        self._spare: np.ndarray | None = None

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def padded(self) -> list[tuple[str, float]]:
        """``(name, seconds)`` of the stems shorter than the longest (by 2 frames or more)."""
        return [(name, r.frames / self.sample_rate) for name, r in zip(self.names, self.readers, strict=True)
                if self.frames - r.frames >= 2]

    #: :meth:`read_block` can decode the next block in the background (its ``ahead`` argument).
    reads_ahead = True

    def read_block(self, start: int, n: int, out: np.ndarray, ahead: int = 0) -> None:
        """Frames ``[start, start + n)`` of every stem into ``out (N, 2, >= n)``; blocks come in order.

        ``ahead``: the length of the block that will be asked for next; its decoding starts in the
        background threads now, so that it overlaps with whatever the caller does with this block
        (the next call must then ask for exactly that block)."""
        if start != self._position:
            raise ValueError(f"stem blocks are read in order: expected frame {self._position}, got {start}")
        if self._ahead is not None:
            a_start, a_n, jobs = self._ahead
            self._ahead = None
            for f in jobs:
                f.result()
            if (a_start, a_n) != (start, n):
                raise ValueError(f"frames [{a_start}, {a_start + a_n}) were read ahead, "
                                 f"[{start}, {start + n}) asked for")
            out[:, :, :n] = self._spare[:, :, :n]
        elif self._pool is None:
            for i, r in enumerate(self.readers):
                r.read(n, out[i])
        else:
            for f in [self._pool.submit(r.read, n, out[i]) for i, r in enumerate(self.readers)]:
                f.result()
        self._position += n
        if ahead > 0 and self._pool is not None:
            if self._spare is None or self._spare.shape[2] < ahead:
                self._spare = np.empty((self.n_tracks, 2, ahead), np.float32)
            jobs = [self._pool.submit(r.read, ahead, self._spare[i]) for i, r in enumerate(self.readers)]
            self._ahead = (self._position, ahead, jobs)

    def close(self) -> None:
        for f in (getattr(self, "_ahead", None) or (0, 0, []))[2]:
            f.cancel()
            if not f.cancelled():
                f.exception()  # wait: a reader is not closed under a running decode
        self._ahead = None
        for r in self.readers:
            r.close()
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class DecodedStem:
    """What decoding one stem file measured: its length before and after resampling, its peak, its
    integrated loudness (at its own channel count, as :func:`core.meter.integrated_lufs` measures it)
    and, when it was mostly DC and high-passed, the share of its energy that was DC."""

    def __init__(self, path: str, sample_rate: int, channels: int, frames: int, original_rate: int,
                 original_frames: int):
        self.path, self.name = path, Path(path).stem
        self.sample_rate, self.channels, self.frames = sample_rate, channels, frames
        self.original_sample_rate, self.original_frames = original_rate, original_frames
        self.peak = 0.0
        self.dc_removed = 0.0
        self.meter = None  # core.meter.LoudnessMeter fed the stem

    def loudness(self, frames: int | None = None) -> float:
        """Integrated loudness (LUFS) of the stem padded with silence to ``frames``."""
        pad = 0 if frames is None else frames - self.meter.frames
        for s in range(0, max(0, pad), 1 << 18):
            self.meter.add(np.zeros((self.channels, min(1 << 18, pad - s)), np.float32))
        return self.meter.integrated()

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def original_duration(self) -> float:
        return self.original_frames / self.original_sample_rate

    @property
    def silent(self) -> bool:
        from .audio_io import SILENCE_PEAK

        return self.peak < SILENCE_PEAK


def _fill(store: FrameStore, chunks, info: DecodedStem) -> tuple[np.ndarray, np.ndarray]:
    """Write ``(C, n)`` chunks into ``store`` in order, measuring peak and loudness into ``info``;
    returns the per-channel sums and sums of squares (float64) for the DC check."""
    from .meter import LoudnessMeter

    meter = LoudnessMeter(info.sample_rate, info.channels)
    sums = np.zeros(info.channels)
    squares = np.zeros(info.channels)
    pos = 0
    for x in chunks:
        n = min(x.shape[1], store.frames - pos)
        if n <= 0:
            break
        x = x[:, :n]
        store.write(pos, x)
        meter.add(x)
        info.peak = max(info.peak, float(np.max(np.abs(x))))
        for c in range(info.channels):
            ch = x[c].astype(np.float64)
            sums[c] += ch.sum()
            squares[c] += float(np.dot(ch, ch))
        pos += n
    if pos < store.frames:  # the resampler's last frames: silence, as the one-shot reader pads
        for s in range(pos, store.frames, 1 << 18):
            store.write(s, np.zeros((info.channels, min(1 << 18, store.frames - s)), np.float32))
    info.meter = meter
    return sums, squares


def _reader_chunks(reader: _StemReader, block: int = 1 << 18):
    while True:
        x = reader.next(block)
        if x.shape[1] == 0:
            return
        yield x


def _decode_into(reader: _StemReader, store: FrameStore, info: DecodedStem) -> None:
    """Decode one stem into ``store``; a stem that is mostly DC is re-read whole and high-passed as
    :func:`core.audio_io.load_audio` does (the exact share needs the whole file, so it is measured
    on the way)."""
    from .audio_io import DC_SHARE, load_audio

    sums, squares = _fill(store, _reader_chunks(reader), info)
    frames = max(store.frames, 1)
    dc = float(np.sum((sums / frames) ** 2))
    energy = float(np.sum(squares / frames))
    if energy > 0 and dc / energy > DC_SHARE:
        a = load_audio(reader.path, info.sample_rate, remove_mostly_dc=True)
        if a.dc_removed:
            info.peak = 0.0
            _fill(store, [a.data], info)
            info.dc_removed = a.dc_removed


class StemStore:
    """Stems decoded once at the session rate, each kept at its own channel count (a mono stem stays
    mono), in memory when they are small and in unnamed temporary files (deleted by the system when
    closed, even if the process is killed) when they are long. Any section can be read, a mono stem
    as two equal channels, so analysis and rendering never need a whole song in memory.

    A block source for :func:`core.engine.render_stream` (``n_tracks``, ``frames``, ``stereo``,
    ``names``, ``read_block``); ``shape`` is ``(N, 2, frames)`` as the stems would be in memory.
    ``largest_read`` is the longest stretch (frames) read at once, for checks.
    """

    def __init__(self, stores: list[FrameStore], names: list[str], paths: list[str], sample_rate: int,
                 stems: list[DecodedStem] | None = None):
        self.stores, self.names, self.paths = stores, list(names), list(paths)
        self.sample_rate = int(sample_rate)
        self.stems = stems or []
        self.frames = max(s.frames for s in stores)
        self.n_tracks = len(stores)
        self.stereo = np.array([s.channels == 2 for s in stores])
        self.largest_read = 0

    @classmethod
    def of(cls, arrays: list[np.ndarray], sample_rate: int, names=None) -> StemStore:
        """A store around in-memory stems ``(C, T)`` float32 (for tests and small material)."""
        names = list(names) if names is not None else [f"track{i + 1:02d}" for i in range(len(arrays))]
        return cls([FrameStore.of(np.atleast_2d(a)) for a in arrays], names, list(names), sample_rate)

    @classmethod
    def decode(cls, paths, sample_rate: int, folder: str | None = None,
               memory_limit: int | None = None) -> StemStore:
        """Decode stem files (or folders, see :func:`core.audio_io.expand_paths`) once, the stems in
        parallel threads. Headers are checked before anything is decoded; errors are one-line
        :class:`AudioError`. Stems whose float32 samples take up to ``memory_limit`` bytes in all
        (default :data:`MEMORY_STORE_BYTES`) stay in memory, longer ones go to temporary files in
        ``folder`` (default: the system's temporary folder)."""
        sample_rate = check_sample_rate(sample_rate)
        files = expand_paths(paths)
        readers: list[_StemReader] = []
        stores: list[FrameStore] = []
        try:
            for p in files:
                readers.append(_StemReader(p, sample_rate))
            total = sum(4 * r.channels * r.frames for r in readers)
            limit = MEMORY_STORE_BYTES if memory_limit is None else memory_limit
            in_memory = total <= limit
            infos = [DecodedStem(r.path, sample_rate, r.channels, r.frames, r.rate, int(r.file.frames))
                     for r in readers]
            for r in readers:
                stores.append(FrameStore(r.channels, r.frames, folder,
                                         memory_limit=(1 << 62) if in_memory else 0))
            jobs = list(zip(readers, stores, infos, strict=True))
            threads = min(len(jobs), max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                         else 1))
            if threads > 1:
                with ThreadPoolExecutor(threads) as pool:
                    for f in [pool.submit(_decode_into, *job) for job in jobs]:
                        f.result()
            else:
                for job in jobs:
                    _decode_into(*job)
        except BaseException:
            for s in stores:
                s.close()
            raise
        finally:
            for r in readers:
                r.close()
        return cls(stores, unique_names(Path(p).stem for p in files), files, sample_rate, infos)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.n_tracks, 2, self.frames

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def padded(self) -> list[tuple[str, float]]:
        """``(name, original seconds)`` of the stems shorter than the longest (by 2 frames or more)."""
        return [(name, info.original_duration)
                for name, s, info in zip(self.names, self.stores, self.stems, strict=False)
                if self.frames - s.frames >= 2]

    def read_stem(self, i: int, start: int, n: int) -> np.ndarray:
        """Frames ``[start, start + n)`` of stem ``i`` at its own channel count, ``(C, n)`` float32,
        zeros outside it."""
        self.largest_read = max(self.largest_read, int(n))
        return self.stores[i].read(start, n)

    def section(self, start: int, end: int) -> np.ndarray:
        """Frames ``[start, end)`` of every stem, ``(N, 2, end - start)`` float32."""
        n = max(0, end - start)
        out = np.empty((self.n_tracks, 2, n), np.float32)
        self.read_block(start, n, out)
        return out

    def read_block(self, start: int, n: int, out: np.ndarray) -> None:
        """Frames ``[start, start + n)`` of every stem into ``out (N, 2, >= n)`` (in any order)."""
        for i in range(self.n_tracks):
            x = self.read_stem(i, start, n)
            out[i, 0, :n] = x[0]
            out[i, 1, :n] = x[-1]

    def close(self) -> None:
        for s in self.stores:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


__all__ = ["FrameStore", "StemFiles", "StemStore", "DecodedStem", "MEMORY_STORE_BYTES", "AudioError"]
