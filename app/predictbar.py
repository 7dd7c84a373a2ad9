"""The Predict bar: Predict / Cancel with progress, refinement steps, and one strength slider per group.

A strength slider blends each group from the neutral console (0 %) to the prediction (100 %); a
drag is one undo step. Locked controls are never moved by it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QSlider, QSpinBox, QWidget

from core.params import STRENGTH_GROUPS, STRENGTH_LABELS


class StrengthSlider(QWidget):
    def __init__(self, model, group: str, parent=None):
        super().__init__(parent)
        self.model, self.group = model, group
        self._gesture = 0
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(3)
        lay.addWidget(QLabel(STRENGTH_LABELS[group], objectName="ctlLabel"))
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setMinimumWidth(22)  # shrinks on a narrow window instead of pushing it wider
        self.slider.setMaximumWidth(70)
        self.slider.setToolTip(f"{STRENGTH_LABELS[group]}: neutral (0 %) to predicted (100 %). "
                               "Double-click the value to type it")
        self.value = QLabel("100%", objectName="readout")
        self.value.setFixedWidth(self.value.fontMetrics().horizontalAdvance("100%") + 4)
        lay.addWidget(self.slider)
        lay.addWidget(self.value)
        self.slider.sliderPressed.connect(self._begin)
        self.slider.valueChanged.connect(self._moved)
        model.strengthChanged.connect(lambda g, v: self.refresh() if g == group else None)
        self.refresh()

    def _begin(self) -> None:
        self._gesture = self.model.new_gesture()

    def _moved(self, value: int) -> None:
        if not self.slider.isSliderDown():
            self._gesture = self.model.new_gesture()  # keyboard/click steps: one undo step each
        self.model.set_strength(self.group, value / 100.0, self._gesture)
        self.value.setText(f"{value}%")

    def refresh(self) -> None:
        v = round(self.model.session.strength[self.group] * 100)
        self.slider.blockSignals(True)
        self.slider.setValue(v)
        self.slider.blockSignals(False)
        self.value.setText(f"{v}%")
        self.setEnabled(self.model.session.predicted is not None)


class PredictBar(QWidget):
    def __init__(self, model, predictor, parent=None):
        super().__init__(parent)
        self.model, self.predictor = model, predictor
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.setSpacing(4)
        self._predict_controls(lay)
        lay.addSpacing(8)
        lay.addWidget(QLabel("Strength:", objectName="ctlLabel"))
        self.strength = {g: StrengthSlider(model, g) for g in STRENGTH_GROUPS}
        for w in self.strength.values():
            lay.addWidget(w)
        lay.addStretch(1)
        predictor.started.connect(self._started)
        predictor.progress.connect(self._progress)
        predictor.finished.connect(lambda ok, msg: self._finished())
        model.predictedChanged.connect(self._refresh_strength)
        model.sessionChanged.connect(self._refresh_strength)

    def _predict_controls(self, lay: QHBoxLayout) -> None:
        self.predict_btn = QPushButton("Predict", objectName="predict")
        self.predict_btn.setToolTip("Fill the console to match the reference (model, then refinement). "
                                    "Locked controls keep their values")
        self.predict_btn.clicked.connect(self.predictor.start)
        self.steps = QSpinBox(minimum=0, maximum=1000, value=self.predictor.steps, suffix=" steps")
        self.steps.setToolTip("Refinement steps after the model (0: model only)")
        self.steps.valueChanged.connect(lambda v: setattr(self.predictor, "steps", v))
        self.progress = QProgressBar(minimum=0, maximum=100, value=0, textVisible=True)
        self.progress.setMinimumWidth(72)
        self.progress.setMaximumWidth(260)
        self.progress.setFormat("")
        self.cancel_btn = QPushButton("Cancel", enabled=False)
        self.cancel_btn.clicked.connect(self.predictor.cancel)
        for w in (self.predict_btn, self.steps, self.progress, self.cancel_btn):
            lay.addWidget(w, 1 if w is self.progress else 0)

    def _started(self) -> None:
        import time

        self._t0 = time.monotonic()
        self.predict_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.progress.setValue(0)
        self.progress.setFormat("Starting…")

    def _progress(self, done: int, total: int, text: str) -> None:
        """The stage's text, the step and an estimate of the time left (after the first steps)."""
        import time

        self.progress.setValue(int(100 * done / max(1, total)))
        elapsed = time.monotonic() - getattr(self, "_t0", time.monotonic())
        if done >= 2 and total > done:
            left = elapsed / done * (total - done)
            text = f"{text} · step {done}/{total}, about {left:.0f} s left"
        elif total > 1:
            text = f"{text} · step {done}/{total}"
        self.progress.setFormat(text)
        self.progress.setToolTip(text)

    def _finished(self) -> None:
        self.predict_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)
        self.progress.setValue(0)
        self.progress.setFormat("")

    def _refresh_strength(self) -> None:
        for w in self.strength.values():
            w.refresh()
