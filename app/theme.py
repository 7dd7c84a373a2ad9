"""Colours and the style sheet: a dark console, as in DAW mixers, with one colour per meaning."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette

BG = QColor("#1d1f23")
PANEL = QColor("#262930")
STRIP = QColor("#2c3038")
STRIP_MASTER = QColor("#303440")
GROOVE = QColor("#15171a")
TEXT = QColor("#d8dce3")
TEXT_DIM = QColor("#8b93a1")
ACCENT = QColor("#4fc3f7")  # the current value
PREDICTED = QColor("#ffa726")  # what the prediction says
LOCKED = QColor("#ffd54f")  # a locked control
REFERENCE = QColor("#ab47bc")  # the reference song, wherever it is drawn
MIX = QColor("#4fc3f7")
MUTE = QColor("#ef5350")
SOLO = QColor("#ffee58")
METER_LOW = QColor("#43a047")
METER_MID = QColor("#fdd835")
METER_HIGH = QColor("#e53935")
GR = QColor("#ff7043")

#: One colour per EQ band (low shelf, bands 1-4, high shelf).
BAND_COLOURS = [QColor(c) for c in ("#ef5350", "#ffa726", "#ffee58", "#66bb6a", "#42a5f5", "#ab47bc")]

STYLE = f"""
QMainWindow, QDialog {{ background: {BG.name()}; }}
QWidget {{ color: {TEXT.name()}; font-size: 9pt; }}
QFrame#strip {{ background: {STRIP.name()}; border: 1px solid #3a3f49; border-radius: 4px; }}
QFrame#master {{ background: {STRIP_MASTER.name()}; border: 1px solid #4a5060; border-radius: 4px; }}
QFrame#section {{ background: transparent; border: none; border-top: 1px solid #3a3f49; }}
QLabel#stripName {{ font-weight: bold; font-size: 9pt; padding: 2px; background: #1b1d21;
    border-radius: 3px; }}
QLabel#sectionTitle {{ color: {TEXT_DIM.name()}; font-size: 7pt; font-weight: bold; }}
QLabel#ctlLabel {{ color: {TEXT_DIM.name()}; font-size: 7pt; }}
QLabel#readout {{ font-family: monospace; font-size: 8pt; }}
QLineEdit#value {{ background: transparent; border: none; font-size: 7pt; color: {TEXT.name()};
    padding: 0px; }}
