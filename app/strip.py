"""Channel strips and the master strip, generated from the schema.

Every parameter of the strip's schema gets a control, placed by its schema group: ``trim`` and ``pan``
knobs beside the fader, the reverb send (``reverb`` on a track) as a small knob beside mute and solo,
``eq`` in the EQ section, ``dynamics`` in the compressor section, ``level`` as the fader. Labels,
ranges, units and formats all come from the schema. Strips read the model and are refreshed by the
console view when the model signals a change.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.params import MASTER, TRACK
from core.params import group as schema_group

from . import theme
from .model import MASTER_TRACK
from .widgets.controls import ParamControl
from .widgets.eq import EqSection
from .widgets.meters import FLOOR_DB, GainReductionMeter, LevelMeter

STRIP_WIDTH, COMPACT_WIDTH = 176, 86
RETURN_WIDTH = 64  # the FX return's column in the master strip


def _vbox(widget: QWidget | None = None, margins=(0, 0, 0, 0), spacing: int = 2) -> QVBoxLayout:
    lay = QVBoxLayout(widget) if widget is not None else QVBoxLayout()
    lay.setContentsMargins(*margins)
    lay.setSpacing(spacing)
    return lay


class LockButton(QToolButton):
    """Locks every parameter of one schema group on one strip (checked: all of them locked)."""

    def __init__(self, model, track: int, keys: list[str], what: str):
        super().__init__(objectName="lock", checkable=True)
        self.model, self.track, self.keys = model, track, keys
        self.setIcon(theme.lock_icon())
        self.setToolTip(f"Lock {what}: Predict and Refine keep these values")
        self.setFixedSize(18, 16)
        self.clicked.connect(lambda on: self.model.set_locked(self.track, self.keys, on))
        self.refresh()

    def refresh(self) -> None:
        self.setChecked(all(self.model.is_locked(self.track, k) for k in self.keys))


class Section(QFrame):
    """A titled part of a strip (EQ, compressor, fader) with its lock button."""

    def __init__(self, title: str, lock: LockButton | None, extra: QWidget | None = None):
        super().__init__(objectName="section")
        self.body = _vbox(None, spacing=1)
        lay = _vbox(self, (0, 2, 0, 0))
        head = QHBoxLayout()
        label = QLabel(title, objectName="sectionTitle")
        head.addWidget(label)
        head.addStretch(1)
        if extra is not None:
            head.addWidget(extra)
        if lock is not None:
            head.addWidget(lock)
        lay.addLayout(head)
        lay.addLayout(self.body)


class StripBase(QFrame):
    """What channel and master strips share: controls by key, section locks, meters."""

    removeRequested = Signal(int)

    def __init__(self, model, track: int, schema, parent=None):
        super().__init__(parent)
        self.model, self.track, self.schema = model, track, schema
        self.controls: dict[str, ParamControl] = {}
        self.locks: list[LockButton] = []
        self.eq: EqSection | None = None
        self.gr = GainReductionMeter()
        self.meter = LevelMeter()
        self.layout_ = _vbox(self, (4, 4, 4, 4), 3)

    def keys_of(self, key: str) -> list[str]:
        return [p.key for p in self.schema if p.group == key]

    def _lock(self, key: str, what: str | None = None) -> LockButton:
        """Lock button of the schema group ``key`` (``what``: its name in the tooltip, default the
        schema's)."""
        btn = LockButton(self.model, self.track, self.keys_of(key), what or schema_group(key).name)
        self.locks.append(btn)
        return btn

    def _knob(self, key: str, label: str | None = None, kind: str = "knob") -> ParamControl:
        ctl = ParamControl(self.model, self.track, self.schema[key], kind=kind, label=label)
        self.controls[key] = ctl
        return ctl

    def eq_section(self) -> Section:
        self.eq = EqSection(self.model, self.track, self.schema)
        self.controls.update(self.eq.controls)
        sec = Section(schema_group("eq").title, self._lock("eq"))
        sec.body.addWidget(self.eq)
        return sec

    def comp_section(self) -> Section:
        sec = Section(schema_group("dynamics").title, self._lock("dynamics"))
        row = QHBoxLayout()
        row.setSpacing(2)
        grid = QGridLayout()
        grid.setSpacing(1)
        for i, key in enumerate(self.keys_of("dynamics")):
            grid.addWidget(self._knob(key), i // 3, i % 3)
        row.addLayout(grid, 1)
        row.addWidget(self.gr)
        sec.body.addLayout(row)
        return sec

    def fader_row(self, beside: QWidget | None = None) -> QHBoxLayout:
        """Fader and meter; ``beside`` (a column of knobs or readouts) left of the fader, so the strip
        fits a 720-pixel window without scrolling."""
        row = QHBoxLayout()
        row.setSpacing(2)
        self.fader_lay = row
        if beside is not None:
            row.addWidget(beside, 0, Qt.AlignBottom)
        (key,) = self.keys_of("level")
        fader = ParamControl(self.model, self.track, self.schema[key], kind="fader")
        self.controls[key] = fader
        row.addWidget(fader, 1)
        self.meter.setMinimumHeight(120)
        row.addWidget(self.meter)
        return row

    # -- following the model -------------------------------------------------------------------------
    def refresh(self, key: str | None = None) -> None:
        """One control (or everything) from the model; EQ keys also redraw the curve."""
        if key is None:
            for ctl in self.controls.values():
                ctl.refresh()
            if self.eq is not None:
                self.eq.refresh()
            for lock in self.locks:
                lock.refresh()
            return
        if self.eq is not None and key in self.eq.controls:
            self.eq.refresh()
        elif key in self.controls:
            self.controls[key].refresh()
        for lock in self.locks:
            if key in lock.keys:
                lock.refresh()

    def set_meters(self, peak_db, rms_db, gr_db: float) -> None:
        self.meter.set_levels(peak_db, rms_db)
        self.gr.set_gr(gr_db)

    def clear_meters(self) -> None:
        self.meter.reset()
        self.gr.set_gr(0.0)


class ChannelStrip(StripBase):
    """One track: name, mute/solo, trim, pan and reverb send, EQ, compressor, fader with meter."""

    def __init__(self, model, track: int, parent=None):
        super().__init__(model, track, TRACK, parent)
        self.setObjectName("strip")
        stem = model.session.stems[track]
        self.name = QLabel(objectName="stripName")
        self._full_name = stem.name
        self.name.setAlignment(Qt.AlignCenter)
        self.name.setToolTip(f"{stem.name}\n{stem.path}\nRight-click: lock all, remove")
        self.name.setContextMenuPolicy(Qt.CustomContextMenu)
        self.name.customContextMenuRequested.connect(self._name_menu)
        self.problem = QLabel("", objectName="ctlLabel")
        self.problem.setStyleSheet(f"color: {theme.MUTE.name()};")
        self.problem.setWordWrap(True)
        self._build()
        self.compact = False
        self.refresh()
        self.refresh_flags()
        self._show_name()

    def _build(self) -> None:
        lay = self.layout_
        lay.addWidget(self.name)
        lay.addWidget(self.problem)
        lay.addLayout(self._buttons())
        self.eq_sec, self.comp_sec = self.eq_section(), self.comp_section()
        lay.addWidget(self.eq_sec)
        lay.addWidget(self.comp_sec)
        self.trim_pan = self._trim_pan()
        lay.addLayout(self.fader_row(self.trim_pan), 1)  # trim and pan stacked beside the fader
        self.setFixedWidth(STRIP_WIDTH)
        self.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Expanding)

    def _buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setSpacing(2)
        self.mute = QToolButton(text="M", checkable=True, objectName="mute")
        self.solo = QToolButton(text="S", checkable=True, objectName="solo")
        self.mute.setToolTip("Mute")
        self.solo.setToolTip("Solo")
        self.mute.clicked.connect(lambda on: self.model.set_flag(self.track, "mute", on))
        self.solo.clicked.connect(lambda on: self.model.set_flag(self.track, "solo", on))
        for b in (self.mute, self.solo):
            b.setFixedSize(20, 18)
            row.addWidget(b)
        for key in self.keys_of("reverb"):  # the send, in this row: a 720-pixel window has no row to spare
            row.addWidget(self._knob(key, "Send", kind="inline"), 4)
        self.pan_lock = self._lock("pan")
        row.addWidget(self.pan_lock)
        row.addWidget(self._lock("level"))
        self._btn_row = row
        return row

    def _trim_pan(self) -> QFrame:
        box = QFrame(objectName="section")
        box.setMinimumWidth(48)  # "+23.4 dB" fits
        col = QVBoxLayout(box)
        self._tp_col = col
        col.setContentsMargins(0, 2, 0, 0)
        col.setSpacing(1)
        for group in ("trim", "pan"):
            for key in self.keys_of(group):
                col.addWidget(self._knob(key))
        return box

    def _name_menu(self, pos) -> None:
        menu = QMenu(self)
        menu.addAction("Lock every control", lambda: self._lock_all(True))
        menu.addAction("Unlock every control", lambda: self._lock_all(False))
        menu.addSeparator()
        menu.addAction("Remove track", lambda: self.removeRequested.emit(self.track))
        menu.exec(self.name.mapToGlobal(pos))

    def _lock_all(self, on: bool) -> None:
        keys = [p.key for p in TRACK if p.predicted]
        self.model.set_locked(self.track, keys, on)

    def refresh_flags(self) -> None:
        stem = self.model.session.stems[self.track]
        self.mute.setChecked(stem.mute)
        self.solo.setChecked(stem.solo)
        problem = self.model.audio_problem(stem.path)
        self.problem.setText("missing audio" if problem and "not found" in problem else
                             "cannot read audio" if problem else "")
        self.problem.setToolTip(problem or "")
        self.problem.setVisible(bool(problem))

    def _show_name(self) -> None:
        width = self.width() - 16
        self.name.setText(self.name.fontMetrics().elidedText(self._full_name, Qt.ElideMiddle, width))

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        self._show_name()

    def set_compact(self, on: bool) -> None:
        """Compact: only name, mute/solo, pan and the fader, for sessions with many tracks (trim and the
        send hidden)."""
        self.compact = on
        self.eq_sec.setVisible(not on)
        self.comp_sec.setVisible(not on)
        for key in ("trim_db", *self.keys_of("reverb")):
            self.controls[key].setVisible(not on)
        # normal: trim and pan stacked beside the fader; compact (narrow): pan above the fader
        # (and the pan lock beside mute/solo in normal mode, above the pan knob in compact mode)
        if on and self.fader_lay.indexOf(self.trim_pan) >= 0:
            self.fader_lay.removeWidget(self.trim_pan)
            self.layout_.insertWidget(self.layout_.count() - 1, self.trim_pan)
            self._btn_row.removeWidget(self.pan_lock)
            self._tp_col.insertWidget(0, self.pan_lock, 0, Qt.AlignRight)
        elif not on and self.layout_.indexOf(self.trim_pan) >= 0:
            self.layout_.removeWidget(self.trim_pan)
            self.fader_lay.insertWidget(0, self.trim_pan, 0, Qt.AlignBottom)
            self._tp_col.removeWidget(self.pan_lock)
            self._btn_row.insertWidget(self._btn_row.count() - 1, self.pan_lock)
        self.setFixedWidth(COMPACT_WIDTH if on else STRIP_WIDTH)
        self._show_name()


class MasterStrip(StripBase):
    """The master bus: EQ, compressor, fader, and loudness readouts (M, S, I, true peak); beside them the
    FX return (the shared reverb every send feeds, returned into the master bus), its controls in a
    column, under them its mute and its meter (the return as it reaches the master bus)."""

    def __init__(self, model, parent=None):
        super().__init__(model, MASTER_TRACK, MASTER, parent)
        self.setObjectName("master")
        title = QLabel("MASTER", objectName="stripName")
        title.setAlignment(Qt.AlignCenter)
        lay = _vbox(None, spacing=3)
        lay.addWidget(title)
        lay.addWidget(self.eq_section())
        lay.addWidget(self.comp_section())
        head = QHBoxLayout()
        head.addWidget(QLabel(f"MASTER {schema_group('level').title}", objectName="sectionTitle"))
        head.addStretch(1)
        head.addWidget(self._lock("level", f"master {schema_group('level').name}"))
        lay.addLayout(head)
        lay.addLayout(self.fader_row(self._loudness()), 1)  # loudness readouts beside the fader
        row = QHBoxLayout()
        row.setSpacing(4)
        row.addLayout(lay, 1)
        self.fx_return = self._return_section()
        row.addWidget(self.fx_return)
        self.layout_.addLayout(row, 1)
        self.setFixedWidth(STRIP_WIDTH + 10 + RETURN_WIDTH + 4)
        self.refresh()

    def refresh(self, key: str | None = None) -> None:
        super().refresh(key)
        if key is None:
            self.refresh_flags()

    def _return_section(self) -> Section:
        """The FX return: the reverb's controls (schema group ``reverb``) stacked, with the group's lock."""
        sec = Section(schema_group("reverb").title, self._lock("reverb", "the FX return (reverb)"))
        sec.setFixedWidth(RETURN_WIDTH)
        sec.setToolTip("FX return: the shared reverb that every track's send feeds, into the master bus")
        for key in self.keys_of("reverb"):
            sec.body.addWidget(self._knob(key))
        row = QHBoxLayout()
        row.setSpacing(2)
        self.fx_mute = QToolButton(text="M", checkable=True, objectName="mute")
        self.fx_mute.setToolTip("Mute the FX return: the reverb adds nothing to the master bus "
                                "(its return level is kept)")
        self.fx_mute.setFixedSize(20, 18)
        self.fx_mute.clicked.connect(lambda on: self.model.set_fx_mute(on))
        row.addWidget(self.fx_mute, 0, Qt.AlignTop)
        self.fx_meter = LevelMeter()
        self.fx_meter.setMinimumHeight(48)
        self.fx_meter.setToolTip("FX return level (dBFS) as it reaches the master bus, after the return "
                                 "level and mute: RMS bar, peak line, peak hold; the top light shows "
                                 "clipping (click to clear)")
        row.addWidget(self.fx_meter, 1)
        sec.body.addLayout(row, 1)
        return sec

    def refresh_flags(self) -> None:
        self.fx_mute.setChecked(self.model.session.fx_mute)

    def set_fx_meters(self, peak_db, rms_db) -> None:
        self.fx_meter.set_levels(peak_db, rms_db)

    def clear_meters(self) -> None:
        super().clear_meters()
        self.fx_meter.reset()

    def _loudness(self) -> QFrame:
        box = Section("LOUDNESS", None)
        grid = QGridLayout()
        grid.setSpacing(1)
        self.readouts: dict[str, QLabel] = {}
        tips = {"M": "Momentary loudness (400 ms), live", "S": "Short-term loudness (3 s), live",
                "I": "Integrated loudness of the mix (whole song or loop), after edits",
                "TP": "True peak of the mix (4x oversampled), after edits"}
        self.units = {"M": "LUFS", "S": "LUFS", "I": "LUFS", "TP": "dBTP"}
        for i, key in enumerate(self.units):
            value = QLabel("", objectName="readout")
            value.setToolTip(tips[key])
            grid.addWidget(value, i, 0)
            self.readouts[key] = value
        self.set_loudness(M=None, S=None, I=None, TP=None)
        box.body.addLayout(grid)
        return box

    def set_loudness(self, **values: float | None) -> None:
        """Readouts by name (``M``, ``S``, ``I``, ``TP``); None or silence shows a dash."""
        for key, v in values.items():
            ok = v is not None and np.isfinite(v) and v > FLOOR_DB
            text = f"{v:6.1f}" if ok else "   —  "
            self.readouts[key].setText(f"{key:<2} {text} {self.units[key]}")
