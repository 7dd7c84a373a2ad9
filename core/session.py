"""Sessions: stems, reference, console settings and edit state, saved as versioned JSON.

A ``.stylemix`` file is what the desktop app opens and saves::

    {"format": "stylemix-session", "version": 2, "schema": "v2-…", "sample_rate": 44100,
     "stems": [{"name": "bass", "file": "stems/bass.flac", "stereo": false, "mute": false,
                "solo": false, "params": {…}, "predicted": {…}, "locks": ["gain_db", …]}],
     "reference": "ref.flac",
     "master": {…}, "master_predicted": {…}, "master_locks": […], "fx_mute": false,
     "loop": [4.0, 12.0], "strength": {"level": 1.0, "eq": 1.0, …}}

Audio paths are stored relative to the session file's folder (so a session folder can be moved or
shared), absolute in memory. Saving is atomic. A session that names audio files which are no longer
there still loads completely: :meth:`Session.missing` lists them so the app can offer to relocate
them, and nothing else in the file is dropped.

Autosave copies live in a per-user folder (never beside the user's files); they store absolute paths
and remember which session they belong to, so recovery after a crash works for untitled sessions too.

Older files are upgraded step by step by :data:`_MIGRATIONS` (one function per version), as settings
are in MusicBrainz Picard. No Qt here: the app wraps this model and adds signals and undo.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .audio_io import SUPPORTED_RATES
from .paramfile import (
    MixParams,
    is_finite_number,
    read_json,
    read_values,
    short_repr,
    values_json,
    write_json_atomic,
)
from .params import ADDED_IN, MASTER, STRENGTH_GROUPS, TRACK, Schema, fingerprint

FORMAT = "stylemix-session"
#: 2: the reverb send on every strip and the FX return on the master bus (schema version 2).
SESSION_VERSION = 2
SUFFIX = ".stylemix"


class SessionError(ValueError):
    """A session file that cannot be used; the message is one line naming the file."""


@dataclass
class Stem:
    """One strip's audio file (absolute path in memory) and its UI state."""

    name: str
    path: str
    stereo: bool = False
    mute: bool = False
    solo: bool = False


@dataclass(frozen=True)
class MissingFile:
    """An audio file named by the session that does not exist; ``index`` is -1 for the reference."""

    index: int
    name: str
    path: str


def _empty_locks(n: int) -> np.ndarray:
    return np.zeros((n, len(TRACK)), dtype=bool)


