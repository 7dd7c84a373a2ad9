"""Stems and reference as the console, the model and refinement see them.

Stems are loaded at the session rate, made two-channel (a mono stem is duplicated and flagged
``stereo=False``) and padded to one length. Each stem's ``trim_db`` is set by loudness normalisation to
:data:`STEM_LUFS`, so the default console (trims, faders at 0 dB, pans centred) is the *equal-loudness
sum* that the method is measured against. The reference is kept as is; analysis uses it normalised
to :data:`REFERENCE_LUFS` (DESIGN.md section 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .audio_io import Audio, load_audio, load_stems, to_stereo
from .meter import integrated_lufs
from .paramfile import MixParams
from .params import TRACK

#: Shortest song (and reference) that can be analysed: one loudness block (ITU-R BS.1770).
MIN_ANALYSIS_SECONDS = 0.4
STEM_LUFS = -28.0  # every stem's loudness after trim: 8 stems sum to roughly -19 LUFS
REFERENCE_LUFS = -16.0  # reference loudness for analysis


@dataclass
class Inputs:
    """A session's audio, ready for the console.

    stems: (N, 2, T) float32 raw (untrimmed) at ``sample_rate``; stereo, silent: (N,) bool;
    trim_db: (N,) float64; reference: (2, Tr) float32 or None.
    """

    names: list[str]
    files: list[str]
    stems: np.ndarray
    stereo: np.ndarray
    silent: np.ndarray
    trim_db: np.ndarray
    sample_rate: int
    reference: np.ndarray | None = None
    reference_file: str | None = None
    padded: list[tuple[str, float]] = field(default_factory=list)
    dc_removed: list[tuple[str, float]] = field(default_factory=list)  # (file, DC share of its energy)

    @property
    def frames(self) -> int:
        return self.stems.shape[-1]

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def default_params(self) -> MixParams:
        """The equal-loudness sum: defaults everywhere, trims from loudness normalisation."""
        mp = MixParams.defaults(self.names, files=list(self.files), stereo=[bool(s) for s in self.stereo],
                                sample_rate=self.sample_rate)
        mp.tracks[:, TRACK.index("trim_db")] = self.trim_db
        return mp


def _map(fn, items):
    """``[fn(x) for x in items]`` on the cores this process may use (the kernels release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    from .engine import default_threads

    threads = min(default_threads(), len(items))
    if threads < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


def trim_for(x: np.ndarray, sample_rate: int, silent: bool) -> float:
    """Trim (dB) that brings stem ``x`` (C, T) to :data:`STEM_LUFS`, within the trim range."""
    if silent:
        return 0.0
    level = integrated_lufs(x, sample_rate)
    if not math.isfinite(level):
        return 0.0
    return TRACK["trim_db"].clip(STEM_LUFS - level)


def from_audio(stems: list[Audio], sample_rate: int, reference: Audio | None = None,
               padded=None) -> Inputs:
    frames = max(a.frames for a in stems)
    silent = np.array([a.silent for a in stems])
    trims = np.array(_map(lambda a: trim_for(a.data, sample_rate, a.silent), stems))
    data = np.zeros((len(stems), 2, frames), dtype=np.float32)
    for i, a in enumerate(stems):
        data[i, :, : a.frames] = to_stereo(a.data)
    ref = to_stereo(reference.data).astype(np.float32) if reference is not None else None
    return Inputs([a.name for a in stems], [a.path for a in stems], data,
                  np.array([a.is_stereo for a in stems]), silent, trims, sample_rate, ref,
                  reference.path if reference is not None else None, list(padded or []),
                  [(a.path, a.dc_removed) for a in stems if a.dc_removed])


def _length(a: Audio) -> str:
    n = a.original_frames
    return f"{n} sample{'s' if n != 1 else ''} ({a.original_duration:.3f} s)"


def check_length(stems: list[Audio], reference: Audio | None) -> None:
    """Refuse material too short to analyse (:data:`MIN_ANALYSIS_SECONDS`), naming each file's length."""
    from .audio_io import AudioError

    need = f"at least {MIN_ANALYSIS_SECONDS:g} s is needed to analyse"
    if max(a.duration for a in stems) < MIN_ANALYSIS_SECONDS:
        lengths = ", ".join(f"{a.path} is {_length(a)}" for a in stems)
        raise AudioError(f"stems too short to analyse: {lengths}; {need}")
    if reference is not None and reference.duration < MIN_ANALYSIS_SECONDS:
        raise AudioError(f"{reference.path}: reference too short to analyse: {_length(reference)}; {need}")


#: Memory a ``stylemix mix`` needs besides its audio (torch, the model, analysis), bytes; and per
#: byte of the stems held as float32 ``(N, 2, T)``, what it needs with its analysis copies. Measured
#: with 8 mono stems of 2.5 and 5 minutes (1.59 and 2.07 GB peak): about 24 MB per stem-minute.
MIX_BASE_BYTES = 1.2e9
MIX_BYTES_PER_STEM_BYTE = 1.15


def mix_memory_needed(stem_paths: list[str], reference_path: str | None,
                      sample_rate: int) -> tuple[float, int, float]:
    """Estimated peak memory of mixing these files, from their headers: (bytes, stems, seconds)."""
    from .audio_io import expand_paths
    from .stream_io import session_frames

    files = expand_paths(stem_paths)
    frames = max([session_frames(f, sample_rate)[1] for f in files] + [0])
    need = MIX_BASE_BYTES + MIX_BYTES_PER_STEM_BYTE * 8.0 * len(files) * frames
    if reference_path:
        need += 8.0 * session_frames(reference_path, sample_rate)[1]
    return need, len(files), frames / sample_rate


def load_inputs(stem_paths: list[str], reference_path: str | None, sample_rate: int = 44100) -> Inputs:
    """Load stems (files or folders) and an optional reference; errors are one-line AudioErrors.

    Material shorter than :data:`MIN_ANALYSIS_SECONDS` is refused; stems that are mostly DC are
    high-passed and listed in ``dc_removed``.
    """
    stem_set = load_stems(stem_paths, sample_rate, remove_mostly_dc=True)
    reference = load_audio(reference_path, sample_rate) if reference_path else None
    check_length(stem_set.stems, reference)
    if reference is not None and reference.silent:
        from .audio_io import AudioError

        raise AudioError(f"{reference_path}: reference is silent")
    return from_audio(stem_set.stems, sample_rate, reference, stem_set.padded)
