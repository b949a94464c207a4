"""The shared engine: the whole library in one PostgreSQL database, for several bot processes (and the
CLI, and any later API process) on one machine or many. Nothing lives on a local disk: a voice's
recording and latent are in `voice_files`, written in the same transaction as its row.

So an add, a delete and a latent swap are each one transaction: a crash or a lost connection leaves
the whole write or none of it, and there is nothing for a sweep to finish. Checks that must hold across
processes (a free name, a slot left, a full dictionary) run inside a transaction holding an advisory
lock for their guild (`transaction(lock=...)`), so two processes can't both pass the same check.

Each thread has its own connection (autocommit; writes say where their transaction starts), as with
SQLite. A connection the server dropped is replaced; a call whose first statement found it dropped is
retried once on a fresh one, as nothing of it ran. Waits on a lock end after `busy_timeout_s`
(`lock_timeout`) as LibraryBusy; an unreachable server is LibraryUnreachable.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg
from psycopg import errors as pg_errors

from bot.errors import (
    LibraryBusy,
    LibraryDamaged,
    LibraryError,
    LibraryFull,
    LibraryReadOnly,
    LibraryUnreachable,
    VoiceDeleted,
    VoiceNeedsRepair,
)
from bot.store import files, health, pg_schema, sql
from bot.store.faults import BUSY_TIMEOUT_S, CallsInFlight, guarded
from bot.store.library import VoiceLibrary
from bot.store.voice import Voice

log = logging.getLogger("bot.store")
T = TypeVar("T")

CONNECT_TIMEOUT_S = 5
RETRY_AFTER_S = 0.5  # before the one retry of a call that found its connection dropped
CLOSE_GRACE_S = 5.0


def is_database_url(value: str) -> bool:
    return urlsplit(value).scheme in ("postgresql", "postgres")


def redacted(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def holds_library(url: str) -> bool:
    """Whether the database at `url` holds a library (a writer set it up); LibraryUnreachable if the
    server can't be reached."""
    library = PostgresVoiceStore(url, read_only=True, empty_ok=True)
    try:
        return library.schema_on_disk > 0
    finally:
        library.close()


@functools.lru_cache(maxsize=512)
def _pg(statement: str) -> bytes:
    """A statement written with `?` placeholders (bot.store.sql), in psycopg's `%s`."""
    return statement.replace("%", "%%").replace("?", "%s").encode()


