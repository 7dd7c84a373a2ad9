"""Training data from local folders: multitracks and reference songs.

Multitrack layouts (``layout=`` in :func:`scan_multitracks`; ``"auto"`` picks one per root):

* ``"synth"`` -- what :mod:`training.synth` writes: ``ROOT/<song>/song.json`` + ``<stem>.flac``.
* ``"medleydb"`` -- MedleyDB: ``ROOT/<song>/<song>_RAW/*.wav`` (the raw tracks; the ``_MIX`` and
  ``_STEMS`` folders are ignored).
* ``"folders"`` -- one folder of raw tracks per song (Cambridge-mt multitrack downloads, Slakh-like
  exports): ``ROOT/<song>/**/<audio files>`` up to two levels down; a file whose name says it is a mix
  (``mix``, ``master``, ``reference``) is left out.

References (``scan_references``): every audio file under a folder, at any depth (MTG-Jamendo:
``ROOT/00/1234.mp3``).

Scanning reads file headers, plus each file's integrated loudness once (cached in a JSON index when
``cache=`` is given): a stem is trimmed to :data:`core.prepare.STEM_LUFS` by its *whole-file* loudness,
exactly as at import, and a reference is normalised to :data:`core.prepare.REFERENCE_LUFS` the same way.
Sections are then read straight from the files (no whole-song decode).

Silence (DESIGN.md section 1, "skip sections whose mean energy is below 1e-3"): energies are measured
on the signal normalised to the reference level (-16 LUFS, where full-scale music has a mean energy of
about 0.03), so a section counts as silent when it is about 15 dB or more below its file's average.
Silent track sections are left out of an example; silent reference sections are never used.

Command line::

    # a data set of generated songs (realistic by default; size estimate and disk check first,
    # progress with ETA; --resume continues an interrupted run; --dry-run prints the estimate only)
    python -m training.datasets synth data/synth_real --songs 1000 --seed 1 [--seconds 30] [--bits 16]
                                      [--jobs 1] [--realism full|off] [--no-dry-mix] [--resume]
    # a reference folder from generated songs, e.g. for method 2 on synthetic data
    python -m training.datasets references data/synth_train data/synth_refs --per-song 2 --seed 7
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from core.audio_io import AUDIO_EXTENSIONS
from core.features import integrated_lufs
from core.params import TRACK
from core.predict import SILENCE_ENERGY
from core.prepare import REFERENCE_LUFS, STEM_LUFS

LAYOUTS = ("synth", "medleydb", "folders")
_MIX_WORDS = ("mix", "master", "reference")


class DatasetError(ValueError):
    """A data folder that cannot be used; the message names the folder and the problem."""


@dataclass
class AudioFile:
    """One audio file as training sees it: header facts and its integrated loudness (LUFS, -inf if silent)."""

    path: str
    frames: int
    sample_rate: int
    channels: int
    lufs: float

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate

    @property
    def silent(self) -> bool:
        return not math.isfinite(self.lufs)


@dataclass
class Song:
    """A multitrack: its raw tracks (any count, any mix of mono and stereo)."""

    name: str
    tracks: list[AudioFile]

    @property
    def seconds(self) -> float:
        return max(t.seconds for t in self.tracks)

    @property
    def playing(self) -> list[AudioFile]:
        return [t for t in self.tracks if not t.silent]


# --- scanning -----------------------------------------------------------------------------------------

def _is_audio(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS)


def _audio_below(folder: Path, depth: int | None) -> list[Path]:
    """Audio files under ``folder`` (``depth`` levels of subfolders, None = any), sorted, hidden skipped."""
    out = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name.lower()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and _is_audio(entry.name):
            out.append(Path(entry.path))
        elif entry.is_dir() and (depth is None or depth > 0):
            out += _audio_below(Path(entry.path), None if depth is None else depth - 1)
    return out


def _subfolders(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name.lower())


class _Index:
    """Header + loudness of files, cached in a JSON file keyed by path, size and modification time."""

    def __init__(self, cache: str | os.PathLike | None):
        self.path = Path(cache) if cache else None
        self.entries: dict[str, dict] = {}
        self.dirty = False
        if self.path and self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self.entries = {}

    def get(self, path: Path, lufs: float | None = None) -> AudioFile:
        st = path.stat()
        key = str(path.resolve())
        e = self.entries.get(key)
        if e is None or e.get("size") != st.st_size or e.get("mtime") != st.st_mtime:
            try:
                info = sf.info(str(path))
            except (sf.SoundFileError, RuntimeError, OSError) as exc:
                raise DatasetError(f"{path}: not a readable audio file ({exc})") from None
            if lufs is None:
                data, _ = sf.read(str(path), dtype="float32", always_2d=True)
                lufs = integrated_lufs(data.T[:2], int(info.samplerate)) if len(data) else -math.inf
            e = {"size": st.st_size, "mtime": st.st_mtime, "frames": int(info.frames),
                 "sample_rate": int(info.samplerate), "channels": int(info.channels),
                 "lufs": float(lufs) if math.isfinite(lufs) else None}
            self.entries[key] = e
            self.dirty = True
        lufs_v = e["lufs"] if e["lufs"] is not None else -math.inf
        return AudioFile(str(path), e["frames"], e["sample_rate"], e["channels"], lufs_v)

    def save(self) -> None:
        if self.path and self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.entries))
            tmp.replace(self.path)
            self.dirty = False


def detect_layout(root: str | os.PathLike) -> str:
    """``"synth"``, ``"medleydb"`` or ``"folders"`` from the first song folders under ``root``."""
    root = Path(root)
    songs = _subfolders(root)
    if not songs:
        raise DatasetError(f"{root}: no song folders")
    for song in songs[:8]:
        if (song / "song.json").is_file():
            return "synth"
        if (song / f"{song.name}_RAW").is_dir():
            return "medleydb"
    return "folders"


def _synth_song(folder: Path, index: _Index) -> Song | None:
    meta_path = folder / "song.json"
    if not meta_path.is_file():  # incomplete (song.json is written last)
        return None
    meta = json.loads(meta_path.read_text())
    tracks = []
    for s in meta.get("stems", []):
        lufs = s.get("lufs")
        tracks.append(index.get(folder / s["file"], -math.inf if lufs is None else float(lufs)))
    return Song(folder.name, tracks) if tracks else None


def _medleydb_song(folder: Path, index: _Index) -> Song | None:
    raw = folder / f"{folder.name}_RAW"
    if not raw.is_dir():
        return None
    files = _audio_below(raw, 0)
    return Song(folder.name, [index.get(p) for p in files]) if files else None


def _folder_song(folder: Path, index: _Index) -> Song | None:
    files = [p for p in _audio_below(folder, 2) if not any(w in p.stem.lower() for w in _MIX_WORDS)]
    return Song(folder.name, [index.get(p) for p in files]) if files else None


_READERS = {"synth": _synth_song, "medleydb": _medleydb_song, "folders": _folder_song}


def scan_multitracks(roots: str | os.PathLike | Sequence[str | os.PathLike], layout: str = "auto",
                     cache: str | os.PathLike | None = None, min_tracks: int = 1,
                     songs: Sequence[str] | None = None) -> list[Song]:
    """Songs under one or more roots, sorted by name. ``songs`` keeps only those names (a split).

    Songs with fewer than ``min_tracks`` non-silent tracks are skipped. Raises :class:`DatasetError`
    when nothing usable is found.
    """
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    if layout != "auto" and layout not in LAYOUTS:
        raise DatasetError(f"unknown multitrack layout '{layout}' (use auto, {', '.join(LAYOUTS)})")
    index = _Index(cache)
    found: list[Song] = []
    keep = set(songs) if songs is not None else None
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: folder not found")
        kind = detect_layout(root) if layout == "auto" else layout
        for folder in _subfolders(root):
            if keep is not None and folder.name not in keep:
                continue
            song = _READERS[kind](folder, index)
            if song is not None and len(song.playing) >= min_tracks:
                found.append(song)
    index.save()
    if not found:
        raise DatasetError(f"{', '.join(str(r) for r in roots)}: no usable multitracks "
                           f"(layout {layout}, at least {min_tracks} non-silent tracks)")
    return sorted(found, key=lambda s: s.name)


def scan_references(roots: str | os.PathLike | Sequence[str | os.PathLike],
                    cache: str | os.PathLike | None = None, min_seconds: float = 1.0) -> list[AudioFile]:
    """Every non-silent audio file of at least ``min_seconds`` under the roots, at any depth."""
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    index = _Index(cache)
    out = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: folder not found")
        for path in _audio_below(root, None):
            f = index.get(path)
            if not f.silent and f.seconds >= min_seconds:
                out.append(f)
    index.save()
    if not out:
        raise DatasetError(f"{', '.join(str(r) for r in roots)}: no usable reference audio files")
    return out


def split_songs(songs: list[Song], held_out: float, seed: int = 0) -> tuple[list[Song], list[Song]]:
    """Deterministic (train, held-out) split by song; ``held_out`` is a fraction or a count."""
    n_out = int(round(held_out * len(songs))) if held_out < 1 else int(held_out)
    order = np.random.default_rng(seed).permutation(len(songs))
    out_idx = set(order[:n_out].tolist())
    train = [s for i, s in enumerate(songs) if i not in out_idx]
    return train, [s for i, s in enumerate(songs) if i in out_idx]


# --- reading sections -----------------------------------------------------------------------------------

def read_section(f: AudioFile, start_s: float, seconds: float, sample_rate: int) -> np.ndarray:
    """``(2, round(seconds * sample_rate))`` float32 from ``start_s``: resampled, mono duplicated,
    zero-padded past the end of the file."""
    n_out = int(round(seconds * sample_rate))
    start = max(0, int(round(start_s * f.sample_rate)))
    count = int(math.ceil(seconds * f.sample_rate)) + 1
    with sf.SoundFile(f.path) as h:
        if start < h.frames:
            h.seek(start)
            data = h.read(min(count, h.frames - start), dtype="float32", always_2d=True)
        else:
            data = np.zeros((0, h.channels), np.float32)
    data = data[:, :2]
    if data.shape[1] == 1:
        data = np.repeat(data, 2, axis=1)
    if f.sample_rate != sample_rate and len(data):
        import soxr

        data = soxr.resample(data, f.sample_rate, sample_rate).astype(np.float32)
    out = np.zeros((2, n_out), np.float32)
    m = min(n_out, data.shape[0])
    out[:, :m] = data[:m].T
    return out


def gain_to(f: AudioFile, target_lufs: float) -> float:
    """Linear gain that brings the whole file to ``target_lufs`` (1 for silence; within the trim range)."""
    if f.silent:
        return 1.0
    return 10.0 ** (TRACK["trim_db"].clip(target_lufs - f.lufs) / 20.0)


def energy_at_reference_level(x: np.ndarray, f: AudioFile) -> float:
    """Mean energy of section ``x`` of file ``f`` when the whole file sits at REFERENCE_LUFS."""
    return float(np.mean(np.square(x, dtype=np.float64))) * gain_to(f, REFERENCE_LUFS) ** 2


def is_silent(x: np.ndarray, f: AudioFile, threshold: float = SILENCE_ENERGY) -> bool:
    return f.silent or energy_at_reference_level(x, f) < threshold


@dataclass
class MultitrackSection:
    """Tracks of one song section, console-ready: trimmed to STEM_LUFS (as at import).

    tracks: (N, 2, L) float32; stereo: (N,) bool; names: track file stems.
    """

    song: str
    start_s: float
    tracks: np.ndarray
    stereo: np.ndarray
    names: list[str]


def sample_section(song: Song, seconds: float, sample_rate: int, rng: np.random.Generator,
                   max_tracks: int = 16, min_tracks: int = 1, tries: int = 8) -> MultitrackSection | None:
    """A random section of ``song`` with at least ``min_tracks`` non-silent tracks (at most ``max_tracks``,
    a random subset when there are more), or ``None`` when ``tries`` random starts all fail."""
    playing = song.playing
    if len(playing) < min_tracks:
        return None
    for _ in range(tries):
        start = float(rng.uniform(0.0, max(0.0, song.seconds - seconds)))
        tracks, stereo, names = [], [], []
        for f in playing:
            x = read_section(f, start, seconds, sample_rate)
            if is_silent(x, f):
                continue
            tracks.append(x * gain_to(f, STEM_LUFS))
            stereo.append(f.channels >= 2)  # as at import: a two-channel file is a stereo strip
            names.append(Path(f.path).stem)
        if len(tracks) >= min_tracks:
            if len(tracks) > max_tracks:
                keep = np.sort(rng.choice(len(tracks), max_tracks, replace=False))
                tracks = [tracks[i] for i in keep]
                stereo = [stereo[i] for i in keep]
                names = [names[i] for i in keep]
            return MultitrackSection(song.name, start, np.stack(tracks).astype(np.float32),
                                     np.array(stereo, bool), names)
    return None


def sample_reference(refs: Sequence[AudioFile], seconds: float, sample_rate: int, rng: np.random.Generator,
                     tries: int = 8) -> np.ndarray | None:
    """A random non-silent ``(2, L)`` section of a random reference, normalised to REFERENCE_LUFS."""
    for _ in range(tries):
        f = refs[int(rng.integers(len(refs)))]
        start = float(rng.uniform(0.0, max(0.0, f.seconds - seconds)))
        x = read_section(f, start, seconds, sample_rate)
        if not is_silent(x, f):
            return (x * gain_to(f, REFERENCE_LUFS)).astype(np.float32)
    return None


# --- reference folders from generated songs -------------------------------------------------------------

def write_references(song_root: str | os.PathLike, out_dir: str | os.PathLike, per_song: int = 1,
                     seed: int = 0, master_share: float = 0.5, progress: bool = True) -> list[Path]:
    """Plain or mastered stereo mixes (:func:`training.synth.reference_mix`) of every generated song in
    ``song_root``, as ``out_dir/<song>_<k>.flac`` at -16 LUFS. Deterministic for a seed; existing files
    are kept."""
    from tqdm import tqdm

    from training.synth import load_song, reference_mix

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    folders = [p for p in _subfolders(Path(song_root)) if (p / "song.json").is_file()]
    written = []
    for i, folder in enumerate(tqdm(folders, unit="song", disable=not progress)):
        paths = [out_dir / f"{folder.name}_{k}.flac" for k in range(per_song)]
        if all(p.is_file() for p in paths):
            written += paths
            continue
        meta, stems, sr = load_song(folder)
        for k, path in enumerate(paths):
            rng = np.random.default_rng([int(seed), i, k])
            mix = reference_mix(stems, sr, rng, master=bool(rng.random() < master_share))
            tmp = path.with_name(path.stem + ".tmp.flac")
            sf.write(str(tmp), mix, sr, subtype="PCM_24", format="FLAC")
            tmp.replace(path)
            written.append(path)
    return written


# --- generated data sets ------------------------------------------------------------------------------

#: FLAC bytes per second of one stem channel at 44.1 kHz, by bits, measured on realistic songs (their
#: noise floors keep silences from compressing to nothing; the default mode's stems compress better,
#: so this is an upper bound for them), and of the 16-bit stereo dry mix.
SYNTH_STEM_BYTES_PER_S = {16: 29_700, 24: 74_500}
SYNTH_MIX_BYTES_PER_S = 81_700
#: Seconds of CPU per second of song (one job on this 2-core machine, FluidSynth and numpy together).
SYNTH_CPU_PER_SONG_S = 0.16
_SETTINGS_FILE = "dataset.json"


def estimate_synth(n_songs: int, seed: int, seconds: float = 30.0, sample_rate: int = 44100, bits: int = 16,
                   realism: str = "full", dry_mix: bool = True, genre: str | None = None,
                   sample: int = 24) -> dict:
    """Disk and time a generated data set will take, from the plans of its first ``sample`` songs
    (composed, not rendered: stem count and channels) and the measured rates above."""
    from training.synth import compose_song, song_seed

    channels = []
    for i in range(min(sample, n_songs)):
        plan = compose_song(song_seed(seed, i), seconds, genre, realism=realism)
        channels.append(sum(1 if p.stereo == "mono" else 2 for p in plan.parts))
    per_s = float(np.mean(channels)) * SYNTH_STEM_BYTES_PER_S[bits]
    if dry_mix and realism == "full":
        per_s += SYNTH_MIX_BYTES_PER_S
    mb = per_s * seconds * sample_rate / 44100 / 1e6
    return {"songs": n_songs, "channels_per_song": round(float(np.mean(channels)), 2),
            "mb_per_song": round(mb, 2), "gb_total": round(mb * n_songs / 1e3, 2),
            "cpu_s_per_song": round(SYNTH_CPU_PER_SONG_S * seconds * sample_rate / 44100, 1)}


def _song_dirs(out_dir: Path) -> list[Path]:
    return sorted(p.parent for p in out_dir.glob("song_*/song.json")) if out_dir.is_dir() else []


def synth_dataset(out_dir: str | os.PathLike, n_songs: int, seed: int = 1, seconds: float = 30.0,
                  sample_rate: int = 44100, bits: int = 16, jobs: int = 1, genre: str | None = None,
                  realism: str = "full", dry_mix: bool = True, resume: bool = False, dry_run: bool = False,
                  progress: bool = True, log=print) -> list[Path]:
    """Generate (or continue) a data set of ``n_songs`` songs in ``out_dir`` (via
    :func:`training.synth.generate`).

    Prints the size and time estimate first and refuses to start when it would not fit on the disk; a
    folder that already holds songs needs ``resume=True`` and the same settings (kept in
    ``dataset.json``). Finished songs are kept, so an interrupted run continues where it stopped.
    """
    import shutil
    import time

    from training.synth import SOUNDFONT, generate, have_fluidsynth

    out_dir = Path(out_dir)
    if n_songs < 1:
        raise DatasetError(f"{out_dir}: --songs must be at least 1")
    if seconds < 30.0 and realism == "full":
        log(f"note: {seconds:g} s songs; the realistic data set is meant to have songs of 30 s or more")
    settings = {"seed": int(seed), "seconds": float(seconds), "sample_rate": int(sample_rate),
                "bits": int(bits), "genre": genre, "realism": realism, "dry_mix": bool(dry_mix)}
    have = _song_dirs(out_dir)
    settings_path = out_dir / _SETTINGS_FILE
    if have and not resume:
        raise DatasetError(f"{out_dir}: already holds {len(have)} songs; pass --resume to continue it "
                           "or choose another folder")
    if resume and settings_path.is_file():
        old = json.loads(settings_path.read_text())
        diff = sorted(k for k in settings if old.get(k) != settings[k])
        if diff:
            raise DatasetError(f"{out_dir}: was generated with other settings ({', '.join(diff)}: "
                               f"{', '.join(str(old.get(k)) for k in diff)}); --resume needs the same")
    est = estimate_synth(n_songs, seed, seconds, sample_rate, bits, realism, dry_mix, genre)
    todo = max(n_songs - len(have), 0)
    need_gb = est["mb_per_song"] * todo / 1e3
    probe = out_dir if out_dir.exists() else next(p for p in out_dir.parents if p.exists())
    free_gb = shutil.disk_usage(probe).free / 1e9
    hours = est["cpu_s_per_song"] * todo / max(jobs, 1) / 3600
    log(f"estimate: {est['mb_per_song']:.1f} MB per song ({est['channels_per_song']:.1f} stem channels, "
        f"{bits}-bit FLAC), {need_gb:.1f} GB for {todo} songs to make ({len(have)} there already); "
        f"{free_gb:.1f} GB free; about {hours:.1f} h at {est['cpu_s_per_song']:.0f} s per song, "
        f"{jobs} job(s)")
    if need_gb > 0.95 * free_gb:
        raise DatasetError(f"{out_dir}: needs about {need_gb:.1f} GB but only {free_gb:.1f} GB are free "
                           "(fewer --songs, --bits 16, --no-dry-mix or shorter --seconds)")
    if dry_run:
        return have
    if not have_fluidsynth(SOUNDFONT):
        raise DatasetError(f"{out_dir}: generating needs the fluidsynth program and the soundfont "
                           f"{SOUNDFONT} (scripts/setup-train.sh)")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = settings_path.with_name(f".{_SETTINGS_FILE}.tmp")
    tmp.write_text(json.dumps(settings, indent=2) + "\n")
    tmp.replace(settings_path)
    start = time.monotonic()
    songs = generate(out_dir, n_songs, seed, seconds, sample_rate, jobs, genre, progress=progress,
                     subtype=f"PCM_{bits}", realism=realism, dry_mix=dry_mix)
    elapsed = time.monotonic() - start
    size = sum(f.stat().st_size for song in songs for f in song.iterdir() if f.is_file())
    log(f"{len(songs)} songs in {out_dir}: {size / 1e9:.2f} GB, {size / 1e6 / max(len(songs), 1):.1f} MB per "
        f"song" + (f"; {elapsed / todo:.1f} s per new song" if todo else ""))
    return songs


def describe(songs: Sequence[Song]) -> dict:
    """Counts for logs and model cards: songs, tracks, hours."""
    n_tracks = [len(s.playing) for s in songs]
    return {"songs": len(songs), "tracks": int(sum(n_tracks)),
            "tracks_min": int(min(n_tracks, default=0)), "tracks_max": int(max(n_tracks, default=0)),
            "hours": round(sum(s.seconds for s in songs) / 3600.0, 3)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.datasets", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("synth", help="generate a data set of synthetic songs (estimate, progress, --resume)")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--songs", type=int, default=1000, help="songs in the data set (default 1000)")
    p.add_argument("--seed", type=int, default=1, help="data set seed; song i gets its own seed from it")
    p.add_argument("--seconds", type=float, default=30.0, help="song length (default 30)")
    p.add_argument("--sample-rate", type=int, default=44100)
    p.add_argument("--bits", type=int, choices=(16, 24), default=16, help="FLAC sample format of the stems")
    p.add_argument("--jobs", type=int, default=1, help="songs rendered in parallel")
    p.add_argument("--genre", default=None, help="one genre for every song (default: drawn per song)")
    p.add_argument("--realism", choices=("full", "off"), default="full",
                   help="full: song form, recorded kits, bleed, noise, dry mix (default); "
                        "off: the original songs")
    p.add_argument("--no-dry-mix", dest="dry_mix", action="store_false", help="do not write mix.flac")
    p.add_argument("--resume", action="store_true", help="continue a data set in a folder that has songs")
    p.add_argument("--dry-run", action="store_true", help="print the estimate and stop")
    p = sub.add_parser("references", help="write reference mixes of generated songs")
    p.add_argument("song_root", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--per-song", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--master-share", type=float, default=0.5, help="fraction of mastered references")
    p = sub.add_parser("scan", help="print what a data folder holds")
    p.add_argument("root", type=Path)
    p.add_argument("--layout", default="auto", choices=("auto", *LAYOUTS))
    p.add_argument("--references", action="store_true", help="scan as a reference folder")
    args = parser.parse_args(argv)
    try:
        if args.command == "synth":
            from training.synth import GENRES

            if args.genre is not None and args.genre not in GENRES:
                raise DatasetError(f"unknown genre '{args.genre}' (use {', '.join(sorted(GENRES))})")
            synth_dataset(args.out_dir, args.songs, args.seed, args.seconds, args.sample_rate, args.bits,
                          args.jobs, args.genre, args.realism, args.dry_mix, args.resume, args.dry_run)
        elif args.command == "references":
            paths = write_references(args.song_root, args.out_dir, args.per_song, args.seed,
                                     args.master_share)
            print(f"{len(paths)} references in {args.out_dir}")
        elif args.references:
            refs = scan_references(args.root)
            hours = round(sum(r.seconds for r in refs) / 3600, 3)
            print(json.dumps({"references": len(refs), "hours": hours}))
        else:
            print(json.dumps(describe(scan_multitracks(args.root, args.layout))))
    except DatasetError as exc:
        print(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

