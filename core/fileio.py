"""Safe file writes: nothing the user owns is lost.

* **Atomic writes.** Every file goes to a temporary file beside its destination, is flushed to disk,
  then renamed over the destination. A failure at any point (full disk, a bug, Ctrl-C) leaves any
  existing file untouched and no partial file behind. New files get the usual permissions (0666 less
  the umask), not mkstemp's 0600.
* **Write groups.** :class:`WriteGroup` stages several files (a mix, its params, processed stems) and
  renames them all at the end, or none: when a rename fails half way, the files already replaced get
  their previous contents back (kept as hard links until the group commits).
* **Stale temporary files** of a killed run (``.<name>.<pid>-<8 hex>.tmp``) are removed the next time a
  file is written in that folder, when the process that made them is gone. Nothing else is touched.
* **Inputs are sacred.** :func:`check_outputs` refuses an output that is one of the inputs (the same
  path after resolving links, or a hard link to the same file).
* **One-line errors.** :class:`WriteError` says what went wrong and where: "disk full" and the folder,
  a read-only folder, permission denied.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

#: Our temporary files: ``.<destination name>.<pid>-<8 hex digits>.tmp``.
TEMP_PATTERN = re.compile(r"^\..+\.(\d{1,10})-[0-9a-f]{8}\.tmp$")
#: Temporary files of earlier versions had no pid; they are removed once this old (seconds).
_LEGACY_PATTERN = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")
LEGACY_TEMP_AGE_S = 3600.0
#: A temporary file this old is stale even if a process with its pid exists (the pid was reused).
STALE_TEMP_AGE_S = 24 * 3600.0
#: Below this much free space a failed write is reported as a full disk.
_NEARLY_FULL_BYTES = 4 << 20


class WriteError(OSError):
    """A file could not be written; ``str()`` is one line naming the file or folder and the problem."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "cannot write"


class OutputError(ValueError):
    """An output path that would destroy an input (or another output); one line naming both paths."""


# --- errors ---------------------------------------------------------------------------------------------

def _folder_of(path: str | os.PathLike) -> str:
    return os.path.dirname(os.path.abspath(os.fspath(path)))


def _nearly_full(folder: str) -> bool:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return False
    return st.f_bavail * st.f_frsize < _NEARLY_FULL_BYTES


def write_error(exc: BaseException, path: str | os.PathLike, folder: str | None = None) -> WriteError:
    """A :class:`WriteError` describing why writing ``path`` (in ``folder``: by default its folder)
    failed with ``exc``, in one line.

    Errors without an errno (libsndfile's "System error.") are reported as a full disk when the folder
    has (almost) no space left, which is what they mean there.
    """
    if isinstance(exc, WriteError):
        return exc
    path, folder = os.fspath(path), folder or _folder_of(path)
    code = getattr(exc, "errno", None)
    full = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
    if code in full or (code is None and _nearly_full(folder)):
        problem = f"disk full in {folder} (nothing was written; existing files are unchanged)"
    elif code == errno.EROFS:
        problem = f"{folder} is on a read-only file system"
    elif code in (errno.EACCES, errno.EPERM):
        problem = f"permission denied: cannot write in {folder}"
    elif code == errno.EISDIR:
        problem = "is a folder"
    else:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        problem = f"cannot write ({reason})"
    out = WriteError(" ".join(f"{path}: {problem}".splitlines()))
    out.errno = code
    return out


# --- temporary files ------------------------------------------------------------------------------------