@dataclass
class Session:
    """Everything a user works on. ``params`` rows, ``lock_tracks`` rows and ``stems`` are aligned."""

    stems: list[Stem] = field(default_factory=list)
    params: MixParams = field(default_factory=lambda: MixParams.defaults([]))
    predicted: MixParams | None = None
    lock_tracks: np.ndarray = field(default_factory=lambda: _empty_locks(0))
    lock_master: np.ndarray = field(default_factory=lambda: np.zeros(len(MASTER), dtype=bool))
    reference: str | None = None
    loop: tuple[float, float] | None = None
    strength: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STRENGTH_GROUPS, 1.0))
    sample_rate: int = 44100
    fx_mute: bool = False  # the FX return muted (UI state like a strip's mute; absent in older files)
    path: str | None = None
    warnings: list[str] = field(default_factory=list)

    # -- shape ------------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stems]

    def __len__(self) -> int:
        return len(self.stems)

    @property
    def mute(self) -> np.ndarray:
        return np.array([s.mute for s in self.stems], dtype=bool)

    @property
    def solo(self) -> np.ndarray:
        return np.array([s.solo for s in self.stems], dtype=bool)

    def sync_params(self) -> None:
        """Copy names, files and stereo flags from the stems into the parameter sets."""
        for mp in (self.params, self.predicted):
            if mp is not None:
                mp.names = self.names
                mp.files = [s.path for s in self.stems]
                mp.stereo = [s.stereo for s in self.stems]
                mp.sample_rate = self.sample_rate

    # -- editing rows -----------------------------------------------------------------------------
    def insert_stems(self, index: int, stems: list[Stem], rows: np.ndarray,
                     predicted_rows: np.ndarray | None = None, lock_rows: np.ndarray | None = None) -> None:
        """Insert strips at ``index`` with their (k, len(TRACK)) parameter rows."""
        k = len(stems)
        rows = np.asarray(rows, dtype=np.float64).reshape(k, len(TRACK))
        self.stems[index:index] = stems
        self.params.tracks = np.insert(self.params.tracks.reshape(-1, len(TRACK)), index, rows, axis=0)
        locks = _empty_locks(k) if lock_rows is None else np.asarray(lock_rows, bool).reshape(k, -1)
        self.lock_tracks = np.insert(self.lock_tracks.reshape(-1, len(TRACK)), index, locks, axis=0)
        if self.predicted is not None:
            pred = rows if predicted_rows is None else predicted_rows
            self.predicted.tracks = np.insert(self.predicted.tracks, index, pred, axis=0)
        self.sync_params()

    def remove_stems(self, index: int, count: int = 1) -> tuple[list[Stem], np.ndarray, np.ndarray | None,
                                                                   np.ndarray]:
        """Remove ``count`` strips from ``index``; returns what :meth:`insert_stems` needs to undo it."""
        sl = slice(index, index + count)
        stems = self.stems[sl]
        rows, locks = self.params.tracks[sl].copy(), self.lock_tracks[sl].copy()
        pred = self.predicted.tracks[sl].copy() if self.predicted is not None else None
        del self.stems[sl]
        self.params.tracks = np.delete(self.params.tracks, np.s_[sl], axis=0)
        self.lock_tracks = np.delete(self.lock_tracks, np.s_[sl], axis=0)
        if self.predicted is not None:
            self.predicted.tracks = np.delete(self.predicted.tracks, np.s_[sl], axis=0)
        self.sync_params()
        return stems, rows, pred, locks

    # -- files ------------------------------------------------------------------------------------
    def missing(self) -> list[MissingFile]:
        """Audio files (stems, then the reference) that do not exist."""
        out = [MissingFile(i, s.name, s.path) for i, s in enumerate(self.stems) if not os.path.isfile(s.path)]
        if self.reference and not os.path.isfile(self.reference):
            out.append(MissingFile(-1, "reference", self.reference))
        return out

    def relocate(self, old_path: str, new_path: str) -> int:
        """Point every use of ``old_path`` at ``new_path``; returns how many were changed."""
        changed = 0
        for s in self.stems:
            if s.path == old_path:
                s.path, changed = os.path.abspath(new_path), changed + 1
        if self.reference == old_path:
            self.reference, changed = os.path.abspath(new_path), changed + 1
        self.sync_params()
        return changed

    # -- JSON -------------------------------------------------------------------------------------
    def to_json(self, base_dir: str | None) -> dict:
        """Document with audio paths relative to ``base_dir`` (absolute when ``base_dir`` is None)."""
        self.sync_params()
        stems = [_stem_json(self, i, base_dir) for i in range(len(self.stems))]
        doc = {"format": FORMAT, "version": SESSION_VERSION, "schema": fingerprint(),
               "sample_rate": int(self.sample_rate), "stems": stems,
               "reference": _store_path(self.reference, base_dir) if self.reference else None,
               "master": values_json(MASTER, self.params.master),
               "master_locks": _lock_keys(MASTER, self.lock_master), "fx_mute": bool(self.fx_mute),
               "loop": list(self.loop) if self.loop else None,
               "strength": {g: float(self.strength.get(g, 1.0)) for g in STRENGTH_GROUPS}}
        if self.predicted is not None:
            doc["master_predicted"] = values_json(MASTER, self.predicted.master)
        return doc


def _stem_json(s: Session, i: int, base_dir: str | None) -> dict:
    stem = s.stems[i]
    entry = {"name": stem.name, "file": _store_path(stem.path, base_dir), "stereo": bool(stem.stereo),
             "mute": bool(stem.mute), "solo": bool(stem.solo),
             "params": values_json(TRACK, s.params.tracks[i]), "locks": _lock_keys(TRACK, s.lock_tracks[i])}
    if s.predicted is not None:
        entry["predicted"] = values_json(TRACK, s.predicted.tracks[i])
    return entry


def _lock_keys(schema: Schema, mask) -> list[str]:
    return [k for k, on in zip(schema.keys, np.asarray(mask, bool), strict=True) if on]


def _store_path(path: str, base_dir: str | None) -> str:
    """Relative with forward slashes when ``base_dir`` is given (portable across systems)."""
    if base_dir is None:
        return os.path.abspath(path)
    try:
        return Path(os.path.relpath(os.path.abspath(path), os.path.abspath(base_dir))).as_posix()
    except ValueError:  # another drive on Windows: no relative path exists
        return os.path.abspath(path)


