"""The console view: channel strips side by side (scrolling horizontally), the master strip pinned right.

Files and folders dropped anywhere on it become new strips (``filesDropped``); a dropped
``.stylemix`` file asks to open that session instead. The view follows the model's signals and
routes each change to the one strip and control concerned, so 32 strips stay responsive.
"""

from __future__ import annotations

import os

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QScrollArea, QWidget

from core.session import SUFFIX

from .model import MASTER_TRACK
from .strip import ChannelStrip, MasterStrip


def local_paths(mime) -> list[str]:
    """Local files and folders in a drag's mime data (URLs that are not files are ignored)."""
    if not mime.hasUrls():
        return []
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile() and os.path.exists(u.toLocalFile())]


class ConsoleView(QWidget):
    filesDropped = Signal(list)
    sessionDropped = Signal(str)

    def __init__(self, model, parent=None):
        super().__init__(parent)
        self.model = model
        self.strips: list[ChannelStrip] = []
        self.compact = False
        self.setAcceptDrops(True)
        self._build()
        self._connect()
        self.rebuild()

    def _build(self) -> None:
        self.row = QHBoxLayout()
        self.row.setContentsMargins(4, 4, 4, 4)
        self.row.setSpacing(4)
        inner = QWidget()
        inner.setLayout(self.row)
        self.hint = QLabel(self.HINT)
        self.hint.setAlignment(Qt.AlignCenter)
        self.hint.setStyleSheet("color: #8b93a1; font-size: 12pt; border: 2px dashed #3a3f49; padding: 40px;")
        self.scroll = QScrollArea()
        self.scroll.setWidget(inner)
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAsNeeded)
        self.master = MasterStrip(self.model)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        lay.addWidget(self.scroll, 1)
        lay.addWidget(self.master)

    HINT = "Drop stem files or folders here\n(or File > Add stems…)"

    def set_loading(self, text: str | None) -> None:
        """Show ``text`` (e.g. "Loading stems 3/8…") where the strips will appear; None: the drop hint."""
        self.hint.setText(text or self.HINT)

    def _connect(self) -> None:
        m = self.model
        m.paramChanged.connect(lambda t, k, v: self._strip(t).refresh(k))
        m.lockChanged.connect(lambda t, k, on: self._strip(t).refresh(k))
        m.consoleReset.connect(self.refresh_all)
        m.predictedChanged.connect(self.refresh_all)
        m.flagChanged.connect(lambda t: self._strip(t).refresh_flags())
        m.stripsChanged.connect(self.rebuild)
        m.sessionChanged.connect(self.rebuild)
        m.audioChanged.connect(self._refresh_flags)

    def _strip(self, track: int):
        return self.master if track == MASTER_TRACK else self.strips[track]

    # -- building ---------------------------------------------------------------------------------------
    def rebuild(self) -> None:
        """New strips for the model's stems (after open, add, remove)."""
        for strip in self.strips:
            strip.setParent(None)
            strip.deleteLater()
        while self.row.count():
            self.row.takeAt(0)
        self.strips = [self._make_strip(i) for i in range(self.model.n_tracks)]
        for s in self.strips:
            self.row.addWidget(s)
        self.hint.setVisible(not self.strips)
        self.row.addWidget(self.hint, 1 if not self.strips else 0)
        self.row.addStretch(0 if not self.strips else 1)
        self.master.refresh()

    def _make_strip(self, i: int) -> ChannelStrip:
        strip = ChannelStrip(self.model, i)
        strip.removeRequested.connect(self.model.remove_strip)
        strip.set_compact(self.compact)
        return strip

    def refresh_all(self) -> None:
        for s in self.strips:
            s.refresh()
        self.master.refresh()

    def _refresh_flags(self) -> None:
        for s in [*self.strips, self.master]:
            s.refresh_flags()

    def set_compact(self, on: bool) -> None:
        self.compact = on
        for s in self.strips:
            s.set_compact(on)

    # -- meters -----------------------------------------------------------------------------------------
    def show_meters(self, meters) -> None:
        """``core.playback.Meters``: rows 0..N-1 strips, row N the master; the FX return's apart."""
        n = len(self.strips)
        if meters.peak_db.shape[0] != n + 1:
            return
        for i, s in enumerate(self.strips):
            s.set_meters(meters.peak_db[i], meters.rms_db[i], meters.gain_reduction_db[i])
        self.master.set_meters(meters.peak_db[n], meters.rms_db[n], meters.gain_reduction_db[n])
        self.master.set_loudness(M=float(meters.momentary_lufs[n]), S=float(meters.short_term_lufs[n]))
        self.master.set_fx_meters(meters.fx_peak_db, meters.fx_rms_db)

    def clear_meters(self) -> None:
        for s in [*self.strips, self.master]:
            s.clear_meters()
        self.master.set_loudness(M=None, S=None)

    # -- drag and drop ----------------------------------------------------------------------------------
    def dragEnterEvent(self, ev) -> None:
        if local_paths(ev.mimeData()):
            ev.acceptProposedAction()

    def dragMoveEvent(self, ev) -> None:
        if local_paths(ev.mimeData()):
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:
        paths = local_paths(ev.mimeData())
        if not paths:
            return
        ev.acceptProposedAction()
        sessions = [p for p in paths if p.lower().endswith(SUFFIX)]
        if sessions:
            self.sessionDropped.emit(sessions[0])
        else:
            self.filesDropped.emit(paths)