def temp_path(folder: str, base: str) -> str:
    """Create and return an empty, exclusively created temporary file in ``folder`` (our naming)."""
    for _ in range(100):
        tmp = os.path.join(folder, f".{base}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free temporary name in {folder}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError, OSError):
        return True  # someone else's process (or an odd pid): leave its files alone
    return True


def is_stale_temp(name: str, age_s: float) -> bool:
    """Whether a file called ``name``, ``age_s`` seconds old, is a temporary file of ours left behind."""
    m = TEMP_PATTERN.match(name)
    if m:
        return not _pid_alive(int(m.group(1))) or age_s > STALE_TEMP_AGE_S
    return bool(_LEGACY_PATTERN.match(name)) and age_s > LEGACY_TEMP_AGE_S


def remove_stale_temps(folder: str | os.PathLike) -> list[str]:
    """Delete our temporary files in ``folder`` that a killed run left behind; returns their paths."""
    removed, now = [], time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.endswith(".tmp"):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if is_stale_temp(entry.name, now - entry.stat(follow_symlinks=False).st_mtime):
                os.unlink(entry.path)
                removed.append(entry.path)
        except OSError:
            continue
    return removed


def check_writable(folder: str | os.PathLike, name: str | None = None) -> None:
    """Fail now (:class:`WriteError`) if a file cannot be created in ``folder``: checked by creating one.

    Also removes stale temporary files there. ``name`` (e.g. ``"--out mix.wav"``) names the output in
    the message.
    """
    folder = os.fspath(folder)
    remove_stale_temps(folder)
    try:
        os.unlink(temp_path(folder, "stylemix-probe"))
    except OSError as exc:
        raise write_error(exc, name or folder, folder) from None


def _fsync_path(path: str, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: str) -> None:
    """Make renames durable (POSIX only; best effort)."""
    if os.name == "posix":
        try:
            _fsync_path(folder)
        except OSError:
            pass


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# --- write groups ---------------------------------------------------------------------------------------

class WriteGroup:
    """Files that land together or not at all.

    ``add(dest)`` returns a fresh temporary path beside ``dest`` for the caller to write (any writer);
    ``write(dest, fn)`` does that with a binary file object. ``commit()`` flushes every temporary file,
    renames them all over their destinations and returns only when all are in place; if one rename
    fails the destinations already replaced get their old contents back. Leaving the ``with`` block
    without a commit (an error, Ctrl-C) removes every temporary file and any folder the group created,
    so existing files stay byte-identical. Errors are :class:`WriteError` (one line).
    """

    def __init__(self) -> None:
        self._staged: list[tuple[str, str]] = []  # (temporary, absolute destination)
        self._given: dict[str, str] = {}  # absolute destination -> the path as given (for messages)
        self._created_dirs: list[str] = []
        self._swept: set[str] = set()
        self.committed = False

    def __enter__(self) -> WriteGroup:
        return self

    def __exit__(self, *exc) -> None:
        if not self.committed:
            self.abort()

    @property
    def destinations(self) -> list[str]:
        return [dest for _, dest in self._staged]

    def make_dirs(self, folder: str | os.PathLike) -> None:
        """Create ``folder`` (and missing parents); an aborted group removes them again if empty."""
        missing, p = [], Path(os.path.abspath(os.fspath(folder)))
        while not p.exists() and p != p.parent:
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                raise write_error(exc, d) from None
            self._created_dirs.append(str(d))

    def add(self, dest: str | os.PathLike) -> str:
        """Stage ``dest``: returns the temporary path to write it to (created empty)."""
        given = os.fspath(dest)
        dest = os.path.abspath(given)
        if dest in self._given:
            raise ValueError(f"{dest} is written twice in one group")
        folder = os.path.dirname(dest)
        if folder not in self._swept:
            self._swept.add(folder)
            remove_stale_temps(folder)
        try:
            tmp = temp_path(folder, os.path.basename(dest))
        except OSError as exc:
            raise write_error(exc, given) from None
        self._staged.append((tmp, dest))
        self._given[dest] = given
        return tmp

    def write(self, dest: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
        """Stage ``dest`` with ``write(f)`` on a binary file."""
        tmp = self.add(dest)
        try:
            with open(tmp, "wb") as f:
                write(f)
        except OSError as exc:
            raise write_error(exc, os.fspath(dest)) from None

    def write_bytes(self, dest: str | os.PathLike, data: bytes) -> None:
        self.write(dest, lambda f: f.write(data))

    def abort(self) -> None:
        """Remove every temporary file and every folder this group created (if still empty)."""
        for tmp, _ in self._staged:
            _unlink_quietly(tmp)
        self._staged.clear()
        self._given.clear()
        for d in reversed(self._created_dirs):
            try:
                os.rmdir(d)
            except OSError:
                pass
        self._created_dirs.clear()

    def commit(self) -> list[str]:
        """Flush and rename every staged file into place; returns the destinations."""
        if self.committed:
            return self.destinations
        for tmp, dest in self._staged:
            try:
                _fsync_path(tmp, os.O_RDWR)
            except OSError as exc:
                err = write_error(exc, self._given[dest])
                self.abort()
                raise err from None
        backups = self._keep_old_versions()
        done: list[tuple[str, str | None]] = []
        try:
            for (tmp, dest), backup in zip(self._staged, backups, strict=True):
                os.replace(tmp, dest)
                done.append((dest, backup))
        except BaseException as exc:
            for dest, backup in reversed(done):
                try:
                    if backup is not None:
                        os.replace(backup, dest)
                    else:
                        os.unlink(dest)
                except OSError:
                    pass
            for b in backups:
                if b is not None:
                    _unlink_quietly(b)
            failed = self._given[self._staged[len(done)][1]] if len(done) < len(self._staged) else None
            self.abort()
            if isinstance(exc, OSError) and failed is not None:
                raise write_error(exc, failed) from None
            raise
        for b in backups:
            if b is not None:
                _unlink_quietly(b)
        for folder in {os.path.dirname(dest) for _, dest in self._staged}:
            _fsync_folder(folder)
        self.committed = True
        self._created_dirs.clear()
        return self.destinations

    def _keep_old_versions(self) -> list[str | None]:
        """Hard links to the files about to be replaced (None for new files or where links fail)."""
        out: list[str | None] = []
        for _, dest in self._staged:
            backup = None
            if os.path.isfile(dest) and len(self._staged) > 1:
                try:
                    backup = temp_path(os.path.dirname(dest), os.path.basename(dest))
                    os.unlink(backup)
                    os.link(dest, backup)
                except OSError:
                    backup = None
            out.append(backup)
        return out


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a binary file beside ``path``, fsync it, then rename it to ``path``."""
    with WriteGroup() as group:
        group.write(path, write)
        group.commit()


# --- inputs are sacred ----------------------------------------------------------------------------------

def _identity(path: str) -> tuple[str, tuple[int, int] | None]:
    real = os.path.normcase(os.path.realpath(path))
    try:
        st = os.stat(path)
        return real, (st.st_dev, st.st_ino)
    except (OSError, ValueError):
        return real, None


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: equal after resolving links, or hard links to one inode."""
    ra, ia = _identity(os.fspath(a))
    rb, ib = _identity(os.fspath(b))
    return ra == rb or (ia is not None and ia == ib)


def check_outputs(outputs: Iterable[tuple[str, str | os.PathLike]],
                  inputs: Iterable[str | os.PathLike | None]) -> None:
    """Refuse outputs that are inputs, folders, or each other, before any work is done.

    ``outputs``: ``(label, path)`` pairs (label e.g. ``"--out"``); ``inputs``: files that must never be
    written (stems, reference, params read, checkpoint, session). Raises :class:`OutputError`.
    """
    ins = [(os.fspath(p), _identity(os.fspath(p))) for p in inputs if p]
    seen: list[tuple[str, str, tuple]] = []
    for label, path in outputs:
        path = os.fspath(path)
        if os.path.isdir(path):
            raise OutputError(f"{label} {path}: is a folder; give a file name")
        real, ino = _identity(path)
        for src, (src_real, src_ino) in ins:
            if real == src_real or (ino is not None and ino == src_ino):
                how = "is" if real == src_real else "is a hard link to"
                raise OutputError(f"refusing to write {label} {path}: it {how} the input {src}")
        for other_label, other, (o_real, o_ino) in seen:
            if real == o_real or (ino is not None and ino == o_ino):
                raise OutputError(f"{label} {path} and {other_label} {other} are the same file")
        seen.append((label, path, (real, ino)))