QLineEdit#value:focus {{ background: #111; border: 1px solid {ACCENT.name()}; }}
QToolButton {{ background: #353a44; border: 1px solid #454b57; border-radius: 3px; padding: 2px 5px; }}
QToolButton:checked {{ background: {ACCENT.name()}; color: #101214; }}
QToolButton#mute:checked {{ background: {MUTE.name()}; color: #101214; }}
QToolButton#solo:checked {{ background: {SOLO.name()}; color: #101214; }}
QToolButton#lock:checked {{ background: {LOCKED.name()}; color: #101214; }}
QToolButton#band {{ padding: 0px 2px; font-size: 7pt; min-width: 14px; }}
QToolButton#abA:checked {{ background: {MIX.name()}; color: #101214; font-weight: bold; }}
QToolButton#abB:checked {{ background: {REFERENCE.name()}; color: #ffffff; font-weight: bold; }}
QToolButton#abP:checked {{ background: {PREDICTED.name()}; color: #101214; font-weight: bold; }}
QPushButton {{ background: #353a44; border: 1px solid #454b57; border-radius: 3px; padding: 4px 10px; }}
QPushButton:hover, QToolButton:hover {{ border-color: {ACCENT.name()}; }}
QPushButton:disabled, QToolButton:disabled {{ color: #5a606b; }}
QPushButton#predict {{ background: #2e7d32; font-weight: bold; }}
QScrollArea {{ background: {BG.name()}; border: none; }}
QScrollArea > QWidget > QWidget {{ background: {BG.name()}; }}
QProgressBar {{ background: #15171a; border: 1px solid #3a3f49; border-radius: 3px; text-align: center;
    max-height: 14px; }}
QProgressBar::chunk {{ background: {ACCENT.name()}; }}
QSlider::groove:horizontal {{ height: 4px; background: #15171a; border-radius: 2px; }}
QSlider::handle:horizontal {{ width: 10px; margin: -5px 0; background: {PREDICTED.name()};
    border-radius: 5px; }}
QSlider::handle:horizontal:disabled {{ background: #5a606b; }}
QDockWidget::title {{ background: {PANEL.name()}; padding: 3px; }}
QLabel#dropZone {{ border: 1px dashed #5a606b; border-radius: 4px; padding: 4px 8px;
    color: {TEXT_DIM.name()}; }}
QLabel#dropZone[active="true"] {{ border: 1px solid {REFERENCE.name()}; color: {TEXT.name()}; }}
QLabel#abSource {{ font-weight: bold; padding: 2px 8px; border-radius: 3px; }}
QStatusBar {{ background: {PANEL.name()}; }}
QMenuBar {{ background: {PANEL.name()}; }}
QMenu {{ background: {PANEL.name()}; border: 1px solid #3a3f49; }}
QMenu::item:selected {{ background: #3a4050; }}
"""


def palette() -> QPalette:
    pal = QPalette()
    for role, colour in ((QPalette.Window, BG), (QPalette.Base, GROOVE), (QPalette.AlternateBase, PANEL),
                         (QPalette.Text, TEXT), (QPalette.WindowText, TEXT), (QPalette.Button, PANEL),
                         (QPalette.ButtonText, TEXT), (QPalette.Highlight, ACCENT),
                         (QPalette.HighlightedText, BG), (QPalette.ToolTipBase, PANEL),
                         (QPalette.ToolTipText, TEXT)):
        pal.setColor(role, colour)
    return pal


def small_font(points: float = 7.0, bold: bool = False) -> QFont:
    f = QFont()
    f.setPointSizeF(points)
    f.setBold(bold)
    return f


def lock_icon(size: int = 12):
    """A small padlock drawn with QPainter (no icon files, no font glyphs needed)."""
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QIcon, QPainter, QPen, QPixmap

    icon = QIcon()
    for mode_colour, state in ((TEXT_DIM, QIcon.Off), (QColor("#101214"), QIcon.On)):
        pm = QPixmap(size, size)
        pm.fill(Qt.transparent)
        p = QPainter(pm)
        p.setRenderHint(QPainter.Antialiasing)
        p.setPen(QPen(mode_colour, 1.4))
        p.drawArc(QRectF(size * 0.28, size * 0.08, size * 0.44, size * 0.6), 0, 180 * 16)
        p.fillRect(QRectF(size * 0.18, size * 0.45, size * 0.64, size * 0.5), mode_colour)
        p.end()
        icon.addPixmap(pm, QIcon.Normal, state)
    return icon


def transport_icon(kind: str, size: int = 16):
    """Play, pause, stop and loop symbols drawn with QPainter, in the text colour (dimmed when disabled)."""
    from PySide6.QtCore import QPointF, QRectF, Qt
    from PySide6.QtGui import QIcon, QPainter, QPainterPath, QPen, QPixmap, QPolygonF

    icon = QIcon()
    for colour, mode in ((TEXT, QIcon.Normal), (QColor("#5a606b"), QIcon.Disabled)):
        pm = QPixmap(size, size)
        pm.fill(Qt.transparent)
        p = QPainter(pm)
        p.setRenderHint(QPainter.Antialiasing)
        p.setPen(Qt.NoPen)
        p.setBrush(colour)
        s = float(size)
        if kind == "play":
            p.drawPolygon(QPolygonF([QPointF(s * 0.25, s * 0.15), QPointF(s * 0.85, s * 0.5),
                                     QPointF(s * 0.25, s * 0.85)]))
        elif kind == "pause":
            p.drawRect(QRectF(s * 0.22, s * 0.18, s * 0.2, s * 0.64))
            p.drawRect(QRectF(s * 0.58, s * 0.18, s * 0.2, s * 0.64))
        elif kind == "stop":
            p.drawRect(QRectF(s * 0.22, s * 0.22, s * 0.56, s * 0.56))
        else:  # loop: a circular arrow
            p.setPen(QPen(colour, s * 0.12))
            p.setBrush(Qt.NoBrush)
            p.drawArc(QRectF(s * 0.18, s * 0.18, s * 0.64, s * 0.64), 60 * 16, 300 * 16)
            head = QPainterPath()
            head.moveTo(s * 0.62, s * 0.08)
            head.lineTo(s * 0.84, s * 0.26)
            head.lineTo(s * 0.58, s * 0.34)
            head.closeSubpath()
            p.fillPath(head, colour)
        p.end()
        icon.addPixmap(pm, mode)
    return icon
