"""Analysis panel: spectrum of mix vs reference, and the style terms of both as bars.

:class:`AnalysisController` re-measures in the background a moment after edits stop (one job at a
time; a newer request replaces an older one), and also feeds the overview and the master strip's
integrated loudness and true peak.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from . import measure, theme

_DEBOUNCE_MS = 400

#: Display range of each term's bars (values outside are drawn at the edge).
_RANGES = {"Loudness": (-40.0, 0.0), "Crest factor": (0.0, 30.0), "Width": (0.0, 0.6),
           "Imbalance": (-0.5, 0.5), "Spectral distance": (0.0, 2.0)}


class TermBars(QWidget):
    """One row per term: mix (blue) and reference (purple) bars with their values."""

    ROW = 30

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[tuple[str, str, float, float | None]] = []
        self.setMinimumHeight(5 * self.ROW + 4)

    def set_rows(self, rows) -> None:
        self.rows = list(rows)
        self.update()

    def paintEvent(self, ev) -> None:
        p = QPainter(self)
        p.setFont(theme.small_font(7.5))
        for i, row in enumerate(self.rows):
            self._row(p, i * self.ROW + 2, *row)

    def _row(self, p: QPainter, y: float, name: str, unit: str, mix: float, ref: float | None) -> None:
        w = self.width()
        p.setPen(theme.TEXT_DIM)
        p.drawText(QRectF(0, y, w, 12), Qt.AlignLeft, name)
        text = f"{mix:.2f}" if ref is None else f"{mix:.2f}  /  {ref:.2f}"
        p.setPen(theme.TEXT)
        p.drawText(QRectF(0, y, w - 2, 12), Qt.AlignRight, f"{text} {unit}".rstrip())
        lo, hi = _RANGES.get(name, (0.0, 1.0))
        origin = 0.0 if lo < 0 < hi else lo
        for j, (value, colour) in enumerate(((mix, theme.MIX), (ref, theme.REFERENCE))):
            if value is None or not np.isfinite(value):
                continue
            self._bar(p, QRectF(0, y + 13 + j * 7, w, 5), lo, hi, origin, value, colour)

    @staticmethod
    def _bar(p: QPainter, r: QRectF, lo, hi, origin, value, colour) -> None:
        p.fillRect(r, theme.GROOVE)

        def x(v):
            return r.left() + r.width() * (np.clip(v, lo, hi) - lo) / (hi - lo)

        a, b = sorted((x(origin), x(value)))
        p.fillRect(QRectF(a, r.top(), max(1.5, b - a), r.height()), colour)


class AnalysisPanel(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.title = QLabel("Analysis: waiting for audio", objectName="sectionTitle")
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        self.plot = self._spectrum_plot()
        lay.addWidget(self.plot, 1)
        legend = QLabel(f"<span style='color:{theme.MIX.name()}'>■ mix</span> &nbsp; "
                        f"<span style='color:{theme.REFERENCE.name()}'>■ reference</span> &nbsp; "
                        "(both at the same loudness)")
        legend.setObjectName("ctlLabel")
        lay.addWidget(legend)
        self.bars = TermBars()
        lay.addWidget(self.bars)
        self.result: measure.Analysis | None = None

    def _spectrum_plot(self) -> pg.PlotWidget:
        plot = pg.PlotWidget(background=theme.GROOVE)
        pi = plot.getPlotItem()
        pi.setMouseEnabled(False, False)
        pi.setMenuEnabled(False)
        pi.hideButtons()
        major = [(np.log10(f), t) for f, t in ((100, "100"), (1000, "1k"), (10000, "10k"))]
        minor = [(np.log10(f), "") for f in (30, 50, 200, 300, 500, 2000, 3000, 5000)]
        pi.getAxis("bottom").setTicks([major, minor])
        for name in ("bottom", "left"):
            ax = pi.getAxis(name)
            ax.setStyle(tickFont=theme.small_font(7))
            ax.setTextPen(theme.TEXT_DIM)
        pi.setLabel("left", "dB")
        pi.showGrid(x=True, y=True, alpha=0.15)
        pi.setXRange(np.log10(measure.SPECTRUM_F_LO), np.log10(measure.SPECTRUM_F_HI), padding=0)
        self.ref_curve = plot.plot(pen=pg.mkPen(theme.REFERENCE, width=1.5))
        self.mix_curve = plot.plot(pen=pg.mkPen(theme.MIX, width=1.5))
        plot.setMinimumHeight(150)
        return plot

    def show_result(self, result: measure.Analysis) -> None:
        self.result = result
        m, r = result.mix, result.reference
        self.mix_curve.setData(np.log10(m.freqs), m.spectrum_db)
        if r is not None:
            self.ref_curve.setData(np.log10(r.freqs), r.spectrum_db)
        else:
            self.ref_curve.setData([], [])
        # plain floats: pyqtgraph casts range limits to the value's type, and float32 overflows there
        top = float(max(np.max(m.spectrum_db), np.max(r.spectrum_db) if r is not None else -np.inf))
        self.plot.getPlotItem().setYRange(top - 70, top + 5, padding=0)
        self.bars.set_rows(result.terms())
        where = "whole song" if result.region is None else \
            f"loop {result.region[0]:.1f}-{result.region[1]:.1f} s"
        self.title.setText(f"ANALYSIS — mix ({where}) vs reference" if r is not None else
                           f"ANALYSIS — mix ({where}); add a reference to compare")

    def show_busy(self) -> None:
        self.title.setText(self.title.text().split(" (updating")[0] + " (updating…)")


class AnalysisController(QObject):
    """Debounced background analysis of the current mix; emits :class:`measure.Analysis`."""

    updated = Signal(object)

    def __init__(self, model, runner, parent=None):
        super().__init__(parent)
        self.model, self.runner = model, runner
        self._timer = QTimer(self, singleShot=True, interval=_DEBOUNCE_MS, timeout=self.run_now)
        self._running = False
        self._again = False
        self._ref_cache: tuple[int, measure.Measurement] | None = None
        model.modified.connect(self.schedule)
        model.audioChanged.connect(self.schedule)

    def schedule(self) -> None:
        self._timer.start()

    def run_now(self) -> None:
        inputs = self.model.inputs
        if inputs is None:
            return
        if self._running:
            self._again = True
            return
        s = self.model.session
        args = (inputs, s.params.copy(), s.mute, s.solo, s.loop)
        cached = self._ref_cache

        def job(task):
            return self._analyse(*args, cached)

        self._running = True
        self.runner.run("analysis", job, on_done=self._done, on_error=lambda *e: self._done(None))

    @staticmethod
    def _analyse(inputs, params, mute, solo, region, cached):
        ref = None
        if inputs.reference is not None:
            key = id(inputs.reference)
            ref = cached[1] if cached is not None and cached[0] == key else \
                measure.measure(inputs.reference, inputs.sample_rate)
        return measure.analyse(inputs, params, mute, solo, region, ref), ref

    def _done(self, out) -> None:
        self._running = False
        if out is not None:
            result, ref = out
            inputs = self.model.inputs
            if ref is not None and inputs is not None and inputs.reference is not None:
                self._ref_cache = (id(inputs.reference), ref)
            self.updated.emit(result)
        if self._again:
            self._again = False
            self.run_now()
