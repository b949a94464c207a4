"""The library's tables in PostgreSQL and their migrations.

Version N is reached by running MIGRATIONS[N-1] in one transaction; the `schema_version` table says
which version a database is at. Every process that opens the library for writing migrates it first,
one at a time (an advisory lock), so a fleet of bot processes started together upgrade it once.

Version 1 holds what SQLite's schema 6 holds, plus the recordings and latents themselves
(`voice_files`): no process shares a filesystem with another. Text keys that lists are sorted by use
the "C" collation, SQLite's byte order, so both engines list alike.
"""

from __future__ import annotations

import psycopg

from bot.errors import LibraryTooNew

MIGRATION_LOCK = 0x766F6963_65626F74  # b"voicebot": the advisory lock migrations run under

_VERSION_1 = """
CREATE TABLE voices (
    id text PRIMARY KEY,
    guild_id bigint NOT NULL,
    name text NOT NULL,
    name_key text COLLATE "C" NOT NULL,
    owner_id bigint NOT NULL,
    created_at text NOT NULL,
    duration_s double precision NOT NULL,
    sha256 text,
    consent_by bigint,
    consent_at text,
    revision text NOT NULL,
    source text,
    state text NOT NULL DEFAULT 'ready',
    needs_reencode integer NOT NULL DEFAULT 0,
    speaker_id bigint
);
CREATE INDEX voices_by_name_key ON voices (guild_id, name_key);
CREATE INDEX voices_needing_reencode ON voices (needs_reencode) WHERE needs_reencode = 1;

-- A voice's reference recording (FLAC) and latent (.npy bytes), written in the transaction that adds its
-- row. Both are compressed already: stored out of line without PostgreSQL trying to compress them again.
CREATE TABLE voice_files (
    voice_id text PRIMARY KEY REFERENCES voices (id),
    reference bytea NOT NULL,
    latent bytea NOT NULL
);
ALTER TABLE voice_files ALTER COLUMN reference SET STORAGE EXTERNAL;
ALTER TABLE voice_files ALTER COLUMN latent SET STORAGE EXTERNAL;

CREATE TABLE usage (
    id bigserial PRIMARY KEY,
    guild_id bigint NOT NULL,
    user_id bigint NOT NULL,
    at double precision NOT NULL,
    kind text,
    audio_seconds double precision,
    gpu_seconds double precision
);
CREATE INDEX usage_by_guild ON usage (guild_id, at);
CREATE INDEX usage_by_member ON usage (guild_id, user_id, at);

CREATE TABLE guild_settings (
    guild_id bigint PRIMARY KEY,
    clone_role_id bigint,
    max_text_chars bigint,
    cooldown_s double precision,
    daily_quota_s double precision,
    default_mode text,
    file_format text
);
CREATE TABLE user_defaults (
    guild_id bigint NOT NULL,
    user_id bigint NOT NULL,
    voice_id text NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);
CREATE INDEX user_defaults_by_voice ON user_defaults (voice_id);

CREATE TABLE pronunciations (
    guild_id bigint NOT NULL,
    word_key text COLLATE "C" NOT NULL,
    word text NOT NULL,
    spoken text NOT NULL,
    PRIMARY KEY (guild_id, word_key)
);
CREATE TABLE autoread_channels (guild_id bigint, channel_id bigint, PRIMARY KEY (guild_id, channel_id));
CREATE TABLE autoread_members (guild_id bigint, user_id bigint, PRIMARY KEY (guild_id, user_id));
CREATE TABLE autoread_ignored_roles (guild_id bigint, role_id bigint, PRIMARY KEY (guild_id, role_id));
CREATE TABLE autoread_settings (
    guild_id bigint PRIMARY KEY,
    voice_chat integer,
    fallback_voice_id text,
    join_on_post integer,
    who_spoke text,
    ignore_prefix text,
    read_bots integer,
    read_silent integer,
    say_links integer,
    say_attachments integer,
    max_chars bigint,
    queue_limit bigint
);
"""

