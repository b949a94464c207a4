"""What the disk and SQLite report, as the library's typed errors (bot.errors.LibraryError).

A damaged database, a full disk and a read-only volume are an admin's problem with one fix each; they
should reach the CLI and Discord as one sentence saying which, never as a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from bot.errors import LibraryBusy, LibraryDamaged, LibraryError, LibraryFull, LibraryReadOnly

DB_NAME = "voicebot.db"
BUSY_TIMEOUT_S = 5.0  # how long a write waits for another process's write lock before "busy, try again"

# SQLite primary result codes (sqlite.org/rescode.html); an extended code keeps its primary in the low byte.
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL = 10, 11, 13
NEARLY_FULL_BYTES = 1024 * 1024  # an I/O error with less free than this is the disk being full
_SQLITE_CANTOPEN, _SQLITE_AUTH, _SQLITE_NOTADB = 14, 23, 26
_READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def library_error(
    exc: BaseException, data_dir: Path, busy_timeout_s: float = BUSY_TIMEOUT_S
) -> LibraryError | None:
    """The LibraryError that `exc` means for the library at `data_dir`, or None if it means none."""
    if isinstance(exc, LibraryError):
        return exc
    if isinstance(exc, sqlite3.Error):
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return LibraryBusy(data_dir / DB_NAME, busy_timeout_s)
        if code == _SQLITE_IOERR and _nearly_full(data_dir):
            return LibraryFull(data_dir)  # SQLite says "disk I/O error" when it can't grow its WAL files
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


def _nearly_full(data_dir: Path) -> bool:
    try:
        return shutil.disk_usage(data_dir).free < NEARLY_FULL_BYTES
    except OSError:
        return False


@contextlib.contextmanager
def translated(data_dir: Path, busy_timeout_s: float = BUSY_TIMEOUT_S) -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        error = library_error(exc, data_dir, busy_timeout_s)
        if error is None:
            raise
        raise error from exc


class CallsInFlight:
    """The store calls running now, on any thread. Closing a SQLite connection while another thread is
    inside it crashes the process (a cancelled task's worker thread runs on), so the store closes only
    once every call has returned; a call that starts after closing began is refused."""

    def __init__(self) -> None:
        self._idle = threading.Condition()
        self._running = 0
        self._closing = False
        self._depth = threading.local()  # a call's own nested calls count once

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        depth = getattr(self._depth, "n", 0)
        if depth == 0:
            with self._idle:
                if self._closing:
                    raise sqlite3.ProgrammingError("the voice library is closed")
                self._running += 1
        self._depth.n = depth + 1
        try:
            yield
        finally:
            self._depth.n = depth
            if depth == 0:
                with self._idle:
                    self._running -= 1
                    self._idle.notify_all()

    def depth(self) -> int:
        """How many library calls this thread is inside (a call's own nested calls count)."""
        return int(getattr(self._depth, "n", 0))

    def close(self, timeout_s: float) -> bool:
        """Refuse new calls and wait for those running (other than the caller's own) to return; False
        if some still run after `timeout_s`."""
        own = 1 if getattr(self._depth, "n", 0) else 0
        with self._idle:
            self._closing = True
            return self._idle.wait_for(lambda: self._running <= own, timeout_s)


P = ParamSpec("P")
R = TypeVar("R")


class _Guarded(Protocol):
    calls: CallsInFlight

    def _guard(self, call: Callable[[], R]) -> R: ...


S = TypeVar("S", bound=_Guarded)


def guarded(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """A library method whose engine's failures surface as LibraryError, and which the library waits
    for before it closes."""

    @functools.wraps(method)
    def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.calls.running():
            return self._guard(functools.partial(method, self, *args, **kwargs))

    return wrapper
