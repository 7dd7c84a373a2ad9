"""The ``stylemix`` program: one entry point above the command line (:mod:`core.cli`) and the app.

``stylemix COMMAND ...`` (``mix``, ``render``, ``analyze``, ``compare``, ``params``) and ``stylemix
--help`` run the command line; anything else (nothing, a session, audio files, ``--demo``,
``--screenshot``...) opens the desktop app (:mod:`app.main`). It lives here, not in :mod:`core.cli`,
because core never imports the app; it imports nothing of the app's before it is needed, so the
command line does not load Qt.

Run as the ``stylemix`` console script (``pyproject.toml``) or as ``python -m app.launcher``;
``python -m core.cli COMMAND ...`` runs the command line alone.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (default: the process's arguments) and return the exit status."""
    from core.cli import is_command_line
    from core.cli import main as cli_main

    argv = list(sys.argv[1:] if argv is None else argv)
    if is_command_line(argv):
        return cli_main(argv)
    return open_app(argv)


def open_app(argv: list[str]) -> int:
    """The desktop app with ``argv``; without the app's package, the command line's help."""
    try:
        from app.main import run_app
    except ImportError:
        from core.cli import build_parser

        build_parser().print_help()
        return 0 if not argv else 2
    return run_app(argv)


def entry() -> None:
    """The ``stylemix`` console script."""
    from core.cli import exit_quickly

    exit_quickly(main())


if __name__ == "__main__":
    entry()
