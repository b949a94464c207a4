"""The default engine: one SQLite file (via sqlite-utils) plus each voice's files under the data folder.

    data/voicebot.db                                   voices, settings, usage, schema version (WAL mode)
    data/voices/<guild_id>/<voice_id>/reference.flac   the upload, kept to re-encode after a model change
    data/voices/<guild_id>/<voice_id>/latent.npy       float16 [T, 80]
    data/voices/.staging/<voice_id>/                   an add being written

An add reserves its row first ('adding', under SQLite's write lock, so the name and the voice limit hold
across processes), writes its files into staging, renames them into place, then marks the row 'ready'.
A delete marks the row 'deleting', removes the files, then the row. So a crash at any moment leaves only
unsettled rows and staged folders, which the start-up sweep (`bot.store.health`) finishes or undoes
without walking every voice. A reference recording is never deleted by a repair.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import sqlite_utils

from bot.errors import LibraryDamaged, VoiceDeleted, VoiceNeedsRepair, VoicesFolderMissing
from bot.store import files, health, schema, sql
from bot.store.faults import BUSY_TIMEOUT_S, DB_NAME, CallsInFlight, guarded, translated
from bot.store.library import VoiceLibrary
from bot.store.voice import Voice

CLOSE_GRACE_S = 5.0  # past SQLite's own wait, how long close() waits for a call still running

log = logging.getLogger("bot.store")
T = TypeVar("T")

_TYPES = {"text": "('text')", "integer": "('integer')", "number": "('integer', 'real')"}


class VoiceStore(VoiceLibrary):
    """The library in a SQLite file and a voices folder.

    `read_only=True` promises to change nothing on disk: no sweep, no repair, no migration (an older
    schema is upgraded in a private in-memory copy, read from there). `sweep=False` skips only the
    start-up sweep. Each thread gets its own SQLite connection, so readers never queue behind a write
    that waits for another process's lock (WAL lets them read meanwhile); a write that can't get the
    lock within `busy_timeout_s` fails as LibraryBusy ("try again") instead of holding anyone up.
    """

    schema_latest = schema.SCHEMA_VERSION

    def __init__(
        self,
        data_dir: str | Path,
        *,
        max_voices_per_guild: int = 25,
        sweep: bool = True,
        read_only: bool = False,
        busy_timeout_s: float | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.where = str(self.data_dir / DB_NAME)
        self.voices_dir = self.data_dir / "voices"
        self.staging_dir = self.voices_dir / files.STAGING
        self.max_voices_per_guild = max_voices_per_guild
        self.read_only = read_only
        self.busy_timeout_s = BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
        self.last_sweep = health.SweepReport()
        self.schema_on_disk = 0  # the file's version when opened (a read-only open may read a newer copy)
        self._target: str = str(self.data_dir / DB_NAME)
        self._uri = False
        self._local = threading.local()
        self._connections: builtins.list[sqlite_utils.Database] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        self.calls = CallsInFlight()
        with translated(self.data_dir, self.busy_timeout_s):
            if not read_only:
                # exist_ok: two processes opening a new library at once both get here (a file still fails)
                self.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                self._open(sweep and not read_only)
            except BaseException:
                self.close()
                raise

    # --- the engine -------------------------------------------------------------------------------

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection (made on first use)."""
        db: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if db is None:
            with self._connections_lock:
                if self._closed:
                    raise sqlite3.ProgrammingError("the voice library is closed")
                db = schema.connect(self._target, busy_timeout_s=self.busy_timeout_s, uri=self._uri)
                if self.read_only:  # a write through it fails (LibraryReadOnly) before it changes anything
                    db.execute("PRAGMA query_only = ON")
                self._connections.append(db)
            self._local.db = db
        return db

    def _execute(self, statement: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.db.execute(statement, list(parameters))

    def _has_type(self, column: str, kind: str) -> str:
        return f"typeof({column}) IN {_TYPES[kind]}"

    def _database_now(self, tx: sql.Transaction) -> float:
        return time.time()  # every process using this file runs on this machine

    def _guard(self, call: Callable[[], T]) -> T:
        with translated(self.data_dir, self.busy_timeout_s):
            return call()

    @contextlib.contextmanager
    def transaction(self, *, lock: tuple[str, int] | None = None) -> Iterator[sqlite_utils.Database]:
        """A write transaction holding SQLite's write lock from its start (BEGIN IMMEDIATE), whatever
        `lock` it names: what it reads, a count or a free name, is still true when it writes, whichever
        process writes next. Waiting for that lock holds up only this thread."""
        db = self.db
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.conn.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise

    def _open(self, sweep: bool) -> None:
        # Two processes may open a new library at once (the bot and the CLI, or two CLI runs): the
        # switch to WAL, the migrations and the sweep run one process at a time.
        with self._files_lock(exclusive=not self.read_only):
            path = self.data_dir / DB_NAME
            version = self.schema_on_disk = schema.check_not_newer(self.db, path)
            if version == 0 and health.holds_voices(self.voices_dir):  # the database was lost, not never made
                raise LibraryDamaged(path, "missing or empty, but voices/ holds voices")
            if self.read_only:
                if version < schema.SCHEMA_VERSION:
                    self._read_upgraded_copy(path)
                return
            self.db.execute("PRAGMA journal_mode=WAL")
            schema.migrate(self.db, path)
            if version == 0:
                self.voices_dir.mkdir(exist_ok=True)
            if sweep:
                self.last_sweep = health.sweep(self)

    def _read_upgraded_copy(self, path: Path) -> None:
        """An older library, opened read-only: migrate a copy in memory and read that, so the file on
        disk stays exactly as the older bot left it."""
        uri = f"file:voicebot-{secrets.token_hex(8)}?mode=memory&cache=shared"
        copy = schema.connect(uri, busy_timeout_s=self.busy_timeout_s, uri=True)
        self.db.conn.backup(copy.conn)
        schema.migrate(copy, path)
        self._close_connections()
        self._target, self._uri = uri, True
        with self._connections_lock:
            self._connections.append(copy)  # the copy lives while any connection to it is open

    @contextlib.contextmanager
    def _files_lock(self, exclusive: bool, *, wait: bool = True) -> Iterator[None]:
        """Adds and deletes hold it shared and the sweep exclusively, so a sweep never mistakes a write
        in flight for a leftover; the lock of a killed process dies with it. `wait=False` raises
        BlockingIOError instead of waiting."""
        with open(self.data_dir / ".lock", "a+b") as f:
            flags = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            fcntl.flock(f.fileno(), flags if wait else flags | fcntl.LOCK_NB)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    @guarded
    def schema_version(self) -> int:
        return schema.schema_version(self.db)

    def _close_connections(self) -> None:
        with self._connections_lock:
            connections, self._connections = self._connections, []
        self._local = threading.local()
        for db in connections:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def close(self) -> None:
        """Close every thread's connection once the calls running on them have returned. A call still
        running after SQLite's own wait plus a grace keeps the connections open for the process's exit:
        pulling one from under it would crash the process."""
        settled = self.calls.close(self.busy_timeout_s + CLOSE_GRACE_S)
        with self._connections_lock:
            self._closed = True
        if not settled:
            log.warning("A voice-library call was still running at close; its connection stays open")
            return
        self._close_connections()

    # --- a voice's files --------------------------------------------------------------------------

    def folder(self, guild_id: int, voice_id: str) -> Path:
        return self.voices_dir / str(int(guild_id)) / voice_id

    def files_of(self, voice: Voice) -> str:
        return str(self.folder(voice.guild_id, voice.id))

    def reference_path(self, voice: Voice) -> Path:
        return self.folder(voice.guild_id, voice.id) / files.REFERENCE

    @guarded
    def settle_leftovers(self) -> health.SweepReport:
        """The start-up sweep, now, if there is anything to settle and no write is in flight in any
        process (the exclusive files lock is free at once); otherwise nothing."""
        if self.read_only or not self._value("SELECT 1 FROM voices WHERE state != 'ready' LIMIT 1"):
            return health.SweepReport()
        try:
            with self._files_lock(exclusive=True, wait=False):
                return health.sweep(self)
        except BlockingIOError:
            return health.SweepReport()

    def _ensure_voices_dir(self) -> None:
        if self.voices_dir.is_dir():
            return
        held = self._ready_count()
        if held:  # an unmounted volume: a new folder here would hide under it when it comes back
            raise VoicesFolderMissing(self.voices_dir, held)
        self.voices_dir.mkdir()

    def _store_voice(self, voice: Voice, key: str, reference_flac: bytes, latent: np.ndarray) -> None:
        """Reserve (row 'adding': name and slot taken under the write lock), write the files into
        staging and rename them into place, settle (row 'ready'). A failure releases all of it; a
        crash before the rename leaves an 'adding' row the next sweep undoes, one after it a voice the
        sweep completes."""
        with self._files_lock(exclusive=False):
            self._ensure_voices_dir()
            with self.transaction() as tx:
                self._check_room(tx, voice.guild_id, key)
                sql.insert(tx, "voices", {**voice.__dict__, "name_key": key, "state": "adding"})
            try:
                self._write_files(voice, reference_flac, latent)
                with self.transaction() as tx:
                    tx.execute("UPDATE voices SET state = 'ready' WHERE id = ?", [voice.id])
            except BaseException:
                health.remove_tree(self.staging_dir / voice.id)
                health.remove_tree(self.folder(voice.guild_id, voice.id))
                with contextlib.suppress(Exception), self.transaction() as tx:
                    tx.execute("DELETE FROM voices WHERE id = ?", [voice.id])
                raise

    def _write_files(self, voice: Voice, reference_flac: bytes, latent: np.ndarray) -> None:
        staged, final = self.staging_dir / voice.id, self.folder(voice.guild_id, voice.id)
        staged.mkdir(parents=True)
        files.write_file(staged / files.REFERENCE, reference_flac)
        files.write_file(staged / files.LATENT, files.latent_bytes(latent))
        if not final.parent.is_dir():  # a guild's first voice
            final.parent.mkdir()
            files.fsync_dir(self.voices_dir)
        staged.rename(final)
        files.fsync_dir(final.parent)
        files.fsync_dir(self.staging_dir)

    @guarded
    def load_latent(self, voice: Voice) -> np.ndarray:
        folder = self.folder(voice.guild_id, voice.id)
        try:
            return files.read_latent(folder / files.LATENT)
        except (FileNotFoundError, files.DamagedLatent) as exc:
            if not self.voices_dir.is_dir():
                raise VoicesFolderMissing(self.voices_dir, self._ready_count()) from None
            log.info("Voice %s in guild %s: latent unusable (%s)", voice.id, voice.guild_id, exc)
            reference_kept = (folder / files.REFERENCE).is_file()
            if reference_kept:
                self.mark_needs_reencode(voice)
            raise VoiceNeedsRepair(voice.name, voice.id, reference_kept=reference_kept) from None

    def _reference_bytes(self, voice: Voice) -> bytes:
        try:
            return self.reference_path(voice).read_bytes()
        except FileNotFoundError:
            return b""

    @guarded
    def replace_latent(self, voice: Voice, latent: np.ndarray, revision: str) -> Voice:
        """The swap happens inside a write transaction that first checks the voice is still there: a
        delete (which marks its row in a transaction of its own first) then either comes after it, or
        the voice is gone and VoiceDeleted says so, with nothing written. Whatever sits where the latent
        belongs and is not a file (a folder, say) is moved aside, not deleted."""
        files.check_latent(np.asarray(latent, dtype=np.float16))
        folder = self.folder(voice.guild_id, voice.id)
        with self.transaction() as tx:
            row = tx.execute("SELECT state FROM voices WHERE id = ?", [voice.id]).fetchone()
            if row is None or row[0] != "ready" or not folder.is_dir():
                raise VoiceDeleted(voice.name)
            target = folder / files.LATENT
            if target.exists() and not target.is_file():
                aside = folder / f"{files.LATENT}.not-a-file-{secrets.token_hex(4)}"
                target.rename(aside)
                log.warning("Voice %s: %s was not a file; moved it to %s", voice.id, target, aside.name)
            tmp = folder / f".{files.LATENT}.{secrets.token_hex(4)}.tmp"
            try:
                files.write_file(tmp, files.latent_bytes(latent))
                tmp.replace(target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            files.fsync_dir(folder)
            tx.execute(
                "UPDATE voices SET revision = ?, needs_reencode = 0 WHERE id = ?", [revision, voice.id]
            )
        log.info("Voice %s in guild %s re-encoded (model %s)", voice.id, voice.guild_id, revision)
        return self.get_by_id(voice.guild_id, voice.id)

    def _remove_voice(self, voice: Voice) -> None:
        """Row marked 'deleting' first, then the files, then the row: a crash in between leaves a row
        the next sweep finishes deleting, never a folder nobody knows about."""
        with self._files_lock(exclusive=False):
            with self.transaction() as tx:
                tx.execute("UPDATE voices SET state = 'deleting' WHERE id = ?", [voice.id])
                tx.execute("DELETE FROM user_defaults WHERE voice_id = ?", [voice.id])
            health.remove_tree(self.folder(voice.guild_id, voice.id))
            with self.transaction() as tx:
                tx.execute("DELETE FROM voices WHERE id = ?", [voice.id])

    # --- health -----------------------------------------------------------------------------------

    @guarded
    def sweep(self, *, legacy: bool = False) -> health.SweepReport:
        """Finish or undo interrupted adds and deletes (what a crash leaves), under the exclusive files
        lock so no write in flight is touched; `legacy` also looks for older versions' temporary folders."""
        with self._files_lock(exclusive=True):
            return health.sweep(self, legacy=legacy)

    @guarded
    def audit(self) -> health.Audit:
        return health.audit(self)

    @guarded
    def integrity_check(self) -> str:
        return str(self._value("PRAGMA integrity_check"))
