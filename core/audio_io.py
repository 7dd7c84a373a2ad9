"""Reading stems and references, writing renders.

Everything libsndfile reads (WAV, FLAC, AIFF, OGG, MP3) is loaded as float32 and resampled with soxr
(quality ``VHQ``) to the session rate, one of :data:`SUPPORTED_RATES`. Input files may have any rate.

Layout: audio arrays are float32 ``numpy`` arrays shaped ``(channels, frames)``, full scale = 1.0.
Only mono and stereo are accepted.

Every problem with a file raises :class:`AudioError` with a one-line message that starts with the file's
path as given, e.g. ``bass.wav: contains NaN or infinite samples``.

Writing is atomic: a render goes to a temporary file in the destination folder which replaces the
destination only once it is complete and flushed to disk, so a failed write never damages an existing file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .fileio import WriteGroup, write_error
from .pcm import raw_reader

#: Session sample rates (Hz). The first one is the default.
SUPPORTED_RATES = (44100, 48000)
DEFAULT_SAMPLE_RATE = SUPPORTED_RATES[0]

#: File name endings picked up when a folder is expanded (compared case-insensitively).
AUDIO_EXTENSIONS = (".wav", ".wave", ".flac", ".aif", ".aiff", ".aifc", ".ogg", ".oga", ".mp3")

#: A stem whose peak magnitude is below this (-100 dBFS) is flagged silent.
SILENCE_PEAK = 1e-5

#: A stem whose DC offset (per-channel mean) holds more than this share of its energy is "mostly DC":
#: it is reported and high-passed at :data:`DC_HIGHPASS_HZ` when loaded as a stem.
DC_SHARE = 0.5
DC_HIGHPASS_HZ = 5.0

#: Output formats and bit depths accepted by :func:`write_audio`.
WRITE_FORMATS = {"wav": "WAV", "flac": "FLAC"}
WRITE_BITS = {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}

_RESAMPLE_QUALITY = "VHQ"
_MAX_CHANNELS = 2
_PAD_REPORT_MIN_FRAMES = 2  # a one-frame difference is resampling rounding, not worth reporting


class AudioError(ValueError):
    """A file cannot be read or written; the message is one line naming the file."""


def _fail(path: str | os.PathLike, problem: str) -> AudioError:
    """Build an :class:`AudioError` reading ``"<path>: <problem>"`` on a single line."""
    return AudioError(" ".join(f"{os.fspath(path)}: {problem}".splitlines()))


def _positive_int(value) -> int | None:
    """``value`` as an ``int`` if it is a positive whole number (not a bool or a string), else None."""
    if isinstance(value, (bool, str, bytes)):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return n if n == value and n > 0 else None


def check_sample_rate(sample_rate: int) -> int:
    """Validate a session rate (Hz) against :data:`SUPPORTED_RATES`; return it as ``int``."""
    rate = _positive_int(sample_rate)
    if rate not in SUPPORTED_RATES:
        allowed = " or ".join(str(r) for r in SUPPORTED_RATES)
        raise AudioError(f"unsupported session sample rate {sample_rate!r} Hz (use {allowed})")
    return rate


# --- reading ----------------------------------------------------------------------------------------


@dataclass
class Audio:
    """One loaded file.

    ``data`` is float32 shaped ``(channels, frames)`` at ``sample_rate`` (Hz); ``original_sample_rate``
    (Hz) and ``original_frames`` describe the file before resampling and padding. ``silent`` stems
    (peak below :data:`SILENCE_PEAK`) are kept but should be left out of analysis.
    """

    data: np.ndarray
    sample_rate: int
    path: str
    name: str
    original_sample_rate: int
    original_frames: int
    silent: bool = False
    dc_removed: float = 0.0  # share of the energy that was DC, when it was removed at load (else 0)

    @property
    def channels(self) -> int:
        return int(self.data.shape[0])

    @property
    def frames(self) -> int:
        return int(self.data.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds at ``sample_rate``."""
        return self.frames / self.sample_rate

    @property
    def original_duration(self) -> float:
        """Length of the file in seconds, before resampling and padding."""
        return self.original_frames / self.original_sample_rate

    @property
    def is_stereo(self) -> bool:
        return self.channels == 2


def _check_readable_path(path: str) -> None:
    if not os.path.exists(path):
        raise _fail(path, "file not found")
    if os.path.isdir(path):
        raise _fail(path, "is a folder, not an audio file")
    if os.path.getsize(path) == 0:
        raise _fail(path, "is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise _fail(path, "permission denied")


def _wav_declared_frames(path: str) -> int | None:
    """Frames a RIFF/WAVE file's header declares (data chunk size / block align), or None when the
    file is not a plain WAV or the size is left open (0 or 0xFFFFFFFF, as streaming writers do)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            align = None
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], int.from_bytes(chunk[4:], "little")
                if cid == b"fmt ":
                    fmt = f.read(min(size, 16))
                    if len(fmt) < 14:
                        return None
                    align = int.from_bytes(fmt[12:14], "little")
                    f.seek(size - len(fmt) + (size & 1), os.SEEK_CUR)
                elif cid == b"data":
                    if not align or size in (0, 0xFFFFFFFF):
                        return None
                    return size // align
                else:
                    f.seek(size + (size & 1), os.SEEK_CUR)
    except OSError:
        return None


def check_complete(path: str, f: sf.SoundFile) -> None:
    """Refuse a WAV whose header declares more frames than the file holds (a cut-off copy or an
    interrupted download): it would otherwise be read as a shorter stem and padded with silence."""
    if f.format != "WAV":
        return
    declared = _wav_declared_frames(path)
    if declared is not None and declared > f.frames:
        raise _fail(path, f"truncated: the header declares {declared} frames, the file holds {f.frames}")


def _read_file(path: str) -> tuple[np.ndarray, int]:
    """Decode ``path`` -> (float32 ``(frames, channels)``, rate in Hz), rejecting unusable content."""
    try:
        with sf.SoundFile(path) as f:
            if f.channels > _MAX_CHANNELS:
                raise _fail(path, f"has {f.channels} channels; only mono and stereo are supported")
            check_complete(path, f)
            rate = int(f.samplerate)
            raw = raw_reader(f)  # plain WAV: libsndfile's samples, decoded faster (core.pcm)
            data = raw(f.frames) if raw is not None else f.read(dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (sf.SoundFileError, OSError, RuntimeError, ValueError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc) or type(exc).__name__
        raise _fail(path, f"not a readable audio file ({reason})") from exc
    if data.shape[0] == 0:
        raise _fail(path, "is empty (no audio frames)")
    if not np.isfinite(data).all():
        raise _fail(path, "contains NaN or infinite samples")
    return data, rate


def _resample(data: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """float32 ``(frames, channels)`` at ``rate_in`` -> float32 ``(channels, frames')`` at ``rate_out``."""
    if rate_in != rate_out:
        data = soxr.resample(data, rate_in, rate_out, quality=_RESAMPLE_QUALITY)
    return np.ascontiguousarray(data.T, dtype=np.float32)


def dc_share(data: np.ndarray, block: int = 1 << 20) -> float:
    """Share (0..1) of the energy of ``(channels, frames)`` that is DC (each channel's mean)."""
    dc = energy = 0.0
    for ch in np.atleast_2d(data):
        mean = float(np.mean(ch, dtype=np.float64))
        ms = sum(float(np.dot(c, c)) for c in (ch[i:i + block].astype(np.float64)
                                               for i in range(0, ch.shape[0], block))) / max(ch.shape[0], 1)
        dc, energy = dc + mean * mean, energy + ms
    return dc / energy if energy > 0 else 0.0


def remove_dc(data: np.ndarray, sample_rate: int) -> np.ndarray:
    """High-pass ``(channels, frames)`` at :data:`DC_HIGHPASS_HZ`, zero-phase (no shift, no thump)."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(2, DC_HIGHPASS_HZ, "highpass", fs=sample_rate, output="sos")
    out = np.empty_like(data)
    for c, ch in enumerate(data):
        centred = ch.astype(np.float64) - np.mean(ch, dtype=np.float64)
        out[c] = sosfiltfilt(sos, centred) if ch.shape[0] > 3 * (2 * len(sos) + 1) else centred
    return out


def load_audio(path: str | os.PathLike, sample_rate: int = DEFAULT_SAMPLE_RATE,
               remove_mostly_dc: bool = False) -> Audio:
    """Read a mono or stereo file and resample it to ``sample_rate`` (Hz, one of :data:`SUPPORTED_RATES`).

    Returns an :class:`Audio` whose ``data`` is float32 ``(channels, frames)``. Raises :class:`AudioError`
    for missing files, folders, empty or undecodable files, more than two channels, NaN/Inf samples.
    With ``remove_mostly_dc`` (stems), a file that is mostly DC (:data:`DC_SHARE`) is high-passed and
    ``dc_removed`` says how much of it was DC.
    """
    sample_rate = check_sample_rate(sample_rate)
    path = os.fspath(path)
    _check_readable_path(path)
    raw, rate = _read_file(path)
    data = _resample(raw, rate, sample_rate)
    if data.shape[1] == 0:
        raise _fail(path, f"too short ({raw.shape[0]} frames at {rate} Hz)")
    dc = dc_share(data) if remove_mostly_dc else 0.0
    if dc > DC_SHARE:
        data = remove_dc(data, sample_rate)
    peak = float(np.max(np.abs(data)))
    return Audio(
        data=data,
        sample_rate=sample_rate,
        path=path,
        name=Path(path).stem,
        original_sample_rate=rate,
        original_frames=int(raw.shape[0]),
        silent=peak < SILENCE_PEAK,
        dc_removed=dc if dc > DC_SHARE else 0.0,
    )


def _is_audio_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS)


def _audio_files_in(folder: str, depth: int = 1) -> list[str]:
    """Audio files in ``folder`` and, ``depth`` levels down, its subfolders; sorted, hidden ones skipped."""
    found = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name.lower()):
        path = os.path.join(folder, entry.name)
        if entry.is_file() and _is_audio_name(entry.name):
            found.append(path)
        elif depth > 0 and entry.is_dir() and not entry.name.startswith("."):
            found += _audio_files_in(path, depth - 1)
    return found


def expand_paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Files and folders -> list of file paths, in the order given.

    A file is kept as is (whatever its extension; reading it decides). A folder expands to the files with
    an :data:`AUDIO_EXTENSIONS` ending in it and in its direct subfolders, sorted. The same file given
    twice is kept once. Raises :class:`AudioError` for a missing path, a folder without audio files or an
    empty result.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[str] = []
    seen: set[str] = set()
    for p in paths:
        p = os.fspath(p)
        if not os.path.exists(p):
            raise _fail(p, "file or folder not found")
        if os.path.isdir(p):
            try:
                files = _audio_files_in(p)
            except OSError as exc:
                raise _fail(p, f"cannot list folder ({exc.strerror or exc})") from exc
            if not files:
                raise _fail(p, f"no audio files in folder (looked for {', '.join(AUDIO_EXTENSIONS)})")
        else:
            files = [p]
        for f in files:
            key = os.path.normcase(os.path.realpath(f))
            if key not in seen:
                seen.add(key)
                out.append(f)
    if not out:
        raise AudioError("no audio files given")
    return out


# --- stem sets --------------------------------------------------------------------------------------


@dataclass
class StemSet:
    """Stems at one rate and one length.

    Every ``stems[i].data`` is float32 ``(channels, frames)`` at ``sample_rate`` (Hz). ``padded`` lists
    ``(name, original_seconds)`` for stems that were zero-padded to ``frames``; ``truncated`` the same
    for stems cut to an imposed length.
    """

    stems: list[Audio]
    sample_rate: int
    frames: int
    padded: list[tuple[str, float]] = field(default_factory=list)
    truncated: list[tuple[str, float]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stems]

    @property
    def duration(self) -> float:
        """Common length in seconds."""
        return self.frames / self.sample_rate

    def __len__(self) -> int:
        return len(self.stems)


def unique_names(names: Iterable[str]) -> list[str]:
    """Disambiguate repeated names (case-insensitively): ``gtr, gtr`` -> ``gtr, gtr (2)``."""
    taken: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{name} ({n})"
        taken.add(candidate.casefold())
        out.append(candidate)
    return out


def fit_length(data: np.ndarray, frames: int) -> np.ndarray:
    """Zero-pad or truncate ``(channels, T)`` along the last axis to ``(channels, frames)``."""
    have = data.shape[-1]
    if have >= frames:
        return data[..., :frames]
    pad = np.zeros(data.shape[:-1] + (frames - have,), dtype=data.dtype)
    return np.concatenate([data, pad], axis=-1)


def load_stems(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    frames: int | None = None,
    remove_mostly_dc: bool = False,
) -> StemSet:
    """Load files and folders (see :func:`expand_paths`) as one :class:`StemSet` at ``sample_rate`` (Hz).

    Stems are zero-padded to the longest one, or padded/truncated to ``frames`` when given (to align
    with another signal). Repeated names are disambiguated. With ``remove_mostly_dc`` a stem that is
    mostly DC is high-passed (its ``dc_removed`` says so). Raises :class:`AudioError` on the first bad
    file.
    """
    sample_rate = check_sample_rate(sample_rate)
    if frames is not None and _positive_int(frames) is None:
        raise AudioError(f"stem length must be a positive number of frames, got {frames!r}")
    files = expand_paths(paths)
    if len(files) > 1:  # decoding and resampling release the GIL: stems load in parallel
        from concurrent.futures import ThreadPoolExecutor

        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
        with ThreadPoolExecutor(max(1, min(cores, len(files), 8))) as pool:
            stems = list(pool.map(lambda p: load_audio(p, sample_rate, remove_mostly_dc), files))
    else:
        stems = [load_audio(p, sample_rate, remove_mostly_dc) for p in files]
    target = _positive_int(frames) if frames is not None else max(s.frames for s in stems)
    padded, truncated, out = [], [], []
    for stem, name in zip(stems, unique_names(s.name for s in stems), strict=True):
        if target - stem.frames >= _PAD_REPORT_MIN_FRAMES:
            padded.append((name, stem.original_duration))
        elif stem.frames - target >= _PAD_REPORT_MIN_FRAMES:
            truncated.append((name, stem.original_duration))
        out.append(replace(stem, name=name, data=np.ascontiguousarray(fit_length(stem.data, target))))
    return StemSet(out, sample_rate, target, padded, truncated)


def to_stereo(data: np.ndarray) -> np.ndarray:
    """``(1, T)`` or ``(T,)`` mono -> ``(2, T)`` with the channel duplicated; ``(2, T)`` is returned as is."""
    data = np.asarray(data)
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2 or data.shape[0] not in (1, 2):
        raise ValueError(f"expected mono or stereo audio shaped (channels, frames), got {data.shape}")
    return data if data.shape[0] == 2 else np.repeat(data, 2, axis=0)


# --- writing ----------------------------------------------------------------------------------------


def _output_format(path: str, format: str | None) -> str:
    name = format if format is not None else os.path.splitext(path)[1].lstrip(".")
    key = name.lower()
    if key not in WRITE_FORMATS:
        raise _fail(path, f"unsupported output format '{name}' (use {' or '.join(WRITE_FORMATS)})")
    return WRITE_FORMATS[key]


def _output_subtype(path: str, fmt: str, bits: str) -> str:
    key = str(bits).lower()
    if key not in WRITE_BITS:
        raise _fail(path, f"unsupported bit depth '{bits}' (use {', '.join(WRITE_BITS)})")
    subtype = WRITE_BITS[key]
    if not sf.check_format(fmt, subtype):
        raise _fail(path, f"{fmt} cannot store {key}-bit samples")
    return subtype


def _quantise(data: np.ndarray, subtype: str) -> np.ndarray:
    """``(channels, frames)`` float -> ``(frames, channels)`` samples ready for ``subtype``.

    PCM is rounded to the nearest step and clipped to the representable range (never wrapped); 24-bit
    goes in the top bits of int32, as libsndfile expects.
    """
    x = data.T
    if subtype == "FLOAT":
        return np.ascontiguousarray(x, dtype=np.float32)
    bits = 16 if subtype == "PCM_16" else 24
    full = 2 ** (bits - 1)
    q = np.clip(np.round(x.astype(np.float64) * full), -full, full - 1)
    if bits == 16:
        return np.ascontiguousarray(q, dtype=np.int16)
    return np.ascontiguousarray(q, dtype=np.int32) << 8


def write_audio(
    path: str | os.PathLike,
    data: np.ndarray,
    sample_rate: int,
    format: str | None = None,
    bits: str = "24",
    group: WriteGroup | None = None,
) -> None:
    """Atomically write ``data`` (float ``(channels, frames)`` or mono ``(frames,)``, full scale 1.0).

    ``format`` is ``"wav"`` or ``"flac"`` (default: from the extension); ``bits`` is ``"16"``, ``"24"``
    or ``"32f"`` (float, WAV only). Samples should already lie in [-1, 1); PCM output is clipped rather
    than wrapped. On any failure the destination is left untouched, no temporary file remains and
    :class:`AudioError` is raised (a full disk says so, with the folder). With ``group`` the file is
    only staged there: it lands when the group commits, together with the group's other files.
    """
    path = os.fspath(path)
    fmt = _output_format(path, format)
    subtype = _output_subtype(path, fmt, bits)
    data = np.asarray(data)
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2 or data.shape[0] not in (1, _MAX_CHANNELS):
        raise _fail(path, f"expected 1 or 2 channels shaped (channels, frames), got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.floating):
        raise _fail(path, f"expected floating-point samples, got {data.dtype}")
    if not np.isfinite(data).all():
        raise _fail(path, "refusing to write NaN or infinite samples")
    rate = _positive_int(sample_rate)
    if rate is None:
        raise _fail(path, f"invalid sample rate {sample_rate!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise _fail(path, "destination folder does not exist")
    samples = _quantise(data, subtype)

    def write(tmp: str) -> None:
        with sf.SoundFile(tmp, "w", rate, samples.shape[1], subtype, format=fmt) as f:
            f.write(samples)

    try:
        if group is not None:
            write(group.add(path))
            return
        with WriteGroup() as own:
            write(own.add(path))
            own.commit()
    except Exception as exc:
        raise AudioError(str(write_error(exc, path))) from exc


class AudioWriter:
    """Write audio block by block; the file lands only on :meth:`commit` (an existing ``path`` is
    untouched until then) and :meth:`abort` drops it. Same formats, bit depths and quantisation as
    :func:`write_audio`. With ``group`` (a :class:`core.fileio.WriteGroup`) the file is staged there
    and lands when the group commits, together with the group's other files; :meth:`commit` then only
    finishes writing it.

    Use as a context manager: leaving the block without :meth:`commit` (or on an exception) aborts.
    """

    def __init__(self, path: str | os.PathLike, channels: int, sample_rate: int, format: str | None = None,
                 bits: str = "24", group: WriteGroup | None = None):
        self.path = os.fspath(path)
        self._fmt = _output_format(self.path, format)
        self._subtype = _output_subtype(self.path, self._fmt, bits)
        rate = _positive_int(sample_rate)
        if rate is None:
            raise _fail(self.path, f"invalid sample rate {sample_rate!r}")
        if channels not in (1, _MAX_CHANNELS):
            raise _fail(self.path, f"expected 1 or 2 channels, got {channels}")
        self.channels = channels
        if not os.path.isdir(os.path.dirname(os.path.abspath(self.path))):
            raise _fail(self.path, "destination folder does not exist")
        self._own = group is None
        self._group = WriteGroup() if group is None else group
        self._file = None
        try:
            tmp = self._group.add(self.path)
            self._file = sf.SoundFile(tmp, "w", rate, channels, self._subtype, format=self._fmt)
        except Exception as exc:
            self.abort()
            raise AudioError(str(write_error(exc, self.path))) from exc

    def write(self, block: np.ndarray) -> None:
        """Append ``block`` (float ``(channels, n)``, full scale 1.0; PCM is clipped, not wrapped)."""
        if self._file is None:
            raise _fail(self.path, "writer is closed")
        if not np.isfinite(block).all():
            self.abort()
            raise _fail(self.path, "refusing to write NaN or infinite samples")
        try:
            self._file.write(_quantise(np.asarray(block), self._subtype))
        except Exception as exc:
            self.abort()
            raise AudioError(str(write_error(exc, self.path))) from exc

    def commit(self) -> None:
        """Finish the file; without a group, also move it to ``path``."""
        try:
            if self._file is not None:
                self._file.close()
                self._file = None
            if self._own:
                self._group.commit()
        except Exception as exc:
            self.abort()
            raise AudioError(str(write_error(exc, self.path))) from exc

    def abort(self) -> None:
        """Drop what was written; ``path`` stays as it was (with a group, the group removes the file)."""
        if self._file is not None:
            try:
                self._file.close()
            except Exception:
                pass
            self._file = None
        if self._own:
            self._group.abort()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._file is not None or (self._own and not self._group.committed):
            self.abort()
