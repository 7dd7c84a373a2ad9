"""Export: the mix (and optionally each processed stem) rendered by the streaming console, written
atomically.

What is exported is what playback plays: the same :class:`core.engine.StreamingConsole`. After the
console comes the output stage of :mod:`core.render`: an optional loudness target (reached with the
master fader, so the reported parameters reproduce the file) and an optional true-peak ceiling held by
its look-ahead limiter, which reads ahead offline so the output stays sample-aligned with the stems.

Processed stems are each track after trim, EQ, compressor, fader and pan -- what the track adds to the
master bus, before the master bus. Muted tracks (or, with solo, unsoloed ones) are silent in the mix
but still exported as stems.

Nothing the user owns is lost (:func:`check_export_paths`, run before any rendering): no output may be
an input (a stem, the reference, a params file, a checkpoint, the session), the stems folder may not
be a folder the input stems are in, and a stem file is only ever overwritten if an earlier export wrote
it (listed in the folder's :data:`STEMS_MANIFEST`). All files of one export land together or not at all
(:class:`core.fileio.WriteGroup`).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from .audio_io import WRITE_BITS, WRITE_FORMATS, AudioError, AudioWriter
from .engine import StreamingConsole, as_stems, default_threads, frame_indices, render_stream
from .fileio import OutputError, WriteGroup, check_outputs, check_writable, same_file
from .paramfile import read_json
from .params import MASTER, TRACK

#: Frames per block while rendering processed stems.
_STEM_BLOCK = 32768
#: Hidden file in a stems folder listing the stem files stylemix wrote there (only those are overwritten).
STEMS_MANIFEST = ".stylemix-stems.json"


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


def _manifest_files(stems_dir: str) -> set[str]:
    """File names an earlier export wrote in ``stems_dir`` (empty when there is no readable manifest)."""
    path = os.path.join(stems_dir, STEMS_MANIFEST)
    if not os.path.isfile(path):
        return set()
    try:
        doc = read_json(path)
    except ValueError:
        return set()
    files = doc.get("files") if isinstance(doc, dict) else None
    return {f for f in files if isinstance(f, str)} if isinstance(files, list) else set()


def check_export_paths(out_path, stems_dir=None, names: Iterable[str] = (), ext: str = "wav", *,
                       stem_files: Iterable = (), protect: Iterable = (), stem_folders: Iterable = (),
                       extra_outputs: Iterable = (), labels=("output", "stems folder")) -> list[str]:
    """Refuse, before any work, an export that would destroy something the user owns.

    ``stem_files``: the input stems; ``protect``: other files that must never be written (reference,
    params read, checkpoint, session); ``stem_folders``: folders given as stem inputs;
    ``extra_outputs``: more ``(label, path)`` outputs of the same command (``--params-out``); ``labels``
    name the mix and the stems folder in messages (the command line uses its option names). The stems
    folder may not be a folder the input stems are in, and may only overwrite files an earlier export
    wrote. Every output folder must be writable. Returns the stem file paths. Raises
    :class:`core.fileio.OutputError` or :class:`core.fileio.WriteError` with a one-line message.
    """
    out_label, stems_label = labels
    stem_files = [os.fspath(p) for p in stem_files]
    outputs = [(out_label, os.fspath(out_path)), *extra_outputs]
    stem_paths: list[str] = []
    if stems_dir is not None:
        stems_dir = os.fspath(stems_dir)
        if os.path.lexists(stems_dir) and not os.path.isdir(stems_dir):
            raise OutputError(f"{stems_label} {stems_dir}: is a file, not a folder")
        own = {os.path.dirname(os.path.abspath(p)) for p in stem_files} | {os.fspath(f) for f in stem_folders}
        clash = next((f for f in sorted(own) if os.path.isdir(stems_dir) and same_file(stems_dir, f)), None)
        if clash is not None:
            raise OutputError(f"refusing to write processed stems into {stems_label} {stems_dir}: the input "
                              f"stems are in {clash}; choose a new folder")
        ours = _manifest_files(stems_dir) if os.path.isdir(stems_dir) else set()
        for name in stem_file_names(list(names), ext):
            path = os.path.join(stems_dir, name)
            if os.path.lexists(path) and name not in ours:
                raise OutputError(f"refusing to overwrite {path} in {stems_label} {stems_dir}: stylemix did "
                                  f"not write it; choose an empty or new folder")
            stem_paths.append(path)
        outputs += [(stems_label, p) for p in stem_paths]
    check_outputs(outputs, [*stem_files, *protect])
    for label, p in outputs[: len(outputs) - len(stem_paths)]:
        if not os.path.isdir(os.path.dirname(os.path.abspath(p))):
            raise OutputError(f"{label} {p}: folder {os.path.dirname(os.path.abspath(p))} does not exist")
    folders = {os.path.dirname(os.path.abspath(p)): f"{label} {p}" for label, p in outputs}
    if stems_dir is not None and not os.path.isdir(stems_dir):
        folders[os.path.abspath(stems_dir)] = f"{stems_label} {stems_dir}"
    for folder, name in folders.items():
        while not os.path.isdir(folder) and folder != os.path.dirname(folder):
            folder = os.path.dirname(folder)  # a stems folder yet to be made: its parent must be writable
        check_writable(folder, name)
    return stem_paths


def _stage_manifest(group: WriteGroup, stems_dir: str, written: list[str]) -> None:
    """Record the stem files this export writes (plus earlier ones that are still there)."""
    keep = {f for f in _manifest_files(stems_dir) if os.path.isfile(os.path.join(stems_dir, f))}
    files = sorted(keep | {os.path.basename(p) for p in written})
    doc = {"written_by": "stylemix export", "files": files}
    group.write_bytes(os.path.join(stems_dir, STEMS_MANIFEST), (json.dumps(doc, indent=1) + "\n").encode())


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
               fx_mute: bool = False, threads: int | None = None, measure: bool = True,
               stem_files: Iterable = (), protect: Iterable = (), group: WriteGroup | None = None,
               temp_folder: str | None = None) -> ExportResult:
    """Render the mix with the streaming console and write it (and optionally each processed stem).

    The mix goes block by block into a :class:`~core.stream_io.FrameStore` (memory for a song, an
    unnamed temporary file for hours), through the output stage in chunks, and into the file in
    blocks, with the processed stems written in the same pass, so memory does not grow with the
    length beyond the stems themselves (none at all when ``stems`` is a block source such as
    :class:`~core.stream_io.StemFiles`).

    Args:
        stems: float32 ``(N, 2, T)`` (a mono stem as two identical channels), a list of ``(C, T)``, or
            a block source (``n_tracks``, ``frames``, ``stereo``, ``names``, ``read_block``).
        track_params: ``(N, len(TRACK))`` physical; master_params: ``(len(MASTER),)`` physical.
        sr: sample rate, Hz.
        out_path: destination file; written atomically (a failure leaves any existing file intact).
        fmt: ``"wav"`` or ``"flac"`` (default: from the extension); bits: ``"16"``, ``"24"`` or ``"32f"``.
        loudness_lufs: integrated loudness target (reached with the master fader), or None.
        ceiling_dbtp: true-peak ceiling (look-ahead limiter, no latency), or None.
        stems_dir: folder for processed stems (``<name>.<fmt>``, same format), or None.
        progress: ``callable(done, total)`` in arbitrary work units, called from this thread.
        stereo: ``(N,)`` bool (None: detected); names: stem names for the stem files (default
            ``track01``...); mute, solo: ``(N,)`` bool; fx_mute: the FX return muted (the mix
            without the reverb; the sends still feed it, unheard).
        threads: strip worker threads (default: all cores this process may use, at most 8).
        measure: report the written mix's loudness and true peak; False leaves them NaN.
        stem_files, protect: the input stems and other files (reference, session) that no output may
            overwrite; see :func:`check_export_paths` (checked before rendering).
        group: a :class:`core.fileio.WriteGroup` to stage the files in (the caller commits it with its
            own files); by default the mix and stems are committed together here.
        temp_folder: where a long mix's temporary files go (default: the system's temporary folder).

    Raises:
        AudioError: the destination or format cannot be written (checked before rendering).
        core.fileio.OutputError: an output would overwrite an input or a file stylemix did not write.
    """
    out_path = os.fspath(out_path)
    ext = _check_output(out_path, fmt, bits)
    if isinstance(stems, (np.ndarray, list, tuple)):
        arr, stereo = as_stems(stems, stereo)
        n_tracks = arr.shape[0]
    else:  # a block source: stems decoded as they are rendered
        arr = stems
        stereo = np.asarray(stems.stereo if stereo is None else stereo, dtype=bool)
        n_tracks = int(stems.n_tracks)
        if names is None:
            names = getattr(stems, "names", None)
    names = list(names) if names is not None else [f"track{i + 1:02d}" for i in range(n_tracks)]
    if len(names) != n_tracks:
        raise ValueError(f"{len(names)} names for {n_tracks} stems")
    planned = check_export_paths(out_path, stems_dir, names, ext, stem_files=stem_files, protect=protect)
    with nullcontext(group) if group is not None else WriteGroup() as files:
        result = _render_and_stage(files, arr, stereo, names, track_params, master_params, sr, out_path,
                                   ext, bits, loudness_lufs, ceiling_dbtp, stems_dir, planned, progress, mute,
                                   solo, threads, measure, temp_folder, fx_mute)
        if group is None:
            files.commit()
    return result


def _render_and_stage(files: WriteGroup, arr, stereo, names, track_params, master_params, sr, out_path, ext,
                      bits, loudness_lufs, ceiling_dbtp, stems_dir, planned, progress, mute, solo, threads,
                      measure, temp_folder, fx_mute=False) -> ExportResult:
    from .render import MeasuredStore, output_stage_store

    n_tracks = len(names)
    total = int(arr.shape[2]) if isinstance(arr, np.ndarray) else int(arr.frames)
    if stems_dir is not None:
        files.make_dirs(stems_dir)
    threads = default_threads() if threads is None else threads
    track_params = np.asarray(track_params, dtype=np.float64).reshape(n_tracks, len(TRACK))
    master_params = np.asarray(master_params, dtype=np.float64).reshape(len(MASTER))

    work = 3 * total
    report = progress if progress is not None else (lambda done, all_: None)
    writers = [AudioWriter(path, 2, sr, ext, bits, group=files) for path in (planned if stems_dir else [])]
    mix = MeasuredStore(2, total, sr, temp_folder)  # measured for the output stage as it is rendered
    try:
        on_block = None
        if writers:
            block = np.empty((2, _STEM_BLOCK), np.float32)
            unmuted: list = []

            def on_block(con, cache, start, n):  # each processed stem, in the same pass as the mix
                if not unmuted:  # stems are written whether muted or not
                    none = np.zeros(n_tracks, bool)
                    unmuted.append(con.snapshot.replace(mute=none, solo=none))
                snap = unmuted[0]
                for t, w in enumerate(writers):
                    con.track_output(cache, t, n, block[:, :n], snapshot=snap,
                                     from_gains=(snap.out_gain, snap.m_gain))
                    w.write(block[:, :n])

        render_stream(arr, stereo, track_params, master_params, sr, mute=mute, solo=solo, fx_mute=fx_mute,
                      threads=threads, block=_STEM_BLOCK, progress=lambda done, _: report(2 * done, work),
                      on_block=on_block, sink=mix.write)
        gi = MASTER.index("gain_db")
        res = output_stage_store(mix, sr, float(master_params[gi]), loudness_lufs, ceiling_dbtp,
                                 temp_folder, lambda f: report(2 * total + int(0.8 * f * total), work))
        mix.close()
        try:
            with AudioWriter(out_path, 2, sr, ext, bits, group=files) as w:
                for s in range(0, total, 1 << 18):
                    w.write(res.out.read(s, min(1 << 18, total - s)))
                w.commit()
        finally:
            res.out.close()
        for w in writers:
            w.commit()
        report(work, work)
    except BaseException:
        for w in writers:
            w.abort()
        raise
    finally:
        mix.close()

    stem_paths = [w.path for w in writers]
    if stems_dir is not None:
        _stage_manifest(files, os.fspath(stems_dir), stem_paths)
    master = master_params.copy()
    master[gi] = res.gain_db
    level = peak = math.nan
    if measure:
        level, peak = res.loudness_lufs, res.true_peak_dbtp
    return ExportResult(out_path, int(sr), int(total), level, peak, master, stem_paths)
