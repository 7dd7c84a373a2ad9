"""Transport widgets: buttons and time, the A/B source selector, the waveform overview and the
reference drop zone.

The overview shows the rendered mix; click to seek, drag to draw a loop region (its edges can be
dragged afterwards). Keys are set up by the main window: Space play/pause, L loop, A mix/reference,
P mix/prediction.
"""

from __future__ import annotations

import os

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QLabel, QToolButton, QWidget

from . import theme
from .console import local_paths
from .playback import SOURCE_TEXT

_MIN_LOOP_S = 0.1


def fmt_time(seconds: float) -> str:
    m, s = divmod(max(0.0, seconds), 60)
    return f"{int(m)}:{s:04.1f}"


class _SeekViewBox(pg.ViewBox):
    """Click seeks, a left-drag draws a loop region; no zooming (the overview is the whole song)."""

    clicked = Signal(float)
    dragged = Signal(float, float, bool)

    def __init__(self):
        super().__init__(enableMenu=False)
        self.setMouseEnabled(False, False)

    def mouseClickEvent(self, ev) -> None:
        if ev.button() == Qt.LeftButton:
            self.clicked.emit(self.mapSceneToView(ev.scenePos()).x())
            ev.accept()

    def mouseDragEvent(self, ev, axis=None) -> None:
        if ev.button() != Qt.LeftButton:
            ev.ignore()
            return
        ev.accept()
        a = self.mapSceneToView(ev.buttonDownScenePos()).x()
        b = self.mapSceneToView(ev.scenePos()).x()
        self.dragged.emit(min(a, b), max(a, b), ev.isFinish())


class WaveformOverview(pg.PlotWidget):
    """Min/max overview of the mix with playhead and loop region."""

    seekRequested = Signal(float)
    loopChanged = Signal(object)  # (start, end) seconds or None

    def __init__(self, parent=None):
        self.vb = _SeekViewBox()
        super().__init__(parent, viewBox=self.vb, background=theme.GROOVE)
        self.duration = 1.0
        pi = self.getPlotItem()
        pi.hideAxis("left")
        pi.hideButtons()
        bottom = pi.getAxis("bottom")
        bottom.setStyle(tickFont=theme.small_font(7), tickLength=-4)
        bottom.setTextPen(theme.TEXT_DIM)
        bottom.setHeight(16)
        self._items()
        self.vb.clicked.connect(lambda x: self.seekRequested.emit(float(np.clip(x, 0, self.duration))))
        self.vb.dragged.connect(self._drag_loop)
        self.setMinimumHeight(70)
        self.setMaximumHeight(90)  # spare height goes to the console

    def _items(self) -> None:
        colour = theme.MIX
        self.lo = pg.PlotDataItem(pen=pg.mkPen(colour, width=1))
        self.hi = pg.PlotDataItem(pen=pg.mkPen(colour, width=1))
        fill = pg.FillBetweenItem(self.lo, self.hi, brush=pg.mkBrush(colour.red(), colour.green(),
                                                                        colour.blue(), 110))
        for item in (self.lo, self.hi, fill):
            self.addItem(item)
        self.region = pg.LinearRegionItem(brush=pg.mkBrush(255, 213, 79, 45),
                                          pen=pg.mkPen(theme.LOCKED, width=1.5))
        self.region.setZValue(5)
        self.region.hide()
        self.region.sigRegionChangeFinished.connect(self._region_edited)
        self.addItem(self.region)
        self.playhead = pg.InfiniteLine(0, pen=pg.mkPen("#ffffff", width=1.5))
        self.playhead.setZValue(10)
        self.addItem(self.playhead)

    def set_envelope(self, lo: np.ndarray | None, hi: np.ndarray | None, duration: float) -> None:
        self.duration = max(duration, 1e-3)
        if lo is None:
            self.lo.setData([], [])
            self.hi.setData([], [])
        else:
            t = np.linspace(0, self.duration, len(lo))
            peak = max(1e-6, float(np.max(np.abs(np.concatenate([lo, hi])))))
            self.lo.setData(t, lo / peak)
            self.hi.setData(t, hi / peak)
        self.vb.setRange(xRange=(0, self.duration), yRange=(-1.05, 1.05), padding=0)

    def set_duration(self, seconds: float) -> None:
        """The song's length, known as soon as the audio is read (the envelope comes later)."""
        self.duration = max(seconds, 1e-3)
        self.vb.setRange(xRange=(0, self.duration), yRange=(-1.05, 1.05), padding=0)

    def set_position(self, seconds: float) -> None:
        self.playhead.setValue(seconds)

    def set_loop(self, region, enabled: bool = True) -> None:
        if region is None:
            self.region.hide()
            return
        self.region.blockSignals(True)
        self.region.setRegion(region)
        self.region.blockSignals(False)
        self.region.setBrush(pg.mkBrush(255, 213, 79, 45 if enabled else 15))
        self.region.show()

    def _drag_loop(self, a: float, b: float, finished: bool) -> None:
        a, b = float(np.clip(a, 0, self.duration)), float(np.clip(b, 0, self.duration))
        self.region.blockSignals(True)
        self.region.setRegion((a, b))
        self.region.blockSignals(False)
        self.region.show()
        if finished:
            self.loopChanged.emit((a, b) if b - a >= _MIN_LOOP_S else None)

    def _region_edited(self) -> None:
        a, b = self.region.getRegion()
        self.loopChanged.emit((max(0.0, a), min(self.duration, b)) if b - a >= _MIN_LOOP_S else None)


