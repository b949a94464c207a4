"""What the disk and SQLite report, as the library's typed errors (bot.errors.LibraryError).

A damaged database, a full disk and a read-only volume are an admin's problem with one fix each; they
should reach the CLI and Discord as one sentence saying which, never as a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from bot.errors import LibraryDamaged, LibraryError, LibraryFull, LibraryReadOnly

DB_NAME = "voicebot.db"

# SQLite primary result codes (sqlite.org/rescode.html); an extended code keeps its primary in the low byte.
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_CORRUPT, _SQLITE_FULL = 3, 8, 11, 13
_SQLITE_CANTOPEN, _SQLITE_AUTH, _SQLITE_NOTADB = 14, 23, 26
_READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def library_error(exc: BaseException, data_dir: Path) -> LibraryError | None:
    """The LibraryError that `exc` means for the library at `data_dir`, or None if it means none."""
    if isinstance(exc, LibraryError):
        return exc
    if isinstance(exc, sqlite3.Error):
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            return LibraryDamaged(data_dir / DB_NAME, str(exc))
        if code == _SQLITE_FULL:
            return LibraryFull(data_dir)
        if code in (_SQLITE_READONLY, _SQLITE_PERM, _SQLITE_CANTOPEN, _SQLITE_AUTH):
            return LibraryReadOnly(data_dir, str(exc))
        return None
    if isinstance(exc, OSError):
        if exc.errno in _FULL_ERRNOS:
            return LibraryFull(data_dir)
        if exc.errno in _READ_ONLY_ERRNOS:
            return LibraryReadOnly(data_dir, exc.strerror or str(exc))
    return None


@contextlib.contextmanager
def translated(data_dir: Path) -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        error = library_error(exc, data_dir)
        if error is None:
            raise
        raise error from exc


class _HasDataDir(Protocol):
    data_dir: Path


S = TypeVar("S", bound=_HasDataDir)
P = ParamSpec("P")
R = TypeVar("R")


def guarded(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """A store method whose disk and database failures surface as LibraryError."""

    @functools.wraps(method)
    def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        with translated(self.data_dir):
            return method(self, *args, **kwargs)

    return wrapper
