"""Export: the mix (and optionally each processed stem) rendered by the streaming console, written
atomically.

What is exported is what playback plays: the same :class:`core.engine.StreamingConsole`. After the
console comes the output stage of :mod:`core.render`: an optional loudness target (reached with the
master fader, so the reported parameters reproduce the file) and an optional true-peak ceiling held by
its look-ahead limiter, which reads ahead offline so the output stays sample-aligned with the stems.

Processed stems are each track after trim, EQ, compressor, fader and pan -- what the track adds to the
master bus, before the master bus. Muted tracks (or, with solo, unsoloed ones) are silent in the mix
but still exported as stems.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from .audio_io import WRITE_BITS, WRITE_FORMATS, AudioError, write_audio
from .engine import StreamingConsole, as_stems, default_threads, frame_indices, render_stream
from .features import integrated_lufs, true_peak_dbtp
from .paramfile import MixParams
from .params import MASTER, TRACK

#: Frames per block while rendering processed stems.
_STEM_BLOCK = 8192


@dataclass
class ExportResult:
    """What was written. Loudness in LUFS (``-inf`` for silence) and true peak in dBTP are measured on
    the written mix before quantisation (NaN when not measured); ``master`` holds the master
    parameters that produced it (the fader moves when a loudness target is met)."""

    path: str
    sample_rate: int
    frames: int
    loudness_lufs: float
    true_peak_dbtp: float
    master: np.ndarray
    stem_paths: list[str] = field(default_factory=list)

    @property
    def master_gain_db(self) -> float:
        return float(self.master[MASTER.index("gain_db")])


def _check_output(path: str, fmt: str | None, bits: str) -> str:
    """Fail before rendering if the destination cannot be written; returns the format key."""
    key = (fmt or os.path.splitext(path)[1].lstrip(".")).lower()
    if key not in WRITE_FORMATS:
        raise AudioError(f"{path}: unsupported output format '{key}' (use {' or '.join(WRITE_FORMATS)})")
    if str(bits).lower() not in WRITE_BITS:
        raise AudioError(f"{path}: unsupported bit depth '{bits}' (use {', '.join(WRITE_BITS)})")
    if not sf.check_format(WRITE_FORMATS[key], WRITE_BITS[str(bits).lower()]):
        raise AudioError(f"{path}: {WRITE_FORMATS[key]} cannot store {bits}-bit samples")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise AudioError(f"{path}: destination folder does not exist")
    return key


def stem_file_names(names: list[str], ext: str) -> list[str]:
    """File names for processed stems: unsafe characters replaced, clashes numbered."""
    out, taken = [], set()
    for name in names:
        base = re.sub(r"[^\w.+-]+", "_", name).strip("._") or "track"
        candidate, k = base, 1
        while candidate.casefold() in taken:
            k += 1
            candidate = f"{base}_{k}"
        taken.add(candidate.casefold())
        out.append(f"{candidate}.{ext}")
    return out


def render_track(console: StreamingConsole, t: int, block: int = _STEM_BLOCK) -> np.ndarray:
    """Track ``t`` alone through its strip, fader and pan, from the initial state: ``(2, T)`` float32.

    Strips are independent of each other, so this is exactly what the track adds to the mix.
    """
    total = console.n_frames
    state = console.state.copy()
    state.reset()
    cache = np.empty((console.n_tracks, 2, block), np.float32)
    out = np.empty((2, total), np.float32)
    one = np.array([t], dtype=np.int64)
    for start in range(0, total, block):
        n = min(block, total - start)
        console.render_strips(frame_indices(start, n, total), cache, tracks=one, state=state)
        console.track_output(cache, t, n, out[:, start:start + n])
    return out


def export_mix(stems, track_params, master_params, sr: int, out_path, fmt: str | None = None,
               bits: str = "24", loudness_lufs: float | None = None, ceiling_dbtp: float | None = None,
               stems_dir=None, progress=None, *, stereo=None, names=None, mute=None, solo=None,
               threads: int | None = None, measure: bool = True) -> ExportResult:
    """Render the mix with the streaming console and write it (and optionally each processed stem).

    Args:
        stems: float32 ``(N, 2, T)`` (a mono stem as two identical channels) or a list of ``(C, T)``.
        track_params: ``(N, len(TRACK))`` physical; master_params: ``(len(MASTER),)`` physical.
        sr: sample rate, Hz.
        out_path: destination file; written atomically (a failure leaves any existing file intact).
        fmt: ``"wav"`` or ``"flac"`` (default: from the extension); bits: ``"16"``, ``"24"`` or ``"32f"``.
        loudness_lufs: integrated loudness target (reached with the master fader), or None.
        ceiling_dbtp: true-peak ceiling (look-ahead limiter, no latency), or None.
        stems_dir: folder for processed stems (``<name>.<fmt>``, same format), or None.
        progress: ``callable(done, total)`` in arbitrary work units, called from this thread.
        stereo: ``(N,)`` bool (None: detected); names: stem names for the stem files (default
            ``track01``...); mute, solo: ``(N,)`` bool.
        threads: strip worker threads (default: all cores this process may use, at most 8).
        measure: report the written mix's loudness and true peak (a third of the render's time);
            False leaves them NaN.

    Raises:
        AudioError: the destination or format cannot be written (checked before rendering).
    """
    out_path = os.fspath(out_path)
    ext = _check_output(out_path, fmt, bits)
    arr, stereo = as_stems(stems, stereo)
    n_tracks, total = arr.shape[0], arr.shape[2]
    names = list(names) if names is not None else [f"track{i + 1:02d}" for i in range(n_tracks)]
    if len(names) != n_tracks:
        raise ValueError(f"{len(names)} names for {n_tracks} stems")
    if stems_dir is not None and not os.path.isdir(stems_dir):
        os.makedirs(stems_dir, exist_ok=True)
    threads = default_threads() if threads is None else threads
    track_params = np.asarray(track_params, dtype=np.float64).reshape(n_tracks, len(TRACK))
    master_params = np.asarray(master_params, dtype=np.float64).reshape(len(MASTER))

    work = total * (2 + (1 if stems_dir is not None else 0))
    report = progress if progress is not None else (lambda done, all_: None)
    mix = render_stream(arr, stereo, track_params, master_params, sr, mute=mute, solo=solo, threads=threads,
                        progress=lambda done, _: report(done, work))

    from .render import output_stage

    params = MixParams(names, track_params.copy(), master_params.copy(), stereo=[bool(s) for s in stereo],
                       sample_rate=int(sr))
    mix, params = output_stage(mix, sr, params, loudness_lufs, ceiling_dbtp)
    write_audio(out_path, mix, sr, format=ext, bits=bits)
    report(2 * total, work)

    stem_paths = []
    if stems_dir is not None:
        con = StreamingConsole(arr, stereo, sr, track_params, master_params, threads=1)
        try:
            for t, file_name in enumerate(stem_file_names(names, ext)):
                path = os.path.join(os.fspath(stems_dir), file_name)
                write_audio(path, render_track(con, t), sr, format=ext, bits=bits)
                stem_paths.append(path)
                report(2 * total + (t + 1) * total // n_tracks, work)
        finally:
            con.close()

    level = peak = math.nan
    if measure:
        level, peak = integrated_lufs(mix, sr), true_peak_dbtp(mix, sr)
    return ExportResult(out_path, int(sr), int(total), level, peak, params.master, stem_paths)
