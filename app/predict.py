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

    def __call__(self, task) -> MixParams:
        from core.refine import RefineConfig, refine

        task.report(0, self.steps + 1, "Loading model…")
        model = self.load_model()
        task.check()
        init = self._start(model, task)
        cfg = RefineConfig(steps=self.steps, region=self.region)
        if self.steps <= 0:
            return init

        def callback(step, steps, loss):
            return task.report(step + 1, steps + 1, f"Refining: AF loss {loss:.4f}")

        result = refine(self.inputs, init, cfg, self.lock_tracks, self.lock_master, callback)
        task.check()
        return result.params

    def _start(self, model, task) -> MixParams:
        """Model prediction (or the neutral console), with locked values put back."""
        if model is None:
            init = self.inputs.default_params()
        else:
            from core.predict import predict

            task.report(0, self.steps + 1, "Predicting…")
            init = predict(self.inputs, model, self.region)
        ti = TRACK.index("trim_db")
        init.tracks[:, ti] = self.current.tracks[:, ti]
        init.tracks[self.lock_tracks] = self.current.tracks[self.lock_tracks]
        init.master[self.lock_master] = self.current.master[self.lock_master]
        return init


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
                         self.steps, s.loop, self.load_model)
        self._before, self._touched = s.params.copy(), set()
        self.task = self.runner.run("predict", job, on_done=self._done, on_error=self._failed,
                                    on_progress=self.progress.emit, on_cancel=self._cancelled)
        self.started.emit()
        return True

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _done(self, params: MixParams) -> None:
        self.task = None
        if len(params.names) != self.model.n_tracks:  # strips changed meanwhile: the result no longer fits
            self.finished.emit(False, "Tracks changed during Predict; run it again")
            return
        keep_t, keep_m = self._kept()
        self.model.apply_prediction(params, keep_t, keep_m)
        kept = int(keep_t.sum() + keep_m.sum()) if keep_t is not None else 0
        note = (f"; {kept} control{'s' if kept != 1 else ''} you changed during Predict kept your value"
                f"{'s' if kept != 1 else ''}") if kept else ""
        self._before, self._touched = None, set()
        self.finished.emit(True, f"Prediction applied{note} (Edit > Undo restores the previous console)")

    def _failed(self, exc: BaseException, tb: str) -> None:
        self.task = None
        self.finished.emit(False, f"Predict failed: {exc}")

    def _cancelled(self) -> None:
        self.task = None
        self.finished.emit(False, "Predict cancelled; the console is unchanged")

