"""Relocate dialog: a session names audio files that are not there any more.

Nothing is dropped: each missing file can be located by hand or found by name under a folder; files
left missing stay in the session (their strips play silence and keep every setting) and can be
relocated later.
"""

from __future__ import annotations

import os

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from core.session import Session, search_folder


class RelocateDialog(QDialog):
    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("Missing audio files")
        self.resize(760, 320)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("These files were not found. Locate them, or search a folder for them by "
                             "name. Anything left missing keeps its settings and plays silence."))
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Track", "File", "Status"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.cellDoubleClicked.connect(lambda row, col: self.locate(row))
        lay.addWidget(self.table)
        buttons = QDialogButtonBox()
        locate = buttons.addButton("Locate…", QDialogButtonBox.ActionRole)
        search = buttons.addButton("Search folder…", QDialogButtonBox.ActionRole)
        buttons.addButton("Continue", QDialogButtonBox.AcceptRole)
        locate.clicked.connect(lambda: self.locate(self.table.currentRow()))
        search.clicked.connect(self._search)
        buttons.accepted.connect(self.accept)
        lay.addWidget(buttons)
        self.missing = session.missing()
        self.refresh()

    def refresh(self) -> None:
        self.table.setRowCount(len(self.missing))
        for row, m in enumerate(self.missing):
            now = self._current_path(m)
            found = os.path.isfile(now)
            for col, text in enumerate((m.name, now, "found" if found else "missing")):
                self.table.setItem(row, col, QTableWidgetItem(text))

    def _current_path(self, m) -> str:
        return self.session.reference if m.index < 0 else self.session.stems[m.index].path

    def locate(self, row: int) -> None:
        if not 0 <= row < len(self.missing):
            return
        m = self.missing[row]
        path, _ = QFileDialog.getOpenFileName(self, f"Locate {os.path.basename(m.path)}",
                                              os.path.dirname(m.path))
        if path:
            self.session.relocate(self._current_path(m), path)
            self.refresh()

    def _search(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Search folder for the missing files")
        if folder:
            self.search(folder)

    def search(self, folder: str) -> int:
        """Relocate every missing file found by name under ``folder``; returns how many were found."""
        found = search_folder(self.session.missing(), folder)
        for old, new in found.items():
            self.session.relocate(old, new)
        self.refresh()
        return len(found)

