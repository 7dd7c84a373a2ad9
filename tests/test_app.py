"""The desktop app, offscreen and without a sound card (pytest-qt).

Every test builds a real MainWindow; audio is off (``audio=False``) except in the no-audio test, which
forces the "no PortAudio" answer, so the suite behaves the same on machines with a sound card.
Tests that take the ``sync_tasks`` fixture (tests/conftest.py) run the window's background jobs on
the test's thread, at the point where they call ``sync_tasks.run_pending()``.

Without PySide6 or pytest-qt this module fails; ``STYLEMIX_ALLOW_NO_QT=1`` skips it instead.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import SyncPool, need_qt

need_qt()

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402

from app.mainwindow import MainWindow  # noqa: E402
from core.params import MASTER, STRENGTH_GROUPS, TRACK  # noqa: E402
from core.report import CENTRES_HZ  # noqa: E402
from core.session import load_session  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "demo"
GAIN = TRACK.index("gain_db")


@pytest.fixture(autouse=True)
def _autosave_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEMIX_AUTOSAVE_DIR", str(tmp_path / "autosave"))


def _tiny_model():
    import torch

    from core.model import MixController, ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig(n_bands=16, cnn_channels=(4, 8), embed_dim=16, n_layers=1, n_heads=2, ffn_dim=32,
                      dropout=0.0)
    model = MixController(cfg)
    with torch.no_grad():  # random heads: a prediction far from the neutral console
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model.eval()


def _make_window(qtbot, **kw) -> MainWindow:
    kw.setdefault("audio", False)
    kw.setdefault("load_model", _tiny_model)
    w = MainWindow(**kw)
    qtbot.addWidget(w)
    w.ask_unsaved = lambda: "discard"
    w.ask_recover = lambda path: True
    w.errors = []
    w.show_error = lambda title, text: w.errors.append(f"{title}: {text}")
    w.resize(1400, 900)
    w.show()
    return w


@pytest.fixture
def window(qtbot):
    w = _make_window(qtbot)
    yield w
    w.shutdown()


@pytest.fixture
def sync_window(qtbot, sync_tasks):
    """A window whose background jobs run when the test calls ``sync_tasks.run_pending()``."""
    w = _make_window(qtbot)
    yield w
    w.shutdown()


def _open_demo(qtbot, w: MainWindow, path=DEMO / "demo.stylemix") -> None:
    assert w.open_session(str(path))
    if isinstance(w.runner.pool, SyncPool):  # the test runs the background jobs itself
        w.runner.pool.run_pending()
        assert w.model.inputs is not None
    else:
        qtbot.waitUntil(lambda: w.model.inputs is not None, timeout=30000)


def _settle(qtbot, w: MainWindow) -> None:
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=60000)


def _drop(widget, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    for kind in (QDropEvent.Type.DragEnter, QDropEvent.Type.Drop):
        if kind == QDropEvent.Type.DragEnter:
            from PySide6.QtGui import QDragEnterEvent

            ev = QDragEnterEvent(pos.toPoint(), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
            widget.dragEnterEvent(ev)
            assert ev.isAccepted()
        else:
            widget.dropEvent(QDropEvent(pos, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))


def _key(qtbot, w: MainWindow, key) -> None:
    """A key press as the user makes it: window shortcuts need an active window."""
    w.show()
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)
    qtbot.keyClick(w, key)


def _engine_gain(w: MainWindow, track: int) -> float:
    return float(w.engine.snapshot.track[track, GAIN])


# --- building ---------------------------------------------------------------------------------------------

def test_window_builds_with_demo_session_and_strips_follow_the_schema(qtbot, window):
    _open_demo(qtbot, window)
    session = window.model.session
    assert len(window.console.strips) == 8 == len(session.stems)
    assert window.windowTitle().startswith("demo.stylemix")
    # one control per schema parameter, no more: the reverb send on every strip, the FX return on the master
    for strip in window.console.strips:
        assert set(strip.controls) == set(TRACK.keys)
        for key, ctl in strip.controls.items():
            assert ctl.param is TRACK[key]
    master = window.console.master
    assert set(master.controls) == set(MASTER.keys)
    for key, ctl in master.controls.items():
        assert ctl.param is MASTER[key]
    # the FX return: its controls in its own section, under one lock for the group
    ret = [k for k in MASTER.keys if MASTER[k].group == "reverb"]
    assert all(master.fx_return.isAncestorOf(master.controls[k]) for k in ret)
    (lock,) = [b for b in master.locks if set(b.keys) == set(ret)]
    lock.click()
    assert all(window.model.is_locked(-1, k) for k in ret)
    assert not window.model.is_locked(-1, "gain_db")
    lock.click()
    assert not any(window.model.is_locked(-1, k) for k in ret)
    trim = window.console.strips[0].controls["trim_db"]
    assert trim.value == pytest.approx(session.params.tracks[0, TRACK.index("trim_db")])
    assert trim.edit.text() == TRACK["trim_db"].format(trim.value)
    # the send reads "off" at its floor (gain exactly zero) and its level in dB above it; "off" types too
    send = window.console.strips[0].controls["send_db"]
    assert send.isVisibleTo(window.console.strips[0])
    window.model.edit(0, "send_db", TRACK["send_db"].min)
    assert send.edit.text() == "off"
    window.model.edit(0, "send_db", -12.0)
    assert send.edit.text() == "-12.0 dB"
    send.edit.setText("off")
    send.edit.returnPressed.emit()
    assert window.model.value(0, "send_db") == TRACK["send_db"].min and send.edit.text() == "off"
    assert window.engine.loaded and window.engine.player.n_tracks == 8
    qtbot.waitUntil(lambda: window.analysis_panel.result is not None, timeout=60000)
    result = window.analysis_panel.result
    assert [r[0] for r in result.terms()] == ["Loudness", "Crest factor", "Width", "Imbalance",
                                              "Spectral distance"]
    assert result.reference is not None and np.isfinite(result.mix.lufs)
    assert len(window.analysis_panel.mix_curve.getData()[0]) > 50
    assert "LUFS" in window.console.master.readouts["I"].text()
    # the match report: tonal-difference curve over the +-3 dB band, terms as text
    panel = window.analysis_panel
    assert result.match is not None
    x, y = panel.diff_curve.getData()
    assert np.allclose(10 ** x, CENTRES_HZ) and np.allclose(y, result.match.smoothed_mid_diff_db)
    assert panel.tolerance.getRegion() == (-3.0, 3.0) and not panel.hint.isVisible()
    for needle in ("Tonal deviation", "worst octave", "Width low", "Width mid", "Width high",
                   "Crest factor", "Loudness range", "Peak to loudness"):
        assert needle in panel.terms.text()


# --- edits, engine, undo ------------------------------------------------------------------------------------

def test_fader_drag_reaches_engine_and_is_one_undo_step(qtbot, window):
    _open_demo(qtbot, window)
    fader = window.console.strips[2].controls["gain_db"]
    dial = fader.dial
    before = window.model.value(2, "gain_db")
    player = window.engine.player
    sent = []
    player.set_params = lambda *a, **k: pytest.fail("a fader move must not send the whole console")
    set_values = player.set_values
    player.set_values = lambda items: sent.append(list(items)) or set_values(items)
    start = QPoint(dial.width() // 2, dial.height() // 2)
    qtbot.mousePress(dial, Qt.LeftButton, pos=start)
    for dy in (5, 10, 20, 30):
        qtbot.mouseMove(dial, start - QPoint(0, dy))
    qtbot.mouseRelease(dial, Qt.LeftButton, pos=start - QPoint(0, 30))
    after = window.model.value(2, "gain_db")
    assert after > before + 3
    assert window.model.undo.count() == 1  # the whole drag is one step
    assert _engine_gain(window, 2) == pytest.approx(after)  # what you hear follows at once
    # only (track, key, value) travels, and no strip is filtered again for a fader
    assert sent and all(len(items) == 1 and items[0][:2] == (2, "gain_db") for items in sent)
    assert not window.engine.snapshot.changed.any()
    assert window.model.dirty and window.windowTitle().startswith("demo.stylemix *")
    window.model.undo.undo()
    assert window.model.value(2, "gain_db") == before
    assert _engine_gain(window, 2) == pytest.approx(before)
    assert fader.edit.text() == TRACK["gain_db"].format(before)
    window.model.undo.redo()
    assert _engine_gain(window, 2) == pytest.approx(after)


def test_typed_values_are_exact_double_click_resets_and_wheel_steps(qtbot, window):
    _open_demo(qtbot, window)
    strip = window.console.strips[1]
    strip.eq.band_group.button(2).click()  # band 2's knobs are shown
    freq = strip.controls["eq_band2_freq_hz"]
    assert freq.isVisible()
    freq.edit.setFocus()
    freq.edit.setText("1.25k")
    qtbot.keyClick(freq.edit, Qt.Key_Return)
    assert window.model.value(1, "eq_band2_freq_hz") == 1250.0
    ratio = strip.controls["comp_ratio"]
    ratio.edit.setText("4:1")
    ratio.edit.returnPressed.emit()
    assert window.model.value(1, "comp_ratio") == 4.0
    assert ratio.edit.text() == "4.0:1"
    ratio.edit.setText("300")  # out of range: clipped to the schema's maximum
    ratio.edit.returnPressed.emit()
    assert window.model.value(1, "comp_ratio") == TRACK["comp_ratio"].max
    assert window.model.predicted_value(1, "comp_ratio") is None
    qtbot.mouseDClick(ratio.dial, Qt.LeftButton)  # no prediction: back to the default
    assert window.model.value(1, "comp_ratio") == TRACK["comp_ratio"].default
    pred = window.model.session.params.copy()
    pred.tracks[1, TRACK.index("comp_ratio")] = 3.0
    window.model.apply_prediction(pred)
    ratio.edit.setText("6:1")
    ratio.edit.returnPressed.emit()
    qtbot.mouseDClick(ratio.dial, Qt.LeftButton)  # with a prediction: back to the predicted value
    assert window.model.value(1, "comp_ratio") == pytest.approx(3.0)
    qtbot.mouseDClick(ratio.dial, Qt.LeftButton, Qt.AltModifier)  # Alt: to the default
    assert window.model.value(1, "comp_ratio") == TRACK["comp_ratio"].default
    pan = strip.controls["pan"]
    n = window.model.undo.count()
    from PySide6.QtGui import QWheelEvent

    for _ in range(3):
        ev = QWheelEvent(QPointF(5, 5), QPointF(5, 5), QPoint(0, 0), QPoint(0, 120), Qt.NoButton,
                         Qt.NoModifier, Qt.NoScrollPhase, False)
        pan.dial.wheelEvent(ev)
    assert window.model.value(1, "pan") > 0.05
    assert window.model.undo.count() == n + 1  # wheel steps in a row merge
    # the strip's EQ curve follows the typed frequency: band 2's handle sits at 1.25 kHz
    handle = strip.eq.handles[2]
    assert 10 ** handle.pos().x() == pytest.approx(1250.0)


def test_eq_handle_drag_is_one_step_and_wheel_sets_q(qtbot, window):
    _open_demo(qtbot, window)
    eq = window.console.strips[0].eq
    eq.begin_drag(3)
    eq.handle_moved(3, QPointF(np.log10(900.0), 3.0))
    eq.handle_moved(3, QPointF(np.log10(1500.0), 6.0))
    eq.handle_moved(3, QPointF(np.log10(99999.0), 40.0))  # beyond the band's range: clipped
    assert window.model.value(0, "eq_band3_freq_hz") == TRACK["eq_band3_freq_hz"].max
    assert window.model.value(0, "eq_band3_gain_db") == TRACK["eq_band3_gain_db"].max
    assert window.model.undo.count() == 1
    q0 = window.model.value(0, "eq_band3_q")
    eq.wheel_q(3, 2.0)
    assert window.model.value(0, "eq_band3_q") == pytest.approx(q0 * 1.08 ** 2)
    assert eq.stack.currentIndex() == 3
    curve_x, curve_y = eq.curve.getData()
    assert curve_y.max() > 10.0  # the drawn response shows the boost
    window.model.undo.undo()
    window.model.undo.undo()
    assert window.model.value(0, "eq_band3_gain_db") == 0.0


def test_eq_handles_do_not_overlap_at_default_settings(qtbot, window):
    from app.widgets.eq import EQ_KEYS, HANDLE_PX

    _open_demo(qtbot, window)
    for track, strip in ((0, window.console.strips[0]), (-1, window.console.master)):
        defaults = strip.schema
        window.model.edit_many([(track, k, defaults[k].default) for k in EQ_KEYS])
        eq = strip.eq
        vb = eq.plot.getPlotItem().getViewBox()
        qtbot.waitUntil(lambda vb=vb: vb.width() > 50)
        eq.place_handles()
        centres = [vb.mapViewToScene(h.pos()) for h in eq.handles]
        for i in range(len(centres)):
            for j in range(i):
                d = np.hypot(centres[i].x() - centres[j].x(), centres[i].y() - centres[j].y())
                assert d >= HANDLE_PX, (track, i, j, d)
        assert np.any(eq.offsets != 0)  # at the defaults some handles had to move apart
        for b, h in enumerate(eq.handles):  # frequency exact, gain drawn with the band's offset
            assert h.pos().x() == pytest.approx(np.log10(window.model.value(track, EQ_KEYS[3 * b + 1])))
            assert h.pos().y() == pytest.approx(0.0 + eq.offsets[b])
    # dragging a stacked handle sets the gain the mouse moved it by, not the drawn position
    eq = window.console.strips[0].eq
    b = int(np.flatnonzero(eq.offsets)[0])
    pos = eq.handles[b].pos()
    eq.begin_drag(b)
    eq.handle_moved(b, QPointF(pos.x(), pos.y() + 2.5))
    assert window.model.value(0, EQ_KEYS[3 * b]) == pytest.approx(2.5)


def test_level_meter_has_a_db_scale(qtbot):
    from PySide6.QtGui import QColor

    from app import theme
    from app.widgets.meters import SCALE_DB, LevelMeter

    m = LevelMeter()
    qtbot.addWidget(m)
    m.resize(m.sizeHint().width(), 160)
    labels = [t for _, _, t in m.scale_marks()]
    assert labels[:4] == ["0", "6", "12", "24"] and len(labels) >= 5
    rows = [y for _, y, _ in m.scale_marks()]
    assert rows == sorted(rows) and rows[0] > 4  # 0 dB below the clip light, louder is higher
    # a bar at -12 dB RMS ends on the -12 mark
    m.set_levels([-12.0, -12.0], [-12.0, -12.0])
    img = m.grab().toImage()
    y12 = m.y_of(-12.0)
    assert y12 == pytest.approx(dict((db, y) for db, y, _ in m.scale_marks())[-12.0])
    x = m.width() - 3
    assert QColor(img.pixel(x, int(y12) + 3)) == theme.METER_LOW  # filled below the mark
    assert QColor(img.pixel(x, int(y12) - 3)) == theme.GROOVE  # empty above it
    # the labels are painted: the scale column has text pixels at the marks, none between them
    bg = img.pixel(0, m.height() - 1)  # below the last label

    def ink(y0, y1):
        return sum(img.pixel(xx, yy) != bg for xx in range(0, 12) for yy in range(int(y0), int(y1)))
    y24, y36 = m.y_of(-24.0), m.y_of(-36.0)
    assert ink(y24 - 3, y24 + 3) > 0
    assert ink(y24 + 6, y36 - 6) == 0
    assert SCALE_DB[0] == 0.0


# --- predict ------------------------------------------------------------------------------------------------

def _predict(qtbot, w: MainWindow, steps: int = 0) -> None:
    w.predictor.steps = steps
    with qtbot.waitSignal(w.predictor.finished, timeout=120000) as sig:
        assert w.predictor.start()
    assert sig.args[0], sig.args[1]


def test_predict_fills_console_in_one_step_keeps_locks_and_blends_strength(qtbot, window):
    _open_demo(qtbot, window)
    m = window.model
    m.edit(0, "gain_db", -7.0)
    m.set_locked(0, ["gain_db"], True)
    assert window.console.strips[0].controls["gain_db"].dial.locked
    neutral = m.neutral()
    n = m.undo.count()
    _predict(qtbot, window)
    assert m.undo.count() == n + 1  # "apply prediction" is one undo step
    assert m.undo.undoText() == "Apply prediction"
    p = m.session.params
    assert p.tracks[0, GAIN] == -7.0  # locked: kept
    changed = np.abs(p.tracks[1:] - neutral.tracks[1:]).max(axis=0)
    assert (changed[TRACK.predicted_mask] > 1e-3).mean() > 0.8  # the console is filled
    trim = TRACK.index("trim_db")
    np.testing.assert_array_equal(p.tracks[:, trim], neutral.tracks[:, trim])
    ctl = window.console.strips[3].controls["comp_threshold_db"]
    assert ctl.dial.pred_unit == pytest.approx(TRACK["comp_threshold_db"].to_unit(ctl.value))
    assert _engine_gain(window, 3) == pytest.approx(p.tracks[3, GAIN])
    # strength: EQ at 0 % puts every unlocked EQ control back to neutral
    window.predict_bar.strength["eq"].slider.setValue(0)
    eq = TRACK.group_mask("eq")
    np.testing.assert_allclose(m.session.params.tracks[:, eq], neutral.tracks[:, eq])
    assert m.session.params.tracks[3, GAIN] == p.tracks[3, GAIN]  # other groups untouched
    window.predict_bar.strength["eq"].slider.setValue(50)
    mid = m.session.params.tracks[1, TRACK.index("eq_band1_gain_db")]
    assert mid == pytest.approx(0.5 * p.tracks[1, TRACK.index("eq_band1_gain_db")], abs=1e-9)
    # a slider for every strength group, the reverb's (the sends) too
    assert set(window.predict_bar.strength) == set(STRENGTH_GROUPS) and "reverb" in STRENGTH_GROUPS
    window.predict_bar.strength["reverb"].slider.setValue(0)
    assert m.session.strength["reverb"] == 0.0
    send = TRACK.index("send_db")
    np.testing.assert_allclose(m.session.params.tracks[:, send], neutral.tracks[:, send])
    # reset a control to its prediction from its marker
    m.edit(3, "comp_threshold_db", -1.0)
    m.reset_predicted(3, "comp_threshold_db")
    assert m.value(3, "comp_threshold_db") == pytest.approx(m.predicted_value(3, "comp_threshold_db"))
    # undo everything back to before Predict
    m.undo.setIndex(n)
    np.testing.assert_array_equal(m.session.params.tracks[1:], neutral.tracks[1:])
    assert m.session.predicted is None


def _finished(w: MainWindow) -> list:
    """What ``w.predictor.finished`` says, collected as it is emitted."""
    out = []
    w.predictor.finished.connect(lambda ok, text: out.append((ok, text)))
    return out


def test_predict_refines_with_progress_and_cancel_leaves_console_unchanged(refine_window, sync_tasks):
    w = refine_window
    m = w.model
    before = m.session.params.tracks.copy()
    w.predictor.steps = 50
    progress = []

    def on_progress(done, total, text):
        progress.append(text)
        if "Refining" in text:  # the user clicks Cancel at the first refinement step
            w.predict_bar.cancel_btn.click()

    w.predictor.progress.connect(on_progress)
    finished = _finished(w)
    assert w.predictor.start()
    assert not w.predict_bar.predict_btn.isEnabled() and w.predict_bar.cancel_btn.isEnabled()
    assert sync_tasks.run_pending() == 1
    assert finished == [(False, "Predict cancelled; the console is unchanged")]
    assert sum("Refining" in text for text in progress) == 1  # refinement stopped at once
    np.testing.assert_array_equal(m.session.params.tracks, before)
    assert m.session.predicted is None and m.undo.count() == 0
    assert w.predict_bar.predict_btn.isEnabled()
    w.predictor.steps = 1
    assert w.predictor.start()
    sync_tasks.run_pending()
    assert finished[-1][0], finished[-1][1]
    assert m.session.predicted is not None and m.undo.count() == 1


def test_loop_predict_says_so_and_reference_kind_is_a_menu_choice(refine_window, sync_tasks):
    w = refine_window
    w.reference_kind_actions["other"].trigger()
    assert w.predictor.reference_kind == "other"
    assert w.reference_kind_actions["other"].isChecked() and not w.reference_kind_actions["auto"].isChecked()
    w.model.set_loop((4.7, 7.9))
    progress = []
    w.predictor.progress.connect(lambda d, t, text: progress.append(text))
    w.predictor.steps = 2
    finished = _finished(w)
    assert w.predictor.start()
    sync_tasks.run_pending()
    [(ok, text)] = finished
    assert ok
    assert "loop 4.7-7.9 s" in text and "whole song" in text
    assert progress and all(t.startswith("loop 4.7-7.9 s") for t in progress)
    assert w.predictor.last.region == (4.7, 7.9) and w.predictor.last.reference_kind == "other"


@pytest.fixture
def refine_window(qtbot, sync_tasks):
    """A window whose background jobs run when the test says (``sync_tasks``), with no model
    installed: Predict is refinement alone."""
    w = _make_window(qtbot, load_model=lambda: None)
    _open_demo(qtbot, w)
    yield w
    w.shutdown()


def test_edits_during_predict_keep_the_users_values(refine_window, sync_tasks):
    w = refine_window
    m = w.model
    w.predictor.steps = 3
    messages = []
    w.predictor.message.connect(messages.append)
    finished = _finished(w)
    assert w.predictor.start()
    m.edit(2, "gain_db", -7.5)  # the user moves a fader and a master control while it runs
    m.edit(-1, "comp_ratio", 3.0)
    m.edit(2, "gain_db", -7.0)
    sync_tasks.run_pending()  # the job ends after the edits
    [(ok, text)] = finished
    assert ok and "2 controls you changed during Predict kept your values" in text
    assert m.value(2, "gain_db") == -7.0 and m.value(-1, "comp_ratio") == 3.0
    assert len(messages) == 2 and "keeps your value" in messages[0]
    assert m.predicted_value(2, "gain_db") != -7.0  # the prediction itself is still shown as a marker
    changed = np.abs(m.session.params.tracks - m.neutral().tracks)[:, TRACK.predicted_mask]
    assert (changed > 1e-3).mean() > 0.5  # the rest of the console took the prediction
    m.undo.undo()  # one undo step takes back the prediction, not the user's edits
    assert m.value(2, "gain_db") == -7.0


def test_background_jobs_report_to_the_gui_in_order(qtbot, sync_tasks):
    """The task runner's contract, on the synchronous runner: ``run`` returns before the job runs;
    progress, then the result (or the error with its traceback, or the cancellation) reach the
    callbacks; a job whose task was cancelled never delivers a result."""
    import threading

    from app.tasks import TaskRunner

    runner = TaskRunner()
    log = []

    def job(task):
        log.append(("job", threading.current_thread() is threading.main_thread()))
        assert not task.report(1, 2)
        return 42

    def bad(task):
        raise ValueError("no such file")

    def slow(task):
        task.report(1, 10)
        task.check()
        return "never"

    first = runner.run("a", job, on_done=lambda r: log.append(("done", r)),
                       on_progress=lambda *info: log.append(("progress", info)))
    assert log == [] and runner.busy and not first.finished  # queued: nothing ran inside run()
    runner.run("b", bad, on_error=lambda exc, tb: log.append(("error", str(exc), "ValueError" in tb)))
    third = runner.run("c", slow, on_done=lambda r: log.append(("done", r)),
                       on_progress=lambda *info: third.cancel(), on_cancel=lambda: log.append(("cancelled",)))
    assert sync_tasks.pending == 3
    assert sync_tasks.run_pending() == 3
    assert log == [("job", True), ("progress", (1, 2)), ("done", 42), ("error", "no such file", True),
                   ("cancelled",)]
    assert not runner.busy and first.finished and third.finished


def test_values_read_as_engineers_read_them():
    from app.widgets.controls import display, parse_value

    pan, freq, gain = TRACK["pan"], TRACK["eq_band3_freq_hz"], TRACK["gain_db"]
    assert [display(pan, v) for v in (-0.53, 0.001, 0.2)] == ["L 53", "C", "R 20"]
    assert [parse_value(t, pan) for t in ("L 53", "R20", "C", "-0.3")] == [-0.53, 0.2, 0.0, -0.3]
    assert [display(freq, v) for v in (1412.3, 999.4, 2200.0)] == ["1.41 kHz", "999 Hz", "2.2 kHz"]
    assert parse_value("1.41 kHz", freq) == pytest.approx(1410.0)
    assert display(gain, -0.001) == "+0.0 dB" and display(gain, -6.0) == "-6.0 dB"
    assert display(TRACK["comp_threshold_db"], -0.01) == "0.0 dB"


def _leaf_widgets(w: MainWindow):
    """Visible widgets without visible child widgets, with the part of each that shows on the window."""
    from PySide6.QtCore import QPoint, QRect
    from PySide6.QtWidgets import QAbstractScrollArea, QScrollBar, QWidget

    out = []
    for wd in w.findChildren(QWidget):
        if not wd.isVisible() or isinstance(wd, QScrollBar):
            continue
        if not isinstance(wd, QAbstractScrollArea) and any(
                isinstance(c, QWidget) and c.isVisible() for c in wd.children()):
            continue
        r = QRect(wd.mapTo(w, QPoint(0, 0)), wd.size())
        p = wd.parentWidget()
        while p is not None and p is not w:  # what a scroll viewport or a parent clips away is not shown
            r = r.intersected(QRect(p.mapTo(w, QPoint(0, 0)), p.size()))
            p = p.parentWidget()
        if not r.isEmpty():
            out.append((wd, r))
    return out


def _overlaps(w: MainWindow) -> list[str]:
    leaves = _leaf_widgets(w)
    out = []
    for i, (a, ra) in enumerate(leaves):
        for b, rb in leaves[i + 1:]:
            if a.isAncestorOf(b) or b.isAncestorOf(a):
                continue
            inter = ra.intersected(rb)
            if inter.width() > 1 and inter.height() > 1:
                out.append(f"{type(a).__name__} {ra.getRect()} / {type(b).__name__} {rb.getRect()}")
    return out


@pytest.mark.parametrize("size", [(1280, 720), (1600, 1000)])
@pytest.mark.parametrize("compact", [False, True])
def test_no_widget_overlaps_another(qtbot, size, compact):
    from app.main import make_app

    make_app([])  # the app's style and fonts, as `stylemix` runs it
    w = _make_window(qtbot, load_model=lambda: None)
    try:
        _open_demo(qtbot, w)
        _settle(qtbot, w)
        w.resize(*size)
        if compact:
            w.compact_action.trigger()
        qtbot.wait(50)
        assert (w.width(), w.height()) == size  # the window fits the size (nothing forces it larger)
        assert len(_leaf_widgets(w)) > 100
        overlaps = _overlaps(w)
        assert not overlaps, overlaps[:10]
        from PySide6.QtWidgets import QLabel  # the check finds a widget put over another

        probe = QLabel("probe", w.predict_bar)
        probe.setGeometry(w.predict_bar.cancel_btn.geometry().adjusted(-20, 0, 0, 0))
        probe.show()
        assert any("QLabel" in o for o in _overlaps(w))
        probe.deleteLater()
        # the strips' values are all reachable: the console scrolls when the window is short
        assert w.console_scroll.widget() is w.console
        # ... but even at 1280x720 every fader shows whole, scale to value, without scrolling
        faders = [s.controls["gain_db"] for s in w.console.strips + [w.console.master]]
        seen = [f for f in faders if not f.visibleRegion().isEmpty()]
        assert len(seen) >= 2
        for f in seen:
            assert f.visibleRegion().boundingRect().height() == f.height(), f.param.key
    finally:
        w.shutdown()


# --- sessions -----------------------------------------------------------------------------------------------

def _demo_copy(tmp_path: Path) -> Path:
    shutil.copytree(DEMO, tmp_path / "demo", ignore=shutil.ignore_patterns("*.md", "*.json"))
    return tmp_path / "demo" / "demo.stylemix"


def test_session_round_trip(qtbot, window, tmp_path):
    path = _demo_copy(tmp_path)
    _open_demo(qtbot, window, path)
    m = window.model
    m.edit(1, "pan", -0.3)
    m.edit(-1, "comp_ratio", 2.5)
    m.set_locked(1, ["pan"], True)
    m.set_flag(4, "mute", True)
    m.set_loop((2.0, 6.0))
    out = tmp_path / "demo" / "mine.stylemix"
    assert window.save_as(str(out))
    assert not m.dirty and window.windowTitle().startswith("mine.stylemix")
    doc = json.loads(out.read_text())
    assert doc["stems"][0]["file"] == "stems/kick.flac" and doc["reference"] == "reference.flac"
    other = _make_window(qtbot)
    try:
        _open_demo(qtbot, other, out)
        s = other.model.session
        assert s.params.tracks[1, TRACK.index("pan")] == -0.3
        assert s.params.master[MASTER.index("comp_ratio")] == 2.5
        assert s.lock_tracks[1, TRACK.index("pan")] and s.stems[4].mute and s.loop == (2.0, 6.0)
        assert other.console.strips[4].mute.isChecked()
        assert other.console.strips[1].controls["pan"].dial.locked
        assert other.playback.loop_on and other.engine.player.loop is not None
    finally:
        other.shutdown()


def test_crash_recovery_from_autosave(qtbot, tmp_path):
    path = _demo_copy(tmp_path)
    first = _make_window(qtbot)
    _open_demo(qtbot, first, path)
    first.model.edit(2, "gain_db", -9.5)
    first.model.set_flag(0, "solo", True)
    os.utime(path, (1, 1))
    first.autosave_now()
    first.runner.wait()
    first.engine.close()  # the process "dies": no save, no clean close
    second = _make_window(qtbot)
    asked = []
    second.ask_recover = lambda p: asked.append(p) or True
    try:
        _open_demo(qtbot, second, path)
        assert asked, "recovery was not offered"
        s = second.model.session
        assert s.params.tracks[2, GAIN] == -9.5 and s.stems[0].solo
        assert second.model.dirty and s.path == str(path)
        assert second.save()
        assert load_session(path).params.tracks[2, GAIN] == -9.5
        third = _make_window(qtbot)
        third.ask_recover = lambda p: pytest.fail("recovery offered again after saving")
        _open_demo(qtbot, third, path)
        third.shutdown()
    finally:
        second.shutdown()


def test_missing_audio_relocate_dialog_keeps_everything(qtbot, window, tmp_path):
    path = _demo_copy(tmp_path)
    doc = json.loads(path.read_text())
    doc["stems"][5]["params"]["gain_db"] = -4.0
    path.write_text(json.dumps(doc))
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(str(path.parent / "stems" / "snare.flac"), str(moved / "snare.flac"))
    shutil.move(str(path.parent / "stems" / "hats.flac"), str(moved / "hats.flac"))
    seen = []

    def relocate(session):
        from app.relocate import RelocateDialog

        dlg = RelocateDialog(session)
        seen.append(dlg.table.rowCount())
        session.relocate(session.stems[1].path, str(moved / "snare.flac"))  # "Locate…" for one file
        dlg.refresh()
        assert dlg.table.item(0, 2).text() == "found"

    window.ask_relocate = relocate
    _open_demo(qtbot, window, path)
    assert seen == [2]
    s = window.model.session
    assert len(window.console.strips) == 8 and s.params.tracks[5, GAIN] == -4.0
    assert s.stems[1].path == str(moved / "snare.flac")
    hats = window.console.strips[2]
    assert hats.problem.text() == "missing audio" and not hats.problem.isHidden()
    assert window.model.inputs.silent[2] and not window.model.inputs.silent[1]
    window.save()  # the missing file's entry is kept for a later relocation
    assert json.loads(path.read_text())["stems"][2]["file"] == "stems/hats.flac"
    from app.relocate import RelocateDialog

    again = load_session(path)
    dlg = RelocateDialog(again)
    assert dlg.search(str(tmp_path / "moved")) == 1 and again.missing() == []


# --- drag and drop ---------------------------------------------------------------------------------------

def test_drop_files_folders_and_reference(qtbot, window, tmp_path):
    _drop(window.console, [DEMO / "stems" / "kick.flac", DEMO / "stems" / "snare.flac"])
    qtbot.waitUntil(lambda: len(window.console.strips) == 2, timeout=30000)
    assert window.model.session.names == ["kick", "snare"]
    assert window.model.session.params.tracks[0, TRACK.index("trim_db")] > 10  # import trim applied
    qtbot.waitUntil(lambda: window.model.inputs is not None, timeout=30000)
    _drop(window.console, [DEMO / "stems"])  # a folder: every audio file in it
    qtbot.waitUntil(lambda: len(window.console.strips) == 10, timeout=30000)
    assert window.model.session.names[2:4] == ["bass_synth", "chords_clean_guitar"]
    assert "kick (2)" in window.model.session.names  # same file name again: told apart
    window.model.undo.undo()
    assert len(window.console.strips) == 2
    window.model.undo.redo()
    _drop(window.transport.reference, [DEMO / "reference.flac"])
    qtbot.waitUntil(lambda: window.model.session.reference is not None, timeout=30000)
    qtbot.waitUntil(lambda: window.model.inputs is not None and window.model.inputs.reference is not None)
    assert "reference.flac" in window.transport.reference.text()
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio")
    _drop(window.console, [bad])
    qtbot.waitUntil(lambda: bool(window.errors), timeout=30000)
    assert "notes.txt" in window.errors[0] and len(window.console.strips) == 10


# --- transport and A/B ------------------------------------------------------------------------------------

def test_ab_toggle_mix_reference_and_predicted(qtbot, window):
    _open_demo(qtbot, window)
    pb = window.playback
    bar = window.transport
    assert pb.source == "mix" and bar.source_label.text().startswith("MIX")
    assert not bar.ab_buttons["predicted"].isEnabled()
    _key(qtbot, window, Qt.Key_A)
    assert pb.source == "reference" and window.engine.ab == "B"
    assert bar.source_label.text() == "REFERENCE" and bar.ab_buttons["reference"].isChecked()
    _key(qtbot, window, Qt.Key_A)
    assert pb.source == "mix" and window.engine.ab == "A"
    _predict(qtbot, window)
    assert bar.ab_buttons["predicted"].isEnabled()
    _key(qtbot, window, Qt.Key_P)
    assert pb.source == "predicted" and window.engine.ab == "B" and bar.source_label.text() == "PREDICTED"
    window.model.edit(0, "gain_db", -20.0)  # edits move away from the prediction: B is re-matched
    qtbot.waitUntil(lambda: abs(pb.predicted_gain_db) > 0.01, timeout=30000)
    bar.ab_buttons["mix"].click()
    assert pb.source == "mix" and window.engine.ab == "A"


def test_seek_and_loop_from_the_overview(qtbot, window):
    _open_demo(qtbot, window)
    ov = window.overview
    ov.seekRequested.emit(7.5)
    assert window.engine.position() == pytest.approx(7.5, abs=0.01)
    ov._drag_loop(3.0, 5.0, True)
    assert window.model.session.loop == (3.0, 5.0) and window.playback.loop_on
    assert window.engine.player.loop == (3 * 44100, 5 * 44100)
    _key(qtbot, window, Qt.Key_L)
    assert not window.playback.loop_on and window.engine.player.loop is None
    assert window.model.session.loop == (3.0, 5.0)  # the region stays, only looping is off


def test_no_audio_device_path(qtbot, monkeypatch):
    import core.playback

    monkeypatch.setattr(core.playback, "check_audio",
                        lambda device=None: "no audio output: the PortAudio library is not installed")
    w = _make_window(qtbot, audio=True)
    try:
        assert not w.engine.available
        assert "PortAudio" in w.audio_label.text() and "everything else works" in w.audio_label.text()
        _open_demo(qtbot, w)
        assert not w.transport.play_btn.isEnabled()
        w.playback.toggle_play()  # Space: says why instead of failing
        assert "PortAudio" in w.statusBar().currentMessage() and not w.engine.playing
        w.model.edit(0, "gain_db", 3.0)
        assert _engine_gain(w, 0) == 3.0
    finally:
        w.shutdown()


# --- many strips -----------------------------------------------------------------------------------------

def test_32_strips_and_compact_mode(qtbot, window, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(32):
        sf.write(folder / f"t{i:02d}.wav", (0.1 * rng.standard_normal(22050)).astype(np.float32), 44100)
    _drop(window.console, [folder])
    qtbot.waitUntil(lambda: len(window.console.strips) == 32, timeout=60000)
    qtbot.waitUntil(lambda: window.engine.loaded and window.engine.player.n_tracks == 32, timeout=30000)
    window.compact_action.trigger()
    assert all(s.width() == 86 and s.eq_sec.isHidden() for s in window.console.strips)
    qtbot.wait(10)
    assert window.console.scroll.horizontalScrollBar().maximum() > 0  # scrolls sideways
    window.model.edit(31, "gain_db", -12.0)
    assert _engine_gain(window, 31) == -12.0
    assert window.console.strips[31].controls["gain_db"].edit.text() == "-12.0 dB"
    window.compact_action.trigger()
    assert not window.console.strips[0].eq_sec.isHidden()


# --- export ---------------------------------------------------------------------------------------------

def test_export_dialog_writes_mix_and_stems(qtbot, sync_window, sync_tasks, tmp_path):
    window = sync_window
    _open_demo(qtbot, window)
    dlg = window.open_export()
    out = tmp_path / "mix.wav"
    dlg.path.setText(str(out))
    dlg.format.setCurrentText("FLAC")
    assert dlg.path.text().endswith("mix.flac")
    assert not dlg.bits.model().item(2).isEnabled()  # no 32-bit float in FLAC
    dlg.lufs.setValue(-16.0)
    dlg.stems.setChecked(True)
    dlg.start()
    assert dlg.result is None and not dlg.export_btn.isEnabled()  # running
    sync_tasks.run_pending()
    assert dlg.error is None and dlg.progress.value() == 1000
    assert dlg.result.loudness_lufs == pytest.approx(-16.0, abs=0.3)
    assert dlg.result.true_peak_dbtp <= -1.0 + 0.05
    assert len(dlg.result.stem_paths) == 8 and all(os.path.isfile(p) for p in dlg.result.stem_paths)
    assert sf.info(str(tmp_path / "mix.flac")).subtype == "PCM_24"
    assert dlg.export_btn.isEnabled()
    dlg.close()



def test_fx_return_mute_and_meter(qtbot, sync_window, sync_tasks, tmp_path, monkeypatch):
    """The REVERB column's mute: heard (the engine's snapshot), undoable, saved, passed to export;
    its meter shows the return's levels from the player's meters."""
    import dataclasses

    import app.export_dialog as export_dialog
    from app.widgets.meters import FLOOR_DB

    window = sync_window
    path = _demo_copy(tmp_path)
    _open_demo(qtbot, window, path)
    m, master = window.model, window.console.master
    level = m.value(-1, "reverb_return_db")
    assert not master.fx_mute.isChecked() and not window.engine.snapshot.fx_mute
    master.fx_mute.click()
    assert m.session.fx_mute and master.fx_mute.isChecked() and window.engine.snapshot.fx_mute
    assert m.value(-1, "reverb_return_db") == level and window.engine.snapshot.return_gain == 0.0
    assert m.dirty
    m.undo.undo()
    assert not m.session.fx_mute and not master.fx_mute.isChecked() and not window.engine.snapshot.fx_mute
    m.undo.redo()
    assert m.session.fx_mute and master.fx_mute.isChecked() and window.engine.snapshot.fx_mute
    # the meter follows the player's meters, and clears
    meters = dataclasses.replace(window.engine.player.meters(), fx_peak_db=np.array([-12.0, -15.0]),
                                 fx_rms_db=np.array([-20.0, -24.0]))
    window.console.show_meters(meters)
    assert master.fx_meter.peak.tolist() == [-12.0, -15.0] and master.fx_meter.rms.tolist() == [-20.0, -24.0]
    window.console.clear_meters()
    assert (master.fx_meter.peak == FLOOR_DB).all()
    # export takes the mute
    calls = []
    real = export_dialog.export_mix
    monkeypatch.setattr(export_dialog, "export_mix", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    dlg = window.open_export()
    dlg.path.setText(str(tmp_path / "mix.wav"))
    dlg.start()
    sync_tasks.run_pending()
    assert dlg.error is None and calls and calls[0]["fx_mute"] is True
    dlg.close()
    # saved and opened again: still muted
    out = tmp_path / "demo" / "muted.stylemix"
    assert window.save_as(str(out))
    assert json.loads(out.read_text())["fx_mute"] is True
    other = _make_window(qtbot)
    try:
        _open_demo(qtbot, other, out)
        assert other.model.session.fx_mute and other.console.master.fx_mute.isChecked()
        assert other.engine.snapshot.fx_mute
    finally:
        other.shutdown()

# --- command line ----------------------------------------------------------------------------------------

def test_screenshot_command(qtbot, tmp_path, monkeypatch):
    from PySide6.QtGui import QImage

    from app.main import run_app

    out = tmp_path / "shot.png"
    assert run_app(["--screenshot", str(out), "--size", "1300x760", str(DEMO / "demo.stylemix")]) == 0
    image = QImage(str(out))
    assert image.width() >= 1280 and image.height() >= 720


def test_no_display_falls_back(monkeypatch, capsys):
    from app import main

    monkeypatch.setattr(main, "has_display", lambda: False)
    calls = []
    monkeypatch.setattr(main, "run_demo_cli", lambda: calls.append("demo") or 0)
    assert main.run_app(["--demo"]) == 0 and calls == ["demo"]
    assert main.run_app(["song.stylemix"]) == 1
    assert "no display" in capsys.readouterr().err


# --- playback with a simulated sound card ----------------------------------------------------------------

def _pump(player, blocks: int) -> np.ndarray:
    """The sound card asking for ``blocks`` blocks: (blocks * block, 2) float32."""
    out = np.zeros((blocks * player.block, 2), np.float32)
    buf = np.zeros((player.block, 2), np.float32)
    for i in range(blocks):
        if i % 4 == 0:
            assert player.wait_idle(5.0)
        player.callback(buf, player.block, None, None)
        out[i * player.block:(i + 1) * player.block] = buf
    return out


def _rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def test_playback_hears_every_edit_and_meters_follow(qtbot):
    from app.audio import AudioEngine

    w = _make_window(qtbot, engine=AudioEngine(external_clock=True))
    try:
        _open_demo(qtbot, w)
        assert w.transport.play_btn.isEnabled()
        w.playback.seek(4.0)
        _key(qtbot, w, Qt.Key_Space)
        assert w.engine.playing
        player = w.engine.player
        before = _pump(player, 40)
        w.model.edit(-1, "gain_db", -20.0)  # the master fader, during playback
        after = _pump(player, 40)
        assert _rms_db(after[4 * player.block:]) < _rms_db(before) - 12
        qtbot.waitUntil(lambda: w.console.strips[0].meter.peak.max() > -60, timeout=5000)
        assert w.engine.position() > 4.4
        momentary = w.console.master.readouts["M"].text()
        assert "LUFS" in momentary and "—" not in momentary
        w.model.set_flag(0, "solo", True)  # solo: only the kick reaches the master
        _pump(player, 12)
        qtbot.waitUntil(lambda: w.console.strips[3].meter.peak.max() <= -100, timeout=5000)
        _key(qtbot, w, Qt.Key_Home)
        assert not w.engine.playing and w.engine.position() == 0.0
    finally:
        w.shutdown()


def test_analysis_follows_edits(qtbot, window):
    _open_demo(qtbot, window)
    qtbot.waitUntil(lambda: window.analysis_panel.result is not None, timeout=60000)
    first = window.analysis_panel.result.mix.lufs
    window.model.edit(-1, "gain_db", -10.0)
    qtbot.waitUntil(lambda: window.analysis_panel.result.mix.lufs < first - 5, timeout=60000)
    assert window.analysis_panel.result.mix.lufs == pytest.approx(first - 10.0, abs=0.5)
    shown = window.console.master.readouts["I"].text().split()[1]
    assert shown == f"{window.analysis_panel.result.mix.lufs:.1f}"


def test_tonal_difference_follows_a_fader_edit_and_needs_a_reference(qtbot, window):
    _open_demo(qtbot, window)
    panel = window.analysis_panel
    qtbot.waitUntil(lambda: panel.result is not None and panel.result.match is not None, timeout=60000)
    before = panel.result
    kick = [s.name for s in window.model.session.stems].index("kick")
    window.model.edit(kick, "gain_db", -20.0)
    qtbot.waitUntil(lambda: panel.result is not before, timeout=60000)
    after = panel.result
    change = after.match.mid_diff_db - before.match.mid_diff_db
    # less kick: less low end against the reference; loudness matching lifts the rest a little, evenly
    assert np.all(change[CENTRES_HZ < 180] < -0.5) and change.min() < -3.0, change
    assert np.all((change[CENTRES_HZ > 300] > 0) & (change[CENTRES_HZ > 300] < 1)), change
    assert after.match.low_end_db[0] < before.match.low_end_db[0] - 1
    assert np.allclose(panel.diff_curve.getData()[1], after.match.smoothed_mid_diff_db)
    assert f"Tonal deviation {after.match.tonal_deviation_db:.1f} dB" in panel.terms.text()
    window.model.set_reference(None)
    qtbot.waitUntil(lambda: panel.result.reference is None, timeout=60000)
    assert panel.result.match is None and len(panel.diff_curve.getData()[0] or []) == 0
    assert panel.hint.isVisible() and "Tonal deviation" not in panel.terms.text()
    assert "Width mid" in panel.terms.text()  # the mix's own terms are still listed


def test_trim_resets_to_its_import_value(qtbot, window):
    _open_demo(qtbot, window)
    trim = window.console.strips[0].controls["trim_db"]
    imported = trim.value
    window.model.edit(0, "trim_db", 0.0)
    assert window.model.inputs.trim_db[0] == 0.0  # the console (and prediction) use the edited trim
    qtbot.mouseDClick(trim.dial, Qt.LeftButton)
    assert trim.value == pytest.approx(imported, abs=0.01)


def test_export_path_is_next_to_the_session_never_inside_the_installation(tmp_path):
    from app.export_dialog import default_output

    assert default_output(str(tmp_path / "song.stylemix")) == str(tmp_path / "song_mix.wav")
    demo = default_output(str(DEMO / "demo.stylemix"))
    assert demo.endswith("demo_mix.wav") and not demo.startswith(str(DEMO.parent.parent))


def test_pred_button_has_the_prediction_colour(window):
    from app import theme

    button = window.transport.ab_buttons["predicted"]
    rule = next(line for line in theme.STYLE.splitlines() if f"#{button.objectName()}:checked" in line)
    assert theme.PREDICTED.name() in rule and theme.REFERENCE.name() not in rule


def test_overview_shows_the_reference_while_ref_plays(qtbot, window):
    from core.measure import envelope

    _open_demo(qtbot, window)
    _settle(qtbot, window)
    window.analysis.run_now()
    _settle(qtbot, window)
    mix_hi = window.overview.hi.getData()[1].copy()
    window.playback.set_source("reference")
    lo, hi = envelope(window.model.inputs.reference)
    np.testing.assert_allclose(window.overview.hi.getData()[1], hi / max(np.abs(lo).max(), np.abs(hi).max()))
    window.playback.set_source("mix")
    np.testing.assert_allclose(window.overview.hi.getData()[1], mix_hi)


def test_reverb_decay_view_follows_the_decay_control_and_the_sends(qtbot, window):
    panel = window.analysis_panel
    _open_demo(qtbot, window)  # an old session: every send off
    qtbot.waitUntil(lambda: panel.decay_result is not None, timeout=30000)
    assert panel.decay.isVisible() and panel.decay_legend.isVisible()
    assert "every send is off" in panel.decay_title

    def low_rt60():
        return {c.band: c for c in panel.decay_result}["low"].rt60_s

    for rt60 in (0.8, 4.0):
        window.model.edit(-1, "reverb_rt60_s", rt60)
        qtbot.waitUntil(lambda rt60=rt60: abs(low_rt60() - rt60) < 0.1 * rt60, timeout=30000)
        x, y = panel.decay_curves["low"].getData()
        # the drawn curve is the response's: 0 dB at the impulse, past -60 dB about the RT60 later
        assert y[0] == pytest.approx(0.0, abs=1e-6)
        pre = window.model.value(-1, "reverb_predelay_ms") / 1000
        assert x[-1] == pytest.approx(pre + rt60, abs=0.01)
        assert float(np.interp(60.0, -y, x)) == pytest.approx(pre + rt60, rel=0.15)
        assert f"{low_rt60():.2f} s" in panel.decay_legend.text()
    # damping shows as a shorter high band, named in the legend
    high = {c.band: c for c in panel.decay_result}["high"].rt60_s
    assert high < 0.8 * low_rt60() and f"{high:.2f} s" in panel.decay_legend.text()
    window.model.edit(0, "send_db", -12.0)
    qtbot.waitUntil(lambda: "every send is off" not in panel.decay_title, timeout=30000)
    assert panel.decay_title == "Reverb decay (FX return)"
    # the return level only scales the response: its curves stay, nothing is recomputed
    shown = panel.decay_result
    window.model.edit(-1, "reverb_return_db", -12.0)
    assert not window.decay.busy
    qtbot.wait(300)
    assert panel.decay_result is shown
