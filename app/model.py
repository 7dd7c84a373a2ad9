"""The app's model: a :class:`core.session.Session` plus its audio, with signals and one undo stack.

Widgets never change the session themselves: they call the ``edit``-style methods here, which push
undo commands (:mod:`app.commands`); the commands call the ``raw_*`` setters, which change the session
and emit the signals every view follows. Track index ``-1`` means the master bus everywhere.
"""

from __future__ import annotations

import itertools

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from core.audio_io import Audio, AudioError
from core.paramfile import MixParams
from core.params import MASTER, TRACK, Schema
from core.session import STRENGTH_GROUPS, Session, Stem, blend, strength_masks

from . import commands
from .audiodata import build_inputs, import_trim

MASTER_TRACK = -1


def schema_for(track: int) -> Schema:
    return MASTER if track == MASTER_TRACK else TRACK


class MixModel(QObject):
    """See the module docstring. ``inputs`` is None until the session's audio has been read."""

    paramChanged = Signal(int, str, float)  # track, key, value
    consoleReset = Signal()  # many values (and maybe the prediction) changed at once
    stripsChanged = Signal()  # strips added or removed: views rebuild
    lockChanged = Signal(int, str, bool)
    flagChanged = Signal(int)  # mute/solo of a strip; MASTER_TRACK: the FX return's mute
    predictedChanged = Signal()
    referenceChanged = Signal()
    loopChanged = Signal()
    strengthChanged = Signal(str, float)
    audioChanged = Signal()  # inputs rebuilt (new audio, strips, reference)
    sessionChanged = Signal()  # a different session: views rebuild everything
    modified = Signal()  # anything in the session changed (autosave, analysis, playback)
    dirtyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.session = Session()
        self.audio: dict[str, Audio | AudioError] = {}
        self.inputs = None
        self.undo = QUndoStack(self)
        self.undo.cleanChanged.connect(self._clean_changed)
        self._gestures = itertools.count(1)
        self._extra_dirty = False

    # -- reading ------------------------------------------------------------------------------------
    @property
    def n_tracks(self) -> int:
        return len(self.session.stems)

    def value(self, track: int, key: str) -> float:
        vec = self.session.params.master if track == MASTER_TRACK else self.session.params.tracks[track]
        return float(vec[schema_for(track).index(key)])

    def predicted_value(self, track: int, key: str) -> float | None:
        pred = self.session.predicted
        if pred is None:
            return None
        vec = pred.master if track == MASTER_TRACK else pred.tracks[track]
        return float(vec[schema_for(track).index(key)])

    def is_locked(self, track: int, key: str) -> bool:
        mask = self.session.lock_master if track == MASTER_TRACK else self.session.lock_tracks[track]
        return bool(mask[schema_for(track).index(key)])

    def neutral(self) -> MixParams:
        """The equal-loudness console: defaults everywhere, the current trims."""
        mp = MixParams.defaults(self.session.names, sample_rate=self.session.sample_rate)
        ti = TRACK.index("trim_db")
        mp.tracks[:, ti] = self.session.params.tracks[:, ti]
        return mp

    @property
    def dirty(self) -> bool:
        return not self.undo.isClean() or self._extra_dirty

    def _clean_changed(self, clean: bool) -> None:
        # uses the argument, not the stack: this may arrive while the stack is being destroyed
        self.dirtyChanged.emit(not clean or self._extra_dirty)

    def mark_saved(self) -> None:
        self._extra_dirty = False
        self.undo.setClean()
        self.dirtyChanged.emit(False)

    def new_gesture(self) -> int:
        return next(self._gestures)

    # -- whole session ----------------------------------------------------------------------------
    def set_session(self, session: Session, audio: dict | None = None, dirty: bool = False) -> None:
        """Show another session (undo history starts over). ``audio`` adds already-read files."""
        self.session = session
        self.session.sync_params()
        if audio:
            self.audio.update(audio)
        self.undo.clear()
        self._extra_dirty = dirty
        self.inputs = build_inputs(session, self.audio) if self._have_audio() else None
        self.sessionChanged.emit()
        self.audioChanged.emit()
        self.dirtyChanged.emit(self.dirty)
        self.modified.emit()

    def add_audio(self, audio: dict) -> None:
        """Files read in the background arrive here; the console's inputs are rebuilt."""
        self.audio.update(audio)
        self._rebuild_inputs()

    def _have_audio(self) -> bool:
        return bool(self.session.stems) and all(s.path in self.audio for s in self.session.stems)

    def _rebuild_inputs(self) -> None:
        self.inputs = build_inputs(self.session, self.audio) if self._have_audio() else None
        self.audioChanged.emit()

    def paths_to_load(self) -> list[str]:
        paths = [s.path for s in self.session.stems]
        if self.session.reference:
            paths.append(self.session.reference)
        return [p for p in paths if p not in self.audio]

    def audio_problem(self, path: str) -> str | None:
        a = self.audio.get(path)
        return str(a) if isinstance(a, AudioError) else None

    # -- user edits (undoable) --------------------------------------------------------------------
    def edit(self, track: int, key: str, value: float, gesture: int = 0) -> None:
        """Set one control; edits with the same gesture number merge into one undo step."""
        self.edit_many([(track, key, value)], gesture)

    def edit_many(self, items, gesture: int = 0, text: str | None = None) -> None:
        changes = []
        for track, key, value in items:
            new = schema_for(track)[key].clip(value)
            old = self.value(track, key)
            if new != old:
                changes.append((track, key, old, new))
        if not changes:
            return
        if text is None:
            t, k = changes[0][:2]
            who = "Master" if t == MASTER_TRACK else self.session.stems[t].name
            text = f"{who}: {schema_for(t)[k].label}"
        self.undo.push(commands.SetValues(self, changes, gesture, text))

    def reset_default(self, track: int, key: str) -> None:
        """The schema default; a trim goes back to its import value (loudness normalisation)."""
        default = schema_for(track)[key].default
        if key == "trim_db" and track >= 0:
            audio = self.audio.get(self.session.stems[track].path)
            default = import_trim(audio) if isinstance(audio, Audio) else default
        self.edit(track, key, float(default))

    def reset_predicted(self, track: int, key: str) -> None:
        value = self.predicted_value(track, key)
        if value is not None:
            self.edit(track, key, value)

    def set_locked(self, track: int, keys, on: bool) -> None:
        changes = [(track, k, self.is_locked(track, k), bool(on)) for k in keys]
        changes = [c for c in changes if c[2] != c[3]]
        if changes:
            self.undo.push(commands.SetLocks(self, changes, ("Lock" if on else "Unlock") + " parameters"))

    def set_flag(self, track: int, flag: str, on: bool) -> None:
        if getattr(self.session.stems[track], flag) != bool(on):
            self.undo.push(commands.SetFlag(self, track, flag, bool(on)))

    def set_fx_mute(self, on: bool) -> None:
        """Mute the FX return (the reverb adds nothing to the master bus; its return level is kept)."""
        if self.session.fx_mute != bool(on):
            self.undo.push(commands.SetFxMute(self, bool(on)))

    def add_stems(self, stems: list[Stem], rows: np.ndarray, audio: dict) -> None:
        """Append strips whose audio has been read (``rows``: their parameters, trims set)."""
        self.audio.update(audio)
        text = f"Add {len(stems)} track{'s' if len(stems) != 1 else ''}"
        self.undo.push(commands.InsertStrips(self, self.n_tracks, stems, rows, text))

    def remove_strip(self, track: int) -> None:
        self.undo.push(commands.RemoveStrips(self, track, 1, f"Remove {self.session.stems[track].name}"))

    def set_reference(self, path: str | None, audio: dict | None = None) -> None:
        if audio:
            self.audio.update(audio)
        if path != self.session.reference:
            self.undo.push(commands.SetReference(self, self.session.reference, path))

    def set_loop(self, region: tuple[float, float] | None) -> None:
        """Loop region in seconds (not an undo step: it is transport state, saved with the session)."""
        region = None if region is None else (float(region[0]), float(region[1]))
        if region != self.session.loop:
            self.session.loop = region
            self._extra_dirty = True
            self.loopChanged.emit()
            self.dirtyChanged.emit(True)
            self.modified.emit()

    # -- prediction and strength ------------------------------------------------------------------------
    def blended(self, predicted: MixParams, strength: dict | None = None) -> MixParams:
        """The console a prediction gives: strength blend, locked values and trims kept as they are."""
        target = blend(self.neutral(), predicted, strength or self.session.strength)
        cur = self.session.params
        keep_t = self.session.lock_tracks | ~TRACK.predicted_mask[None, :]
        target.tracks = np.where(keep_t, cur.tracks, target.tracks)
        target.master = np.where(self.session.lock_master, cur.master, target.master)
        return target

    def apply_prediction(self, predicted: MixParams, keep_tracks=None, keep_master=None) -> None:
        """Fill the console from a prediction in one undo step; locked controls keep their values, and
        so do those in ``keep_tracks`` ``(N, len(TRACK))`` / ``keep_master`` (bool masks: controls the
        user changed while Predict ran)."""
        predicted = predicted.copy()
        predicted.names = self.session.names
        new = self.blended(predicted)
        cur = self.session.params
        if keep_tracks is not None:
            new.tracks = np.where(keep_tracks, cur.tracks, new.tracks)
        if keep_master is not None:
            new.master = np.where(keep_master, cur.master, new.master)
        old = (self.session.params, self.session.predicted)
        self.undo.push(commands.SetConsole(self, old, (new, predicted), "Apply prediction"))

    def set_strength(self, group: str, value: float, gesture: int = 0) -> None:
        old = self.session.strength[group]
        value = min(1.0, max(0.0, float(value)))
        if value == old:
            return
        pred = self.session.predicted
        new = self.session.params.copy()
        if pred is not None:
            strength = dict(self.session.strength, **{group: value})
            target = self.blended(pred, strength)
            mt, mm = strength_masks()[group]
            new.tracks[:, mt] = target.tracks[:, mt]
            new.master[mm] = target.master[mm]
        self.undo.push(commands.SetStrength(self, group, old, value, self.session.params, new, gesture))

    def reset_all(self, to: str) -> None:
        """Every unlocked control to its predicted (``"predicted"``) or default (``"default"``) value."""
        if to == "predicted" and self.session.predicted is None:
            return
        source = self.session.predicted if to == "predicted" else self.neutral()
        new = self.blended(source, dict.fromkeys(STRENGTH_GROUPS, 1.0))
        old = (self.session.params, self.session.predicted)
        text = "Reset to predicted" if to == "predicted" else "Reset to defaults"
        self.undo.push(commands.SetConsole(self, old, (new, self.session.predicted), text))

    # -- raw setters (called by undo commands only) -----------------------------------------------------
    def raw_set_value(self, track: int, key: str, value: float) -> None:
        p = self.session.params
        if track == MASTER_TRACK:
            p.master[MASTER.index(key)] = value
        else:
            p.tracks[track, TRACK.index(key)] = value
        if key == "trim_db" and self.inputs is not None and track >= 0:
            self.inputs.trim_db[track] = value
        self.paramChanged.emit(track, key, float(value))
        self.modified.emit()

    def raw_set_console(self, params: MixParams, predicted: MixParams | None) -> None:
        had_pred = self.session.predicted
        self.session.params = params.copy()
        self.session.predicted = predicted.copy() if predicted is not None else None
        self.session.sync_params()
        if self.inputs is not None:
            self.inputs.trim_db[:] = self.session.params.tracks[:, TRACK.index("trim_db")]
        self.consoleReset.emit()
        if had_pred is not predicted:
            self.predictedChanged.emit()
        self.modified.emit()

    def raw_set_strength(self, group: str, value: float) -> None:
        self.session.strength[group] = value
        self.strengthChanged.emit(group, value)

    def raw_set_lock(self, track: int, key: str, on: bool) -> None:
        if track == MASTER_TRACK:
            self.session.lock_master[MASTER.index(key)] = on
        else:
            self.session.lock_tracks[track, TRACK.index(key)] = on
        self.lockChanged.emit(track, key, on)
        self.modified.emit()

    def raw_set_flag(self, track: int, flag: str, on: bool) -> None:
        setattr(self.session.stems[track], flag, on)
        self.flagChanged.emit(track)
        self.modified.emit()

    def raw_set_fx_mute(self, on: bool) -> None:
        self.session.fx_mute = bool(on)
        self.flagChanged.emit(MASTER_TRACK)
        self.modified.emit()

    def raw_insert(self, index, stems, rows, pred, locks) -> None:
        self.session.insert_stems(index, stems, rows, pred, locks)
        self._strips_changed()

    def raw_remove(self, index: int, count: int):
        taken = self.session.remove_stems(index, count)
        self._strips_changed()
        return taken

    def _strips_changed(self) -> None:
        self.stripsChanged.emit()
        self._rebuild_inputs()
        self.modified.emit()

    def raw_set_reference(self, path: str | None) -> None:
        self.session.reference = path
        self.referenceChanged.emit()
        self._rebuild_inputs()
        self.modified.emit()
