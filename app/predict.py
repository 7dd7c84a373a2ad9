"""Predict: model (when one is installed) then refinement, on a worker thread, with progress and Cancel.

The result fills the console in one undo step (:meth:`app.model.MixModel.apply_prediction`). Locked
controls are passed to refinement as locks and keep their values; the loop region, when set, is
what gets analysed. Without a model file, Predict is refinement from the equal-loudness console.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from core.paramfile import MixParams
from core.params import MASTER, TRACK
from core.suggest import SuggestConfig, Suggestion, suggest

from .model import MASTER_TRACK, schema_for

DEFAULT_STEPS = 40


def _default_model_loader():
    try:
        from core.predict import load_default_model
    except ImportError:
        return None
    return load_default_model()


@dataclass
class PredictJob:
    """Everything the worker needs, copied on the GUI thread (the worker never reads the model)."""

    inputs: object
    current: MixParams
    lock_tracks: object
    lock_master: object
    steps: int
    region: tuple[float, float] | None
    load_model: Callable
    prior: float = 1.0
    reference_kind: str = "auto"

    def __call__(self, task) -> Suggestion:
        """The core pipeline (:func:`core.suggest.suggest`) with the task's progress and Cancel."""
        where = (f"loop {self.region[0]:.1f}-{self.region[1]:.1f} s · " if self.region is not None else "")
        task.report(0, self.steps + 1, where + "Loading model…")
        model = self.load_model()
        task.check()
        cfg = SuggestConfig(steps=self.steps, region=self.region, prior=self.prior,
                            reference_kind=self.reference_kind)

        def progress(done, total, message):
            return task.report(done, total, where + message)

        result = suggest(self.inputs, model, cfg, current=self.current, lock_tracks=self.lock_tracks,
                         lock_master=self.lock_master, progress=progress)
        task.check()
        return result


def describe(result: Suggestion) -> str:
    """``", loop 4.7-7.9 s analysed, reference: same song (score 0.91)"``: what Predict decided."""
    parts = []
    if result.region is not None:
        a, b = result.region
        parts.append(f"loop {a:.1f}-{b:.1f} s analysed with the whole song as context")
    if result.detection:
        text = result.detection.get("text", f"Reference: {result.reference_kind}")
        parts.append(text[:1].lower() + text[1:])
    return (", " + ", ".join(parts)) if parts else ""


class PredictController(QObject):
    """Starts, reports and cancels Predict; applies the result as one undo step.

    A control the user changes while Predict runs keeps the user's value: it is locked for that run
    (``message`` says so at the first change of each control), and the result fills only the others.
    """

    started = Signal()
    progress = Signal(int, int, str)
    finished = Signal(bool, str)  # applied?, message
    message = Signal(str)  # a control the user touched during the run keeps its value

    def __init__(self, model, runner, parent=None, load_model: Callable = _default_model_loader):
        super().__init__(parent)
        self.model, self.runner, self.load_model = model, runner, load_model
        self.steps = DEFAULT_STEPS
        self.reference_kind = "auto"  # Mix > Reference is…: auto, same-song, other
        self.prior = 1.0
        self.last: Suggestion | None = None
        self.task = None
        self._before = None  # the console when the run started
        self._touched: set[tuple[int, str]] = set()
        model.paramChanged.connect(self._param_changed)

    def _param_changed(self, track: int, key: str, value: float) -> None:
        if self.task is None or (track, key) in self._touched:
            return
        self._touched.add((track, key))
        schema = schema_for(track)
        where = "master" if track == MASTER_TRACK else self.model.session.names[track]
        label = schema[key].label if key in schema.keys else key
        self.message.emit(f"{where} {label} keeps your value: it is locked for this Predict run")

    def _kept(self):
        """Masks of the controls the user changed since the run started (the run's extra locks)."""
        s, before = self.model.session, self._before
        if before is None or before.tracks.shape != s.params.tracks.shape:
            return None, None
        keep_t = s.params.tracks != before.tracks
        keep_m = s.params.master != before.master
        for track, key in self._touched:
            if track == MASTER_TRACK:
                keep_m[MASTER.index(key)] = True
            elif track < keep_t.shape[0]:
                keep_t[track, TRACK.index(key)] = True
        return keep_t, keep_m

    @property
    def running(self) -> bool:
        return self.task is not None

    def problem(self) -> str | None:
        """Why Predict cannot run now, or None."""
        inputs = self.model.inputs
        if inputs is None:
            return "Add stems first" if not self.model.session.stems else "Audio is still loading"
        if inputs.reference is None:
            return "Set a reference song first (drop it on the reference zone)"
        if inputs.silent.all():
            return "Every stem is silent"
        return None

    def start(self) -> bool:
        if self.running:
            return False
        problem = self.problem()
        if problem is not None:
            self.finished.emit(False, problem)
            return False
        s = self.model.session
        job = PredictJob(self.model.inputs, s.params.copy(), s.lock_tracks.copy(), s.lock_master.copy(),
                         self.steps, s.loop, self.load_model, self.prior, self.reference_kind)
        self._before, self._touched = s.params.copy(), set()
        self.task = self.runner.run("predict", job, on_done=self._done, on_error=self._failed,
                                    on_progress=self.progress.emit, on_cancel=self._cancelled)
        self.started.emit()
        return True

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _done(self, result: Suggestion) -> None:
        self.task = None
        params = result.params
        if len(params.names) != self.model.n_tracks:  # strips changed meanwhile: the result no longer fits
            self.finished.emit(False, "Tracks changed during Predict; run it again")
            return
        self.last = result
        keep_t, keep_m = self._kept()
        self.model.apply_prediction(params, keep_t, keep_m)
        kept = int(keep_t.sum() + keep_m.sum()) if keep_t is not None else 0
        note = (f"; {kept} control{'s' if kept != 1 else ''} you changed during Predict kept your value"
                f"{'s' if kept != 1 else ''}") if kept else ""
        self._before, self._touched = None, set()
        self.finished.emit(True, f"Prediction applied{describe(result)}{note} "
                                 "(Edit > Undo restores the previous console)")

    def _failed(self, exc: BaseException, tb: str) -> None:
        self.task = None
        self.finished.emit(False, f"Predict failed: {exc}")

    def _cancelled(self) -> None:
        self.task = None
        self.finished.emit(False, "Predict cancelled; the console is unchanged")

