"""The stylemix desktop app (PySide6 + pyqtgraph); imports core only."""
