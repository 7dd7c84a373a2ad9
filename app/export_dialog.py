"""Export dialog: format, bit depth, loudness target, true-peak ceiling, processed stems; progress and Cancel.

Export renders with the streaming console, the same engine playback uses (:func:`core.export.export_mix`),
so the file is what you heard. Before anything is rendered, :func:`core.export.check_export_paths` refuses
a destination that is one of the session's files (its audio, its reference, the session itself) or a
stems folder holding files stylemix did not write; the mix and its stems land together or not at all.
"""

from __future__ import annotations

import math
import os

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from core.audio_io import AudioError
from core.export import check_export_paths, export_mix
from core.fileio import OutputError, WriteError

BITS = (("24-bit integer", "24"), ("16-bit integer", "16"), ("32-bit float", "32f"))
DEFAULT_LUFS, DEFAULT_CEILING = -14.0, -1.0


_INSTALL = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_output(session_path: str | None) -> str:
    """Next to the session, never inside the installation (the bundled demo): there, and for an
    unsaved session, in the user's Music folder (or home)."""
    home = os.path.expanduser("~")
    music = os.path.join(home, "Music")
    elsewhere = music if os.path.isdir(music) else home
    if session_path:
        stem = os.path.splitext(os.path.basename(session_path))[0]
        folder = os.path.dirname(os.path.abspath(session_path))
        inside = os.path.commonpath([os.path.realpath(folder), os.path.realpath(_INSTALL)]) == \
            os.path.realpath(_INSTALL)
        return os.path.join(elsewhere if inside else folder, f"{stem}_mix.wav")
    return os.path.join(elsewhere, "stylemix_mix.wav")


