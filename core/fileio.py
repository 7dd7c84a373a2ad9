"""Atomic file writes: write beside the destination, flush to disk, then rename over it.

A failure at any point (full disk, a bug, Ctrl-C) leaves any existing file untouched and no partial
file behind. New files get the usual permissions (0666 less the umask), not mkstemp's 0600.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def temp_path(folder: str, base: str) -> str:
    """Create and return an empty, exclusively created temporary file in ``folder``."""
    for _ in range(100):
        tmp = os.path.join(folder, f".{base}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a binary file beside ``path``, fsync it, then rename it to ``path``."""
    path = Path(path)
    tmp = temp_path(str(path.parent or "."), path.name)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
