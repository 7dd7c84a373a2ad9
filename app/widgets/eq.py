"""The EQ section: an interactive response curve (pyqtgraph) plus knobs for the selected band.

Drag a band's handle to set its frequency and gain (one undo step per drag), turn the wheel over it
for Q. Handles that would cover each other (at the defaults, the low shelf and band 1 sit 0.18
decades apart at 0 dB) are drawn stacked a handle's height apart; a drag keeps the offset, so the
gain follows the mouse as usual. The curve is the console's own filter design
(:func:`core.dsp.eq_coeffs`, float64 RBJ biquads), so what is drawn is what is heard. The
prediction's curve is drawn dashed in orange.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QStackedWidget, QToolButton, QVBoxLayout, QWidget

from core.dsp import EQ, eq_coeffs
from core.params import EQ_BAND_KEYS, EQ_BANDS

from .. import theme
from .controls import ParamControl

#: Keys of the 18 EQ controls in the order the console's EQ design takes them.
EQ_KEYS = EQ.keys
F_LO, F_HI = 20.0, 20000.0
GAIN_LIMIT_DB = EQ[EQ_BANDS[0].gain].max  # one band's range, from the schema
GAIN_VIEW_DB = 1.25 * GAIN_LIMIT_DB  # headroom: neighbouring bands add up
_N_POINTS = 160
_Q_STEP = 1.08  # per wheel notch
HANDLE_PX = 9  # handle diameter
_HANDLE_GAP_PX = HANDLE_PX + 1  # centres closer than this overlap


def stack_offsets(px: np.ndarray, py: np.ndarray, gap: float = _HANDLE_GAP_PX) -> np.ndarray:
    """Vertical pixel offsets so that no two handles at ``(px, py)`` (pixels, y down) are closer than
    ``gap``: left to right, each handle takes the first of 0, -gap, +gap, -2 gap, ... (up first)
    that clears the handles already placed."""
    out = np.zeros(len(px))
    placed: list[tuple[float, float]] = []
    for i in np.argsort(px, kind="stable"):
        for k in range(2 * len(px) + 1):
            y = py[i] + ((k + 1) // 2) * gap * (-1 if k % 2 else 1)
            if all(np.hypot(px[i] - x0, y - y0) >= gap - 1e-9 for x0, y0 in placed):
                break
        out[i] = y - py[i]
        placed.append((px[i], y))
    return out


def response_db(eq_values: np.ndarray, sample_rate: int, freqs: np.ndarray) -> np.ndarray:
    """Magnitude response (dB) of the EQ cascade with controls ``eq_values`` (18,) at ``freqs`` (Hz)."""
    b, a = eq_coeffs(eq_values, sample_rate)  # (6, 3) each
    z = np.exp(-1j * 2 * np.pi * freqs / sample_rate)[:, None]  # (F, 1)
    h = (b[:, 0] + b[:, 1] * z + b[:, 2] * z * z) / (a[:, 0] + a[:, 1] * z + a[:, 2] * z * z)  # (F, 6)
    return 20 * np.log10(np.maximum(np.abs(h.prod(axis=1)), 1e-9))


class BandHandle(pg.TargetItem):
    """A draggable band point; a drag is one gesture, the wheel changes Q."""

    def __init__(self, section: EqSection, band: int):
        colour = theme.BAND_COLOURS[band]
        super().__init__(pos=(3, 0), size=HANDLE_PX, symbol="o", pen=pg.mkPen(colour, width=1.5),
                         brush=pg.mkBrush(colour.red(), colour.green(), colour.blue(), 150),
                         hoverBrush=pg.mkBrush(colour))
        self.section, self.band = section, band
        self.setZValue(10)
        self.sigPositionChanged.connect(lambda _: self.section.handle_moved(self.band, self.pos()))
        # a drag may end outside the band's range: snap back to the value the model kept
        self.sigPositionChangeFinished.connect(lambda _: self.section.place_handles())

    def mouseDragEvent(self, ev) -> None:
        if ev.isStart() and ev.button() == Qt.LeftButton:
            self.section.begin_drag(self.band)
        super().mouseDragEvent(ev)

    def mouseClickEvent(self, ev) -> None:
        self.section.select_band(self.band)
        ev.accept()

    def wheelEvent(self, ev) -> None:
        self.section.wheel_q(self.band, ev.delta() / 120.0)
        ev.accept()


class EqPlot(pg.PlotWidget):
    """The response plot: log-frequency x axis (drawn in log10 Hz), gain in dB."""

    def __init__(self, parent=None):
        super().__init__(parent, background=theme.GROOVE)
        pi = self.getPlotItem()
        pi.setMouseEnabled(False, False)
        pi.setMenuEnabled(False)
        pi.hideButtons()
        pi.setRange(xRange=(np.log10(F_LO), np.log10(F_HI)), yRange=(-GAIN_VIEW_DB, GAIN_VIEW_DB), padding=0)
        self._axes(pi)
        pi.addLine(y=0, pen=pg.mkPen("#3a3f49"))
        self.setFixedHeight(68)

    def _axes(self, pi) -> None:
        ticks = [(np.log10(f), t) for f, t in ((100, "100"), (1000, "1k"), (10000, "10k"))]
        bottom = pi.getAxis("bottom")
        bottom.setTicks([ticks, []])
        left = pi.getAxis("left")
        lim = int(GAIN_LIMIT_DB)
        marks = sorted({-lim, -lim // 2, 0, lim // 2, lim})  # +-6 and +-12 dB
        left.setTicks([[(v, "0" if v == 0 else f"{v:+d}") for v in marks], []])
        for axis in (bottom, left):
            axis.setStyle(tickFont=theme.small_font(6), tickLength=-3)
            axis.setTextPen(theme.TEXT_DIM)
            axis.setPen(pg.mkPen("#3a3f49"))
        left.setWidth(18)
        bottom.setHeight(14)
        pi.showGrid(x=True, y=False, alpha=0.15)


class EqSection(QWidget):
    """Curve, band selector and the selected band's gain/frequency/Q knobs for one strip."""

    def __init__(self, model, track: int, schema, parent=None):
        super().__init__(parent)
        self.model, self.track, self.schema = model, track, schema
        self.freqs = np.geomspace(F_LO, F_HI, _N_POINTS)
        self.controls: dict[str, ParamControl] = {}
        self._gesture = 0
        self._syncing = False
        self.plot = EqPlot()
        self.curve = self.plot.plot(pen=pg.mkPen(theme.ACCENT, width=2))
        self.pred_curve = self.plot.plot(pen=pg.mkPen(theme.PREDICTED, width=1, style=Qt.DashLine))
        self.handles = [BandHandle(self, b) for b in range(len(EQ_BAND_KEYS))]
        self.offsets = np.zeros(len(self.handles))  # drawn gain minus the band's gain (dB), see stack_offsets
        for h in self.handles:
            self.plot.addItem(h)
        self.plot.getPlotItem().getViewBox().sigResized.connect(lambda *_: self.place_handles())
        self._build()
        self.refresh()

    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.plot)
        lay.addLayout(self._band_buttons())
        self.stack = QStackedWidget()
        for band in EQ_BANDS:
            self.stack.addWidget(self._band_page(band))
        lay.addWidget(self.stack)

    def _band_buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setSpacing(1)
        self.band_group = QButtonGroup(self)
        for b, band in enumerate(EQ_BANDS):
            btn = QToolButton(text=band.short, checkable=True, objectName="band")
            btn.setToolTip(band.label)
            btn.setStyleSheet(f"QToolButton:checked {{ background: {theme.BAND_COLOURS[b].name()}; }}")
            self.band_group.addButton(btn, b)
            row.addWidget(btn)
        self.band_group.idClicked.connect(self.select_band)
        self.band_group.button(0).setChecked(True)
        return row

    def _band_page(self, band) -> QWidget:
        page = QWidget()
        row = QHBoxLayout(page)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(1)
        for key, label in band.controls():  # a core.params.EqBand
            ctl = ParamControl(self.model, self.track, self.schema[key], label=label)
            self.controls[key] = ctl
            row.addWidget(ctl)
        return page

    # -- interaction -----------------------------------------------------------------------------------
    def select_band(self, band: int) -> None:
        self.stack.setCurrentIndex(band)
        self.band_group.button(band).setChecked(True)

    def begin_drag(self, band: int) -> None:
        self._gesture = self.model.new_gesture()
        self.select_band(band)

    def handle_moved(self, band: int, pos) -> None:
        if self._syncing:
            return
        eq_band = EQ_BANDS[band]
        items = [(self.track, eq_band.freq, float(10 ** pos.x())),
                 (self.track, eq_band.gain, float(pos.y() - self.offsets[band]))]
        self.model.edit_many(items, self._gesture, text=f"{self._who()}: EQ {eq_band.short}")

    def wheel_q(self, band: int, notches: float) -> None:
        key = EQ_BANDS[band].q
        self.select_band(band)
        self.controls[key].binding.wheel_gesture()
        self.controls[key].binding.send(self.model.value(self.track, key) * _Q_STEP ** notches)

    def _who(self) -> str:
        return "Master" if self.track < 0 else self.model.session.stems[self.track].name

    # -- following the model ------------------------------------------------------------------------
    def values(self, source: str = "current") -> np.ndarray | None:
        get = self.model.value if source == "current" else self.model.predicted_value
        vals = [get(self.track, k) for k in EQ_KEYS]
        return None if any(v is None for v in vals) else np.array(vals, dtype=np.float64)

    def refresh(self) -> None:
        sr = self.model.session.sample_rate
        cur = self.values()
        self.curve.setData(np.log10(self.freqs), response_db(cur, sr, self.freqs))
        pred = self.values("predicted")
        if pred is None:
            self.pred_curve.setData([], [])
        else:
            self.pred_curve.setData(np.log10(self.freqs), response_db(pred, sr, self.freqs))
        self.place_handles(cur)
        for ctl in self.controls.values():
            ctl.refresh()

    def place_handles(self, cur: np.ndarray | None = None) -> None:
        cur = self.values() if cur is None else cur
        gains, x = cur[0::3], np.log10(cur[1::3])
        dragging = any(h.moving for h in self.handles)
        if not dragging:  # a drag keeps the offsets it started with
            self.offsets = self._stacked(x, gains)
        self._syncing = True
        try:
            for b, h in enumerate(self.handles):
                if not h.moving:
                    h.setPos(x[b], gains[b] + self.offsets[b])
        finally:
            self._syncing = False

    def _stacked(self, x: np.ndarray, gains: np.ndarray) -> np.ndarray:
        """Offsets (dB) that keep the handles apart at the plot's present size."""
        sx, sy = self.plot.getPlotItem().getViewBox().viewPixelSize()
        if not (np.isfinite(sx) and np.isfinite(sy) and sx > 0 and sy > 0):
            return np.zeros(len(x))
        # pixels, y down; offsets back in dB (up = positive gain)
        return -stack_offsets(x / sx, -gains / sy) * sy
