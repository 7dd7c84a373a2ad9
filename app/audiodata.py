"""Audio of a session as the console needs it (no Qt): loading files, building :class:`core.prepare.Inputs`.

Stems whose files are missing (or unreadable) become silent placeholders, so a session with a moved
file still opens with every strip and every setting; the strip shows the problem instead.
"""

from __future__ import annotations

from core.audio_io import Audio, AudioError, load_audio
from core.params import TRACK
from core.prepare import Inputs, from_audio, trim_for
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
    """Stems padded to one length, trims from the session's current parameters; None without stems.

    The same construction as ``stylemix mix`` (:func:`core.prepare.from_audio`); a stem whose file
    could not be read is a silent placeholder."""
    if not session.stems:
        return None
    sr = session.sample_rate
    have = [audio.get(s.path) for s in session.stems]
    ref = audio.get(session.reference) if session.reference else None
    return from_audio([a if isinstance(a, Audio) else None for a in have], sr,
                      ref if isinstance(ref, Audio) else None, names=session.names,
                      files=[s.path for s in session.stems], stereo=[s.stereo for s in session.stems],
                      trim_db=session.params.tracks[:, TRACK.index("trim_db")].copy(),
                      empty_frames=int(_EMPTY_SECONDS * sr))
