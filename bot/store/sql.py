"""The few statements both engines write the same way, in the SQL that SQLite and PostgreSQL share.

Statements use `?` for parameters; the PostgreSQL engine turns them into psycopg's `%s`. A transaction
(`VoiceLibrary.transaction()`) yields a `Transaction`: SQLite's connection, or the PostgreSQL wrapper.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Transaction(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any: ...


def insert(tx: Transaction, table: str, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    tx.execute(f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


def upsert(tx: Transaction, table: str, row: dict[str, Any], key: Sequence[str]) -> None:
    """Insert `row`, or update the row with the same `key` columns to match it."""
    columns = ", ".join(row)
    others = [c for c in row if c not in key]
    update = f"DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in others)}" if others else "DO NOTHING"
    tx.execute(
        f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(row))}) "
        f"ON CONFLICT ({', '.join(key)}) {update}",
        list(row.values()),
    )
