"""The voice library: SQLite (via sqlite-utils) plus each voice's files under the data directory.

    data/voicebot.db                              voices, usage, schema version (WAL mode)
    data/voices/<guild_id>/<voice_id>/reference.flac   the upload, kept to re-encode after a model change
    data/voices/<guild_id>/<voice_id>/latent.npy       float16 [T, 80]

Every row carries `guild_id` and every lookup is scoped by it: another server's voice is "not found".
A voice is written files-first (into a temporary folder, then renamed into place), then its row in one
transaction; it is deleted row-first. So a crash at any moment leaves at worst a folder without a row,
which the start-up `sweep` removes, and rows whose files vanished are removed the same way.

Another process (the CLI beside a running bot) may open the same library: adds hold an OS file lock
shared and the sweep holds it exclusively, so a sweep never mistakes an add in flight for debris; the
lock of a killed process dies with it.

Synchronous by design: the bot calls it through `asyncio.to_thread`, so one lock guards the connection.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import logging
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sqlite_utils

from bot.errors import InvalidVoiceName, VoiceLimitReached, VoiceNameTaken, VoiceNotFound

log = logging.getLogger(__name__)

REFERENCE = "reference.flac"
LATENT = "latent.npy"
MAX_NAME_LENGTH = 32
_NAME_CHARS = re.compile(r"^[\w\- ]+$")
_TMP_PREFIX = ".tmp-"


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


def clean_name(name: str) -> str:
    """The name as it will be stored, or InvalidVoiceName: 1–32 letters, digits, space, '-', '_'."""
    cleaned = " ".join(unicodedata.normalize("NFC", name).split())
    if not 1 <= len(cleaned) <= MAX_NAME_LENGTH or not _NAME_CHARS.match(cleaned):
        raise InvalidVoiceName(name)
    return cleaned


def name_key(name: str) -> str:
    """Names are unique per guild ignoring case: "Ada", "ADA" and "ada" are one voice."""
    return clean_name(name).casefold()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _latent_bytes(latent: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(latent, dtype=np.float16), allow_pickle=False)
    return buf.getvalue()


# Each migration takes the schema from version N-1 to N, inside one transaction.
def _migrate_1(db: sqlite_utils.Database) -> None:
    db["voices"].create(
        {
            "id": str,
            "guild_id": int,
            "name": str,
            "name_key": str,
            "owner_id": int,
            "created_at": str,
            "duration_s": float,
            "sha256": str,
            "consent_by": int,
            "consent_at": str,
            "revision": str,
            "source": str,
        },
        pk="id",
        not_null={"guild_id", "name", "name_key", "owner_id", "created_at", "revision"},
    )
    db["voices"].create_index(["guild_id", "name_key"], unique=True)
    db["usage"].create(
        {
            "id": int,
            "guild_id": int,
            "user_id": int,
            "at": float,
            "kind": str,
            "audio_seconds": float,
            "gpu_seconds": float,
        },
        pk="id",
        not_null={"guild_id", "user_id", "at"},
    )
    db["usage"].create_index(["guild_id", "at"])


def _migrate_2(db: sqlite_utils.Database) -> None:
    db["guild_settings"].create(
        {
            "guild_id": int,
            "clone_role_id": int,
            "max_text_chars": int,
            "cooldown_s": float,
            "daily_quota_s": float,
            "default_mode": str,
            "file_format": str,
        },
        pk="guild_id",
    )
    db["user_defaults"].create({"guild_id": int, "user_id": int, "voice_id": str}, pk=("guild_id", "user_id"))


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_migrate_1, _migrate_2]
SCHEMA_VERSION = len(MIGRATIONS)


MODES = ("auto", "file", "channel")
FILE_FORMATS = ("ogg", "mp3")


@dataclass(frozen=True)
class GuildSettings:
    """What a server's admins chose with /settings; None means "the bot's default"."""

    guild_id: int
    clone_role_id: int | None = None  # None: everyone may clone
    max_text_chars: int | None = None  # None: the bot's configured maximum
    cooldown_s: float = 0.0  # per user, between two /say
    daily_quota_s: float | None = None  # seconds of speech per server per UTC day; None: no limit
    default_mode: str = "auto"
    file_format: str = "ogg"


@dataclass(frozen=True)
class SweepReport:
    removed_folders: int = 0
    removed_rows: int = 0