def _load_path(stored: str, base_dir: str) -> str:
    return os.path.normpath(os.path.join(base_dir, stored))


# --- reading ----------------------------------------------------------------------------------------

def _add_reverb(doc: dict) -> dict:
    """Version 1 -> 2: every strip's send to the new reverb is off and the FX return at its defaults,
    written out, so the session mixes as it did (a send at its default is off: exactly no reverb)."""
    doc = dict(doc)
    defaults = {"track": TRACK.default_dict(), "master": MASTER.default_dict()}
    added = ADDED_IN[2]

    def fill(values, schema: str):
        if not isinstance(values, dict):
            return values  # the reader reports it
        return {**values, **{k: defaults[schema][k] for k in added[schema] if k not in values}}

    stems = doc.get("stems")
    if isinstance(stems, list):
        doc["stems"] = [{**e, **{k: fill(e[k], "track") for k in ("params", "predicted") if k in e}}
                        if isinstance(e, dict) else e for e in stems]
    for key in ("master", "master_predicted"):
        if key in doc:
            doc[key] = fill(doc[key], "master")
    if doc.get("schema") == fingerprint(1):  # the same console, plus the reverb
        doc["schema"] = fingerprint()
    return doc


#: version -> function upgrading a document from that version to the next.
_MIGRATIONS: dict[int, Callable[[dict], dict]] = {1: _add_reverb}


def _migrate(doc: dict, where: str) -> dict:
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise SessionError(f"{where}: session has no valid 'version'")
    if version > SESSION_VERSION:
        raise SessionError(f"{where}: made by a newer stylemix (session version {version}, "
                           f"this one reads up to {SESSION_VERSION})")
    while version < SESSION_VERSION:
        doc = _MIGRATIONS[version](doc)
        version = doc["version"] = version + 1
    return doc


class _Reader:
    """Lenient reading of parameter values: unknown keys and out-of-range values become warnings.

    A session is the user's work, so a value that no longer fits (an older console's range) is
    clipped and reported rather than refusing the whole file; a non-finite value (NaN, Infinity, a
    number too large for a float) or a value of the wrong type is replaced by the default, with a
    warning naming the key.
    """

    def __init__(self, where: str, schema_ok: bool):
        self.where = where
        self.warnings: list[str] = []
        if not schema_ok:
            self.warnings.append(f"{where}: saved for another console version; values were mapped by name")

    def values(self, schema: Schema, data, label: str, base: np.ndarray) -> np.ndarray:
        return read_values(data, schema, label, warnings=self.warnings, base=base)

    def flag(self, entry: dict, key: str, label: str) -> bool:
        value = entry.get(key, False)
        if isinstance(value, bool):
            return value
        self.warnings.append(f"{label}: '{key}' is not true/false ({_short(value)}), false used")
        return False

    def locks(self, schema: Schema, data, label: str) -> np.ndarray:
        if data is not None and not isinstance(data, list):
            self.warnings.append(f"{label}: locks are not a list ({_short(data)}); nothing locked")
        keys = [k for k in (data if isinstance(data, list) else []) if isinstance(k, str) and k in schema]
        mask = np.zeros(len(schema), dtype=bool)
        mask[[schema.index(k) for k in keys]] = True
        return mask


_is_number = is_finite_number
_short = short_repr


