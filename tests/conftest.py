"""Test-wide settings and fixtures.

- Qt runs offscreen (``QT_QPA_PLATFORM=offscreen``, set here before anything imports Qt), so the GUI
  tests need no display and the window sizes they check are the same everywhere.
- Every test starts from fixed seeds: ``random``, NumPy's global generator and (when loaded) torch's
  are seeded from the test's id, so a test draws the same numbers whether it runs alone or in the
  whole suite, and different tests draw different numbers.
- ``sync_tasks``: the app's background jobs (``app.tasks.TaskRunner``) run on the test's thread when
  the test says so, instead of on a thread pool (see :class:`SyncPool`).
- Markers (registered in pyproject.toml, ``--strict-markers``): ``slow`` (long tests; they run by
  default, ``-m "not slow"`` leaves them out) and ``gpu`` (skipped, with the reason, without CUDA).
- :func:`need_qt`: the GUI tests' dependencies. A missing PySide6 or pytest-qt fails those tests
  unless ``STYLEMIX_ALLOW_NO_QT=1`` says that skipping them is intended.
"""

import os
import random
import sys
import zlib

# before any Qt import (pytest-qt creates the QApplication later, in its ``qapp`` fixture)
os.environ["QT_QPA_PLATFORM"] = "offscreen"
# The CLI compiles the audio kernels ahead of first use when their cache is missing (a minute, with a
# message on stderr); tests compile on first use instead and keep their stderr to the point.
os.environ.setdefault("STYLEMIX_NO_WARMUP", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ALLOW_NO_QT = "STYLEMIX_ALLOW_NO_QT"


def need_qt() -> None:
    """Import the GUI tests' dependencies; call at the top of a GUI test module.

    A missing one is an import error (the module fails, loudly), so a CI machine without Qt cannot
    pass by skipping the GUI. With ``STYLEMIX_ALLOW_NO_QT=1`` (a machine where that is intended) the
    module is skipped with the reason instead."""
    missing = _qt_missing()
    if missing is None:
        return
    if os.environ.get(ALLOW_NO_QT) == "1":
        pytest.skip(f"no Qt ({missing}) and {ALLOW_NO_QT}=1", allow_module_level=True)
    raise ImportError(f"the GUI tests need PySide6 and pytest-qt ({missing}); set {ALLOW_NO_QT}=1 to skip "
                      "them on a machine without Qt")


# --- seeds ----------------------------------------------------------------------------------------------


def seed_of(nodeid: str) -> int:
    """The seed of a test: a fixed function of its id (not ``hash()``, which changes every run)."""
    return zlib.crc32(nodeid.encode())


@pytest.fixture(autouse=True)
def _fixed_seeds(request):
    seed = seed_of(request.node.nodeid)
    random.seed(seed)
    np.random.seed(seed)
    torch = sys.modules.get("torch")  # not imported here: many tests must run without torch
    if torch is not None:
        torch.manual_seed(seed)
    yield seed


# --- markers --------------------------------------------------------------------------------------------


def _qt_missing() -> str | None:
    try:
        import PySide6  # noqa: F401
        import pytestqt  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


def pytest_collection_modifyitems(config, items):
    if os.environ.get(ALLOW_NO_QT) == "1":  # tests taking Qt fixtures are skipped, not errors
        qt_fixtures = {"qtbot", "qapp", "sync_tasks"}
        uses_qt = [item for item in items if qt_fixtures & set(getattr(item, "fixturenames", ()))]
        missing = _qt_missing() if uses_qt else None
        for item in uses_qt if missing else ():
            item.add_marker(pytest.mark.skip(reason=f"no Qt ({missing}) and {ALLOW_NO_QT}=1"))
    gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu:
        return
    try:
        import torch

        reason = None if torch.cuda.is_available() else "needs CUDA (torch.cuda.is_available() is False)"
    except ImportError as exc:
        reason = f"needs CUDA (torch cannot be imported: {exc})"
    if reason is not None:
        for item in gpu:
            item.add_marker(pytest.mark.skip(reason=reason))


# --- the app's background jobs, synchronously ----------------------------------------------------------


class SyncPool:
    """Stands in for ``QThreadPool`` inside ``app.tasks``: jobs wait in a queue until
    :meth:`run_pending` runs them on the calling thread.

    Nothing runs inside ``TaskRunner.run`` itself, so the app sees the order it sees with threads
    (``run`` returns its task before the job ends); the job's signals are then emitted on the test's
    (GUI) thread, so progress, result and error callbacks run at once, in order, without the event
    loop."""

    instances: list["SyncPool"] = []

    def __init__(self, parent=None):
        self.queue = []
        SyncPool.instances.append(self)

    def setMaxThreadCount(self, n: int) -> None:
        pass

    def start(self, runnable) -> None:
        self.queue.append(runnable)

    def run_pending(self) -> int:
        """Run queued jobs (and those their callbacks queue) until none is left; returns how many ran."""
        n = 0
        while self.queue:
            self.queue.pop(0).run()
            n += 1
        return n

    def waitForDone(self, msecs: int = -1) -> bool:  # what a thread pool would have run meanwhile
        self.run_pending()
        return True


class SyncTasks:
    """What the ``sync_tasks`` fixture gives a test."""

    def run_pending(self) -> int:
        """Run every queued background job of every runner to the end; returns how many ran."""
        n = 0
        while any(pool.queue for pool in SyncPool.instances):
            n += sum(pool.run_pending() for pool in list(SyncPool.instances))
        return n

    @property
    def pending(self) -> int:
        return sum(len(pool.queue) for pool in SyncPool.instances)


@pytest.fixture
def sync_tasks(monkeypatch):
    """Background jobs of task runners made during the test run when the test calls
    ``sync_tasks.run_pending()``, on the test's thread (see :class:`SyncPool`)."""
    need_qt()
    import app.tasks

    monkeypatch.setattr(app.tasks, "QThreadPool", SyncPool)
    SyncPool.instances = []
    yield SyncTasks()
    SyncPool.instances = []
