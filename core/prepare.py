"""Stems and reference as the console, the model and refinement see them.

Stems are loaded at the session rate, seen as two-channel (a mono stem reads as two equal channels and
is flagged ``stereo=False``) and padded to one length. Each stem's ``trim_db`` is set by loudness
normalisation to :data:`STEM_LUFS`, so the default console (trims, faders at 0 dB, pans centred) is the
*equal-loudness sum* that the method is measured against. The reference is kept as is; analysis uses
it normalised to :data:`REFERENCE_LUFS` (DESIGN.md section 1).

Songs of any length: :func:`load_inputs` (``stylemix mix``) decodes each stem once into a
:class:`core.stream_io.StemStore` (memory for a song, unnamed temporary files for hours; a mono stem
stays mono), measuring loudness, peak and DC on the way. Prediction, refinement and same-song detection
read sections (:meth:`Inputs.section`) and whole-song measurements made a stretch at a time and cached
(:func:`stem_frame_stats`, :meth:`core.objective.SongModel.of_inputs`, the same-song envelopes); the
final render streams from the store. Memory then grows only with the envelopes that same-song
detection keeps (:data:`MIX_BYTES_PER_CHANNEL_SECOND`); :func:`mix_memory_needed` estimates the peak
from the files' headers so that the command can refuse, before any work, what does not fit.
:func:`from_audio` builds the same :class:`Inputs` in memory from loaded stems (the app, training).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .audio_io import Audio, load_audio, to_stereo
from .meter import integrated_lufs
from .paramfile import MixParams
from .params import TRACK
from .stream_io import StemStore

#: Shortest song (and reference) that can be analysed: one loudness block (ITU-R BS.1770).
MIN_ANALYSIS_SECONDS = 0.4
STEM_LUFS = -28.0  # every stem's loudness after trim: 8 stems sum to roughly -19 LUFS
REFERENCE_LUFS = -16.0  # reference loudness for analysis


@dataclass
class Inputs:
    """A session's audio, ready for the console.

    stems: the raw (untrimmed) stems at ``sample_rate``, padded with silence to one length: either
    float32 ``(N, 2, T)`` in memory (the app, training) or a :class:`core.stream_io.StemStore` that
    reads any section on demand (``stylemix mix``: stems of any length, never whole in memory). Code
    that analyses a song reads it through :meth:`section`, :meth:`read_stem` and the cached whole-song
    measurements (:func:`stem_frame_stats`), so both kinds give the same numbers.
    stereo, silent: (N,) bool; trim_db: (N,) float64; reference: (2, Tr) float32 or None.
    """

    names: list[str]
    files: list[str]
    stems: np.ndarray | StemStore
    stereo: np.ndarray
    silent: np.ndarray
    trim_db: np.ndarray
    sample_rate: int
    reference: np.ndarray | None = None
    reference_file: str | None = None
    padded: list[tuple[str, float]] = field(default_factory=list)
    dc_removed: list[tuple[str, float]] = field(default_factory=list)  # (file, DC share of its energy)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def frames(self) -> int:
        return int(self.stems.shape[-1])

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def in_memory(self) -> bool:
        """True when ``stems`` is an ``(N, 2, T)`` array."""
        return isinstance(self.stems, np.ndarray)

    def section(self, start: int, end: int) -> np.ndarray:
        """Frames ``[start, end)`` (within the song) of every stem, ``(N, 2, end - start)`` float32."""
        if self.in_memory:
            return self.stems[:, :, start:end]
        return self.stems.section(start, end)

    def read_stem(self, i: int, start: int, n: int) -> np.ndarray:
        """Frames ``[start, start + n)`` of stem ``i`` as ``(2, n)`` float32 (a mono stem as two equal
        channels), zeros outside the song."""
        if not self.in_memory:
            x = self.stems.read_stem(i, start, n)
            return x if x.shape[0] == 2 else np.repeat(x, 2, axis=0)
        a, b = max(0, start), min(self.frames, start + n)
        if a == start and b == start + n:
            return self.stems[i, :, a:b]
        out = np.zeros((2, n), np.float32)
        if b > a:
            out[:, a - start:b - start] = self.stems[i, :, a:b]
        return out

    def cached(self, key, compute):
        """``compute()``, once per key for these inputs (whole-song measurements)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def default_params(self) -> MixParams:
        """The equal-loudness sum: defaults everywhere, trims from loudness normalisation."""
        mp = MixParams.defaults(self.names, files=list(self.files), stereo=[bool(s) for s in self.stereo],
                                sample_rate=self.sample_rate)
        mp.tracks[:, TRACK.index("trim_db")] = self.trim_db
        return mp

    def close(self) -> None:
        """Release the stems' temporary files (a :class:`~core.stream_io.StemStore`)."""
        if not self.in_memory:
            self.stems.close()


