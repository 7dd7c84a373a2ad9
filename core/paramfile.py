"""Console parameter sets as JSON: what ``stylemix mix --params-out`` writes and ``render`` reads.

Format (all values physical, keys from :mod:`core.params`)::

    {"schema": "v1-…", "sample_rate": 44100,
     "tracks": [{"file": "stems/bass.flac", "name": "bass", "stereo": false, "params": {"gain_db": -3.0, …}}],
     "master": {"gain_db": 0.0, …}}

A file written for another console schema (fingerprint mismatch) is refused with a one-line error.

Parameter values are read by :func:`read_values` and written by :func:`values_json`, here and in
sessions (:mod:`core.session`): strictly for params files (the first problem is an error), leniently
for sessions (each problem repaired and reported as a warning: a session is the user's work).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .fileio import WriteGroup, atomic_write
from .params import MASTER, TRACK, Schema, fingerprint

#: Params and session files larger than this are refused before they are read (a 64-track session is
#: a few hundred kB).
MAX_JSON_BYTES = 8 << 20
#: Integers with more digits than this are refused while parsing (no parameter needs them).
_MAX_INT_DIGITS = 30


class ParamsError(ValueError):
    """A params or locks specification that cannot be used; the message is one line for the user."""


@dataclass
class MixParams:
    """Physical parameters of a whole console.

    ``tracks``: (N, len(TRACK)) float64, ``master``: (len(MASTER),) float64, rows in ``names`` order.
    """

    names: list[str]
    tracks: np.ndarray
    master: np.ndarray
    files: list[str] = field(default_factory=list)
    stereo: list[bool] = field(default_factory=list)
    sample_rate: int = 44100

    @classmethod
    def defaults(cls, names: list[str], **kw) -> MixParams:
        n = len(names)
        return cls(list(names), np.tile(TRACK.defaults(), (n, 1)), MASTER.defaults(), **kw)

    def copy(self) -> MixParams:
        return MixParams(list(self.names), self.tracks.copy(), self.master.copy(), list(self.files),
                         list(self.stereo), self.sample_rate)

    def track_dict(self, i: int) -> dict[str, float]:
        return TRACK.to_dict(self.tracks[i])

    def master_dict(self) -> dict[str, float]:
        return MASTER.to_dict(self.master)

    def to_json(self) -> dict:
        tracks = []
        for i, name in enumerate(self.names):
            entry = {"name": name}
            if i < len(self.files):
                entry["file"] = self.files[i]
            if i < len(self.stereo):
                entry["stereo"] = bool(self.stereo[i])
            entry["params"] = values_json(TRACK, self.tracks[i])
            tracks.append(entry)
        return {"schema": fingerprint(), "sample_rate": int(self.sample_rate), "tracks": tracks,
                "master": values_json(MASTER, self.master)}

    def select(self, names: list[str], where: str = "params") -> MixParams:
        """Rows re-ordered to ``names``; a name the set lacks is an error naming it."""
        row = {n: i for i, n in reversed(list(enumerate(self.names)))}
        missing = [n for n in names if n not in row]
        if missing:
            more = len(self.names) - 20
            have = ", ".join(self.names[:20]) + (f" and {more} more" if more > 0 else "")
            raise ParamsError(f"{where}: no parameters for track(s) {', '.join(missing)} (file has {have})")
        idx = [row[n] for n in names]
        return MixParams(list(names), self.tracks[idx].copy(), self.master.copy(),
                         [self.files[i] for i in idx] if self.files else [],
                         [self.stereo[i] for i in idx] if self.stereo else [], self.sample_rate)


def is_finite_number(value) -> bool:
    """A JSON number (not a bool) that is finite as a float (huge integers are not)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def short_repr(value, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters: a hostile value never floods a message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


# --- parameter values: the one reader and the one serialiser -------------------------------------------

def values_json(schema: Schema, vector) -> dict[str, float]:
    """Physical values in ``schema`` order -> ``{key: value}`` rounded to 6 decimals (params and
    session files)."""
    return {k: round(float(v), 6) for k, v in schema.to_dict(vector).items()}


def read_values(data, schema: Schema, where: str, *, warnings: list[str] | None = None,
                base: np.ndarray | None = None) -> np.ndarray:
    """A parsed ``{key: value}`` object -> physical values in ``schema`` order.

    Keys it lacks keep ``base`` (default: the schema's defaults). Strict when ``warnings`` is None:
    the first unknown key, non-finite or non-number value, or value outside the range (beyond 1e-6)
    raises :class:`ParamsError`, one line starting with ``where``. Lenient when ``warnings`` is a
    list: unknown keys are ignored, bad values keep ``base``, out-of-range values are clipped, and
    each is appended to ``warnings`` as one line; a ``data`` that is not an object gives ``base``.
    """
    strict = warnings is None
    vec = schema.defaults() if base is None else np.array(base, dtype=np.float64)
    if not isinstance(data, dict):
        if strict:
            raise ParamsError(f"{where}: expected an object of parameter values")
        if data is not None:
            warnings.append(f"{where}: parameters are not a set of key/value pairs ({short_repr(data)}); "
                            f"defaults used")
        return vec
    for key, value in data.items():
        if key not in schema:
            if strict:
                raise ParamsError(f"{where}: unknown {schema.name} parameter {short_repr(key)}")
            warnings.append(f"{where}: unknown parameter {short_repr(key)} ignored")
            continue
        if not is_finite_number(value):
            if strict:
                raise ParamsError(f"{where}: {key} must be a finite number, got {short_repr(value)}")
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            what = "is not finite" if number else "is not a number"
            warnings.append(f"{where}: {key} {what} ({short_repr(value)}), default used")
            continue
        p = schema[key]
        inside = p.min - 1e-6 <= value <= p.max + 1e-6
        if strict and not inside:
            raise ParamsError(f"{where}: {key} = {value:g} is outside {p.min:g}..{p.max:g}")
        if not inside:
            warnings.append(f"{where}: {key} = {value:g} clipped to {p.min:g}..{p.max:g}")
        vec[schema.index(key)] = float(value) if strict else p.clip(value)
    return vec


def from_json(doc, path: str = "params") -> MixParams:
    """Validate a parsed params document; errors are one line naming ``path`` and the problem."""
    if not isinstance(doc, dict) or "tracks" not in doc or "master" not in doc:
        raise ParamsError(f"{path}: not a stylemix params file (needs 'schema', 'tracks', 'master')")
    if doc.get("schema") != fingerprint():
        raise ParamsError(f"{path}: made for console schema {short_repr(doc.get('schema'))}, "
                          f"this version uses {fingerprint()!r}")
    tracks = doc["tracks"]
    if not isinstance(tracks, list) or not tracks:
        raise ParamsError(f"{path}: 'tracks' must be a non-empty list")
    names, files, stereo, rows, seen = [], [], [], [], set()
    for i, t in enumerate(tracks):
        if not isinstance(t, dict) or "params" not in t:
            raise ParamsError(f"{path}: track {i + 1} has no 'params'")
        for key, kind in (("name", str), ("file", str), ("stereo", bool)):
            if t.get(key) is not None and not isinstance(t[key], kind):
                raise ParamsError(f"{path}: track {i + 1}: '{key}' must be a {kind.__name__}, "
                                  f"got {short_repr(t[key])}")
        name = t.get("name") or Path(t.get("file") or f"track{i + 1}").stem
        if name in seen:  # a set: linear in the number of tracks
            raise ParamsError(f"{path}: track name {short_repr(name)} appears twice")
        seen.add(name)
        names.append(name)
        files.append(t.get("file") or "")
        stereo.append(bool(t.get("stereo", False)))
        rows.append(read_values(t["params"], TRACK, f"{path}: track {short_repr(name)}"))
    master = read_values(doc["master"], MASTER, f"{path}: master")
    sr = doc.get("sample_rate", 44100)
    if not isinstance(sr, int) or isinstance(sr, bool) or not 8000 <= sr <= 384000:
        raise ParamsError(f"{path}: sample_rate must be a whole number of Hz (8000 to 384000), "
                          f"got {short_repr(sr)}")
    return MixParams(names, np.array(rows), master, files, stereo, sr)


class _Refused(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _Refused(f"a number with {len(text.lstrip('-'))} digits")
    return int(text)


def read_json(path: str | os.PathLike, error: type[Exception] = ValueError, max_bytes: int = MAX_JSON_BYTES):
    """Parse a JSON file; any failure is ``error`` with a one-line message naming the file.

    Hostile files fail cleanly: one larger than ``max_bytes`` is refused before it is read, as are
    integers longer than 30 digits and nesting deeper than Python can parse. NaN and Infinity parse
    (as floats) so that the caller can name the keys holding them.
    """
    p = str(path)
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(max_bytes + 1) if size <= max_bytes else b""
    except FileNotFoundError:
        raise error(f"{p}: file not found") from None
    except IsADirectoryError:
        raise error(f"{p}: is a folder, not a file") from None
    except PermissionError:
        raise error(f"{p}: permission denied") from None
    except OSError as e:
        raise error(f"{p}: cannot read ({e.strerror or e.__class__.__name__})") from None
    if max(size, len(data)) > max_bytes:
        raise error(f"{p}: file is {max(size, len(data)) / 1e6:.1f} MB, "
                    f"more than the {max_bytes / 1e6:.0f} MB "
                    f"a stylemix file can be (refused unread)")
    try:
        return json.loads(data.decode("utf-8-sig"), parse_int=_parse_int)
    except UnicodeDecodeError:
        raise error(f"{p}: not valid JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise error(f"{p}: not valid JSON (line {e.lineno}: {e.msg})") from None
    except _Refused as e:
        raise error(f"{p}: not a stylemix file ({e}; refused)") from None
    except RecursionError:
        raise error(f"{p}: not a stylemix file (nested too deeply)") from None
    except ValueError as e:  # e.g. an integer longer than Python converts
        raise error(f"{p}: not valid JSON ({' '.join(str(e).split())[:80]})") from None


def read_params(path: str | os.PathLike) -> MixParams:
    return from_json(read_json(path, ParamsError), str(path))


def json_bytes(doc) -> bytes:
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def write_json_atomic(path: str | os.PathLike, doc) -> None:
    """Write JSON atomically (temp file beside it, then rename): never a partial file."""
    data = json_bytes(doc)
    atomic_write(path, lambda f: f.write(data))


def write_params(path: str | os.PathLike, params: MixParams, group: WriteGroup | None = None) -> None:
    """Write a params file atomically; with ``group``, stage it there (it lands when the group commits)."""
    if group is None:
        write_json_atomic(path, params.to_json())
    else:
        group.write_bytes(path, json_bytes(params.to_json()))


# --- locks and --set ------------------------------------------------------------------------------

def _resolve_keys(key: str, schema: Schema) -> list[str]:
    """A parameter key, or a group name (e.g. 'eq', 'pan') meaning all keys of that group."""
    if key in schema:
        return [key]
    keys = [p.key for p in schema if p.group == key]
    if not keys:
        raise ParamsError(f"unknown {schema.name} parameter or group '{key}'")
    return keys


def lock_masks(specs: list[str], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Parse lock specs -> boolean masks (N, len(TRACK)) and (len(MASTER),).

    Spec forms: ``KEY`` or ``GROUP`` (every track), ``TRACK:KEY`` (one track), ``master:KEY``.
    """
    track = np.zeros((len(names), len(TRACK)), dtype=bool)
    master = np.zeros(len(MASTER), dtype=bool)
    for spec in specs:
        who, _, key = spec.rpartition(":")
        if who == "master":
            for k in _resolve_keys(key, MASTER):
                master[MASTER.index(k)] = True
            continue
        rows = range(len(names)) if not who else [_track_index(who, names)]
        for k in _resolve_keys(key, TRACK):
            for r in rows:
                track[r, TRACK.index(k)] = True
    return track, master


def _track_index(who: str, names: list[str]) -> int:
    if who in names:
        return names.index(who)
    raise ParamsError(f"no track named '{who}' (tracks: {', '.join(names)})")


def apply_sets(params: MixParams, specs: list[str]) -> list[str]:
    """Apply ``[TRACK:|master:]KEY=VALUE`` specs in place; returns the lock specs they imply."""
    locks = []
    for spec in specs:
        target, eq, value = spec.partition("=")
        if not eq:
            raise ParamsError(f"--set '{spec}': expected [TRACK:|master:]KEY=VALUE")
        try:
            v = float(value)
        except ValueError:
            raise ParamsError(f"--set '{spec}': '{value}' is not a number") from None
        who, _, key = target.rpartition(":")
        schema = MASTER if who == "master" else TRACK
        if key not in schema:
            raise ParamsError(f"--set '{spec}': unknown {schema.name} parameter '{key}'")
        p = schema[key]
        if not p.min <= v <= p.max:
            raise ParamsError(f"--set '{spec}': {key} must be within {p.min:g}..{p.max:g}")
        if who == "master":
            params.master[MASTER.index(key)] = v
        else:
            rows = range(len(params.names)) if not who else [_track_index(who, params.names)]
            for r in rows:
                params.tracks[r, TRACK.index(key)] = v
        locks.append(target)
    return locks
