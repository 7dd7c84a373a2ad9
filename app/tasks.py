"""Background work through one helper: run a callable on a worker thread, get the answer on the GUI thread.

Loading audio, prediction, analysis and export all go through :class:`TaskRunner` (as MusicBrainz
Picard routes its background work through one ``run_task``). The job receives a :class:`Task` handle
to report progress and to notice a cancel request; callbacks are delivered by queued signals, so they
always run on the GUI thread and may touch widgets.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


class Cancelled(Exception):
    """Raised inside a job (usually by :meth:`Task.check`) when the user cancelled it."""


class _Bridge(QObject):
    """Lives on the GUI thread; signals emitted from the worker are queued to it."""

    progress = Signal(object)
    done = Signal(object)
    failed = Signal(object, str)
    cancelled = Signal()


class Task:
    """Handle given to a job: progress reports and cancellation."""

    def __init__(self, name: str):
        self.name = name
        self._cancel = threading.Event()
        self._bridge = _Bridge()
        self.finished = False

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def report(self, *info) -> bool:
        """Send progress to the GUI; returns True when the job should stop (refine's callback rule)."""
        self._bridge.progress.emit(info)
        return self.cancelled

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled()


class _Runnable(QRunnable):
    def __init__(self, fn: Callable[[Task], Any], task: Task):
        super().__init__()
        self.fn, self.task = fn, task
        self.setAutoDelete(True)

    def run(self) -> None:
        bridge = self.task._bridge
        try:
            result = self.fn(self.task)
        except Cancelled:
            bridge.cancelled.emit()
        except BaseException as exc:  # every failure must reach the GUI, never vanish in a thread
            bridge.failed.emit(exc, traceback.format_exc())
        else:
            if self.task.cancelled:
                bridge.cancelled.emit()
            else:
                bridge.done.emit(result)


class TaskRunner(QObject):
    """Runs jobs on a thread pool; see the module docstring."""

    def __init__(self, parent: QObject | None = None, max_threads: int = 2):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._active: set[Task] = set()
        self.closed = False

    def run(self, name: str, fn: Callable[[Task], Any], on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[BaseException, str], None] | None = None,
            on_progress: Callable[..., None] | None = None,
            on_cancel: Callable[[], None] | None = None) -> Task:
        task = Task(name)
        b = task._bridge
        if on_progress is not None:
            b.progress.connect(lambda info: on_progress(*info))
        b.done.connect(lambda result: self._finish(task, on_done, result))
        b.failed.connect(lambda exc, tb: self._finish(task, on_error, exc, tb))
        b.cancelled.connect(lambda: self._finish(task, on_cancel))
        self._active.add(task)  # the bridge must outlive the worker's last signal
        self.pool.start(_Runnable(fn, task))
        return task

    def _finish(self, task: Task, callback, *args) -> None:
        task.finished = True
        self._active.discard(task)
        if callback is not None and not self.closed:  # after close the receivers may be gone
            callback(*args)

    @property
    def busy(self) -> bool:
        return bool(self._active)

    def cancel_all(self) -> None:
        for task in list(self._active):
            task.cancel()

    def close(self, msecs: int = 30000) -> None:
        """Cancel everything, wait for the workers, and deliver no more results (window closing)."""
        self.cancel_all()
        self.closed = True
        self.pool.waitForDone(msecs)

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the workers are idle (shutdown, tests); queued callbacks still need the event loop."""
        return self.pool.waitForDone(msecs)