def _lock_key(lock: tuple[str, int]) -> int:
    """A signed 64-bit advisory lock key for (concern, guild)."""
    digest = hashlib.blake2b(f"{lock[0]}:{lock[1]}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class _Transaction:
    """A transaction's statements, written as bot.store.sql writes them."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def execute(self, statement: str, parameters: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self.conn.execute(_pg(statement), list(parameters))


class PostgresVoiceStore(VoiceLibrary):
    """The library in PostgreSQL. `read_only=True` opens every connection read-only and migrates
    nothing; `sweep` is accepted for symmetry with SQLite and means nothing here (nothing is ever left
    half written)."""

    schema_latest = pg_schema.SCHEMA_VERSION

    def __init__(
        self,
        url: str,
        *,
        max_voices_per_guild: int = 25,
        sweep: bool = True,
        read_only: bool = False,
        busy_timeout_s: float | None = None,
        empty_ok: bool = False,
    ) -> None:
        self.url = url
        self._empty_ok = empty_ok
        self.where = redacted(url)
        self.max_voices_per_guild = max_voices_per_guild
        self.read_only = read_only
        self.busy_timeout_s = BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
        self.last_sweep = health.SweepReport()
        self.calls = CallsInFlight()
        self._local = threading.local()
        self._connections: builtins.list[psycopg.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        try:
            self.schema_on_disk = self._guard(self._open)
        except BaseException:
            self.close()
            raise

    def _open(self) -> int:
        conn = self._connection()
        version = pg_schema.check_not_newer(conn, self.where)
        if self.read_only:
            if version == 0 and self._empty_ok:
                return version
            if version < pg_schema.SCHEMA_VERSION:
                raise LibraryDamaged(
                    self.where,
                    f"schema {version}, older than this bot's {pg_schema.SCHEMA_VERSION}: start the bot "
                    "or run `voicebot doctor --repair` once to upgrade it",
                )
            return version
        pg_schema.migrate(conn, self.where)
        return version

    # --- the engine -------------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection:
        """This thread's connection, made on first use or after the server dropped the last one."""
        conn: psycopg.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            self._forget(conn)
        with self._connections_lock:
            if self._closed:
                raise psycopg.InterfaceError("the voice library is closed")
        options = f"-c lock_timeout={int(self.busy_timeout_s * 1000)}"
        if self.read_only:
            options += " -c default_transaction_read_only=on"
        conn = psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            options=options,
            application_name="voicebot",
        )
        with self._connections_lock:
            self._connections.append(conn)
        self._local.conn = conn
        return conn

    def _forget(self, conn: psycopg.Connection) -> None:
        with self._connections_lock:
            if conn in self._connections:
                self._connections.remove(conn)
        with contextlib.suppress(psycopg.Error):
            conn.close()
        self._local.conn = None

    def _counted(self) -> None:
        self._local.statements = getattr(self._local, "statements", 0) + 1

    def _execute(
        self, statement: str, parameters: Sequence[Any] = (), *, binary: bool = False
    ) -> psycopg.Cursor[Any]:
        """`binary`: results in PostgreSQL's binary format, for recordings and latents (text would
        send each byte as two hex digits)."""
        self._counted()
        return self._connection().execute(_pg(statement), list(parameters), binary=binary)

    def _has_type(self, column: str, kind: str) -> str:
        return f"{column} IS NOT NULL"  # the column's type holds: PostgreSQL refuses anything else

    def _database_now(self, tx: sql.Transaction) -> float:
        return float(tx.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0])

    @contextlib.contextmanager
    def transaction(self, *, lock: tuple[str, int] | None = None) -> Iterator[_Transaction]:
        self._counted()
        conn = self._connection()
        with conn.transaction():
            if lock is not None:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(lock)])
            yield _Transaction(conn)

    def _guard(self, call: Callable[[], T]) -> T:
        if self.calls.depth() > 1:  # a call inside another: the outermost one translates and retries
            return call()
        for attempt in (1, 2):
            self._local.statements = 0
            try:
                return call()
            except psycopg.Error as exc:
                conn = getattr(self._local, "conn", None)
                lost = isinstance(exc, psycopg.OperationalError) and (
                    conn is None or conn.closed or conn.broken
                )
                if lost and conn is not None:
                    self._forget(conn)
                # Safe to run again only when nothing of it reached the server: its first statement (a
                # read, or the BEGIN every write starts with) is the one that failed.
                if lost and attempt == 1 and self._local.statements <= 1 and not self._closed:
                    log.warning("The library's database connection was lost; retrying once: %s", exc)
                    time.sleep(RETRY_AFTER_S)
                    continue
                error = self.library_error(exc)
                if error is None:
                    raise
                raise error from exc
        raise AssertionError("unreachable")

    def library_error(self, exc: BaseException) -> LibraryError | None:
        """The LibraryError `exc` means for this library, or None."""
        if isinstance(exc, LibraryError):
            return exc
        if isinstance(
            exc, (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
        ):
            return LibraryBusy(self.where, self.busy_timeout_s)
        if isinstance(exc, pg_errors.DiskFull):
            return LibraryFull(self.where)
        if isinstance(exc, (pg_errors.ReadOnlySqlTransaction, pg_errors.InsufficientPrivilege)):
            return LibraryReadOnly(self.where, str(exc).strip())
        if isinstance(exc, (pg_errors.DataCorrupted, pg_errors.IndexCorrupted, pg_errors.UndefinedTable)):
            return LibraryDamaged(self.where, str(exc).strip())
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            return LibraryUnreachable(
                self.where, str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            )
        return None

    @guarded
    def schema_version(self) -> int:
        return pg_schema.schema_version(self._connection())

    def close(self) -> None:
        settled = self.calls.close(self.busy_timeout_s + CLOSE_GRACE_S)
        with self._connections_lock:
            self._closed = True
            connections = [] if not settled else list(self._connections)
            if settled:
                self._connections = []
        if not settled:
            log.warning("A voice-library call was still running at close; its connection stays open")
        for conn in connections:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    # --- a voice's recording and latent -----------------------------------------------------------

    def files_of(self, voice: Voice) -> str:
        return f"table voice_files of {self.where}, row {voice.id!r}"

    def _store_voice(self, voice: Voice, key: str, reference_flac: bytes, latent: np.ndarray) -> None:
        with self.transaction(lock=("voices", voice.guild_id)) as tx:
            self._check_room(tx, voice.guild_id, key)
            sql.insert(tx, "voices", {**voice.__dict__, "name_key": key, "state": "ready"})
            sql.insert(
                tx,
                "voice_files",
                {"voice_id": voice.id, "reference": reference_flac, "latent": files.latent_bytes(latent)},
            )

    def _remove_voice(self, voice: Voice) -> None:
        with self.transaction() as tx:
            # The voice's row first, as `replace_latent` locks it: taking its recording's row first
            # deadlocked with a latent swap under way (one of them then failed as "busy").
            tx.execute("SELECT id FROM voices WHERE id = ? FOR UPDATE", [voice.id])
            tx.execute("DELETE FROM user_defaults WHERE voice_id = ?", [voice.id])
            tx.execute("DELETE FROM voice_files WHERE voice_id = ?", [voice.id])
            tx.execute("DELETE FROM voices WHERE id = ?", [voice.id])

    @guarded
    def load_latent(self, voice: Voice) -> np.ndarray:
        row = self._execute(
            "SELECT latent, octet_length(reference) > 0 FROM voice_files WHERE voice_id = ?",
            [voice.id],
            binary=True,
        ).fetchone()
        try:
            if row is None:
                raise files.DamagedLatent("missing")
            return files.read_latent_bytes(bytes(row[0]))
        except files.DamagedLatent as exc:
            log.info("Voice %s in guild %s: latent unusable (%s)", voice.id, voice.guild_id, exc)
            reference_kept = bool(row and row[1])
            if reference_kept:
                self.mark_needs_reencode(voice)
            raise VoiceNeedsRepair(voice.name, voice.id, reference_kept=reference_kept) from None

    def _reference_bytes(self, voice: Voice) -> bytes:
        row = self._execute(
            "SELECT reference FROM voice_files WHERE voice_id = ?", [voice.id], binary=True
        ).fetchone()
        return b"" if row is None else bytes(row[0])

    @guarded
    def replace_latent(self, voice: Voice, latent: np.ndarray, revision: str) -> Voice:
        files.check_latent(np.asarray(latent, dtype=np.float16))
        with self.transaction() as tx:
            row = tx.execute("SELECT state FROM voices WHERE id = ? FOR UPDATE", [voice.id]).fetchone()
            if row is None or row[0] != "ready":
                raise VoiceDeleted(voice.name)
            updated = tx.execute(
                "UPDATE voice_files SET latent = ? WHERE voice_id = ?", [files.latent_bytes(latent), voice.id]
            )
            if updated.rowcount != 1:  # no recording to pair it with: nothing to re-encode from
                raise VoiceNeedsRepair(voice.name, voice.id, reference_kept=False)
            tx.execute(
                "UPDATE voices SET revision = ?, needs_reencode = 0 WHERE id = ?", [revision, voice.id]
            )
        log.info("Voice %s in guild %s re-encoded (model %s)", voice.id, voice.guild_id, revision)
        return self.get_by_id(voice.guild_id, voice.id)

    # --- health -----------------------------------------------------------------------------------

    @guarded
    def settle_leftovers(self) -> health.SweepReport:
        return health.SweepReport()  # every write is one transaction: nothing is ever left half done

    @guarded
    def sweep(self, *, legacy: bool = False) -> health.SweepReport:
        return health.SweepReport()

    @guarded
    def audit(self) -> health.Audit:
        """Every voice's recording and latent, read and checked; changes nothing."""
        voices = self.all_voices()
        found = health.Audit(voices=len(voices), look_alikes=self.look_alikes())
        for voice in voices:
            row = self._execute(
                "SELECT octet_length(reference) > 0, latent FROM voice_files WHERE voice_id = ?", [voice.id]
            ).fetchone()
            problem = "missing" if row is None else files.latent_bytes_problem(bytes(row[1]))
            found.note_files(voice, reference=bool(row and row[0]), problem=problem)
        return found

    @guarded
    def integrity_check(self) -> str:
        """PostgreSQL checks its own pages as it reads them; a voice missing its recording row is the
        audit's to name. Here: the server answers."""
        return "ok" if self._value("SELECT 1") == 1 else "no answer"