# Speech reserved by requests in flight (bot.store.quotas): the daily quota and cooldowns hold across
# every process.
_VERSION_2 = """
CREATE TABLE reservations (
    id text PRIMARY KEY,
    guild_id bigint NOT NULL,
    user_id bigint NOT NULL,
    seconds double precision NOT NULL,
    expires_at double precision NOT NULL,
    holder text NOT NULL,
    reply_to text
);
CREATE INDEX reservations_by_guild ON reservations (guild_id, user_id);
CREATE INDEX reservations_by_holder ON reservations (holder);
"""

# When each IDENTIFY bucket last started a Discord session (bot.store.sessions).
_VERSION_3 = """
CREATE TABLE identify_slots (bucket integer PRIMARY KEY, claimed_at double precision NOT NULL);
"""

# The speaker's own consent, deletion on request and purge after the bot leaves a server: what SQLite's
# schema 9 adds (see bot.store.schema._migrate_9).
_VERSION_4 = """
ALTER TABLE voices ADD COLUMN consent_pending integer NOT NULL DEFAULT 0;
ALTER TABLE guild_settings ADD COLUMN speaker_consent integer;
CREATE INDEX voices_by_speaker ON voices (speaker_id) WHERE speaker_id IS NOT NULL;
CREATE INDEX voices_by_owner ON voices (owner_id);
ALTER TABLE usage ADD COLUMN voice_id text;
CREATE INDEX usage_by_voice ON usage (voice_id, at);
CREATE INDEX usage_by_user ON usage (user_id);
CREATE TABLE consents (
    voice_id text PRIMARY KEY,
    guild_id bigint NOT NULL,
    speaker_id bigint NOT NULL,
    requested_by bigint NOT NULL,
    channel_id bigint,
    message_id bigint,
    sentence text NOT NULL,
    requested_at double precision NOT NULL,
    expires_at double precision NOT NULL,
    attempts integer NOT NULL DEFAULT 0
);
CREATE INDEX consents_by_speaker ON consents (speaker_id, guild_id);
CREATE INDEX consents_by_expiry ON consents (expires_at);
CREATE TABLE forgets (
    user_id bigint PRIMARY KEY,
    requested_at double precision NOT NULL,
    requested_by text NOT NULL
);
CREATE TABLE departures (guild_id bigint PRIMARY KEY, left_at double precision NOT NULL);
"""

# Per-server API keys for the HTTP API: what SQLite's schema 10 adds (see bot.store.schema._migrate_10).
_VERSION_5 = """
CREATE TABLE api_keys (
    id text PRIMARY KEY,
    guild_id bigint NOT NULL,
    created_by bigint NOT NULL,
    name text NOT NULL,
    secret_hash text NOT NULL,
    created_at double precision NOT NULL,
    last_used_at double precision
);
CREATE INDEX api_keys_by_guild ON api_keys (guild_id);
CREATE INDEX api_keys_by_creator ON api_keys (created_by);
"""

MIGRATIONS: list[str] = [_VERSION_1, _VERSION_2, _VERSION_3, _VERSION_4, _VERSION_5]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: psycopg.Connection) -> int:
    """0 for a database the bot has never used."""
    exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0] or 0) if row else 0


def check_not_newer(conn: psycopg.Connection, where: str) -> int:
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise LibraryTooNew(where, current, SCHEMA_VERSION)
    return current


def migrate(conn: psycopg.Connection, where: str) -> None:
    """Bring the database to SCHEMA_VERSION, each step one transaction, one process at a time. `conn`
    is in autocommit mode; a lock held by a process that dies goes with its connection."""
    conn.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK])
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        current = check_not_newer(conn, where)
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with conn.transaction():
                conn.execute(MIGRATIONS[version - 1].encode())  # trusted DDL, no parameters
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", [version])
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK])
