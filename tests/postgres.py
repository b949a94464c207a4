"""A real PostgreSQL for the tests, started by the suite itself (no system install, no mock).

`pgserver` ships the server's binaries in its wheel and runs one in a temporary folder, reached through
a Unix socket there; it starts in about a second. One server per test session; each test that asks
gets a database of its own, dropped afterwards, so tests can't see each other's rows. The next test's
database is made, and the last one's dropped, on a thread of the server's own while tests run: a test
finds its database ready rather than waiting a tenth of a second or more for it.

The server doesn't wait for the disk (no fsync, commits not flushed before they return): what a test
sees is the same, since only a crash of the machine or of the server itself (which no test does; the
processes tests kill are clients) could tell the difference, and each commit and new database is
milliseconds faster.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg


class PostgresServer:
    """One running server; `database()` makes a fresh database and gives its URL."""

    def __init__(self, folder: Path) -> None:
        import pgserver

        self._server = pgserver.get_server(folder, cleanup_mode="stop")
        self.url = self._server.get_uri()
        with psycopg.connect(self.url, autocommit=True) as admin:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                admin.execute(f"ALTER SYSTEM SET {setting} = off")
            admin.execute("SELECT pg_reload_conf()")
        self._admin = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgres-admin")
        self._next: Future[str] = self._admin.submit(self._create)
        self._dropped: list[Future[None]] = []

    def _url_of(self, name: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def _create(self) -> str:
        name = f"voicebot_{secrets.token_hex(6)}"
        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return name

    def _drop(self, name: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def database(self) -> Iterator[str]:
        name = self._next.result()  # made while the tests before ran, never handed out before
        self._next = self._admin.submit(self._create)  # the next test's, made while this one runs
        try:
            yield self._url_of(name)
        finally:
            self._dropped.append(self._admin.submit(self._drop, name))  # and connections left to it cut

    def stop(self) -> None:
        self._admin.shutdown(wait=True)  # every drop done, no create left half made
        for dropped in self._dropped:
            dropped.result()  # a drop that failed fails the run, as it did when tests dropped their own
        self._server.cleanup()
