"""The library's tables and their migrations. Each migration takes the schema from version N-1 to N in one
transaction; `PRAGMA user_version` says which version a database is at."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from bot import names
from bot.errors import LibraryTooNew


def connect(target: Path | str, *, busy_timeout_s: float, uri: bool = False) -> sqlite_utils.Database:
    # isolation_level=None: no implicit transactions; every write says where its transaction starts.
    # timeout: how long a write waits for another process's write lock before SQLITE_BUSY.
    conn = sqlite3.connect(
        target, check_same_thread=False, timeout=busy_timeout_s, isolation_level=None, uri=uri
    )
    try:
        db = sqlite_utils.Database(conn)
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()  # not left open until collected (it holds the file: a full disk can't be unmounted)
        raise
    return db


def _migrate_1(db: sqlite_utils.Database) -> None:
    db.table("voices").create(
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
    db.table("voices").create_index(["guild_id", "name_key"], unique=True)
    db.table("usage").create(
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
    db.table("usage").create_index(["guild_id", "at"])


def _migrate_2(db: sqlite_utils.Database) -> None:
    db.table("guild_settings").create(
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
    db.table("user_defaults").create(
        {"guild_id": int, "user_id": int, "voice_id": str}, pk=("guild_id", "user_id")
    )


def _migrate_3(db: sqlite_utils.Database) -> None:
    """Look-alike names share one key; adds and deletes are journalled; damaged latents are marked.

    `state` is 'ready', or 'adding' / 'deleting' while a write is under way: the start-up sweep finishes
    or undoes exactly those rows instead of walking every voice's folder. `needs_reencode` marks a voice
    whose latent was found missing or garbled. Keys are recomputed with `bot.names`; two voices that now
    share a key are both kept (the unique index becomes a plain one, and uniqueness is checked under the
    write lock instead): `voicebot doctor` lists such pairs for an admin to rename. Nothing is deleted.
    """
    db.execute("ALTER TABLE voices ADD COLUMN state TEXT NOT NULL DEFAULT 'ready'")
    db.execute("ALTER TABLE voices ADD COLUMN needs_reencode INTEGER NOT NULL DEFAULT 0")
    db.execute("DROP INDEX IF EXISTS idx_voices_guild_id_name_key")
    keys = [(names.key_of(name), voice_id) for voice_id, name in db.execute("SELECT id, name FROM voices")]
    db.conn.executemany("UPDATE voices SET name_key = ? WHERE id = ?", keys)
    db.execute("CREATE INDEX voices_by_name_key ON voices (guild_id, name_key)")
    db.execute("CREATE INDEX voices_unsettled ON voices (state) WHERE state != 'ready'")
    db.execute("CREATE INDEX voices_needing_reencode ON voices (needs_reencode) WHERE needs_reencode = 1")


def _migrate_4(db: sqlite_utils.Database) -> None:
    """Reading messages aloud: a server's pronunciation dictionary, auto-read channels, opted-in
    members, ignored roles and auto-read settings (NULL columns mean the default)."""
    db.table("pronunciations").create(
        {"guild_id": int, "word_key": str, "word": str, "spoken": str}, pk=("guild_id", "word_key")
    )
    db.table("autoread_channels").create({"guild_id": int, "channel_id": int}, pk=("guild_id", "channel_id"))
    db.table("autoread_members").create({"guild_id": int, "user_id": int}, pk=("guild_id", "user_id"))
    db.table("autoread_ignored_roles").create({"guild_id": int, "role_id": int}, pk=("guild_id", "role_id"))
    db.table("autoread_settings").create(
        {
            "guild_id": int,
            "voice_chat": int,
            "fallback_voice_id": str,
            "join_on_post": int,
            "who_spoke": str,
            "ignore_prefix": str,
            "read_bots": int,
            "read_silent": int,
            "say_links": int,
            "say_attachments": int,
            "max_chars": int,
            "queue_limit": int,
        },
        pk="guild_id",
    )


def _migrate_5(db: sqlite_utils.Database) -> None:
    """Invisible characters (Unicode's default-ignorables) no longer count in a name's look-alike key, so
    a name stored with one, before such names were refused, shares its key with its visible twin. Keys
    are recomputed with `bot.names`; both voices are kept and `voicebot doctor` lists such pairs for an
    admin to rename. Nothing is deleted."""
    keys = [(names.key_of(name), voice_id) for voice_id, name in db.execute("SELECT id, name FROM voices")]
    db.conn.executemany("UPDATE voices SET name_key = ? WHERE id = ?", keys)


def _migrate_6(db: sqlite_utils.Database) -> None:
    """Whose voice a voice is, where the bot knows it (the author of the voice message it was cloned
    from): that member's "own voice" for auto-read, and theirs to delete. NULL: not known."""
    db.execute("ALTER TABLE voices ADD COLUMN speaker_id INTEGER")


def _migrate_7(db: sqlite_utils.Database) -> None:
    """Speech reserved by requests in flight (bot.store.quotas), shared by every process: the daily quota
    and the cooldown hold across them."""
    db.execute(
        "CREATE TABLE reservations (id TEXT PRIMARY KEY, guild_id INTEGER NOT NULL, "
        "user_id INTEGER NOT NULL, seconds REAL NOT NULL, expires_at REAL NOT NULL, holder TEXT NOT NULL, "
        "reply_to TEXT)"
    )
    db.execute("CREATE INDEX reservations_by_guild ON reservations (guild_id, user_id)")
    db.execute("CREATE INDEX reservations_by_holder ON reservations (holder)")


def _migrate_8(db: sqlite_utils.Database) -> None:
    """When each IDENTIFY bucket last started a Discord session (bot.store.sessions): processes that
    run shards of one bot take turns, as Discord allows one IDENTIFY per bucket every 5 seconds."""
    db.execute("CREATE TABLE identify_slots (bucket INTEGER PRIMARY KEY, claimed_at REAL NOT NULL)")


def _migrate_9(db: sqlite_utils.Database) -> None:
    """The speaker's own consent, deletion on request and purge after the bot leaves a server.

    - `voices.consent_pending`: 1 while the voice waits for its speaker's consent voice message (kept,
      not usable); `consents` holds what the request asked and until when.
    - `guild_settings.speaker_consent`: whether a voice needs its speaker's own consent (NULL: yes).
    - `usage.voice_id`: which voice a delivery spoke in, so a voice's owner and speaker can see its use
      (NULL on rows from before).
    - `forgets`: a member's deletion in progress; a row left by a crash is finished at the next start.
    - `departures`: when the bot left a server; its data is purged after a grace period unless the bot is
      invited back (the row is removed then).
    """
    db.execute("ALTER TABLE voices ADD COLUMN consent_pending INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE guild_settings ADD COLUMN speaker_consent INTEGER")
    db.execute("CREATE INDEX voices_by_speaker ON voices (speaker_id) WHERE speaker_id IS NOT NULL")
    db.execute("CREATE INDEX voices_by_owner ON voices (owner_id)")
    db.execute("ALTER TABLE usage ADD COLUMN voice_id TEXT")
    db.execute("CREATE INDEX usage_by_voice ON usage (voice_id, at)")
    db.execute("CREATE INDEX usage_by_user ON usage (user_id)")
    db.execute(
        "CREATE TABLE consents (voice_id TEXT PRIMARY KEY, guild_id INTEGER NOT NULL, "
        "speaker_id INTEGER NOT NULL, requested_by INTEGER NOT NULL, channel_id INTEGER, message_id INTEGER, "
        "sentence TEXT NOT NULL, requested_at REAL NOT NULL, expires_at REAL NOT NULL, "
        "attempts INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute("CREATE INDEX consents_by_speaker ON consents (speaker_id, guild_id)")
    db.execute("CREATE INDEX consents_by_expiry ON consents (expires_at)")
    db.execute(
        "CREATE TABLE forgets (user_id INTEGER PRIMARY KEY, requested_at REAL NOT NULL, "
        "requested_by TEXT NOT NULL)"
    )
    db.execute("CREATE TABLE departures (guild_id INTEGER PRIMARY KEY, left_at REAL NOT NULL)")


def _migrate_10(db: sqlite_utils.Database) -> None:
    """Per-server API keys for the HTTP API (bot.store.api_keys): the public id, the server, who made it
    (0: a terminal), its name, the sha256 of its secret (never the secret), and when it was made and
    last used (NULL: never)."""
    db.execute(
        "CREATE TABLE api_keys (id TEXT PRIMARY KEY, guild_id INTEGER NOT NULL, created_by INTEGER NOT NULL, "
        "name TEXT NOT NULL, secret_hash TEXT NOT NULL, created_at REAL NOT NULL, last_used_at REAL)"
    )
    db.execute("CREATE INDEX api_keys_by_guild ON api_keys (guild_id)")
    db.execute("CREATE INDEX api_keys_by_creator ON api_keys (created_by)")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _migrate_1,
    _migrate_2,
    _migrate_3,
    _migrate_4,
    _migrate_5,
    _migrate_6,
    _migrate_7,
    _migrate_8,
    _migrate_9,
    _migrate_10,
]
SCHEMA_VERSION = len(MIGRATIONS)

# What each column the bot reads must hold, and whether it may be NULL. SQLite keeps whatever it is
# given, so a hand edit or a damaged copy can leave text in a number column; such a row is named (doctor,
# or LibraryDamaged where it is needed) rather than crashing whoever reads it.
TEXT, INTEGER, NUMBER = ("text",), ("integer",), ("integer", "real")
COLUMNS: dict[str, dict[str, tuple[tuple[str, ...], bool]]] = {
    "voices": {
        "id": (TEXT, False),
        "guild_id": (INTEGER, False),
        "name": (TEXT, False),
        "name_key": (TEXT, False),
        "owner_id": (INTEGER, False),
        "created_at": (TEXT, False),
        "duration_s": (NUMBER, False),
        "sha256": (TEXT, True),
        "consent_by": (INTEGER, True),
        "consent_at": (TEXT, True),
        "revision": (TEXT, False),
        "source": (TEXT, True),
        "state": (TEXT, False),
        "needs_reencode": (INTEGER, False),
        "speaker_id": (INTEGER, True),
        "consent_pending": (INTEGER, False),
    },
    "guild_settings": {
        "guild_id": (INTEGER, False),
        "clone_role_id": (INTEGER, True),
        "max_text_chars": (INTEGER, True),
        "cooldown_s": (NUMBER, True),
        "daily_quota_s": (NUMBER, True),
        "default_mode": (TEXT, True),
        "file_format": (TEXT, True),
        "speaker_consent": (INTEGER, True),
    },
    "user_defaults": {"guild_id": (INTEGER, False), "user_id": (INTEGER, False), "voice_id": (TEXT, False)},
    "usage": {"guild_id": (INTEGER, False), "user_id": (INTEGER, False), "at": (NUMBER, False)},
    "pronunciations": {"guild_id": (INTEGER, False), "word": (TEXT, False), "spoken": (TEXT, False)},
    "autoread_channels": {"guild_id": (INTEGER, False), "channel_id": (INTEGER, False)},
    "autoread_members": {"guild_id": (INTEGER, False), "user_id": (INTEGER, False)},
    "autoread_ignored_roles": {"guild_id": (INTEGER, False), "role_id": (INTEGER, False)},
    "autoread_settings": {
        "guild_id": (INTEGER, False),
        "voice_chat": (INTEGER, True),
        "fallback_voice_id": (TEXT, True),
        "join_on_post": (INTEGER, True),
        "who_spoke": (TEXT, True),
        "ignore_prefix": (TEXT, True),
        "read_bots": (INTEGER, True),
        "read_silent": (INTEGER, True),
        "say_links": (INTEGER, True),
        "say_attachments": (INTEGER, True),
        "max_chars": (INTEGER, True),
        "queue_limit": (INTEGER, True),
    },
}
_PYTHON_TYPES = {"text": str, "integer": int, "real": float}


def wrong_value(table: str, row: dict[str, object]) -> str | None:
    """Why `row` (a row of `table` as read) can't be used, e.g. "duration_s holds 'abc'"; else None."""
    for column, (kinds, nullable) in COLUMNS[table].items():
        if column not in row:
            continue
        value = row[column]
        if value is None:
            if not nullable:
                return f"{column} is empty"
        elif not isinstance(value, tuple(_PYTHON_TYPES[kind] for kind in kinds)) or isinstance(value, bool):
            wanted = "text" if kinds == TEXT else "a whole number" if kinds == INTEGER else "a number"
            return f"{column} holds {value!r}, not {wanted}"
    return None


def rows_with_wrong_types(db: sqlite_utils.Database, shown: int = 10) -> list[str]:
    """Rows holding a value of the wrong type, as "table voices, row 3: duration_s holds 'abc'"."""
    found: list[str] = []
    for table, columns in COLUMNS.items():
        for column, (kinds, nullable) in columns.items():
            allowed = kinds + (("null",) if nullable else ())
            marks = ", ".join("?" * len(allowed))
            rows = db.execute(
                f"SELECT rowid, {column} FROM {table} WHERE typeof({column}) NOT IN ({marks}) LIMIT ?",
                [*allowed, shown],
            ).fetchall()
            found += [
                f"table {table}, row {rowid}: {wrong_value(table, {column: value}) or column + ' is empty'}"
                for rowid, value in rows
            ]
    return found


def schema_version(db: sqlite_utils.Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def check_not_newer(db: sqlite_utils.Database, path: Path) -> int:
    """The schema version, or LibraryTooNew when a newer bot wrote it (its rows may mean other things)."""
    current = schema_version(db)
    if current > SCHEMA_VERSION:
        raise LibraryTooNew(path, current, SCHEMA_VERSION)
    return current


def migrate(db: sqlite_utils.Database, path: Path) -> None:
    current = check_not_newer(db, path)
    for version in range(current + 1, SCHEMA_VERSION + 1):
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version - 1](db)
            db.execute(f"PRAGMA user_version = {version}")
            db.conn.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise
