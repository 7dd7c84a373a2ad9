"""Console controls generated from a schema :class:`core.params.Param`: knobs and faders.

A control knows its parameter (range, scale, format, default come from the schema, never repeated
here), the model and the strip it belongs to. It maps positions through ``Param.to_unit`` so that
log-scaled parameters move logarithmically. It shows three things: the current value (arc or cap),
the predicted value (an orange marker) and whether it is locked (amber ring).

Gestures: a drag is one undo step (one gesture number for the whole drag); wheel steps that follow
each other closely merge too. Double-click resets to the default; the value field takes typed values
exactly ("-3.5", "2k", "2.2 kHz", "4:1"); the context menu offers reset to predicted and the lock.
"""

from __future__ import annotations

import math
import re
import time

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QMenu, QSizePolicy, QVBoxLayout, QWidget

from core.params import SEND, Param

from .. import theme

_WHEEL_MERGE_S = 0.6
_DRAG_PIXELS = 160.0  # a full sweep of the range
_FINE = 0.2  # Shift: finer steps

_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(k?)", re.IGNORECASE)


_NEG_ZERO = re.compile(r"^-(?=0*(?:\.0*)?(?:\D|$))")


def display(param: Param, value: float) -> str:
    """How a value reads on a control, the way engineers read it: pan as "L 53", "C", "R 20";
    frequencies from 1 kHz up in kHz ("1.41 kHz"); a ratio as "4.0:1"; never "-0.00". Otherwise the
    schema's format. A send at its floor reads "off" (its gain is exactly zero there)."""
    if param.key == SEND.key and value <= param.min:
        return "off"
    if param.key == "pan":
        pct = round(abs(value) * 100)
        return "C" if pct == 0 else f"{'L' if value < 0 else 'R'} {pct}"
    if param.unit == "Hz" and value >= 999.5:
        return f"{value / 1000:.3g} kHz"
    if param.unit.startswith(":"):
        text = param.fmt.format(value) + param.unit
    else:
        text = param.format(value)
    return _NEG_ZERO.sub("+" if "+" in param.fmt else "", text)


def parse_value(text: str, param: Param) -> float | None:
    """A typed value -> physical value clipped to the range, or None when it is not a number.

    Accepts an optional unit and a ``k`` multiplier: ``-6``, ``-6 dB``, ``2k``, ``2.2 kHz``, ``4:1``.
    """
    text = text.strip().replace(",", ".")
    if param.key == SEND.key and text.lower() == "off":
        return param.min
    if param.key == "pan":  # "L 53", "R20", "C" as well as numbers
        side = text[:1].upper()
        if side == "C" and not text[1:].strip():
            return 0.0
        if side in ("L", "R"):
            m = _NUMBER.match(text[1:].strip())
            if not m:
                return None
            value = float(m.group(1)) / 100.0
            return param.clip(-value if side == "L" else value) if math.isfinite(value) else None
    if param.unit == ":1" and ":" in text:
        text = text.split(":")[0]
    m = _NUMBER.match(text)
    if not m:
        return None
    value = float(m.group(1)) * (1000.0 if m.group(2) else 1.0)
    return param.clip(value) if math.isfinite(value) else None


