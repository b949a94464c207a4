"""The voice library: every server's voices, settings, usage, dictionary and auto-read rules.

One API (`VoiceLibrary`, module `library`), two engines:
- `VoiceStore` (module `sqlite`): a SQLite file and a voices folder in the data folder; the default,
  for one bot process and its CLI on one machine.
- `PostgresVoiceStore` (module `postgres`): one PostgreSQL database, recordings and latents included,
  shared by any number of bot processes, the CLI and later API processes on any machines.
`open_library` picks one from `VOICEBOT_DATABASE_URL` (unset: SQLite).

Every row carries `guild_id` and every lookup is scoped by it: another server's voice is "not found".
Limits that must hold across processes (voice slots, look-alike names, a full dictionary) are checked in
the same transaction that takes them, under a lock every writer of that guild takes. A reference
recording is never deleted by a repair: a voice whose latent is missing is re-encoded from it.

Modules, by concern: `voice` (the Voice row), `engine` (what both engines provide), `library` (the API,
written once), `settings` (guild settings, defaults, usage), `reading` (the dictionary and auto-read),
`api_keys` (per-server keys for the HTTP API), `sql` (statements both engines share), `sqlite` +
`schema` + `files` + `health` (the SQLite engine, its tables, its files and its sweep/audit), `postgres`
+ `pg_schema` (the PostgreSQL engine and its tables), `faults` (failures as typed errors), `aio`
(methods as coroutines).

Synchronous by design: the CLI and the tests call it directly. Async code uses `library.aio`: `await
library.aio.get(g, n)` runs `library.get(g, n)` in a worker thread, same arguments, result and errors.
"""

from __future__ import annotations

from pathlib import Path

from bot.choices import FILE_FORMATS, MODES
from bot.names import MAX_NAME_LENGTH, clean_name, name_key
from bot.store.api_keys import ApiKey
from bot.store.files import LATENT, REFERENCE
from bot.store.health import Audit, SweepReport
from bot.store.library import AsyncVoiceLibrary, VoiceLibrary
from bot.store.reading import AutoReadSettings
from bot.store.schema import MIGRATIONS, SCHEMA_VERSION
from bot.store.settings import GuildSettings
from bot.store.sqlite import VoiceStore
from bot.store.voice import Voice


def open_library(
    data_dir: str | Path,
    database_url: str | None = None,
    *,
    max_voices_per_guild: int = 25,
    sweep: bool = True,
    read_only: bool = False,
    busy_timeout_s: float | None = None,
) -> VoiceLibrary:
    """The library at `database_url` (PostgreSQL) when one is given, else the SQLite one in `data_dir`."""
    options = {
        "max_voices_per_guild": max_voices_per_guild,
        "sweep": sweep,
        "read_only": read_only,
        "busy_timeout_s": busy_timeout_s,
    }
    if database_url:
        from bot.store.postgres import PostgresVoiceStore  # psycopg only where PostgreSQL is used

        return PostgresVoiceStore(database_url, **options)  # type: ignore[arg-type]
    return VoiceStore(data_dir, **options)  # type: ignore[arg-type]


__all__ = [
    "FILE_FORMATS",
    "LATENT",
    "MAX_NAME_LENGTH",
    "MIGRATIONS",
    "MODES",
    "REFERENCE",
    "SCHEMA_VERSION",
    "ApiKey",
    "AsyncVoiceLibrary",
    "Audit",
    "AutoReadSettings",
    "GuildSettings",
    "SweepReport",
    "Voice",
    "VoiceLibrary",
    "VoiceStore",
    "clean_name",
    "name_key",
    "open_library",
]
