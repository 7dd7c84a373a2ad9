"""Console parameter sets as JSON: what ``stylemix mix --params-out`` writes and ``render`` reads.

Format (all values physical, keys from :mod:`core.params`)::

    {"schema": "v1-…", "sample_rate": 44100,
     "tracks": [{"file": "stems/bass.flac", "name": "bass", "stereo": false, "params": {"gain_db": -3.0, …}}],
     "master": {"gain_db": 0.0, …}}

A file written for another console schema (fingerprint mismatch) is refused with a one-line error.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .fileio import atomic_write
from .params import MASTER, TRACK, Schema, fingerprint


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
            entry["params"] = _rounded(self.track_dict(i))
            tracks.append(entry)
        return {"schema": fingerprint(), "sample_rate": int(self.sample_rate), "tracks": tracks,
                "master": _rounded(self.master_dict())}

    def select(self, names: list[str], where: str = "params") -> MixParams:
        """Rows re-ordered to ``names``; a name the set lacks is an error naming it."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise ParamsError(f"{where}: no parameters for track(s) {', '.join(missing)} "
                              f"(file has {', '.join(self.names)})")
        idx = [self.names.index(n) for n in names]
        return MixParams(list(names), self.tracks[idx].copy(), self.master.copy(),
                         [self.files[i] for i in idx] if self.files else [],
                         [self.stereo[i] for i in idx] if self.stereo else [], self.sample_rate)


def _rounded(d: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 6) for k, v in d.items()}


def _check_values(values, schema: Schema, where: str) -> np.ndarray:
    if not isinstance(values, dict):
        raise ParamsError(f"{where}: expected an object of parameter values")
    for key, value in values.items():
        if key not in schema:
            raise ParamsError(f"{where}: unknown {schema.name} parameter '{key}'")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ParamsError(f"{where}: {key} must be a finite number, got {value!r}")
        p = schema[key]
        if not (p.min - 1e-6 <= value <= p.max + 1e-6):
            raise ParamsError(f"{where}: {key} = {value:g} is outside {p.min:g}..{p.max:g}")
    return schema.to_vector(values)


def from_json(doc, path: str = "params") -> MixParams:
    """Validate a parsed params document; errors are one line naming ``path`` and the problem."""
    if not isinstance(doc, dict) or "tracks" not in doc or "master" not in doc:
        raise ParamsError(f"{path}: not a stylemix params file (needs 'schema', 'tracks', 'master')")
    if doc.get("schema") != fingerprint():
        raise ParamsError(f"{path}: made for console schema {doc.get('schema')!r}, "
                          f"this version uses {fingerprint()!r}")
    tracks = doc["tracks"]
    if not isinstance(tracks, list) or not tracks:
        raise ParamsError(f"{path}: 'tracks' must be a non-empty list")
    names, files, stereo, rows = [], [], [], []
    for i, t in enumerate(tracks):
        if not isinstance(t, dict) or "params" not in t:
            raise ParamsError(f"{path}: track {i + 1} has no 'params'")
        name = str(t.get("name") or Path(str(t.get("file", f"track{i + 1}"))).stem)
        if name in names:
            raise ParamsError(f"{path}: track name '{name}' appears twice")
        names.append(name)
        files.append(str(t.get("file", "")))
        stereo.append(bool(t.get("stereo", False)))
        rows.append(_check_values(t["params"], TRACK, f"{path}: track '{name}'"))
    master = _check_values(doc["master"], MASTER, f"{path}: master")
    sr = doc.get("sample_rate", 44100)
    if not isinstance(sr, int) or sr <= 0:
        raise ParamsError(f"{path}: sample_rate must be a positive integer")
    return MixParams(names, np.array(rows), master, files, stereo, sr)


def read_json(path: str | os.PathLike, error: type[Exception] = ValueError):
    """Parse a JSON file; any failure is ``error`` with a one-line message naming the file."""
    p = str(path)
    try:
        with open(p, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise error(f"{p}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{p}: cannot read ({e.__class__.__name__})") from None
    except json.JSONDecodeError as e:
        raise error(f"{p}: not valid JSON (line {e.lineno}: {e.msg})") from None


def read_params(path: str | os.PathLike) -> MixParams:
    return from_json(read_json(path, ParamsError), str(path))


def write_json_atomic(path: str | os.PathLike, doc) -> None:
    """Write JSON atomically (temp file beside it, then rename): never a partial file."""
    data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def write_params(path: str | os.PathLike, params: MixParams) -> None:
    write_json_atomic(path, params.to_json())


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