class ParamBinding:
    """The model side of a control: edits go to the model as undoable gestures."""

    def __init__(self, model, track: int, param: Param):
        self.model, self.track, self.param = model, track, param
        self._gesture = 0
        self._wheel_at = 0.0

    def begin_gesture(self) -> None:
        self._gesture = self.model.new_gesture()

    def wheel_gesture(self) -> None:
        now = time.monotonic()
        if now - self._wheel_at > _WHEEL_MERGE_S or not self._gesture:
            self._gesture = self.model.new_gesture()
        self._wheel_at = now

    def send(self, value: float) -> None:
        self.model.edit(self.track, self.param.key, value, self._gesture)

    def send_typed(self, value: float) -> None:
        self.model.edit(self.track, self.param.key, value, 0)

    def reset(self, to_default: bool = False) -> None:
        """Double-click: back to the predicted value when there is one, else (or with ``to_default``,
        Alt+double-click) to the default."""
        if not to_default and self.model.predicted_value(self.track, self.param.key) is not None:
            self.model.reset_predicted(self.track, self.param.key)
        else:
            self.model.reset_default(self.track, self.param.key)

    def context_menu(self, parent: QWidget, pos, edit: QLineEdit | None) -> None:
        menu = QMenu(parent)
        key, track = self.param.key, self.track
        menu.addAction("Reset to default (Alt+double-click)", lambda: self.reset(to_default=True))
        pred = menu.addAction("Reset to predicted (double-click)",
                              lambda: self.model.reset_predicted(track, key))
        pred.setEnabled(self.model.predicted_value(track, key) is not None)
        if edit is not None:
            menu.addAction("Type a value", lambda: (edit.setFocus(), edit.selectAll()))
        menu.addSeparator()
        lock = menu.addAction("Lock (kept by Predict and Refine)")
        lock.setCheckable(True)
        lock.setChecked(self.model.is_locked(track, key))
        lock.toggled.connect(lambda on: self.model.set_locked(track, [key], on))
        menu.exec(parent.mapToGlobal(pos))


class _Dial(QWidget):
    """Shared state of a painted control: unit position, predicted marker, lock ring."""

    def __init__(self, binding: ParamBinding, parent=None):
        super().__init__(parent)
        self.b = binding
        self.unit = binding.param.to_unit(binding.param.default)
        self.pred_unit: float | None = None
        self.locked = False
        self._press: tuple[float, float] | None = None
        self.setFocusPolicy(Qt.NoFocus)
        self.setCursor(Qt.SizeVerCursor)

    @property
    def origin(self) -> float:
        """Where the arc starts: 0 for bipolar ranges (gain, pan), else the minimum."""
        p = self.b.param
        return p.to_unit(0.0) if p.min < 0 < p.max else 0.0

    def set_unit(self, unit: float, pred: float | None, locked: bool) -> None:
        self.unit, self.pred_unit, self.locked = unit, pred, locked
        self.update()

    def mousePressEvent(self, ev) -> None:
        if ev.button() == Qt.LeftButton:
            self._press = (ev.position().y(), self.unit)
            self.b.begin_gesture()

    def mouseMoveEvent(self, ev) -> None:
        if self._press is None:
            return
        y0, u0 = self._press
        scale = _FINE if ev.modifiers() & Qt.ShiftModifier else 1.0
        u = min(1.0, max(0.0, u0 + (y0 - ev.position().y()) / self._drag_pixels() * scale))
        self.b.send(self.b.param.from_unit(u))

    def _drag_pixels(self) -> float:
        return _DRAG_PIXELS

    def mouseReleaseEvent(self, ev) -> None:
        self._press = None

    def mouseDoubleClickEvent(self, ev) -> None:
        self.b.reset(to_default=bool(ev.modifiers() & Qt.AltModifier))

    def wheelEvent(self, ev) -> None:
        steps = ev.angleDelta().y() / 120.0
        scale = _FINE if ev.modifiers() & Qt.ShiftModifier else 1.0
        self.b.wheel_gesture()
        self.b.send(self.b.param.from_unit(min(1.0, max(0.0, self.unit + 0.02 * steps * scale))))
        ev.accept()


