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

from .audio_io import WRITE_BITS, WRITE_FORMATS, AudioError, AudioWriter
from .engine import StreamingConsole, as_stems, default_threads, frame_indices, render_stream
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
               threads: int | None = None, measure: bool = True, temp_folder: str | None = None
               ) -> ExportResult:
    """Render the mix with the streaming console and write it (and optionally each processed stem).

    The mix goes block by block into a :class:`~core.stream_io.FrameStore` (memory for a song, an
    unnamed temporary file for hours), through the output stage in chunks, and into the file in
    blocks, so memory does not grow with the length beyond the stems themselves (none at all when
    ``stems`` is a block source such as :class:`~core.stream_io.StemFiles`).

    Args:
        stems: float32 ``(N, 2, T)`` (a mono stem as two identical channels), a list of ``(C, T)``, or
            a block source (``n_tracks``, ``frames``, ``stereo``, ``names``, ``read_block``).
        track_params: ``(N, len(TRACK))`` physical; master_params: ``(len(MASTER),)`` physical.
        sr: sample rate, Hz.
        out_path: destination file; written atomically (a failure leaves any existing file intact).
        fmt: ``"wav"`` or ``"flac"`` (default: from the extension); bits: ``"16"``, ``"24"`` or ``"32f"``.
        loudness_lufs: integrated loudness target (reached with the master fader), or None.
        ceiling_dbtp: true-peak ceiling (look-ahead limiter, no latency), or None.
        stems_dir: folder for processed stems (``<name>.<fmt>``, same format), or None; written in the
            same pass as the mix, and renamed into place together with it.
        progress: ``callable(done, total)`` in arbitrary work units, called from this thread.
        stereo: ``(N,)`` bool (None: detected); names: stem names for the stem files (default
            ``track01``...); mute, solo: ``(N,)`` bool.
        threads: strip worker threads (default: all cores this process may use, at most 8).
        measure: report the written mix's loudness and true peak; False leaves them NaN.
        temp_folder: where a long mix's temporary files go (default: the system's temporary folder).

    Raises:
        AudioError: the destination or format cannot be written (checked before rendering).
    """
    from .render import output_stage_store
    from .stream_io import FrameStore

    out_path = os.fspath(out_path)
    ext = _check_output(out_path, fmt, bits)
    source = None if isinstance(stems, (np.ndarray, list, tuple)) else stems
    if source is None:
        arr, stereo = as_stems(stems, stereo)
        n_tracks, total = arr.shape[0], arr.shape[2]
    else:
        arr = source
        stereo = np.asarray(source.stereo if stereo is None else stereo, dtype=bool)
        n_tracks, total = int(source.n_tracks), int(source.frames)
        if names is None:
            names = getattr(source, "names", None)
    names = list(names) if names is not None else [f"track{i + 1:02d}" for i in range(n_tracks)]
    if len(names) != n_tracks:
        raise ValueError(f"{len(names)} names for {n_tracks} stems")
    if stems_dir is not None and not os.path.isdir(stems_dir):
        os.makedirs(stems_dir, exist_ok=True)
    threads = default_threads() if threads is None else threads
    track_params = np.asarray(track_params, dtype=np.float64).reshape(n_tracks, len(TRACK))
    master_params = np.asarray(master_params, dtype=np.float64).reshape(len(MASTER))

    work = 3 * total
    report = progress if progress is not None else (lambda done, all_: None)
    writers: list[AudioWriter] = []
    mix = FrameStore(2, total, temp_folder)
    try:
        on_block = None
        if stems_dir is not None:
            for file_name in stem_file_names(names, ext):
                writers.append(AudioWriter(os.path.join(os.fspath(stems_dir), file_name), 2, sr, ext, bits))
            block = np.empty((2, _STEM_BLOCK), np.float32)
            solo_free: list = []

            def on_block(con, cache, start, n):
                if not solo_free:  # stems are written whether muted or not
                    none = np.zeros(n_tracks, bool)
                    solo_free.append(con.snapshot.replace(mute=none, solo=none))
                snap = solo_free[0]
                for t, w in enumerate(writers):
                    con.track_output(cache, t, n, block[:, :n], snapshot=snap,
                                     from_gains=(snap.out_gain, snap.m_gain))
                    w.write(block[:, :n])

        render_stream(arr, stereo, track_params, master_params, sr, mute=mute, solo=solo, threads=threads,
                      block=_STEM_BLOCK, progress=lambda done, _: report(2 * done, work),
                      on_block=on_block, sink=mix.write)
        gi = MASTER.index("gain_db")
        res = output_stage_store(mix, sr, float(master_params[gi]), loudness_lufs, ceiling_dbtp,
                                 temp_folder, lambda f: report(2 * total + int(0.8 * f * total), work))
        mix.close()
        try:
            with AudioWriter(out_path, 2, sr, ext, bits) as w:
                for s in range(0, total, 1 << 18):
                    w.write(res.out.read(s, min(1 << 18, total - s)))
                for sw in writers:
                    sw.commit()
                w.commit()
        finally:
            res.out.close()
        report(work, work)
    finally:
        mix.close()
        for sw in writers:
            sw.abort()

    master = master_params.copy()
    master[MASTER.index("gain_db")] = res.gain_db
    level = peak = math.nan
    if measure:
        level, peak = res.loudness_lufs, res.true_peak_dbtp
    stem_paths = [w.path for w in writers]
    return ExportResult(out_path, int(sr), int(total), level, peak, master, stem_paths)
