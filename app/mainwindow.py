"""The main window: Predict bar, transport and overview, the console, the analysis panel, menus.

It owns the pieces and wires them: the model (session + undo), one task runner for background work,
the audio engine adapter, and the playback, predict and analysis controllers. Dialogs that ask the
user something go through replaceable hooks (``ask_unsaved``, ``ask_recover``, ``ask_relocate``,
``show_error``), so tests drive every path without modal windows. Offscreen (``--screenshot``) no one
can answer a dialog: errors go to stderr and a non-modal box, questions take the safe answer.

A session file that cannot be opened never takes the app down: the window stays (empty at start-up)
and a dialog names the file and the problem.
"""

from __future__ import annotations

import os
import sys

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from core.audio_io import AUDIO_EXTENSIONS, Audio, AudioError, expand_paths, unique_names
from core.params import TRACK
from core.session import (
    SUFFIX,
    Session,
    SessionError,
    Stem,
    discard_autosave,
    find_autosave,
    load_session,
    recover_autosave,
    save_session,
    write_autosave,
)

from . import theme
from .analysis import AnalysisController, AnalysisPanel, DecayController
from .audio import AudioEngine
from .audiodata import dc_notes, import_trim, load_files
from .console import ConsoleView
from .export_dialog import ExportDialog
from .model import MixModel
from .playback import PlaybackController
from .predict import PredictController, _default_model_loader
from .predictbar import PredictBar
from .relocate import RelocateDialog
from .tasks import TaskRunner
from .transport import TransportBar, WaveformOverview

AUTOSAVE_MS = 30_000
MAX_TRACKS = 64  # what the streaming console takes
_AUDIO_FILTER = "Audio files (" + " ".join(f"*{e}" for e in AUDIO_EXTENSIONS) + ")"