class VoiceStore:
    def __init__(self, data_dir: str | Path, *, max_voices_per_guild: int = 25) -> None:
        self.data_dir = Path(data_dir)
        self.voices_dir = self.data_dir / "voices"
        self.max_voices_per_guild = max_voices_per_guild
        self.voices_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.data_dir / "voicebot.db", check_same_thread=False, timeout=30)
        self.db = sqlite_utils.Database(conn)
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._lock = threading.RLock()
        # Two processes may open a new library at once (the bot and the CLI, or two CLI runs): the
        # switch to WAL, the migrations and the sweep run one process at a time.
        with self._files_lock(exclusive=True):
            self.db.execute("PRAGMA journal_mode=WAL")
            self._migrate()
            self.last_sweep = self._sweep()

    @contextlib.contextmanager
    def _files_lock(self, exclusive: bool) -> Iterator[None]:
        with open(self.data_dir / ".lock", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    # --- schema ---------------------------------------------------------------------------------

    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self._lock:
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.data_dir / 'voicebot.db'} has schema {current}, newer than this bot "
                    f"({SCHEMA_VERSION}). Upgrade the bot."
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                with self.db.conn:
                    MIGRATIONS[version - 1](self.db)
                    self.db.execute(f"PRAGMA user_version = {version}")

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    # --- voices ---------------------------------------------------------------------------------

    def _folder(self, guild_id: int, voice_id: str) -> Path:
        return self.voices_dir / str(int(guild_id)) / voice_id

    def _row(self, row: dict) -> Voice:
        return Voice(**{k: row[k] for k in Voice.__dataclass_fields__})

    def find(self, guild_id: int, name: str) -> Voice | None:
        try:
            key = name_key(name)
        except InvalidVoiceName:
            return None
        with self._lock:
            rows = list(self.db["voices"].rows_where("guild_id = ? and name_key = ?", [guild_id, key]))
        return self._row(rows[0]) if rows else None

    def get(self, guild_id: int, name: str) -> Voice:
        voice = self.find(guild_id, name)
        if voice is None:
            raise VoiceNotFound(name)
        return voice

    def get_by_id(self, guild_id: int, voice_id: str) -> Voice:
        with self._lock:
            rows = list(self.db["voices"].rows_where("guild_id = ? and id = ?", [guild_id, voice_id]))
        if not rows:
            raise VoiceNotFound(voice_id)
        return self._row(rows[0])

    def list(self, guild_id: int) -> list[Voice]:
        with self._lock:
            rows = self.db["voices"].rows_where("guild_id = ?", [guild_id], order_by="name_key")
            return [self._row(r) for r in rows]

    def count(self, guild_id: int) -> int:
        with self._lock:
            return self.db["voices"].count_where("guild_id = ?", [guild_id])

    def check_can_add(self, guild_id: int, name: str) -> str:
        """Fail fast, before any upload is decoded or GPU time spent: name valid, free, room left."""
        cleaned = clean_name(name)
        existing = self.find(guild_id, cleaned)
        if existing is not None:
            raise VoiceNameTaken(existing.name)
        if self.count(guild_id) >= self.max_voices_per_guild:
            raise VoiceLimitReached(self.max_voices_per_guild)
        return cleaned

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
    ) -> Voice:
        cleaned = self.check_can_add(guild_id, name)
        voice = Voice(
            id=secrets.token_hex(8),
            guild_id=int(guild_id),
            name=cleaned,
            owner_id=int(owner_id),
            created_at=_now(),
            duration_s=round(float(duration_s), 3),
            sha256=hashlib.sha256(reference_flac).hexdigest(),
            consent_by=int(consent_by),
            consent_at=_now(),
            revision=revision,
            source=source,
        )
        final = self._folder(guild_id, voice.id)
        staging = final.with_name(_TMP_PREFIX + voice.id)
        with self._files_lock(exclusive=False):
            self._write_voice(voice, staging, final, reference_flac, latent)
        return voice

    def _write_voice(
        self, voice: Voice, staging: Path, final: Path, reference_flac: bytes, latent: np.ndarray
    ) -> None:
        guild_id, cleaned = voice.guild_id, voice.name
        staging.mkdir(parents=True)
        try:
            _write_file(staging / REFERENCE, reference_flac)
            _write_file(staging / LATENT, _latent_bytes(latent))
            staging.rename(final)
            _fsync_dir(final.parent)
            with self._lock, self.db.conn:
                if self.db["voices"].count_where("guild_id = ?", [guild_id]) >= self.max_voices_per_guild:
                    raise VoiceLimitReached(self.max_voices_per_guild)
                try:
                    self.db["voices"].insert({**voice.__dict__, "name_key": cleaned.casefold()})
                except sqlite3.IntegrityError:
                    raise VoiceNameTaken(cleaned) from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(final, ignore_errors=True)
            raise

    def load_latent(self, voice: Voice) -> np.ndarray:
        return np.load(self._folder(voice.guild_id, voice.id) / LATENT, allow_pickle=False)

    def reference_path(self, voice: Voice) -> Path:
        return self._folder(voice.guild_id, voice.id) / REFERENCE

    def replace_latent(self, voice: Voice, latent: np.ndarray, revision: str) -> Voice:
        """After a model upgrade: the new latent from the kept reference, swapped in atomically."""
        folder = self._folder(voice.guild_id, voice.id)
        tmp = folder / (LATENT + ".tmp")
        _write_file(tmp, _latent_bytes(latent))
        tmp.replace(folder / LATENT)
        with self._lock, self.db.conn:
            self.db["voices"].update(voice.id, {"revision": revision})
        return self.get_by_id(voice.guild_id, voice.id)

    def rename(self, guild_id: int, name: str, new_name: str) -> Voice:
        voice = self.get(guild_id, name)
        cleaned = clean_name(new_name)
        other = self.find(guild_id, cleaned)
        if other is not None and other.id != voice.id:
            raise VoiceNameTaken(other.name)
        with self._lock, self.db.conn:
            self.db["voices"].update(voice.id, {"name": cleaned, "name_key": cleaned.casefold()})
        return self.get_by_id(guild_id, voice.id)

    def delete(self, guild_id: int, name: str) -> Voice:
        voice = self.get(guild_id, name)
        with self._lock, self.db.conn:
            self.db["voices"].delete(voice.id)
            self.db.execute("delete from user_defaults where voice_id = ?", [voice.id])
        shutil.rmtree(self._folder(guild_id, voice.id), ignore_errors=True)
        return voice

    # --- per-guild settings and per-user defaults --------------------------------------------------

    def settings(self, guild_id: int) -> GuildSettings:
        with self._lock:
            rows = list(self.db["guild_settings"].rows_where("guild_id = ?", [guild_id]))
        if not rows:
            return GuildSettings(guild_id)
        row = {k: v for k, v in rows[0].items() if v is not None}
        return GuildSettings(**row)

    def update_settings(self, guild_id: int, **changes: object) -> GuildSettings:
        current = self.settings(guild_id).__dict__ | changes
        if current["default_mode"] not in MODES or current["file_format"] not in FILE_FORMATS:
            raise ValueError(f"bad settings: {changes}")
        with self._lock, self.db.conn:
            self.db["guild_settings"].upsert(current, pk="guild_id")
        return self.settings(guild_id)

    def default_voice(self, guild_id: int, user_id: int) -> Voice | None:
        with self._lock:
            rows = list(
                self.db["user_defaults"].rows_where("guild_id = ? and user_id = ?", [guild_id, user_id])
            )
        if not rows:
            return None
        try:
            return self.get_by_id(guild_id, rows[0]["voice_id"])
        except VoiceNotFound:
            return None

    def set_default_voice(self, guild_id: int, user_id: int, name: str) -> Voice:
        voice = self.get(guild_id, name)
        with self._lock, self.db.conn:
            self.db["user_defaults"].upsert(
                {"guild_id": guild_id, "user_id": user_id, "voice_id": voice.id},
                pk=("guild_id", "user_id"),
            )
        return voice

    def last_say_at(self, guild_id: int, user_id: int) -> float | None:
        with self._lock:
            row = self.db.execute(
                "select max(at) from usage where guild_id = ? and user_id = ? and kind = 'say'",
                [guild_id, user_id],
            ).fetchone()
        return row[0]

    # --- usage ----------------------------------------------------------------------------------

    def record_usage(
        self, guild_id: int, user_id: int, *, kind: str, audio_seconds: float, gpu_seconds: float
    ) -> None:
        with self._lock, self.db.conn:
            self.db["usage"].insert(
                {
                    "guild_id": guild_id,
                    "user_id": user_id,
                    "at": time.time(),
                    "kind": kind,
                    "audio_seconds": audio_seconds,
                    "gpu_seconds": gpu_seconds,
                }
            )

    def audio_seconds_since(self, guild_id: int, since: float, user_id: int | None = None) -> float:
        where, args = "guild_id = ? and at >= ?", [guild_id, since]
        if user_id is not None:
            where, args = where + " and user_id = ?", [*args, user_id]
        with self._lock:
            row = self.db.execute(
                f"select coalesce(sum(audio_seconds), 0) from usage where {where}", args
            ).fetchone()
        return float(row[0])

    # --- health ---------------------------------------------------------------------------------

    def sweep(self) -> SweepReport:
        """Remove folders without rows (and half-written ones), and rows whose files are gone."""
        with self._files_lock(exclusive=True):
            return self._sweep()

    def _sweep(self) -> SweepReport:
        removed_folders = removed_rows = 0
        with self._lock:
            known = {(r["guild_id"], r["id"]) for r in self.db["voices"].rows}
            for guild_dir in self.voices_dir.iterdir():
                if not guild_dir.is_dir() or not guild_dir.name.isdigit():
                    continue
                for folder in guild_dir.iterdir():
                    if (int(guild_dir.name), folder.name) not in known:
                        shutil.rmtree(folder, ignore_errors=True)
                        removed_folders += 1
            for guild_id, voice_id in sorted(known):
                folder = self._folder(guild_id, voice_id)
                if not ((folder / REFERENCE).is_file() and (folder / LATENT).is_file()):
                    with self.db.conn:
                        self.db["voices"].delete(voice_id)
                    shutil.rmtree(folder, ignore_errors=True)
                    removed_rows += 1
        if removed_folders or removed_rows:
            log.warning(
                "Sweep removed %d orphan folders and %d rows without files", removed_folders, removed_rows
            )
        return SweepReport(removed_folders, removed_rows)

    def integrity_check(self) -> str:
        with self._lock:
            return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])
