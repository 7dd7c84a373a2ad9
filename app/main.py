"""Desktop app entry: ``stylemix [SESSION | FILES...] [--reference REF] [--screenshot OUT.png]``.

``stylemix --demo`` opens the bundled demo session; without a display it runs the command-line demo
mix instead. ``--screenshot`` renders the main window offscreen, writes a PNG and exits (used for the
README's pictures and for checking the window without a screen).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_SESSION = ROOT / "assets" / "demo" / "demo.stylemix"
MIN_SCREENSHOT = (1280, 720)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stylemix",
        description="Open the stylemix desktop app (for the command line tools see 'stylemix mix --help').",
    )
    p.add_argument("paths", nargs="*", metavar="SESSION | FILES",
                   help="a .stylemix session, or stem files and folders to start a new session with")
    p.add_argument("--reference", metavar="REF", help="reference song for a new session")
    p.add_argument("--demo", action="store_true", help="open the bundled demo session")
    p.add_argument("--no-audio", action="store_true", help="do not open an audio device")
    p.add_argument("--screenshot", metavar="OUT.png", help="render the window offscreen to a PNG and exit")
    p.add_argument("--size", default="1600x1000", metavar="WxH",
                   help="window size for --screenshot (at least 1280x720; default 1600x1000)")
    p.add_argument("--predict", action="store_true", help="with --screenshot: run Predict before rendering")
    p.add_argument("--steps", type=int, metavar="N", help="refinement steps for Predict (default 40)")
    p.add_argument("--compact", action="store_true", help="start with compact strips")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return p


def has_display() -> bool:
    """Whether a window can be shown (Linux needs an X11 or Wayland display, or a Qt platform set)."""
    if not sys.platform.startswith("linux"):
        return True
    return any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"stylemix: error: --size must look like 1600x1000, got {text!r}") from None
    return max(w, MIN_SCREENSHOT[0]), max(h, MIN_SCREENSHOT[1])


def run_demo_cli() -> int:
    """The command-line demo: what the app's demo session shows, as files in out/."""
    from core.cli import main as cli_main

    stems = ROOT / "assets" / "demo" / "stems"
    out = Path("out")
    out.mkdir(exist_ok=True)
    print("stylemix: no display; running the command-line demo instead", file=sys.stderr)
    return cli_main(["mix", str(stems), "--reference", str(ROOT / "assets" / "demo" / "reference.flac"),
                     "--out", str(out / "demo_mix.wav"), "--params-out", str(out / "demo_params.json")])


def make_app(argv: list[str], plots: bool = True):
    """The QApplication with the app's style; ``plots`` also configures pyqtgraph (a second's import,
    which :func:`run_app` does after the start-up window is up)."""
    from PySide6.QtWidgets import QApplication

    from . import theme
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "stylemix", *argv])
    app.setApplicationName("stylemix")
    app.setStyle("Fusion")
    app.setPalette(theme.palette())
    app.setStyleSheet(theme.STYLE)
    if plots:
        configure_plots()
    return app


def configure_plots() -> None:
    import pyqtgraph as pg

    pg.setConfigOptions(antialias=True)


def show_splash(app, text: str = "Starting stylemix… loading the console"):
    """A small window with what is loading, shown while the rest of the app is imported (the main
    window follows within seconds and takes over the loading state in its status bar)."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel

    splash = QLabel(text)
    splash.setWindowFlags(Qt.SplashScreen | Qt.FramelessWindowHint)
    splash.setAlignment(Qt.AlignCenter)
    splash.setStyleSheet("background: #1e2127; color: #d7dae0; font-size: 13pt; padding: 28px; "
                         "border: 1px solid #3a3f49;")
    splash.resize(460, 120)
    splash.show()
    app.processEvents()
    return splash


def wait_until(app, condition, timeout: float = 60.0) -> bool:
    """Run the event loop until ``condition()`` holds (background work finishing), or time out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.01)
    return False


def settle(app, window, timeout: float = 120.0) -> bool:
    """Wait for audio loading, the analysis and the reverb's decay curves, so a picture shows a complete
    window."""
    ok = wait_until(app, lambda: not window.loading and not window.runner.busy, timeout)
    window.analysis.run_now()
    return ok and wait_until(app, lambda: not window.runner.busy and not window.decay.busy, timeout)


def screenshot(app, window, out: str, size: tuple[int, int], predict: bool) -> int:
    window.resize(*size)
    window.show()
    settle(app, window)
    if predict and window.predictor.start():
        wait_until(app, lambda: not window.predictor.running, 600)
        settle(app, window)
    app.processEvents()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(out):
        print(f"stylemix: error: cannot write {out}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({size[0]}x{size[1]})")
    return 0


def run_app(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    paths = list(args.paths) or ([str(DEMO_SESSION)] if args.demo else [])
    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    elif not has_display():
        if args.demo or not paths:
            return run_demo_cli()
        print("stylemix: error: no display to open the app on; use 'stylemix mix' on the command line",
              file=sys.stderr)
        return 1
    app = make_app([], plots=False)
    splash = None if args.screenshot else show_splash(app)
    configure_plots()
    from core.playback import use_short_switch_interval

    from .mainwindow import MainWindow

    # Once per process, before any playback: the GUI thread runs Python while the render thread plays.
    use_short_switch_interval()

    window = MainWindow(audio=not (args.no_audio or args.screenshot))
    if args.steps is not None:
        window.predictor.steps = max(0, args.steps)
        window.predict_bar.steps.setValue(window.predictor.steps)
    if args.compact:
        window.compact_action.trigger()
    if not window.open_paths(paths, args.reference) and not paths and not args.screenshot:
        window.recover_untitled()
    if args.screenshot:
        code = screenshot(app, window, args.screenshot, _size(args.size), args.predict)
        window.shutdown()
        return code
    window.show()
    if splash is not None:
        splash.close()
    window.prepare_engine()
    code = app.exec()
    window.shutdown()
    return code