class ReferenceDropZone(QLabel):
    """Shows the reference song; drop an audio file here (or click) to set it."""

    referenceDropped = Signal(str)
    clicked = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("dropZone")
        self.setAcceptDrops(True)
        self.setMinimumWidth(220)
        self.setCursor(Qt.PointingHandCursor)
        self.set_reference(None)

    def set_reference(self, path: str | None, problem: str | None = None) -> None:
        if path is None:
            self.setText("Reference: drop a song here")
        else:
            self.setText(f"Reference: {os.path.basename(path)}" + ("  (missing)" if problem else ""))
        self.setToolTip(problem or path or "The finished song whose style the mix should take on")
        self.setProperty("active", path is not None and not problem)
        self.style().unpolish(self)
        self.style().polish(self)

    def mousePressEvent(self, ev) -> None:
        self.clicked.emit()

    def dragEnterEvent(self, ev) -> None:
        if len(local_paths(ev.mimeData())) == 1:
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:
        paths = local_paths(ev.mimeData())
        if len(paths) == 1 and os.path.isfile(paths[0]):
            ev.acceptProposedAction()
            self.referenceDropped.emit(paths[0])


class TransportBar(QWidget):
    """Stop, play/pause, loop, time, and the A/B source buttons with the active source named."""

    def __init__(self, controller, parent=None):
        super().__init__(parent)
        self.ctl = controller
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.setSpacing(4)
        self._transport(lay)
        lay.addSpacing(16)
        self._ab(lay)
        lay.addStretch(1)
        self.reference = ReferenceDropZone()
        lay.addWidget(self.reference)
        controller.stateChanged.connect(self.refresh)
        controller.positionChanged.connect(self.show_time)
        self.refresh()

    def _button(self, icon: str, tip: str, slot, checkable: bool = False) -> QToolButton:
        b = QToolButton(checkable=checkable)
        b.setIcon(theme.transport_icon(icon))
        b.setToolTip(tip)
        b.clicked.connect(slot)
        b.setFixedSize(30, 24)
        return b

    def _transport(self, lay: QHBoxLayout) -> None:
        self.stop_btn = self._button("stop", "Stop, return to start (Home)", self.ctl.stop)
        self.play_btn = self._button("play", "Play / pause (Space)", self.ctl.toggle_play)
        self.loop_btn = self._button("loop", "Loop on/off (L); drag on the overview "
                                     "to draw the region", self.ctl.toggle_loop, checkable=True)
        self.time = QLabel("0:00.0 / 0:00.0", objectName="readout")
        self.time.setMinimumWidth(110)
        for w in (self.stop_btn, self.play_btn, self.loop_btn, self.time):
            lay.addWidget(w)

    def _ab(self, lay: QHBoxLayout) -> None:
        lay.addWidget(QLabel("Listen:", objectName="ctlLabel"))
        self.ab_group = QButtonGroup(self)
        self.ab_buttons: dict[str, QToolButton] = {}
        for i, (src, text, tip, name) in enumerate((
                ("mix", "MIX", "Your mix with your edits (A toggles with the reference)", "abA"),
                ("reference", "REF", "The reference song, loudness-matched (A)", "abB"),
                ("predicted", "PRED", "The prediction, loudness-matched (P)", "abP"))):
            b = QToolButton(text=text, checkable=True, objectName=name)
            b.setToolTip(tip)
            b.setMinimumWidth(44)
            self.ab_group.addButton(b, i)
            self.ab_buttons[src] = b
            lay.addWidget(b)
        self.ab_group.idClicked.connect(lambda i: self.ctl.set_source(("mix", "reference", "predicted")[i]))
        self.source_label = QLabel("", objectName="abSource")
        self.source_label.setMinimumWidth(150)
        lay.addWidget(self.source_label)

    def refresh(self) -> None:
        ctl = self.ctl
        playing = ctl.engine.playing
        self.play_btn.setIcon(theme.transport_icon("pause" if playing else "play"))
        self.play_btn.setEnabled(ctl.engine.available and ctl.engine.loaded)
        self.loop_btn.setChecked(ctl.loop_on)
        self.ab_buttons[ctl.source].setChecked(True)
        self.ab_buttons["reference"].setEnabled(ctl.can_hear("reference"))
        self.ab_buttons["predicted"].setEnabled(ctl.can_hear("predicted"))
        colour = theme.MIX if ctl.source == "mix" else theme.REFERENCE if ctl.source == "reference" \
            else theme.PREDICTED
        self.source_label.setText(SOURCE_TEXT[ctl.source])
        self.source_label.setStyleSheet(f"background: {colour.name()}; color: #101214;")
        self.show_time(ctl.engine.position())

    def show_time(self, seconds: float) -> None:
        inputs = self.ctl.model.inputs
        total = inputs.duration if inputs is not None else 0.0
        self.time.setText(f"{fmt_time(seconds)} / {fmt_time(total)}")
