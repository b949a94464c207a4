"""What every part of the library stands on, whichever engine keeps it: this thread's connection for
reads, a write transaction, and how the engine's own failures become the library's typed errors.

`bot.store.sqlite` (one SQLite file and a voices folder, the default) and `bot.store.postgres` (one
PostgreSQL database shared by every process) provide these; `bot.store.library` and its parts are
written once over them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from bot.store.faults import CallsInFlight
from bot.store.sql import Cursor, Transaction

T = TypeVar("T")


class Engine:
    where: str  # the library's place for messages: a file's path, or a database URL without its password
    busy_timeout_s: float
    read_only: bool
    calls: CallsInFlight

    def _execute(self, sql: str, parameters: Sequence[Any] = ()) -> Cursor:
        """Run one statement on this thread's connection, outside any transaction."""
        raise NotImplementedError

    def transaction(
        self, *, lock: tuple[str, int] | None = None
    ) -> contextlib.AbstractContextManager[Transaction]:
        """A write transaction. What it reads (a count, a free name) is still true when it writes, for
        every writer that names the same `lock` (a concern and a guild): SQLite holds its one write lock
        from the start; PostgreSQL takes an advisory lock for the pair."""
        raise NotImplementedError

    def _has_type(self, column: str, kind: str) -> str:
        """An SQL test that `column` holds a `kind` ('text', 'integer' or 'number') value. SQLite keeps
        whatever it is given, so a hand edit can leave text in a number column; PostgreSQL refuses."""
        raise NotImplementedError

    def _database_now(self, tx: Transaction) -> float:
        """Seconds since the epoch by the database's clock: one clock for every process using it."""
        raise NotImplementedError

    def _guard(self, call: Callable[[], T]) -> T:
        """`call()`, its engine's failures raised as LibraryError."""
        raise NotImplementedError

    def _rows(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._execute(sql, parameters).fetchall()]

    def _records(self, sql: str, parameters: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor: Any = self._execute(sql, parameters)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _value(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        row = self._execute(sql, parameters).fetchone()
        return None if row is None else row[0]
