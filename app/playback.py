"""Transport and A/B logic between the model and the audio engine.

Every model change is pushed to the engine as a new parameter snapshot at once (the engine re-renders
the blocks not yet played, so an edit is heard within a block or two). A single control travels as
(track, key, value), and the engine designs again only what that control changes. A GUI timer polls
the playhead and the meters (Friture style). A/B has three sources, all at the same playhead: the mix
with your edits, the reference song and the prediction. The reference is loudness-matched by the
engine; the prediction is matched here by offsetting its master fader by the measured loudness
difference.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from core import measure

SOURCES = ("mix", "reference", "predicted")
SOURCE_TEXT = {"mix": "MIX — your edits", "reference": "REFERENCE", "predicted": "PREDICTED"}
_POLL_MS = 33
_MATCH_DEBOUNCE_MS = 350


class PlaybackController(QObject):
    stateChanged = Signal()  # playing, loop, source
    positionChanged = Signal(float)  # seconds
    metersChanged = Signal(object)  # core.playback.Meters
    message = Signal(str)

    def __init__(self, model, engine, runner, parent=None):
        super().__init__(parent)
        self.model, self.engine, self.runner = model, engine, runner
        self.source = "mix"
        self.loop_on = False
        self.predicted_gain_db = 0.0
        self._b_kind: str | None = None
        self._session = None
        self._timer = QTimer(self, interval=_POLL_MS, timeout=self._poll)
        self._match_timer = QTimer(self, singleShot=True, interval=_MATCH_DEBOUNCE_MS,
                                   timeout=self._match_predicted)
        self._connect()

    def _connect(self) -> None:
        m = self.model
        m.audioChanged.connect(self.reload)
        m.paramChanged.connect(self.push_value)
        m.consoleReset.connect(self.push)
        m.flagChanged.connect(lambda *a: self.push())
        m.loopChanged.connect(self._region_changed)
        m.predictedChanged.connect(self._prediction_changed)

    # -- engine material ----------------------------------------------------------------------------------
    def reload(self) -> None:
        """New audio, strips or reference: a fresh engine with the current parameters."""
        was_playing = self.engine.playing
        pos = self.engine.position()
        inputs = self.model.inputs
        self._b_kind = None
        if inputs is None:
            self.engine.close()
            self.stateChanged.emit()
            return
        s = self.model.session
        if self._session is not s:  # another session: its saved loop region starts enabled
            self._session, self.loop_on = s, s.loop is not None
        self.engine.load(inputs, s.params, s.mute, s.solo, s.fx_mute)
        self._apply_loop()
        self.engine.seek(pos)
        if self.source != "mix" and not self.can_hear(self.source):
            self.source = "mix"
        self._apply_source()
        if was_playing:
            self.play()
        self.stateChanged.emit()

    def push(self) -> None:
        s = self.model.session
        if self.engine.loaded and len(s.stems) == self.engine.player.n_tracks:
            self.engine.set_params(s.params, s.mute, s.solo, s.fx_mute)
            if self.source == "predicted":
                self._match_timer.start()

    def push_value(self, track: int, key: str, value: float) -> None:
        """One control changed: only (track, key, value) travels to the engine."""
        if self.engine.loaded and len(self.model.session.stems) == self.engine.player.n_tracks:
            self.engine.set_value(track, key, value)
            if self.source == "predicted":
                self._match_timer.start()

    # -- transport ---------------------------------------------------------------------------------------
    def play(self) -> None:
        try:
            self.engine.play()
        except Exception as exc:  # NoAudioError and device failures: say so, keep working
            self.message.emit(str(exc))
            return
        self._timer.start()
        self.stateChanged.emit()

    def pause(self) -> None:
        self.engine.pause()
        self.stateChanged.emit()

    def toggle_play(self) -> None:
        self.pause() if self.engine.playing else self.play()

    def stop(self) -> None:
        self.engine.stop()
        self._timer.stop()
        self.positionChanged.emit(self.engine.position())
        self.metersChanged.emit(None)
        self.stateChanged.emit()

    def seek(self, seconds: float) -> None:
        self.engine.seek(max(0.0, seconds))
        self.positionChanged.emit(self.engine.position())

    def _poll(self) -> None:
        self.positionChanged.emit(self.engine.position())
        if self.engine.playing:
            self.metersChanged.emit(self.engine.meters())
        else:
            self._timer.stop()
            self.metersChanged.emit(None)
            self.stateChanged.emit()

    # -- loop ------------------------------------------------------------------------------------------------
    def toggle_loop(self) -> None:
        """L: loop on/off; turning it on without a region loops four seconds from the playhead."""
        self.loop_on = not self.loop_on
        if self.loop_on and self.model.session.loop is None and self.model.inputs is not None:
            start = self.engine.position()
            end = min(self.model.inputs.duration, start + 4.0)
            if end - start < 0.5:
                start, end = max(0.0, end - 4.0), end
            self.model.set_loop((start, end))
        self._apply_loop()
        self.stateChanged.emit()

    def _region_changed(self) -> None:
        self.loop_on = self.model.session.loop is not None  # drawing a region means: hear it looped
        self._apply_loop()

    def _apply_loop(self) -> None:
        region = self.model.session.loop
        self.engine.set_loop(region if self.loop_on else None)
        self.stateChanged.emit()

    # -- A/B -------------------------------------------------------------------------------------------------
    def can_hear(self, source: str) -> bool:
        if source == "reference":
            return self.model.inputs is not None and self.model.inputs.reference is not None
        if source == "predicted":
            return self.model.session.predicted is not None
        return True

    def set_source(self, source: str) -> None:
        """Hear ``mix``, ``reference`` or ``predicted`` from the same playhead (cross-faded)."""
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}")
        if not self.can_hear(source):
            self.message.emit(f"No {source} to compare with yet")
            source = "mix"
        self.source = source
        self._apply_source()
        self.stateChanged.emit()

    def toggle_reference(self) -> None:
        self.set_source("mix" if self.source == "reference" else "reference")

    def toggle_predicted(self) -> None:
        self.set_source("mix" if self.source == "predicted" else "predicted")

    def _apply_source(self) -> None:
        if not self.engine.loaded:
            return
        if self.source == "reference" or (self.source == "mix" and self._b_kind is None):
            self._use_reference_as_b()
        elif self.source == "predicted":
            self.engine.set_b_params(self.model.session.predicted, self.predicted_gain_db)
            self._b_kind = "predicted"
            self._match_timer.start()
        self.engine.set_ab("A" if self.source == "mix" else "B")

    def _use_reference_as_b(self) -> None:
        inputs = self.model.inputs
        if inputs is not None and inputs.reference is not None and self._b_kind != "reference":
            self.engine.set_b_reference(inputs.reference)
            self._b_kind = "reference"

    def _prediction_changed(self) -> None:
        if self.source == "predicted":
            if self.model.session.predicted is None:
                self.set_source("mix")
            else:
                self._apply_source()
        self.stateChanged.emit()  # the PRED button follows whether there is a prediction

    def _match_predicted(self) -> None:
        """Measure edits vs prediction loudness in the background; B's fader follows."""
        inputs, s = self.model.inputs, self.model.session
        if inputs is None or s.predicted is None:
            return
        cur, pred, mute, solo, fx_mute = s.params.copy(), s.predicted.copy(), s.mute, s.solo, s.fx_mute
        region = s.loop

        def job(task):  # as heard: B follows A's mutes, the FX return's too
            a = measure.render(inputs, cur, mute, solo, region, fx_mute)
            b = measure.render(inputs, pred, mute, solo, region, fx_mute)
            return measure.loudness_gain_db(a, b, inputs.sample_rate)

        self.runner.run("match", job, on_done=self._matched)

    def _matched(self, gain_db: float) -> None:
        self.predicted_gain_db = gain_db
        if self.source == "predicted" and self.model.session.predicted is not None and self.engine.loaded:
            self.engine.set_b_params(self.model.session.predicted, gain_db)
