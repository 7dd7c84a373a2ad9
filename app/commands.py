"""Undo commands: the only way the console changes (orange-canvas-core style).

Each command holds old and new values and calls the model's raw setters, which emit the signals the
widgets follow. A gesture (a fader drag, a burst of wheel steps, an EQ handle drag) carries one
gesture number; commands of the same gesture merge, so one drag is one undo step.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QUndoCommand

from core.paramfile import MixParams

_ID_VALUES, _ID_STRENGTH = 1, 2


class SetValues(QUndoCommand):
    """Change parameters: ``changes`` = [(track, key, old, new)], track -1 = master."""

    def __init__(self, model, changes, gesture: int, text: str):
        super().__init__(text)
        self.model, self.changes, self.gesture = model, list(changes), gesture

    def id(self) -> int:
        return _ID_VALUES

    def mergeWith(self, other) -> bool:
        if not isinstance(other, SetValues) or other.gesture != self.gesture or self.gesture <= 0:
            return False
        mine = {(t, k): i for i, (t, k, _, _) in enumerate(self.changes)}
        for t, k, old, new in other.changes:
            if (t, k) in mine:
                i = mine[(t, k)]
                self.changes[i] = (t, k, self.changes[i][2], new)
            else:
                self.changes.append((t, k, old, new))
        return True

    def redo(self) -> None:
        for t, k, _, new in self.changes:
            self.model.raw_set_value(t, k, new)

    def undo(self) -> None:
        for t, k, old, _ in reversed(self.changes):
            self.model.raw_set_value(t, k, old)


class SetConsole(QUndoCommand):
    """Swap the whole console (and the prediction): apply prediction, reset all, strength moves."""

    def __init__(self, model, old: tuple[MixParams, MixParams | None],
                 new: tuple[MixParams, MixParams | None], text: str):
        super().__init__(text)
        self.model = model
        self.old = (old[0].copy(), old[1].copy() if old[1] is not None else None)
        self.new = (new[0].copy(), new[1].copy() if new[1] is not None else None)

    def redo(self) -> None:
        self.model.raw_set_console(*self.new)

    def undo(self) -> None:
        self.model.raw_set_console(*self.old)


class SetStrength(QUndoCommand):
    """Move a strength control: the blend target of that group follows, in one step per drag."""

    def __init__(self, model, group: str, old: float, new: float, console_old: MixParams,
                 console_new: MixParams, gesture: int):
        super().__init__(f"Strength {group}")
        self.model, self.group, self.gesture = model, group, gesture
        self.old, self.new = old, new
        self.c_old, self.c_new = console_old.copy(), console_new.copy()

    def id(self) -> int:
        return _ID_STRENGTH

    def mergeWith(self, other) -> bool:
        if not isinstance(other, SetStrength) or other.gesture != self.gesture or other.group != self.group:
            return False
        self.new, self.c_new = other.new, other.c_new
        return True

    def redo(self) -> None:
        self.model.raw_set_strength(self.group, self.new)
        self.model.raw_set_console(self.c_new, self.model.session.predicted)

    def undo(self) -> None:
        self.model.raw_set_strength(self.group, self.old)
        self.model.raw_set_console(self.c_old, self.model.session.predicted)


class SetLocks(QUndoCommand):
    """Lock or unlock parameters: ``changes`` = [(track, key, old, new)]."""

    def __init__(self, model, changes, text: str):
        super().__init__(text)
        self.model, self.changes = model, list(changes)

    def redo(self) -> None:
        for t, k, _, new in self.changes:
            self.model.raw_set_lock(t, k, new)

    def undo(self) -> None:
        for t, k, old, _ in reversed(self.changes):
            self.model.raw_set_lock(t, k, old)


class SetFlag(QUndoCommand):
    """Mute or solo of one strip."""

    def __init__(self, model, track: int, flag: str, on: bool):
        name = model.session.stems[track].name
        super().__init__(f"{'Mute' if flag == 'mute' else 'Solo'} {name}")
        self.model, self.track, self.flag, self.on = model, track, flag, on

    def redo(self) -> None:
        self.model.raw_set_flag(self.track, self.flag, self.on)

    def undo(self) -> None:
        self.model.raw_set_flag(self.track, self.flag, not self.on)


class SetFxMute(QUndoCommand):
    """Mute of the FX return."""

    def __init__(self, model, on: bool):
        super().__init__(f"{'Mute' if on else 'Unmute'} FX return")
        self.model, self.on = model, on

    def redo(self) -> None:
        self.model.raw_set_fx_mute(self.on)

    def undo(self) -> None:
        self.model.raw_set_fx_mute(not self.on)


class InsertStrips(QUndoCommand):
    """Add strips (dropped files); undo removes them again. Audio stays cached in the model."""

    def __init__(self, model, index: int, stems, rows: np.ndarray, text: str):
        super().__init__(text)
        self.model, self.index, self.stems, self.rows = model, index, list(stems), np.array(rows)

    def redo(self) -> None:
        self.model.raw_insert(self.index, self.stems, self.rows, None, None)

    def undo(self) -> None:
        self.model.raw_remove(self.index, len(self.stems))


class RemoveStrips(QUndoCommand):
    """Remove strips; undo puts them back with every setting, lock and prediction."""

    def __init__(self, model, index: int, count: int, text: str):
        super().__init__(text)
        self.model, self.index, self.count = model, index, count
        self.taken = None

    def redo(self) -> None:
        self.taken = self.model.raw_remove(self.index, self.count)

    def undo(self) -> None:
        stems, rows, pred, locks = self.taken
        self.model.raw_insert(self.index, stems, rows, pred, locks)


class SetReference(QUndoCommand):
    def __init__(self, model, old: str | None, new: str | None):
        super().__init__("Set reference" if new else "Remove reference")
        self.model, self.old, self.new = model, old, new

    def redo(self) -> None:
        self.model.raw_set_reference(self.new)

    def undo(self) -> None:
        self.model.raw_set_reference(self.old)