#: About how many frames of a stem :func:`stem_frame_stats` reads at a time.
STATS_BLOCK_FRAMES = 1 << 19


def stem_frame_stats(inputs: Inputs) -> tuple[list[np.ndarray], np.ndarray]:
    """Whole-song level statistics of every stem, measured in one streaming pass per stem and cached:
    (activity, energy). ``activity[i]`` is :func:`core.meter.activity_frames` of stem ``i`` in
    :data:`core.refine.FRAME_S` frames (section choice); ``energy`` ``(N, frames)`` is
    :func:`core.objective.frame_energy` in :data:`core.objective.LEVEL_FRAME_S` frames (the song
    model's compressors). Blocks are whole frames of both, so the figures are those of the whole
    stem."""
    from .meter import activity_frames
    from .objective import LEVEL_FRAME_S, frame_energy
    from .refine import FRAME_S

    def compute():
        sr, total = inputs.sample_rate, inputs.frames
        act, lev = max(1, round(FRAME_S * sr)), max(1, round(LEVEL_FRAME_S * sr))
        block = math.lcm(act, lev) * max(1, STATS_BLOCK_FRAMES // math.lcm(act, lev))
        activity, energy = [], []
        for i in range(len(inputs.names)):
            a_parts, e_parts = [], []
            for start in range(0, total, block):
                x = inputs.read_stem(i, start, min(block, total - start))
                a_parts.append(activity_frames(x, sr, FRAME_S))
                if x.shape[-1] >= lev:
                    e_parts.append(frame_energy(x, sr, LEVEL_FRAME_S))
            activity.append(np.concatenate(a_parts))
            if not e_parts:  # shorter than one frame: the mean square of all of it
                e_parts = [frame_energy(inputs.read_stem(i, 0, total), sr, LEVEL_FRAME_S)]
            energy.append(np.concatenate(e_parts))
        return activity, np.stack(energy)

    return inputs.cached("frame_stats", compute)


def _map(fn, items):
    """``[fn(x) for x in items]`` on the cores this process may use (the kernels release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    from .engine import default_threads

    threads = min(default_threads(), len(items))
    if threads < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


def trim_from_lufs(level: float, silent: bool) -> float:
    """Trim (dB) that brings a stem of integrated loudness ``level`` to :data:`STEM_LUFS`."""
    if silent or not math.isfinite(level):
        return 0.0
    return TRACK["trim_db"].clip(STEM_LUFS - level)


def trim_for(x: np.ndarray, sample_rate: int, silent: bool) -> float:
    """Trim (dB) that brings stem ``x`` (C, T) to :data:`STEM_LUFS`, within the trim range."""
    if silent:
        return 0.0
    return trim_from_lufs(integrated_lufs(x, sample_rate), silent)


def from_audio(stems: list[Audio | None], sample_rate: int, reference: Audio | None = None,
               padded=None, *, names: list[str] | None = None, files: list[str] | None = None,
               stereo=None, trim_db=None, empty_frames: int | None = None) -> Inputs:
    """In-memory :class:`Inputs` from loaded stems (padded with silence to the longest).

    Trims come from loudness normalisation unless ``trim_db`` gives them. A ``None`` in ``stems`` is
    a stem whose audio could not be read: a silent placeholder (then ``names``, ``files`` and
    ``stereo`` must be given; the app keeps a session with a moved file open this way), and
    ``empty_frames`` is the length when no stem has audio.
    """
    have = [a for a in stems if a is not None]
    frames = max([a.frames for a in have] or [int(empty_frames or sample_rate)])
    silent = np.array([a is None or a.silent for a in stems])
    if trim_db is None:
        trim_db = _map(lambda a: trim_for(a.data, sample_rate, a.silent) if a is not None else 0.0, stems)
    data = np.zeros((len(stems), 2, frames), dtype=np.float32)
    for i, a in enumerate(stems):
        if a is not None:
            n = min(frames, a.frames)
            data[i, :, :n] = to_stereo(a.data)[:, :n]
    ref = to_stereo(reference.data).astype(np.float32) if reference is not None else None
    return Inputs(list(names) if names is not None else [a.name for a in stems],
                  list(files) if files is not None else [a.path for a in stems], data,
                  np.array(stereo if stereo is not None else [a.is_stereo for a in stems], bool), silent,
                  np.array(trim_db, dtype=np.float64), sample_rate, ref,
                  reference.path if reference is not None else None, list(padded or []),
                  [(a.path, a.dc_removed) for a in have if a.dc_removed])


def _length(a) -> str:
    n = a.original_frames
    return f"{n} sample{'s' if n != 1 else ''} ({a.original_duration:.3f} s)"


def check_length(stems, reference: Audio | None) -> None:
    """Refuse material too short to analyse (:data:`MIN_ANALYSIS_SECONDS`), naming each file's length.

    ``stems``: :class:`~core.audio_io.Audio` or :class:`~core.stream_io.DecodedStem` (``path``,
    ``duration``, ``original_frames``, ``original_duration``)."""
    from .audio_io import AudioError

    need = f"at least {MIN_ANALYSIS_SECONDS:g} s is needed to analyse"
    if max(a.duration for a in stems) < MIN_ANALYSIS_SECONDS:
        lengths = ", ".join(f"{a.path} is {_length(a)}" for a in stems)
        raise AudioError(f"stems too short to analyse: {lengths}; {need}")
    if reference is not None and reference.duration < MIN_ANALYSIS_SECONDS:
        raise AudioError(f"{reference.path}: reference too short to analyse: {_length(reference)}; {need}")


#: Memory a ``stylemix mix`` needs whatever the length (Python, torch, the model, refinement), bytes.
MIX_BASE_BYTES = 1.1e9
#: ... and per second of each stem channel: same-song detection's band envelopes (54 bands every
#: 20 ms, float32, kept for the song) with its working copies; the stems themselves stay on disk.
MIX_BYTES_PER_CHANNEL_SECOND = 25e3
#: ... and per frame of the reference (held in memory, stereo float32, with its analysis copies).
MIX_BYTES_PER_REFERENCE_FRAME = 40.0
#: ... and per frame of the mix when its match report is printed (songs up to 10 min, read whole).
MIX_BYTES_PER_REPORT_FRAME = 30.0
REPORT_MAX_SECONDS = 10 * 60
#: Disk space the stems take in the temporary folder while mixing: float32 per channel and frame.
MIX_DISK_BYTES_PER_SAMPLE = 4


def mix_memory_needed(stem_paths: list[str], reference_path: str | None,
                      sample_rate: int) -> tuple[float, int, float, float]:
    """Estimated peak memory of mixing these files, from their headers, and the temporary disk space
    the decoded stems take: (bytes of memory, stems, seconds, bytes of disk)."""
    from .audio_io import expand_paths
    from .stream_io import MEMORY_STORE_BYTES, session_frames

    files = expand_paths(stem_paths)
    heads = [session_frames(f, sample_rate) for f in files]
    frames = max([n for _, n in heads] + [0])
    channel_frames = sum(max(1, c) * frames for c, _ in heads)  # every stem is padded to the longest
    disk = MIX_DISK_BYTES_PER_SAMPLE * channel_frames
    need = MIX_BASE_BYTES + MIX_BYTES_PER_CHANNEL_SECOND * channel_frames / sample_rate
    if disk <= MEMORY_STORE_BYTES:  # short songs stay in memory
        need, disk = need + disk, 0
    ref_frames = session_frames(reference_path, sample_rate)[1] if reference_path else 0
    need += MIX_BYTES_PER_REFERENCE_FRAME * ref_frames
    if max(frames, ref_frames) <= REPORT_MAX_SECONDS * sample_rate:
        need += MIX_BYTES_PER_REPORT_FRAME * frames
    return need, len(files), frames / sample_rate, disk


def load_inputs(stem_paths: list[str], reference_path: str | None, sample_rate: int = 44100) -> Inputs:
    """Load stems (files or folders) and an optional reference; errors are one-line AudioErrors.

    The stems are decoded once into a :class:`~core.stream_io.StemStore` (in memory for a song, in
    temporary files for hours), measuring their loudness on the way, so no stem is ever whole in
    memory; the reference is loaded whole. Material shorter than :data:`MIN_ANALYSIS_SECONDS` is
    refused; stems that are mostly DC are high-passed and listed in ``dc_removed``.
    """
    from .audio_io import AudioError, check_sample_rate, expand_paths
    from .stream_io import _StemReader

    sample_rate = check_sample_rate(sample_rate)
    files = expand_paths(stem_paths)
    for f in files:  # headers first: a bad file is named before any decoding
        _StemReader(f, sample_rate).close()
    reference = load_audio(reference_path, sample_rate) if reference_path else None
    store = StemStore.decode(files, sample_rate)
    try:
        infos = store.stems
        check_length(infos, reference)
        if reference is not None and reference.silent:
            raise AudioError(f"{reference_path}: reference is silent")
        silent = np.array([s.silent for s in infos])
        trims = np.array([trim_from_lufs(s.loudness(store.frames), s.silent) for s in infos])
    except BaseException:
        store.close()
        raise
    ref = to_stereo(reference.data).astype(np.float32) if reference is not None else None
    return Inputs(list(store.names), list(store.paths), store, store.stereo.copy(), silent, trims,
                  sample_rate, ref, reference.path if reference is not None else None, store.padded(),
                  [(s.path, s.dc_removed) for s in infos if s.dc_removed])