class ExportDialog(QDialog):
    """Runs the export through the app's task runner; ``result`` holds the ExportResult afterwards."""

    def __init__(self, model, runner, reference_lufs: float | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Export mix")
        self.model, self.runner = model, runner
        self.task = None
        self.result = None
        self.error: str | None = None
        lay = QVBoxLayout(self)
        form = QFormLayout()
        self._fields(form, reference_lufs)
        lay.addLayout(form)
        self.progress = QProgressBar(minimum=0, maximum=1000, value=0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        self.buttons = QDialogButtonBox()
        self.export_btn = self.buttons.addButton("Export", QDialogButtonBox.AcceptRole)
        self.close_btn = self.buttons.addButton(QDialogButtonBox.Close)
        self.export_btn.clicked.connect(self.start)
        self.close_btn.clicked.connect(self._close_or_cancel)
        lay.addWidget(self.buttons)
        self.format.currentTextChanged.connect(self._format_changed)
        self._format_changed(self.format.currentText())

    def _fields(self, form: QFormLayout, reference_lufs: float | None) -> None:
        self.path = QLineEdit(default_output(self.model.session.path))
        self.path.setMinimumWidth(min(700, self.path.fontMetrics().horizontalAdvance(self.path.text()) + 24))
        self.path.textChanged.connect(self.path.setToolTip)  # the whole path, also when it is long
        self.path.setToolTip(self.path.text())
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        form.addRow("File", _row(self.path, browse))
        self.format = QComboBox()
        self.format.addItems(["WAV", "FLAC"])
        form.addRow("Format", self.format)
        self.bits = QComboBox()
        for text, key in BITS:
            self.bits.addItem(text, key)
        form.addRow("Bit depth", self.bits)
        known = reference_lufs is not None and math.isfinite(reference_lufs)
        target = reference_lufs if known else DEFAULT_LUFS
        self.match, self.lufs = _optional_spin(True, target, -40.0, -3.0, " LUFS")
        self.match.setText("Loudness target (the reference's by default)")
        form.addRow(self.match, self.lufs)
        self.limit, self.ceiling = _optional_spin(True, DEFAULT_CEILING, -12.0, 0.0, " dBTP")
        self.limit.setText("True-peak ceiling")
        form.addRow(self.limit, self.ceiling)
        self.stems = QCheckBox("Also export processed stems (each track after its strip)")
        form.addRow(self.stems)

    # -- fields -------------------------------------------------------------------------------------------
    def _browse(self) -> None:
        ext = self.format.currentText().lower()
        path, _ = QFileDialog.getSaveFileName(self, "Export mix", self.path.text(),
                                              f"{ext.upper()} (*.{ext})")
        if path:
            self.path.setText(path)

    def _format_changed(self, text: str) -> None:
        ext = text.lower()
        base = os.path.splitext(self.path.text())[0]
        self.path.setText(f"{base}.{ext}")
        model = self.bits.model()
        model.item(2).setEnabled(ext == "wav")  # FLAC stores integers only
        if ext == "flac" and self.bits.currentData() == "32f":
            self.bits.setCurrentIndex(0)

    def settings(self) -> dict:
        out = self.path.text()
        return {"out_path": out, "fmt": self.format.currentText().lower(), "bits": self.bits.currentData(),
                "loudness_lufs": self.lufs.value() if self.match.isChecked() else None,
                "ceiling_dbtp": self.ceiling.value() if self.limit.isChecked() else None,
                "stems_dir": os.path.splitext(out)[0] + "_stems" if self.stems.isChecked() else None}

    def sources(self) -> dict:
        """The session's own files, which no output may overwrite."""
        s = self.model.session
        return {"stem_files": [st.path for st in s.stems], "protect": [s.reference, s.path]}

    # -- running -------------------------------------------------------------------------------------------
    def start(self) -> None:
        inputs = self.model.inputs
        if inputs is None or self.task is not None:
            return
        s = self.model.session
        kw = self.settings()
        self.error = None
        try:
            check_export_paths(kw["out_path"], kw["stems_dir"], s.names, kw["fmt"], **self.sources())
        except (OutputError, WriteError, AudioError) as exc:
            self.error = str(exc)
            self.status.setText(f"Export refused: {exc}")
            return
        args = (inputs.stems, s.params.tracks.copy(), s.params.master.copy(), inputs.sample_rate)
        extra = {"stereo": inputs.stereo, "names": list(s.names), "mute": s.mute, "solo": s.solo,
                 "fx_mute": s.fx_mute, **self.sources()}

        def job(task):
            def progress(done, total):
                task.report(done, total)
                task.check()

            return export_mix(*args, progress=progress, **kw, **extra)

        self._busy(True)
        self.task = self.runner.run("export", job, on_done=self._done, on_error=self._failed,
                                    on_progress=self._progress, on_cancel=self._cancelled)

    def _busy(self, on: bool) -> None:
        self.export_btn.setEnabled(not on)
        self.close_btn.setText("Cancel" if on else "Close")
        self.status.setText("Exporting…" if on else self.status.text())

    def _progress(self, done: int, total: int) -> None:
        self.progress.setValue(int(1000 * done / max(1, total)))

    def _done(self, result) -> None:
        self.task, self.result = None, result
        self._busy(False)
        self.progress.setValue(1000)
        stems = f", {len(result.stem_paths)} stems" if result.stem_paths else ""
        self.status.setText(f"Wrote {result.path}{stems}: {result.loudness_lufs:.1f} LUFS, "
                            f"true peak {result.true_peak_dbtp:.1f} dBTP")

    def _failed(self, exc: BaseException, tb: str) -> None:
        self.task, self.error = None, str(exc)
        self._busy(False)
        self.status.setText(f"Export failed: {exc}")

    def _cancelled(self) -> None:
        self.task = None
        self._busy(False)
        self.progress.setValue(0)
        self.status.setText("Export cancelled")

    def _close_or_cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
        else:
            self.reject()


def _row(*widgets) -> QWidget:
    w = QWidget()
    lay = QHBoxLayout(w)
    lay.setContentsMargins(0, 0, 0, 0)
    for x in widgets:
        lay.addWidget(x)
    return w


def _optional_spin(on: bool, value: float, lo: float, hi: float, suffix: str):
    check = QCheckBox()
    check.setChecked(on)
    spin = QDoubleSpinBox(minimum=lo, maximum=hi, value=value, decimals=1, singleStep=0.5, suffix=suffix)
    check.toggled.connect(spin.setEnabled)
    return check, spin