def from_json(doc, base_dir: str, where: str = "session") -> Session:
    """Build a :class:`Session` from a parsed document; relative paths are resolved against base_dir."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SessionError(f"{where}: not a stylemix session")
    doc = _migrate(doc, where)
    rd = _Reader(where, doc.get("schema") == fingerprint())
    stems_doc = doc.get("stems") or []
    if not isinstance(stems_doc, list):
        raise SessionError(f"{where}: 'stems' must be a list")
    from .engine import StreamingConsole

    if len(stems_doc) > StreamingConsole.MAX_TRACKS:
        raise SessionError(f"{where}: has {len(stems_doc)} stems; the console takes at most "
                           f"{StreamingConsole.MAX_TRACKS}")
    stems, rows, preds, locks = [], [], [], []
    has_pred = bool(stems_doc) and all(isinstance(s, dict) and "predicted" in s for s in stems_doc)
    for i, entry in enumerate(stems_doc):
        stem, row, pred, lock = _read_stem(entry, i, base_dir, rd)
        stems.append(stem), rows.append(row), preds.append(pred), locks.append(lock)
    sr = doc.get("sample_rate", SUPPORTED_RATES[0])
    if not isinstance(sr, int) or isinstance(sr, bool) or sr not in SUPPORTED_RATES:
        rd.warnings.append(f"{where}: sample_rate {_short(sr)} is not one of "
                           f"{', '.join(map(str, SUPPORTED_RATES))} Hz; {SUPPORTED_RATES[0]} used")
        sr = SUPPORTED_RATES[0]
    s = Session(stems=stems, sample_rate=sr, path=None)
    names = [st.name for st in stems]
    s.params = MixParams(names, np.array(rows).reshape(-1, len(TRACK)),
                         rd.values(MASTER, doc.get("master"), "master", MASTER.defaults()), sample_rate=sr)
    if has_pred or ("master_predicted" in doc and not stems_doc):
        s.predicted = MixParams(names, np.array(preds).reshape(-1, len(TRACK)),
                                rd.values(MASTER, doc.get("master_predicted"), "master", MASTER.defaults()),
                                sample_rate=sr)
    s.lock_tracks = np.array(locks, dtype=bool).reshape(-1, len(TRACK))
    s.lock_master = rd.locks(MASTER, doc.get("master_locks"), "master")
    s.fx_mute = rd.flag(doc, "fx_mute", "FX return")
    ref = doc.get("reference")
    s.reference = _load_path(ref, base_dir) if isinstance(ref, str) and ref else None
    s.loop = _read_loop(doc.get("loop"), rd)
    s.strength = _read_strength(doc.get("strength"), rd)
    s.warnings = rd.warnings
    s.sync_params()
    return s


def _read_stem(entry, i: int, base_dir: str, rd: _Reader):
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise SessionError(f"{rd.where}: stem {i + 1} has no 'file'")
    path = _load_path(entry["file"], base_dir)
    name = entry.get("name") if isinstance(entry.get("name"), str) and entry.get("name") else Path(path).stem
    label = f"stem {_short(name)}"
    stem = Stem(name, path, *(rd.flag(entry, k, label) for k in ("stereo", "mute", "solo")))
    row = rd.values(TRACK, entry.get("params"), label, TRACK.defaults())
    pred = rd.values(TRACK, entry.get("predicted"), f"{label} (predicted)", row)
    return stem, row, pred, rd.locks(TRACK, entry.get("locks"), label)


def _read_loop(loop, rd: _Reader) -> tuple[float, float] | None:
    if loop is None:
        return None
    if isinstance(loop, (list, tuple)) and len(loop) == 2 and all(_is_number(v) for v in loop):
        a, b = float(loop[0]), float(loop[1])
        if 0 <= a < b:
            return a, b
    rd.warnings.append(f"loop {_short(loop)} is not a valid [start, end] in seconds; no loop")
    return None


def _read_strength(data, rd: _Reader) -> dict[str, float]:
    out = dict.fromkeys(STRENGTH_GROUPS, 1.0)
    if isinstance(data, dict):
        for g in STRENGTH_GROUPS:
            if g not in data:
                continue
            if _is_number(data[g]):
                out[g] = min(1.0, max(0.0, float(data[g])))
            else:
                rd.warnings.append(f"strength: {g} is not a finite number ({_short(data[g])}), 1.0 used")
    return out


def _read_doc(path: str) -> dict:
    return read_json(path, SessionError)


def _parse(doc, base_dir: str, where: str) -> Session:
    """:func:`from_json`, with anything a hostile document provokes turned into a :class:`SessionError`."""
    try:
        return from_json(doc, base_dir, where)
    except SessionError:
        raise
    except (TypeError, ValueError, AttributeError, LookupError, OverflowError, RecursionError) as exc:
        reason = " ".join(str(exc).split())[:100] or type(exc).__name__
        raise SessionError(f"{where}: damaged session file ({reason})") from None


def load_session(path: str | os.PathLike) -> Session:
    """Read a session file. Missing audio does not fail here: see :meth:`Session.missing`.

    Any problem with the file itself is a :class:`SessionError` naming it; values that cannot be used
    (NaN, wrong types, out of range) are repaired and listed in ``warnings``.
    """
    path = os.path.abspath(os.fspath(path))
    s = _parse(_read_doc(path), os.path.dirname(path), path)
    s.path = path
    return s


def save_session(path: str | os.PathLike, session: Session) -> None:
    """Write atomically with paths relative to the file's folder; the session remembers the path."""
    path = os.path.abspath(os.fspath(path))
    write_json_atomic(path, session.to_json(os.path.dirname(path)))
    session.path = path


