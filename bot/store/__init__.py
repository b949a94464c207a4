"""The voice library: SQLite (via sqlite-utils) plus each voice's files under the data directory.

    data/voicebot.db                                   voices, settings, usage, schema version (WAL mode)
    data/voices/<guild_id>/<voice_id>/reference.flac   the upload, kept to re-encode after a model change
    data/voices/<guild_id>/<voice_id>/latent.npy       float16 [T, 80]
    data/voices/.staging/<voice_id>/                   an add being written

Every row carries `guild_id` and every lookup is scoped by it: another server's voice is "not found".

An add reserves its row first ('adding', under SQLite's write lock, so the name and the voice limit hold
across processes), writes its files into staging, renames them into place, then marks the row 'ready'.
A delete marks the row 'deleting', removes the files, then the row. So a crash at any moment leaves only
unsettled rows and staged folders, which the start-up sweep finishes or undoes without walking every
voice. A reference recording is never deleted by a repair: a voice whose latent is missing is re-encoded
from it (`bot.cloning.reencode_pending`), and rows whose files are gone are kept and reported by
`voicebot doctor`. Read-only opens (`sweep=False`) tidy nothing.

Modules, by concern: `library` (the VoiceStore façade and its voices), `settings` (guild settings,
defaults, usage), `schema` (tables, migrations), `files` (on-disk layout and atomic writes), `health`
(sweep and audit), `faults` (disk and SQLite failures as typed errors), `reading` (the dictionary and
auto-read), `aio` (the async façade).

Synchronous by design, so one lock guards the connection: the CLI and the tests call it directly. Async
code uses its async façade `store.aio` (an `AsyncVoiceStore`, module `aio`): `await store.aio.get(g, n)`
runs `store.get(g, n)` in a worker thread, same arguments, same result, same errors.
"""

from bot.choices import FILE_FORMATS, MODES
from bot.names import MAX_NAME_LENGTH, clean_name, name_key
from bot.store.aio import AsyncVoiceStore
from bot.store.files import LATENT, REFERENCE
from bot.store.health import Audit, SweepReport
from bot.store.library import Voice, VoiceStore
from bot.store.reading import AutoReadSettings
from bot.store.schema import MIGRATIONS, SCHEMA_VERSION
from bot.store.settings import GuildSettings

__all__ = [
    "FILE_FORMATS",
    "LATENT",
    "MAX_NAME_LENGTH",
    "MIGRATIONS",
    "MODES",
    "REFERENCE",
    "SCHEMA_VERSION",
    "AsyncVoiceStore",
    "Audit",
    "AutoReadSettings",
    "GuildSettings",
    "SweepReport",
    "Voice",
    "VoiceStore",
    "clean_name",
    "name_key",
]