class Knob(_Dial):
    """A rotary control: 270 degree sweep, value arc from the origin, predicted tick outside."""

    SWEEP, START = 270.0, 225.0

    def sizeHint(self) -> QSize:
        return QSize(34, 34)

    def _angle(self, unit: float) -> float:
        return math.radians(self.START - unit * self.SWEEP)

    def paintEvent(self, ev) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        side = min(self.width(), self.height()) - 6
        r = QRectF((self.width() - side) / 2, (self.height() - side) / 2, side, side)
        self._paint_arcs(p, r)
        self._paint_pointer(p, r)
        if self.pred_unit is not None:
            self._paint_marker(p, r, self.pred_unit)

    def _paint_arcs(self, p: QPainter, r: QRectF) -> None:
        p.setPen(QPen(theme.GROOVE, 4, Qt.SolidLine, Qt.FlatCap))
        p.drawArc(r, int(-45 * 16), int(self.SWEEP * 16))
        colour = theme.LOCKED if self.locked else theme.ACCENT
        p.setPen(QPen(colour, 4, Qt.SolidLine, Qt.FlatCap))
        a0, a1 = self.START - self.origin * self.SWEEP, self.START - self.unit * self.SWEEP
        p.drawArc(r, int(a0 * 16), int((a1 - a0) * 16))

    def _paint_pointer(self, p: QPainter, r: QRectF) -> None:
        c = r.center()
        inner = r.adjusted(5, 5, -5, -5)
        p.setPen(Qt.NoPen)
        p.setBrush(QColor("#454b57") if not self.locked else QColor("#5c5230"))
        p.drawEllipse(inner)
        a = self._angle(self.unit)
        rad = inner.width() / 2
        p.setPen(QPen(theme.TEXT, 2, Qt.SolidLine, Qt.RoundCap))
        p.drawLine(c + QPointF(math.cos(a) * rad * 0.3, -math.sin(a) * rad * 0.3),
                   c + QPointF(math.cos(a) * rad * 0.9, -math.sin(a) * rad * 0.9))

    def _paint_marker(self, p: QPainter, r: QRectF, unit: float) -> None:
        c, a, rad = r.center(), self._angle(unit), r.width() / 2
        p.setPen(QPen(theme.PREDICTED, 2.5, Qt.SolidLine, Qt.RoundCap))
        p.drawLine(c + QPointF(math.cos(a) * (rad - 3), -math.sin(a) * (rad - 3)),
                   c + QPointF(math.cos(a) * (rad + 3), -math.sin(a) * (rad + 3)))


class Fader(_Dial):
    """A vertical fader with a dB scale; the cap shows the value, an orange triangle the prediction."""

    TICKS = (24, 12, 6, 0, -6, -12, -24, -36, -48)
    MARGIN = 8

    def sizeHint(self) -> QSize:
        return QSize(46, 150)

    def minimumSizeHint(self) -> QSize:
        return QSize(46, 100)  # the whole scale still readable; a 720-pixel window needs no scrolling

    def _y(self, unit: float) -> float:
        h = self.height() - 2 * self.MARGIN
        return self.MARGIN + (1.0 - unit) * h

    def _drag_pixels(self) -> float:
        return max(60.0, self.height() - 2 * self.MARGIN)

    def paintEvent(self, ev) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        x = self.width() * 0.62
        self._paint_scale(p, x)
        p.fillRect(QRectF(x - 2, self.MARGIN, 4, self.height() - 2 * self.MARGIN), theme.GROOVE)
        if self.pred_unit is not None:
            self._paint_marker(p, x + 9, self._y(self.pred_unit))
        self._paint_cap(p, x, self._y(self.unit))

    def _paint_scale(self, p: QPainter, x: float) -> None:
        p.setFont(theme.small_font(6.5))
        prm = self.b.param
        text_h = p.fontMetrics().height() - 2
        labelled: list[float] = []
        # every tick gets its mark; labels in order of importance, skipped where they would touch
        for db in sorted(self.TICKS, key=lambda d: (d != 0, abs(d) not in (12, 24), abs(d))):
            if not prm.min <= db <= prm.max:
                continue
            y = self._y(prm.to_unit(db))
            p.setPen(QPen(theme.TEXT_DIM, 1))
            p.drawLine(QPointF(x - 9, y), QPointF(x - 5, y))
            if any(abs(y - y0) < text_h for y0 in labelled):
                continue
            labelled.append(y)
            text = f"{db:+d}" if db else "0"
            p.drawText(QRectF(0, y - 6, x - 10, 12), Qt.AlignRight | Qt.AlignVCenter, text)

    def _paint_marker(self, p: QPainter, x: float, y: float) -> None:
        path = QPainterPath()
        path.moveTo(x - 3, y)
        path.lineTo(x + 4, y - 4)
        path.lineTo(x + 4, y + 4)
        path.closeSubpath()
        p.fillPath(path, theme.PREDICTED)

    def _paint_cap(self, p: QPainter, x: float, y: float) -> None:
        cap = QRectF(x - 9, y - 5, 18, 10)
        p.setPen(QPen(theme.LOCKED if self.locked else QColor("#9aa3b2"), 1))
        p.setBrush(QColor("#d0d4db") if not self.locked else theme.LOCKED)
        p.drawRoundedRect(cap, 2, 2)
        p.setPen(QPen(QColor("#202226"), 1))
        p.drawLine(QPointF(x - 7, y), QPointF(x + 7, y))


