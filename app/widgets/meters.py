"""Meters: stereo peak/RMS bars with a dB scale and a compressor gain-reduction bar (painted, cheap to
update)."""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter
from PySide6.QtWidgets import QWidget

from .. import theme

FLOOR_DB, TOP_DB = -60.0, 6.0
_HOLD_S = 1.5
#: dBFS marks of the level meter's scale (labels without the minus sign, as on hardware meters).
SCALE_DB = (0.0, -6.0, -12.0, -24.0, -36.0, -48.0)
_SCALE_W = 13  # px of the scale column left of the bars
_TOP = 6  # px above the bars (the clip light)


def _frac(db: float) -> float:
    return float(np.clip((db - FLOOR_DB) / (TOP_DB - FLOOR_DB), 0.0, 1.0))


class LevelMeter(QWidget):
    """Two bars (L, R): RMS as the filled bar, peak as a bright line, peak hold and a clip light;
    a dB scale (:data:`SCALE_DB`) left of the bars, its marks drawn across them."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.peak = np.full(2, FLOOR_DB)
        self.rms = np.full(2, FLOOR_DB)
        self.hold = np.full(2, FLOOR_DB)
        self._hold_at = np.zeros(2)
        self.clipped = False
        self.setMinimumWidth(_SCALE_W + 14)
        self.setToolTip("Level (dBFS): RMS bar, peak line, peak hold; the top light shows clipping "
                        "(click to clear)")

    def sizeHint(self) -> QSize:
        return QSize(_SCALE_W + 16, 150)

    def y_of(self, db: float) -> float:
        """Pixel row of a level: where a bar at ``db`` ends and its scale mark is drawn."""
        h = self.height() - _TOP
        return _TOP + h * (1 - _frac(db))

    def scale_marks(self) -> list[tuple[float, float, str]]:
        """(dB, pixel row, label) of each scale mark that fits (labels at least a text height apart)."""
        fm = QFontMetrics(theme.small_font(6))
        marks, last = [], -1e9
        for db in SCALE_DB:
            y = self.y_of(db)
            if y - last >= fm.height() - 2:
                marks.append((db, y, f"{abs(db):.0f}"))
                last = y
        return marks

    def set_levels(self, peak_db, rms_db) -> None:
        self.peak, self.rms = np.asarray(peak_db, float), np.asarray(rms_db, float)
        now = time.monotonic()
        newer = (self.peak >= self.hold) | (now - self._hold_at > _HOLD_S)
        self.hold = np.where(newer, self.peak, self.hold)
        self._hold_at = np.where(newer, now, self._hold_at)
        self.clipped |= bool((self.peak > 0.0).any())
        self.update()

    def reset(self) -> None:
        self.set_levels(np.full(2, FLOOR_DB), np.full(2, FLOOR_DB))
        self.hold[:] = FLOOR_DB
        self.clipped = False
        self.update()

    def mousePressEvent(self, ev) -> None:
        self.clipped = False  # click to clear the clip light, as on hardware
        self.update()

    def paintEvent(self, ev) -> None:
        p = QPainter(self)
        w, h = self.width() - _SCALE_W, self.height() - _TOP
        bar = (w - 3) / 2
        p.fillRect(QRectF(_SCALE_W, 0, w, 4), theme.METER_HIGH if self.clipped else theme.GROOVE)
        for c in range(2):
            x = _SCALE_W + c * (bar + 3)
            p.fillRect(QRectF(x, _TOP, bar, h), theme.GROOVE)
            self._bar(p, x, bar, h, c)
        self._scale(p, w)
        p.end()

    def _scale(self, p: QPainter, w: float) -> None:
        p.setFont(theme.small_font(6))
        fm = p.fontMetrics()
        for _db, y, text in self.scale_marks():
            p.setPen(theme.TEXT_DIM)
            rect = QRectF(0, y - fm.height() / 2, _SCALE_W - 2, fm.height())
            p.drawText(rect, Qt.AlignRight | Qt.AlignVCenter, text)
            p.setPen(QColor(0, 0, 0, 110))
            p.drawLine(QPointF(_SCALE_W, y), QPointF(_SCALE_W + w, y))

    def _bar(self, p: QPainter, x: float, bar: float, h: float, c: int) -> None:
        top = self.y_of(self.rms[c])
        colour = theme.METER_HIGH if self.rms[c] > -3 else theme.METER_MID if self.rms[c] > -12 else \
            theme.METER_LOW
        p.fillRect(QRectF(x, top, bar, _TOP + h - top), colour)
        for db, col in ((self.peak[c], theme.TEXT), (self.hold[c], theme.METER_MID)):
            if db > FLOOR_DB:
                p.fillRect(QRectF(x, self.y_of(db), bar, 1.5), col)


class GainReductionMeter(QWidget):
    """Gain reduction in dB, growing from the top (0 dB) down to ``range_db``."""

    def __init__(self, range_db: float = 24.0, parent=None):
        super().__init__(parent)
        self.range_db = range_db
        self.gr_db = 0.0
        self.setFixedWidth(7)
        self.setMinimumHeight(60)
        self.setToolTip("Compressor gain reduction (0 to -24 dB)")

    def set_gr(self, gr_db: float) -> None:
        self.gr_db = max(0.0, float(gr_db))
        self.update()

    def paintEvent(self, ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), theme.GROOVE)
        frac = min(1.0, self.gr_db / self.range_db)
        p.fillRect(QRectF(0, 0, self.width(), self.height() * frac), theme.GR)
        p.setPen(theme.TEXT_DIM)
        for db in (6, 12, 18):
            y = self.height() * db / self.range_db
            p.drawLine(0, int(y), 2, int(y))
        p.end()
