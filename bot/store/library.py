"""VoiceStore: the façade the bot, the CLI and the doctor use. Voices here; settings and usage in
`bot.store.settings`; the sweep and the audit in `bot.store.health`."""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import logging
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import sqlite_utils

from bot import names
from bot.errors import (
    LibraryDamaged,
    VoiceDeleted,
    VoiceLimitReached,
    VoiceNameTaken,
    VoiceNeedsRepair,
    VoiceNotFound,
    VoicesFolderMissing,
)
from bot.store import files, health, schema
from bot.store.faults import BUSY_TIMEOUT_S, DB_NAME, CallsInFlight, guarded, translated
from bot.store.reading import Reading
from bot.store.settings import SettingsAndUsage

if TYPE_CHECKING:
    from bot.store.aio import AsyncVoiceStore

CLOSE_GRACE_S = 5.0  # past SQLite's own wait, how long close() waits for a call still running
VOICE_ID_BYTES = 8
VOICE_ID = re.compile(rf"[0-9a-f]{{{2 * VOICE_ID_BYTES}}}")  # secrets.token_hex(VOICE_ID_BYTES)

log = logging.getLogger("bot.store")
T = TypeVar("T")

_VOICE_COLUMNS = (
    "id, guild_id, name, owner_id, created_at, duration_s, sha256, consent_by, consent_at, revision, source, "
    "speaker_id"
)
_VOICE_FIELDS = tuple(_VOICE_COLUMNS.split(", "))