# --- autosave and recovery --------------------------------------------------------------------------

def autosave_dir() -> Path:
    """Per-user folder for autosave copies (``STYLEMIX_AUTOSAVE_DIR`` overrides it)."""
    override = os.environ.get("STYLEMIX_AUTOSAVE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "stylemix" / "autosave"


def autosave_path(session_path: str | None) -> Path:
    """Where the autosave copy of ``session_path`` (None: the untitled session) lives."""
    if not session_path:
        return autosave_dir() / f"untitled{SUFFIX}"
    full = os.path.abspath(session_path)
    digest = hashlib.sha1(full.encode("utf-8")).hexdigest()[:10]
    return autosave_dir() / f"{Path(full).stem}-{digest}{SUFFIX}"


def write_autosave(session: Session) -> Path:
    """Save a recovery copy (absolute paths, plus the session it belongs to)."""
    target = autosave_path(session.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    doc = session.to_json(None)
    doc["autosave"] = {"origin": session.path, "time": time.time()}
    write_json_atomic(target, doc)
    return target


def find_autosave(session_path: str | None) -> Path | None:
    """The autosave copy of a session if it exists and is newer than the session file itself."""
    target = autosave_path(session_path)
    if not target.is_file():
        return None
    if session_path and os.path.isfile(session_path):
        if target.stat().st_mtime <= os.path.getmtime(session_path):
            return None
    return target


def recover_autosave(autosave: str | os.PathLike) -> Session:
    """Load an autosave copy; the result belongs to the original session path (if any)."""
    doc = _read_doc(os.fspath(autosave))
    s = _parse(doc, os.path.dirname(os.fspath(autosave)), os.fspath(autosave))
    info = doc.get("autosave")
    origin = info.get("origin") if isinstance(info, dict) else None
    s.path = origin if isinstance(origin, str) else None
    return s


def discard_autosave(session_path: str | None) -> None:
    target = autosave_path(session_path)
    if target.exists():
        target.unlink()


# --- relocation ---------------------------------------------------------------------------------------

def search_folder(missing: list[MissingFile], folder: str, depth: int = 3) -> dict[str, str]:
    """Find missing files by file name under ``folder`` (a moved session folder): old -> new path."""
    wanted = {os.path.basename(m.path).casefold(): m.path for m in missing}
    found: dict[str, str] = {}
    root_depth = Path(folder).resolve().as_posix().count("/")
    for dirpath, dirnames, filenames in os.walk(folder):
        if Path(dirpath).resolve().as_posix().count("/") - root_depth >= depth:
            dirnames[:] = []
        for name in filenames:
            old = wanted.get(name.casefold())
            if old is not None and old not in found:
                found[old] = os.path.join(dirpath, name)
    return found


# --- strength -----------------------------------------------------------------------------------------

def strength_masks() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Group -> (track mask, master mask) of the parameters that group's strength blends."""
    none_t, none_m = np.zeros(len(TRACK), bool), np.zeros(len(MASTER), bool)
    out = {g: (TRACK.group_mask(g) & TRACK.predicted_mask, none_m) for g in STRENGTH_GROUPS if g != "master"}
    out["master"] = (none_t, MASTER.predicted_mask.copy())
    return out


def blend(neutral: MixParams, predicted: MixParams, strength: dict[str, float]) -> MixParams:
    """Neutral -> predicted per strength group (0 = neutral, 1 = predicted), in the schema's unit space.

    Blending in unit space moves frequencies, Q, times and ratio along their logarithmic scales, as
    the knobs show them. Parameters outside every group (the trims) come from ``predicted``.
    """
    out = predicted.copy()
    ut_n, ut_p = TRACK.to_unit(neutral.tracks), TRACK.to_unit(predicted.tracks)
    um_n, um_p = MASTER.to_unit(neutral.master), MASTER.to_unit(predicted.master)
    for group, (mt, mm) in strength_masks().items():
        s = float(strength.get(group, 1.0))
        if s >= 1.0:
            continue
        if mt.any() and len(out.tracks):
            out.tracks[:, mt] = TRACK.from_unit(ut_n + s * (ut_p - ut_n))[:, mt]
        if mm.any():
            out.master[mm] = MASTER.from_unit(um_n + s * (um_p - um_n))[mm]
    return out
