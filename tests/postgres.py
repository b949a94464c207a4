"""A real PostgreSQL for the tests, started by the suite itself (no system install, no mock).

`pgserver` ships the server's binaries in its wheel and runs one in a temporary folder, reached through
a Unix socket there; it starts in about a second. One server per test session; each test that asks
gets a database of its own, dropped afterwards, so tests can't see each other's rows.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg


class PostgresServer:
    """One running server; `database()` makes a fresh database and gives its URL."""

    def __init__(self, folder: Path) -> None:
        import pgserver

        self._server = pgserver.get_server(folder, cleanup_mode="stop")
        self.url = self._server.get_uri()

    def _url_of(self, name: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def database(self) -> Iterator[str]:
        name = f"voicebot_{secrets.token_hex(6)}"
        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield self._url_of(name)
        finally:
            with psycopg.connect(self.url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        self._server.cleanup()