@dataclass(frozen=True)
class Voice:
    id: str
    guild_id: int
    name: str
    owner_id: int
    created_at: str
    duration_s: float
    sha256: str
    consent_by: int
    consent_at: str
    revision: str
    source: str
    speaker_id: int | None = None  # whose voice it is, where known (a voice message's author)

    def is_own_voice_of(self, user_id: int) -> bool:
        """A member's own voice: one they own, or one cloned from them."""
        return user_id in (self.owner_id, self.speaker_id)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class VoiceStore(SettingsAndUsage, Reading):
    """The voice library.

    `read_only=True` promises to change nothing on disk: no sweep, no repair, no migration (an older
    schema is upgraded in a private in-memory copy, read from there). `sweep=False` skips only the
    start-up sweep. Each thread gets its own SQLite connection, so readers never queue behind a write
    that waits for another process's lock (WAL lets them read meanwhile); a write that can't get the
    lock within `busy_timeout_s` fails as LibraryBusy ("try again") instead of holding anyone up.
    """

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

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection (made on first use)."""
        db: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if db is None:
            with self._connections_lock:
                if self._closed:
                    raise sqlite3.ProgrammingError("the voice library is closed")
                db = schema.connect(self._target, busy_timeout_s=self.busy_timeout_s, uri=self._uri)
                self._connections.append(db)
            self._local.db = db
        return db

    @cached_property
    def aio(self) -> AsyncVoiceStore:
        """This store's methods as coroutines run in a worker thread: `await store.aio.get(...)`."""
        from bot.store.aio import AsyncVoiceStore  # aio wraps this class's methods: import it after

        return AsyncVoiceStore(self)

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

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction holding SQLite's write lock from its start (BEGIN IMMEDIATE): what it
        reads, a count or a free name, is still true when it writes, whichever process writes next.
        Waiting for that lock holds up only this thread (see the class docstring)."""
        db = self.db
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.conn.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise

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

    # --- reading voices ---------------------------------------------------------------------------

    def folder(self, guild_id: int, voice_id: str) -> Path:
        return self.voices_dir / str(int(guild_id)) / voice_id

    def _voices(self, where: str, args: list, *, strict: bool = False) -> list[Voice]:
        """Voices whose rows hold what they should. A row holding garbage (a hand edit, a damaged copy)
        is left out of lists and logged (doctor names it); `strict` lookups of one voice say so."""
        cursor = self.db.execute(f"SELECT {_VOICE_COLUMNS} FROM voices WHERE {where}", args)
        found = []
        for row in cursor.fetchall():
            problem = schema.wrong_value("voices", dict(zip(_VOICE_FIELDS, row, strict=True)))
            if problem is None:
                found.append(Voice(*row))
            elif strict:
                raise LibraryDamaged(self.data_dir / DB_NAME, f"voice {row[0]!r}: {problem}")
            else:
                log.error("Voice row %r left out: %s (see `voicebot doctor`)", row[0], problem)
        return found

    @guarded
    def find(self, guild_id: int, name: str) -> Voice | None:
        """The voice called `name` or a look-alike of it; an exact name wins over a look-alike (two
        look-alikes can both exist when they predate the look-alike rule)."""
        found = self._voices(
            "guild_id = ? AND name_key = ? AND state = 'ready' ORDER BY name = ? DESC, created_at LIMIT 1",
            [guild_id, names.key_of(name), names.tidy(name)],
            strict=True,
        )
        return found[0] if found else None

    @guarded
    def get(self, guild_id: int, name: str) -> Voice:
        """The voice called `name` (or a look-alike); failing that, the voice with that id in this guild,
        as `voicebot voices` shows it. A name always wins over an id."""
        voice = self.find(guild_id, name)
        if voice is None and VOICE_ID.fullmatch(name.strip()):
            found = self._voices(
                "guild_id = ? AND id = ? AND state = 'ready'", [guild_id, name.strip()], strict=True
            )
            voice = found[0] if found else None
        if voice is None:
            raise VoiceNotFound(name)
        return voice

    @guarded
    def get_by_id(self, guild_id: int, voice_id: str) -> Voice:
        found = self._voices("guild_id = ? AND id = ? AND state = 'ready'", [guild_id, voice_id], strict=True)
        if not found:
            raise VoiceNotFound(voice_id)
        return found[0]

    @guarded
    def list(self, guild_id: int) -> list[Voice]:
        """A guild's voices in alphabetical order as people read it (case-blind), not by look-alike key
        (whose skeleton sorts "Me" as "rne")."""
        voices = self._voices("guild_id = ? AND state = 'ready'", [guild_id])
        return sorted(voices, key=lambda v: (v.name.casefold(), v.name))

    @guarded
    def count(self, guild_id: int) -> int:
        return self.db.table("voices").count_where("guild_id = ? AND state = 'ready'", [guild_id])

    @guarded
    def all_voices(self) -> builtins.list[Voice]:
        return self._voices("state = 'ready' ORDER BY guild_id, name_key", [])

    @guarded
    def look_alikes(self) -> builtins.list[builtins.list[Voice]]:
        """Voices of one guild whose names look alike: only libraries from before the rule hold any."""
        keys = self.db.execute(
            "SELECT guild_id, name_key FROM voices WHERE state = 'ready' "
            "GROUP BY guild_id, name_key HAVING count(*) > 1"
        ).fetchall()
        return [self._voices("guild_id = ? AND name_key = ? AND state = 'ready'", list(k)) for k in keys]

    # --- adding -----------------------------------------------------------------------------------

    def _check_room(self, db: sqlite_utils.Database, guild_id: int, key: str, voice_id: str = "") -> None:
        """Name free and a slot left, counting adds under way (they reserved theirs)."""
        taken = db.execute(
            "SELECT name FROM voices WHERE guild_id = ? AND name_key = ? AND id != ? AND state != 'deleting'",
            [guild_id, key, voice_id],
        ).fetchone()
        if taken:
            raise VoiceNameTaken(taken[0])
        if voice_id:
            return
        held = db.execute(
            "SELECT count(*) FROM voices WHERE guild_id = ? AND state != 'deleting'", [guild_id]
        ).fetchone()[0]
        if held >= self.max_voices_per_guild:
            raise VoiceLimitReached(self.max_voices_per_guild)

    @guarded
    def check_can_add(self, guild_id: int, name: str) -> str:
        """Fail fast, before any upload is decoded or GPU time spent: name valid, free, room left.
        Advisory: `add` checks again under the write lock."""
        cleaned = names.clean_name(name)
        self._once_more_if_settled(lambda: self._check_room(self.db, guild_id, names.name_key(cleaned)))
        return cleaned

    def _once_more_if_settled(self, attempt: Callable[[], T]) -> T:
        """`attempt()`; if the name or slot it wants is held by a write that died in another process (a
        CLI add killed mid-way), settle that leftover now and try once more, instead of holding the name
        until the bot restarts."""
        try:
            return attempt()
        except (VoiceNameTaken, VoiceLimitReached):
            if not self.settle_leftovers():
                raise
            return attempt()

    @guarded
    def settle_leftovers(self) -> health.SweepReport:
        """The start-up sweep, now, if there is anything to settle and no write is in flight in any
        process (the exclusive files lock is free at once); otherwise nothing."""
        if (
            self.read_only
            or not self.db.execute("SELECT 1 FROM voices WHERE state != 'ready' LIMIT 1").fetchone()
        ):
            return health.SweepReport()
        try:
            with self._files_lock(exclusive=True, wait=False):
                return health.sweep(self)
        except BlockingIOError:
            return health.SweepReport()

    def _ready_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM voices WHERE state = 'ready'").fetchone()[0]

    def _ensure_voices_dir(self) -> None:
        if self.voices_dir.is_dir():
            return
        held = self._ready_count()
        if held:  # an unmounted volume: a new folder here would hide under it when it comes back
            raise VoicesFolderMissing(self.voices_dir, held)
        self.voices_dir.mkdir()

    @guarded
    def add(
        self,
        guild_id: int,
        name: str,
        *,
        owner_id: int,
        reference_flac: bytes,
        latent: np.ndarray,
        duration_s: float,
        revision: str,
        consent_by: int,
        source: str,
        consent_at: str | None = None,
        created_at: str | None = None,
        speaker_id: int | None = None,
    ) -> Voice:
        """Reserve (row 'adding': name and slot taken under the write lock), write the files into
        staging and rename them into place, settle (row 'ready'). A failure releases all of it; a
        crash before the rename leaves an 'adding' row the next sweep undoes, one after it a voice the
        sweep completes. `consent_at` and `created_at` keep an imported voice's own record."""
        cleaned = names.clean_name(name)
        latent = files.check_latent(np.ascontiguousarray(latent, dtype=np.float16))  # as it will be read
        voice = Voice(
            id=secrets.token_hex(VOICE_ID_BYTES),
            guild_id=int(guild_id),
            name=cleaned,
            owner_id=int(owner_id),
            created_at=created_at or _now(),
            duration_s=round(float(duration_s), 3),
            sha256=hashlib.sha256(reference_flac).hexdigest(),
            consent_by=int(consent_by),
            consent_at=consent_at or _now(),
            revision=revision,
            source=source,
            speaker_id=None if speaker_id is None else int(speaker_id),
        )
        key = names.name_key(cleaned)
        self._once_more_if_settled(lambda: self._add_locked(voice, key, reference_flac, latent))
        log.info("Voice %s added in guild %s by owner %s", voice.id, guild_id, owner_id)
        return voice

    def _add_locked(self, voice: Voice, key: str, reference_flac: bytes, latent: np.ndarray) -> None:
        with self._files_lock(exclusive=False):
            self._ensure_voices_dir()
            with self.transaction() as db:
                self._check_room(db, voice.guild_id, key)
                db.table("voices").insert({**voice.__dict__, "name_key": key, "state": "adding"})
            try:
                self._write_files(voice, reference_flac, latent)
                with self.transaction() as db:
                    db.execute("UPDATE voices SET state = 'ready' WHERE id = ?", [voice.id])
            except BaseException:
                health.remove_tree(self.staging_dir / voice.id)
                health.remove_tree(self.folder(voice.guild_id, voice.id))
                with contextlib.suppress(Exception), self.transaction() as db:
                    db.execute("DELETE FROM voices WHERE id = ?", [voice.id])
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

    # --- using and repairing a voice's files ------------------------------------------------------

    @guarded
    def load_latent(self, voice: Voice) -> np.ndarray:
        """The voice's latent, or VoiceNeedsRepair (marked for re-encoding) if it is missing or garbled."""
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

    @guarded
    def mark_needs_reencode(self, voice: Voice) -> None:
        """Flag a voice for the re-encoder; best effort, as a reader may not be able to write."""
        try:
            with translated(self.data_dir, self.busy_timeout_s), self.transaction() as db:
                db.execute("UPDATE voices SET needs_reencode = 1 WHERE id = ?", [voice.id])
        except Exception:
            log.warning("Could not mark voice %s for re-encoding", voice.id, exc_info=True)

    @guarded
    def needing_reencode(self) -> builtins.list[Voice]:
        return self._voices("needs_reencode = 1 AND state = 'ready' ORDER BY guild_id, id", [])

    @guarded
    def read_reference(self, voice: Voice) -> bytes:
        """The kept reference recording, checked against the hash taken when it was cloned."""
        try:
            data = (self.folder(voice.guild_id, voice.id) / files.REFERENCE).read_bytes()
        except FileNotFoundError:
            data = b""
        if hashlib.sha256(data).hexdigest() != voice.sha256:
            if not self._voices("id = ? AND state = 'ready'", [voice.id]):
                raise VoiceDeleted(voice.name)  # deleted since it was looked up: nothing is damaged
            raise VoiceNeedsRepair(voice.name, voice.id, reference_kept=False)
        return data

    def reference_path(self, voice: Voice) -> Path:
        return self.folder(voice.guild_id, voice.id) / files.REFERENCE

    @guarded
    def replace_latent(self, voice: Voice, latent: np.ndarray, revision: str) -> Voice:
        """A new latent from the kept reference (repair, or a model upgrade), swapped in atomically.

        The swap happens inside a write transaction that first checks the voice is still there: a delete
        (which marks its row in a transaction of its own first) then either comes after it, or the voice
        is gone and VoiceDeleted says so, with nothing written. Whatever sits where the latent belongs
        and is not a file (a folder, say) is moved aside, not deleted."""
        files.check_latent(np.asarray(latent, dtype=np.float16))
        folder = self.folder(voice.guild_id, voice.id)
        with self.transaction() as db:
            row = db.execute("SELECT state FROM voices WHERE id = ?", [voice.id]).fetchone()
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
            db.execute(
                "UPDATE voices SET revision = ?, needs_reencode = 0 WHERE id = ?", [revision, voice.id]
            )
        log.info("Voice %s in guild %s re-encoded (model %s)", voice.id, voice.guild_id, revision)
        return self.get_by_id(voice.guild_id, voice.id)

    # --- renaming and deleting --------------------------------------------------------------------

    @guarded
    def rename(self, guild_id: int, name: str, new_name: str) -> Voice:
        voice = self.get(guild_id, name)
        cleaned = names.clean_name(new_name)
        key = names.name_key(cleaned)

        def rename_in_one_transaction() -> None:
            with self.transaction() as db:
                self._check_room(db, guild_id, key, voice_id=voice.id)
                db.execute("UPDATE voices SET name = ?, name_key = ? WHERE id = ?", [cleaned, key, voice.id])

        self._once_more_if_settled(rename_in_one_transaction)
        log.info("Voice %s in guild %s renamed", voice.id, guild_id)
        return self.get_by_id(guild_id, voice.id)

    @guarded
    def delete(self, guild_id: int, name: str) -> Voice:
        """Row marked 'deleting' first, then the files, then the row: a crash in between leaves a row
        the next sweep finishes deleting, never a folder nobody knows about."""
        voice = self.get(guild_id, name)
        with self._files_lock(exclusive=False):
            with self.transaction() as db:
                db.execute("UPDATE voices SET state = 'deleting' WHERE id = ?", [voice.id])
                db.execute("DELETE FROM user_defaults WHERE voice_id = ?", [voice.id])
            health.remove_tree(self.folder(guild_id, voice.id))
            with self.transaction() as db:
                db.execute("DELETE FROM voices WHERE id = ?", [voice.id])
        log.info("Voice %s deleted from guild %s", voice.id, guild_id)
        return voice

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
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])