class ValueEdit(QLineEdit):
    """Shows the formatted value; typing a number and Return sets it exactly."""

    typed = Signal(float)

    def __init__(self, param: Param, parent=None):
        super().__init__(parent)
        self.param = param
        self.setObjectName("value")
        self.setAlignment(Qt.AlignCenter)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Fixed)
        self.returnPressed.connect(self._commit)
        self.setAcceptDrops(False)  # a file dropped here means "add a stem", not text for this field
        self._value = param.default

    def show_value(self, value: float) -> None:
        self._value = value
        if not self.hasFocus():
            self.setText(display(self.param, value))

    def _commit(self) -> None:
        value = parse_value(self.text(), self.param)
        self.clearFocus()
        if value is None:
            self.setText(display(self.param, self._value))
            return
        self.typed.emit(value)

    def focusOutEvent(self, ev) -> None:
        super().focusOutEvent(ev)
        self.setText(display(self.param, self._value))


class ParamControl(QWidget):
    """Label, dial and value field for one parameter of one strip. ``kind``: "knob" (stacked), "fader",
    or "inline" (label, small knob and value in one row)."""

    def __init__(self, model, track: int, param: Param, kind: str = "knob", label: str | None = None,
                 parent=None):
        super().__init__(parent)
        self.binding = ParamBinding(model, track, param)
        self.param = param
        self.dial = Fader(self.binding) if kind == "fader" else Knob(self.binding)
        self.edit = ValueEdit(param)
        self.edit.typed.connect(self.binding.send_typed)
        self.label = QLabel(label if label is not None else param.label)
        self.label.setObjectName("ctlLabel")
        self.label.setAlignment(Qt.AlignCenter)
        self._layout(kind)
        self.setContextMenuPolicy(Qt.CustomContextMenu)
        self.customContextMenuRequested.connect(lambda pos: self.binding.context_menu(self, pos, self.edit))
        self.refresh()

    def _layout(self, kind: str) -> None:
        if kind == "inline":  # one row: label, a small knob, value (where a strip has no height to spare)
            lay = QHBoxLayout(self)
            lay.setContentsMargins(0, 0, 0, 0)
            lay.setSpacing(1)
            self.label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
            lay.addWidget(self.label)
            lay.addWidget(self.dial)
            lay.addWidget(self.edit, 1)
            self.dial.setFixedSize(18, 18)
            self.edit.setFixedHeight(14)
        else:
            lay = QVBoxLayout(self)
            lay.setContentsMargins(0, 0, 0, 0)
            lay.setSpacing(0)
            lay.addWidget(self.label)
            lay.addWidget(self.dial, 1 if kind == "fader" else 0, Qt.AlignHCenter)
            lay.addWidget(self.edit)
            self.dial.setMinimumSize(self.dial.minimumSizeHint() if kind == "fader" else self.dial.sizeHint())
            self.edit.setFixedHeight(14)
        p = self.param
        self.setToolTip(f"{p.label} ({display(p, p.min)} .. {display(p, p.max)}). Drag or wheel "
                        "(Shift: fine), double-click: default, right-click: predicted / lock")

    def refresh(self) -> None:
        """Read value, prediction and lock from the model."""
        m, t, k = self.binding.model, self.binding.track, self.param.key
        value, pred = m.value(t, k), m.predicted_value(t, k)
        self.dial.set_unit(self.param.to_unit(value), None if pred is None else self.param.to_unit(pred),
                           m.is_locked(t, k))
        self.edit.show_value(value)

    @property
    def value(self) -> float:
        return self.binding.model.value(self.binding.track, self.param.key)