class MainWindow(QMainWindow):
    def __init__(self, audio: bool = True, load_model=_default_model_loader,
                 engine: AudioEngine | None = None):
        super().__init__()
        self.model = MixModel(self)
        self.runner = TaskRunner(self)
        self.engine = engine if engine is not None else AudioEngine(enabled=audio)
        self.playback = PlaybackController(self.model, self.engine, self.runner, self)
        self.predictor = PredictController(self.model, self.runner, self, load_model)
        self.analysis = AnalysisController(self.model, self.runner, self)
        self.decay = DecayController(self.model, self)
        self.ask_unsaved = self._unsaved_dialog
        self.ask_recover = self._recover_dialog
        self.ask_relocate = self._relocate_dialog
        self.show_error = self._error_dialog
        self.notices: list[tuple[str, str]] = []
        if QGuiApplication.platformName() == "offscreen":
            self.unattended()
        self.loading = False
        self._build()
        self._actions()
        self._connect()
        self.autosave_timer = QTimer(self, interval=AUTOSAVE_MS, timeout=self.autosave_now)
        self.autosave_timer.start()
        self._show_audio_status()
        self._update_title()

    # -- layout ---------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.predict_bar = PredictBar(self.model, self.predictor)
        self.transport = TransportBar(self.playback)
        self.overview = WaveformOverview()
        self.console = ConsoleView(self.model)
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.setSpacing(3)
        for w in (self.predict_bar, self.transport, self.overview):
            lay.addWidget(w)
        # on a short window (1280x720) the console scrolls vertically instead of making the window taller
        self.console_scroll = QScrollArea()
        self.console_scroll.setWidget(self.console)
        self.console_scroll.setWidgetResizable(True)
        self.console_scroll.setFrameShape(QFrame.NoFrame)
        self.console_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        lay.addWidget(self.console_scroll, 1)
        self.setCentralWidget(central)
        central.setFocusPolicy(Qt.StrongFocus)  # keys go to the window's shortcuts, not a text field
        central.setFocus()
        self.analysis_panel = AnalysisPanel()
        self.analysis_dock = QDockWidget("Analysis", self)
        self.analysis_dock.setObjectName("analysis")
        self.analysis_dock.setWidget(self.analysis_panel)
        self.addDockWidget(Qt.RightDockWidgetArea, self.analysis_dock)
        self.analysis_dock.setMaximumWidth(300)  # a 1280-pixel window keeps room for the console
        self.audio_label = QLabel("")
        self.statusBar().addPermanentWidget(self.audio_label)
        self.setAcceptDrops(True)  # files dropped anywhere in the window: as on the console
        self.resize(1600, 1000)

    def _action(self, menu, text: str, slot, shortcut=None, checkable: bool = False) -> QAction:
        act = QAction(text, self, checkable=checkable)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(slot)
        menu.addAction(act)
        self.addAction(act)  # shortcuts work whatever has the focus (text fields keep their keys)
        return act

    def _actions(self) -> None:
        bar = self.menuBar()
        f = bar.addMenu("&File")
        self._action(f, "&New session", self.new_session, QKeySequence.New)
        self._action(f, "&Open session…", self._open_dialog, QKeySequence.Open)
        self._action(f, "&Save", self.save, QKeySequence.Save)
        self._action(f, "Save &as…", self.save_as, QKeySequence.SaveAs)
        f.addSeparator()
        self._action(f, "Add stem &files…", self._add_files_dialog, "Ctrl+I")
        self._action(f, "Add stem fol&der…", self._add_folder_dialog, "Ctrl+Shift+I")
        self._action(f, "Set &reference…", self._reference_dialog, "Ctrl+R")
        f.addSeparator()
        self.export_action = self._action(f, "&Export mix…", self.open_export, "Ctrl+E")
        f.addSeparator()
        self._action(f, "&Quit", self.close, QKeySequence.Quit)
        self._edit_menu(bar.addMenu("&Edit"))
        m = bar.addMenu("&Mix")
        self.predict_action = self._action(m, "&Predict", self.predictor.start, "Ctrl+P")
        self._action(m, "&Cancel Predict", self.predictor.cancel)
        self._reference_kind_menu(m.addMenu("&Reference is…"))
        self._transport_menu(bar.addMenu("&Transport"))
        v = bar.addMenu("&View")
        self.compact_action = self._action(v, "&Compact strips", self.console.set_compact, "Ctrl+M", True)
        v.addAction(self.analysis_dock.toggleViewAction())

    def _reference_kind_menu(self, menu) -> None:
        """Auto / same song / other song: how Predict treats the reference (core.suggest)."""
        from PySide6.QtGui import QActionGroup

        group = QActionGroup(self)
        self.reference_kind_actions = {}
        choices = (("auto", "&Detect automatically"),
                   ("same-song", "The &same song (a rough mix, another section): match its balance"),
                   ("other", "Another &song: match its style"))
        for kind, text in choices:
            def choose(_=False, k=kind):
                self.predictor.reference_kind = k

            act = self._action(menu, text, choose, checkable=True)
            act.setChecked(kind == self.predictor.reference_kind)
            group.addAction(act)
            self.reference_kind_actions[kind] = act

    def _edit_menu(self, e) -> None:
        undo = self.model.undo.createUndoAction(self, "&Undo")
        undo.setShortcut(QKeySequence.Undo)
        redo = self.model.undo.createRedoAction(self, "&Redo")
        redo.setShortcut(QKeySequence.Redo)
        e.addActions([undo, redo])
        self.addActions([undo, redo])
        e.addSeparator()
        self._action(e, "Reset all to &predicted", lambda: self.model.reset_all("predicted"))
        self._action(e, "Reset all to &defaults", lambda: self.model.reset_all("default"))

    def _transport_menu(self, t) -> None:
        pb = self.playback
        self._action(t, "Play / pause", pb.toggle_play, Qt.Key_Space)
        self._action(t, "Stop (return to start)", pb.stop, Qt.Key_Home)
        self._action(t, "Loop on/off", pb.toggle_loop, Qt.Key_L)
        self._action(t, "A/B: mix / reference", pb.toggle_reference, Qt.Key_A)
        self._action(t, "A/B: mix / prediction", pb.toggle_predicted, Qt.Key_P)

    def _connect(self) -> None:
        m, pb = self.model, self.playback
        m.dirtyChanged.connect(lambda d: self._update_title())
        m.referenceChanged.connect(self._show_reference)
        m.audioChanged.connect(self._show_reference)
        m.audioChanged.connect(self._audio_changed)
        m.loopChanged.connect(self._show_loop)
        pb.stateChanged.connect(self._show_loop)
        pb.stateChanged.connect(self._show_overview)
        pb.positionChanged.connect(self.overview.set_position)
        pb.metersChanged.connect(self._show_meters)
        pb.message.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.overview.seekRequested.connect(pb.seek)
        self.overview.loopChanged.connect(m.set_loop)
        self.console.filesDropped.connect(self.add_files)
        self.console.sessionDropped.connect(self.open_session)
        self.transport.reference.referenceDropped.connect(self.set_reference_file)
        self.transport.reference.clicked.connect(self._reference_dialog)
        self.analysis.updated.connect(self._show_analysis)
        self.decay.updated.connect(self.analysis_panel.show_decay)
        self.predictor.finished.connect(lambda ok, text: self.statusBar().showMessage(text, 10000))
        self.predictor.progress.connect(lambda d, t, text: self.statusBar().showMessage(text))
        self.predictor.message.connect(lambda text: self.statusBar().showMessage(text, 8000))

    # -- status ----------------------------------------------------------------------------------------------
    def _show_audio_status(self) -> None:
        if self.engine.available:
            self.audio_label.setText("Audio output ready")
        else:
            reason = self.engine.reason or ""
            if "PortAudio" in reason:
                words = "No audio output (the PortAudio library is not installed)"
            elif reason == "audio output disabled":
                words = "Audio output is off"
            else:
                words = "No audio output device found"
            self.audio_label.setText(f"{words}: playback is off; everything else works")
            self.audio_label.setToolTip(reason)
            self.audio_label.setStyleSheet(f"color: {theme.PREDICTED.name()};")

    def _update_title(self) -> None:
        path = self.model.session.path
        name = os.path.basename(path) if path else "Untitled"
        self.setWindowTitle(f"{name}{' *' if self.model.dirty else ''} — stylemix")

    def _show_reference(self) -> None:
        ref = self.model.session.reference
        self.transport.reference.set_reference(ref, self.model.audio_problem(ref) if ref else None)
        self.transport.refresh()

    def _audio_changed(self) -> None:
        inputs = self.model.inputs
        if inputs is None:
            self.overview.set_envelope(None, None, 1.0)
        elif abs(inputs.duration - self.overview.duration) > 1e-6:
            self.overview.set_envelope(None, None, inputs.duration)  # the mix's envelope follows

    def _show_loop(self) -> None:
        self.overview.set_loop(self.model.session.loop, self.playback.loop_on)

    def _show_meters(self, meters) -> None:
        if meters is None:
            self.console.clear_meters()
        else:
            self.console.show_meters(meters)

    def _show_analysis(self, result) -> None:
        self.analysis_panel.show_result(result)
        self._mix_envelope = (result.envelope_lo, result.envelope_hi, result.duration)
        self._show_overview()
        self.console.master.set_loudness(I=result.mix.lufs, TP=result.mix.true_peak)

    def _show_overview(self) -> None:
        """The overview draws what is heard: the reference's waveform while REF plays, else the mix's."""
        inputs = self.model.inputs
        env = getattr(self, "_mix_envelope", None)
        if self.playback.source == "reference" and inputs is not None and inputs.reference is not None:
            ref = inputs.reference
            cached = getattr(self, "_ref_envelope", None)
            if cached is None or cached[0] is not ref:
                from core.measure import envelope

                lo, hi = envelope(ref)
                cached = self._ref_envelope = (ref, lo, hi, ref.shape[-1] / inputs.sample_rate)
            env = cached[1:]
        if env is not None:
            self.overview.set_envelope(*env)

    # -- sessions --------------------------------------------------------------------------------------------
    def new_session(self) -> bool:
        if not self._may_discard():
            return False
        self.model.set_session(Session())
        self._after_session()
        return True

    def open_session(self, path: str) -> bool:
        """Open a session file, offering crash recovery and relocation of missing audio."""
        if not self._may_discard():
            return False
        try:
            session = load_session(path)
        except SessionError as exc:
            self.show_error("Cannot open session", str(exc))
            return False
        dirty = False
        auto = find_autosave(session.path)
        if auto is not None and self.ask_recover(str(auto)):
            try:
                session, dirty = recover_autosave(auto), True
            except SessionError as exc:
                self.show_error("Cannot recover unsaved changes", str(exc))
        self.activate(session, dirty)
        return True

    def open_paths(self, paths: list[str], reference: str | None = None) -> bool:
        """Command-line start: a session, or files and folders (plus a reference) for a new one."""
        opened = False
        if len(paths) == 1 and paths[0].lower().endswith(SUFFIX):
            opened = self.open_session(paths[0])
        elif paths:
            self.add_files(paths)
            opened = True
        if reference:
            self.set_reference_file(reference)
            opened = True
        return opened

    def activate(self, session: Session, dirty: bool = False) -> None:
        """Show ``session``: relocate missing files first, then read its audio in the background."""
        if session.missing():
            self.ask_relocate(session)
        self.model.set_session(session, dirty=dirty)
        self._after_session()
        if session.warnings:
            self.statusBar().showMessage("; ".join(session.warnings), 15000)

    def _after_session(self) -> None:
        self._update_title()
        self._show_reference()
        self._show_loop()
        self.load_audio()

    def recover_untitled(self) -> bool:
        """At start-up without a session: offer the autosave of an untitled session that was lost."""
        auto = find_autosave(None)
        if auto is None or not self.ask_recover(str(auto)):
            return False
        try:
            session = recover_autosave(auto)
        except SessionError as exc:
            self.show_error("Cannot recover unsaved changes", str(exc))
            return False
        self.activate(session, dirty=True)
        return True

    def save(self) -> bool:
        path = self.model.session.path
        return self.save_as() if not path else self.write_session(path)

    def save_as(self, path: str | None = None) -> bool:
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save session", self.model.session.path or "",
                                                  f"stylemix session (*{SUFFIX})")
            if not path:
                return False
        if not path.endswith(SUFFIX):
            path += SUFFIX
        return self.write_session(path)

    def write_session(self, path: str) -> bool:
        old = self.model.session.path
        try:
            save_session(path, self.model.session)
        except OSError as exc:
            self.show_error("Cannot save session", f"{path}: {exc.strerror or exc}")
            return False
        self.model.mark_saved()
        for p in {old, path}:
            discard_autosave(p)
        self._update_title()
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    def autosave_now(self) -> None:
        """A recovery copy of unsaved work (kept until the session is saved or closed cleanly)."""
        if self.model.dirty and self.model.session.stems:
            try:
                write_autosave(self.model.session)
            except OSError as exc:
                self.statusBar().showMessage(f"Autosave failed: {exc}", 8000)

    def _may_discard(self) -> bool:
        if not self.model.dirty:
            return True
        answer = self.ask_unsaved()
        if answer == "save":
            return self.save()
        if answer == "discard":
            discard_autosave(self.model.session.path)
            return True
        return False

    def prepare_engine(self) -> None:
        """Compile the audio kernels in the background the first time this version runs (set-up
        normally did it), saying so in the status bar."""
        from core import warmup

        if not warmup.pending():
            return
        self.audio_label.setText("Preparing the audio engine (once, about a minute)…")
        self.runner.run("prepare", lambda task: warmup.prepare(),
                        on_done=lambda _: self._show_audio_status(),
                        on_error=lambda exc, tb: self._show_audio_status())

    # -- audio files -----------------------------------------------------------------------------------------
    def load_audio(self) -> None:
        """Read the session's audio files on a worker; the console fills in when they arrive."""
        paths = self.model.paths_to_load()
        if not paths:
            self.model.add_audio({})
            return
        sr = self.model.session.sample_rate
        self._start_loading(len(paths))
        refs = {self.model.session.reference}
        self.runner.run("load", lambda task: load_files(paths, sr, task.report, references=refs),
                        on_done=self._audio_loaded, on_error=self._load_failed,
                        on_progress=self._loading_progress)

    def _start_loading(self, count: int) -> None:
        self.loading = True
        self._loading_progress(0, count, "")

    def _loading_progress(self, done: int, total: int, text: str = "") -> None:
        """"Loading audio 3/8: bass.wav" in the status bar, and where the strips will appear."""
        name = os.path.basename(text.removeprefix("Loading ")) if text else ""
        msg = f"Loading audio {min(done + 1, total)}/{total}" + (f": {name}" if name else "") + "…"
        self.statusBar().showMessage(msg)
        self.console.set_loading(msg)

    def _stop_loading(self) -> None:
        self.loading = False
        self.console.set_loading(None)

    def _audio_loaded(self, audio: dict) -> None:
        self._stop_loading()
        self.model.add_audio(audio)
        problems = [str(a) for a in audio.values() if isinstance(a, AudioError)] + dc_notes(audio)
        self.statusBar().showMessage("; ".join(problems) if problems else "Audio loaded", 10000)

    def _load_failed(self, exc, tb) -> None:
        self._stop_loading()
        self.show_error("Cannot read audio", str(exc))

    def add_files(self, paths: list[str]) -> None:
        """Dropped or chosen files/folders become new strips (a session file opens instead)."""
        sessions = [p for p in paths if p.lower().endswith(SUFFIX)]
        if sessions:
            self.open_session(sessions[0])
            return
        try:
            files = expand_paths(paths)
        except AudioError as exc:
            self.show_error("Cannot add stems", str(exc))
            return
        sr = self.model.session.sample_rate
        self._start_loading(len(files))

        def job(task):
            audio = load_files(files, sr, task.report)
            return files, audio, {p: import_trim(a) for p, a in audio.items() if isinstance(a, Audio)}

        self.runner.run("add", job, on_done=lambda out: self._files_loaded(*out), on_error=self._load_failed,
                        on_progress=self._loading_progress)

    def _files_loaded(self, files, audio, trims) -> None:
        self._stop_loading()
        good = [p for p in files if isinstance(audio.get(p), Audio)]
        bad = [str(audio[p]) for p in files if isinstance(audio.get(p), AudioError)]
        if dc_notes(audio):
            self.statusBar().showMessage("; ".join(dc_notes(audio)), 15000)
        room = MAX_TRACKS - self.model.n_tracks
        if len(good) > room:
            bad.append(f"the console takes {MAX_TRACKS} tracks: {len(good) - room} files left out")
            good = good[:room]
        if good:
            self._add_strips(good, audio, trims)
        if bad:
            self.show_error("Some files were not added", "\n".join(bad))

    def _add_strips(self, files, audio, trims) -> None:
        names = unique_names(self.model.session.names + [audio[p].name for p in files])[self.model.n_tracks:]
        stems = [Stem(n, os.path.abspath(p), audio[p].is_stereo) for n, p in zip(names, files, strict=True)]
        rows = TRACK.defaults()[None, :].repeat(len(files), axis=0)
        rows[:, TRACK.index("trim_db")] = [trims[p] for p in files]
        self.model.add_stems(stems, rows, {os.path.abspath(p): audio[p] for p in files})

    def set_reference_file(self, path: str) -> None:
        sr = self.model.session.sample_rate
        full = os.path.abspath(path)
        self.runner.run("reference", lambda task: load_files([full], sr, references={full})[full],
                        on_done=lambda a: self._reference_loaded(full, a), on_error=self._load_failed)

    def _reference_loaded(self, path: str, audio) -> None:
        if isinstance(audio, AudioError) or audio.silent:
            self.show_error("Cannot use reference", str(audio) if isinstance(audio, AudioError)
                            else f"{path}: reference is silent")
            return
        self.model.set_reference(path, {path: audio})

    # -- dialogs ---------------------------------------------------------------------------------------------
    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open session", "", f"stylemix session (*{SUFFIX})")
        if path:
            self.open_session(path)

    def _add_files_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add stems", "", _AUDIO_FILTER)
        if paths:
            self.add_files(paths)

    def _add_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of stems")
        if folder:
            self.add_files([folder])

    def _reference_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Reference song", "", _AUDIO_FILTER)
        if path:
            self.set_reference_file(path)

    def open_export(self) -> ExportDialog | None:
        if self.model.inputs is None:
            self.show_error("Nothing to export", "Add stems first (and wait for them to load)")
            return None
        ref = self.analysis_panel.result.reference if self.analysis_panel.result else None
        dlg = ExportDialog(self.model, self.runner, ref.lufs if ref else None, self)
        dlg.show()
        return dlg

    def _unsaved_dialog(self) -> str:
        box = QMessageBox(QMessageBox.Warning, "Unsaved changes", "Save the changes to this session?",
                          QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, self)
        answer = box.exec()
        return {QMessageBox.Save: "save", QMessageBox.Discard: "discard"}.get(answer, "cancel")

    def _recover_dialog(self, path: str) -> bool:
        text = ("stylemix was not closed properly last time. Recover the unsaved changes "
                f"from the autosave copy?\n\n{path}")
        return QMessageBox.question(self, "Recover unsaved changes", text) == QMessageBox.Yes

    def _relocate_dialog(self, session: Session) -> None:
        RelocateDialog(session, self).exec()

    def _error_dialog(self, title: str, text: str) -> None:
        QMessageBox.warning(self, title, text)

    def unattended(self) -> None:
        """No one to answer dialogs (offscreen): nothing waits; errors are reported without blocking."""
        self.show_error = self._notice
        self.ask_recover = lambda path: False
        self.ask_relocate = lambda session: None

    def _notice(self, title: str, text: str) -> None:
        """An error shown in a non-modal box (and on stderr): it never waits for an answer."""
        self.notices.append((title, text))
        print(f"stylemix: {title.lower()}: {text}", file=sys.stderr)
        box = QMessageBox(QMessageBox.Warning, title, text, QMessageBox.Ok, self)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.setModal(False)
        box.show()

    def dragEnterEvent(self, ev) -> None:
        self.console.dragEnterEvent(ev)

    def dragMoveEvent(self, ev) -> None:
        self.console.dragMoveEvent(ev)

    def dropEvent(self, ev) -> None:
        self.console.dropEvent(ev)

    # -- closing ---------------------------------------------------------------------------------------------
    def closeEvent(self, ev) -> None:
        if not self._may_discard():
            ev.ignore()
            return
        discard_autosave(self.model.session.path)  # saved, discarded or unchanged: no recovery needed
        self.shutdown()
        ev.accept()

    def shutdown(self) -> None:
        """Stop audio and workers (after a clean close the autosave copy is no longer needed)."""
        self.autosave_timer.stop()
        self.runner.close(10000)
        self.engine.close()
