"""Audio of a session as the console needs it (no Qt): loading files, building :class:`core.prepare.Inputs`.

Stems whose files are missing (or unreadable) become silent placeholders, so a session with a moved
file still opens with every strip and every setting; the strip shows the problem instead.
"""

from __future__ import annotations

import numpy as np

from core.audio_io import Audio, AudioError, load_audio, to_stereo
from core.params import TRACK
from core.prepare import Inputs, trim_for
from core.session import Session

#: Length of an all-silent session (no audio could be read), so the engine still has frames.
_EMPTY_SECONDS = 1.0


def load_files(paths, sample_rate: int, progress=None, references=()) -> dict[str, Audio | AudioError]:
    """Read each path; a file that fails maps to its :class:`AudioError` (the message names it).

    Stems that are mostly DC are high-passed as ``stylemix mix`` does (see :func:`dc_notes`); paths in
    ``references`` are read as they are.
    """
    out: dict[str, Audio | AudioError] = {}
    paths = list(dict.fromkeys(paths))
    for i, path in enumerate(paths):
        if progress is not None and progress(i, len(paths), f"Loading {path}"):
            break
        try:
            out[path] = load_audio(path, sample_rate, remove_mostly_dc=path not in references)
        except AudioError as exc:
            out[path] = exc
    return out


def dc_notes(audio: dict) -> list[str]:
    """One warning per loaded stem whose DC was removed."""
    return [f"{a.path} is mostly DC ({a.dc_removed:.0%} of its energy); DC removed"
            for a in audio.values() if isinstance(a, Audio) and a.dc_removed]


def import_trim(audio: Audio) -> float:
    """Trim that loudness-normalises a newly added stem (as ``stylemix mix`` does at import)."""
    return trim_for(audio.data, audio.sample_rate, audio.silent)


def build_inputs(session: Session, audio: dict[str, Audio | AudioError]) -> Inputs | None:
    """Stems padded to one length, trims from the session's current parameters; None without stems."""
    if not session.stems:
        return None
    sr = session.sample_rate
    have = [audio.get(s.path) for s in session.stems]
    frames = max([a.frames for a in have if isinstance(a, Audio)] or [int(_EMPTY_SECONDS * sr)])
    data = np.zeros((len(have), 2, frames), np.float32)
    for i, a in enumerate(have):
        if isinstance(a, Audio):
            n = min(frames, a.frames)
            data[i, :, :n] = to_stereo(a.data)[:, :n]
    silent = np.array([not isinstance(a, Audio) or a.silent for a in have])
    ref = audio.get(session.reference) if session.reference else None
    ref_data = to_stereo(ref.data).astype(np.float32) if isinstance(ref, Audio) else None
    return Inputs(session.names, [s.path for s in session.stems], data,
                  np.array([s.stereo for s in session.stems]), silent,
                  session.params.tracks[:, TRACK.index("trim_db")].copy(), sr, ref_data,
                  session.reference if ref_data is not None else None)
