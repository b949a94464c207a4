"""The library's tables and their migrations. Each migration takes the schema from version N-1 to N in one
transaction; `PRAGMA user_version` says which version a database is at."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from bot import names


def connect(path: Path) -> sqlite_utils.Database:
    # isolation_level=None: no implicit transactions; every write says where its transaction starts.
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
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


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_migrate_1, _migrate_2, _migrate_3, _migrate_4]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(db: sqlite_utils.Database) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite_utils.Database, path: Path) -> None:
    current = schema_version(db)
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"{path} has schema {current}, newer than this bot ({SCHEMA_VERSION}). Upgrade the bot."
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[version - 1](db)
            db.execute(f"PRAGMA user_version = {version}")
            db.conn.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise
