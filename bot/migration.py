"""`voicebot migrate --to postgresql://…`: copy a SQLite library (the data folder) into PostgreSQL.

Everything the bot keeps goes: voices with their recordings and latents (byte for byte, the same ids,
those waiting for their speaker's consent too), server settings, default voices, usage (with the voice
each delivery spoke in), the pronunciation dictionaries, the auto-read rules, pending consent requests,
the servers the bot left (their purge date kept), deletions a crash cut short, and API keys (only their
secrets' hashes are kept, which mean the same there: every key keeps working). Speech reservations are
not copied: they belong to requests of a bot that must be stopped first.

Safe to run again, and to resume after an interruption:
- each voice goes in one transaction (its row and its files together); a voice already there is
  checked, not copied twice;
- each small table (settings, defaults, dictionary, auto-read) is replaced whole in one transaction, so
  a second run mirrors what the source holds now;
- usage rows keep their ids and are inserted only where missing.
A target that holds a voice the source doesn't (one cloned there since, say) is refused before
anything is written: migrate fills a new database, it never merges two libraries or deletes a voice.

Then it verifies: for every table, the row counts and an order-independent checksum of the rows must
match, and every voice's recording and latent must hash the same on both sides.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bot.errors import InvalidInput, LibraryDamaged
from bot.store import files, sql
from bot.store.postgres import PostgresVoiceStore
from bot.store.sqlite import VoiceStore
from bot.store.voice import FIELDS, Voice

# Small tables, copied whole; their rows mean the same on both engines.
SMALL_TABLES = [
    "guild_settings",
    "user_defaults",
    "pronunciations",
    "autoread_settings",
    "autoread_channels",
    "autoread_members",
    "autoread_ignored_roles",
    "consents",  # requests waiting for a speaker's consent (their voices are copied with the voices)
    "departures",  # servers the bot left: still purged when their grace period ends
    "forgets",  # a member's deletion a crash cut short: finished by the bot's next start there
    "api_keys",  # the HTTP API's keys, as their secrets' hashes: they keep working there
]
USAGE_COLUMNS = ("id", "guild_id", "user_id", "at", "kind", "audio_seconds", "gpu_seconds", "voice_id")
VOICE_COLUMNS = (*FIELDS, "name_key", "needs_reencode")
BATCH = 1000


class MigrationMismatch(LibraryDamaged):
    """After copying, the target doesn't hold what the source does."""


@dataclass
class Report:
    voices_copied: int = 0
    voices_already_there: int = 0
    usage_copied: int = 0
    tables: dict[str, int] = field(default_factory=dict)  # table → rows in both, verified
    skipped_unsettled: int = 0  # adds or deletes a crash left half done in the source

    def as_dict(self) -> dict[str, Any]:
        return {
            "voices_copied": self.voices_copied,
            "voices_already_there": self.voices_already_there,
            "usage_copied": self.usage_copied,
            "skipped_unsettled": self.skipped_unsettled,
            "verified_rows": dict(self.tables),
        }


def _raw(path: Any) -> bytes:
    """A file's bytes as they are (a damaged latent is copied as it is, and re-encoded there)."""
    try:
        return bytes(path.read_bytes())
    except FileNotFoundError:
        return b""


def _digest(rows: Iterable[Sequence[Any]]) -> str:
    """An order-independent checksum of rows, with numbers and text compared as values."""
    hashes = sorted(hashlib.sha256(repr(tuple(_plain(v) for v in row)).encode()).digest() for row in rows)
    return hashlib.sha256(b"".join(hashes)).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def migrate(source: VoiceStore, target: PostgresVoiceStore, progress: Callable[[str], None]) -> Report:
    report = Report()
    voices = source._voices("state = 'ready' ORDER BY guild_id, id", [])
    report.skipped_unsettled = int(source._value("SELECT count(*) FROM voices WHERE state != 'ready'"))
    _refuse_foreign_voices(source, target, {v.id for v in voices})
    progress(f"copying {len(voices)} voices")
    for number, voice in enumerate(voices, 1):
        if _copy_voice(source, target, voice):
            report.voices_copied += 1
        else:
            report.voices_already_there += 1
        if number % 100 == 0:
            progress(f"{number} of {len(voices)} voices")
    for table in SMALL_TABLES:
        _replace_table(source, target, table)
    progress("copying usage")
    report.usage_copied = _copy_usage(source, target)
    progress("verifying")
    report.tables = verify(source, target, voices)
    return report


def _refuse_foreign_voices(source: VoiceStore, target: PostgresVoiceStore, ids: set[str]) -> None:
    there = {row[0] for row in target._rows("SELECT id FROM voices")}
    foreign = there - ids
    if foreign:
        raise InvalidInput(
            f"{target.where} already holds {len(foreign)} voices that {source.where} doesn't (cloned there "
            "since, or deleted here since an earlier migrate). migrate only fills a new database or "
            "finishes its own earlier run: use an empty database. Nothing was copied."
        )


def _voice_row(source: VoiceStore, voice: Voice) -> dict[str, Any]:
    (row,) = source._records(f"SELECT {', '.join(VOICE_COLUMNS)} FROM voices WHERE id = ?", [voice.id])
    return row


def _copy_voice(source: VoiceStore, target: PostgresVoiceStore, voice: Voice) -> bool:
    """Copy one voice (row, recording, latent) in one transaction; False if it was there already."""
    folder = source.folder(voice.guild_id, voice.id)
    reference, latent = _raw(folder / files.REFERENCE), _raw(folder / files.LATENT)
    row = _voice_row(source, voice)
    if files.latent_bytes_problem(latent) is not None:
        row["needs_reencode"] = 1  # the bot re-encodes it from its recording, there as here
    with target.transaction(lock=("voices", voice.guild_id)) as tx:
        if tx.execute("SELECT 1 FROM voices WHERE id = ?", [voice.id]).fetchone():
            return False
        sql.insert(tx, "voices", {**row, "state": "ready"})
        sql.insert(tx, "voice_files", {"voice_id": voice.id, "reference": reference, "latent": latent})
    return True


def _columns(source: VoiceStore, table: str) -> str:
    return ", ".join(column[0] for column in source._execute(f"SELECT * FROM {table} LIMIT 0").description)


def _replace_table(source: VoiceStore, target: PostgresVoiceStore, table: str) -> None:
    rows = source._records(f"SELECT {_columns(source, table)} FROM {table}")
    with target.transaction() as tx:
        tx.execute(f"DELETE FROM {table}")
        for row in rows:
            try:
                sql.insert(tx, table, row)
            except psycopg.DataError as exc:  # SQLite kept a value of the wrong type (a hand edit)
                raise InvalidInput(
                    f"A row of {table} in {source.where} can't be copied ({str(exc).strip()}): {row}. "
                    "`voicebot doctor` names such rows; fix or remove it, then run migrate again. "
                    "The voices copied so far are kept."
                ) from None


def _copy_usage(source: VoiceStore, target: PostgresVoiceStore) -> int:
    copied, after = 0, 0
    columns = ", ".join(USAGE_COLUMNS)
    while True:
        rows = source._rows(f"SELECT {columns} FROM usage WHERE id > ? ORDER BY id LIMIT {BATCH}", [after])
        if not rows:
            break
        with target.transaction() as tx:
            for row in rows:
                inserted = tx.execute(
                    f"INSERT INTO usage ({columns}) VALUES ({', '.join('?' * len(row))}) "
                    "ON CONFLICT (id) DO NOTHING",
                    list(row),
                )
                copied += inserted.rowcount or 0
        after = rows[-1][0]
    with target.transaction() as tx:  # the next usage row the bot writes there gets a fresh id
        tx.execute("SELECT setval(pg_get_serial_sequence('usage', 'id'), (SELECT max(id) FROM usage))")
    return copied


def verify(source: VoiceStore, target: PostgresVoiceStore, voices: list[Voice]) -> dict[str, int]:
    """Counts and checksums of every copied table, and each voice's files; MigrationMismatch if any
    differ. Returns the verified row count per table."""
    checked: dict[str, int] = {}
    problems: list[str] = []
    columns = ", ".join(VOICE_COLUMNS)
    tables = [("voices", f"SELECT {columns} FROM voices WHERE state = 'ready'")]
    tables += [(table, f"SELECT {_columns(source, table)} FROM {table}") for table in SMALL_TABLES]
    tables += [("usage", f"SELECT {', '.join(USAGE_COLUMNS)} FROM usage")]
    for table, query in tables:
        mine, theirs = source._rows(query), target._rows(query)
        if table == "voices":  # a damaged latent is marked for re-encoding there: compare the rest
            mine, theirs = [r[:-1] for r in mine], [r[:-1] for r in theirs]
        if len(mine) != len(theirs):
            problems.append(f"{table}: {len(mine)} rows here, {len(theirs)} there")
        elif _digest(mine) != _digest(theirs):
            problems.append(f"{table}: the rows differ")
        checked[table] = len(mine)
    for voice in voices:
        folder = source.folder(voice.guild_id, voice.id)
        row = target._execute(
            "SELECT reference, latent FROM voice_files WHERE voice_id = ?", [voice.id]
        ).fetchone()
        here = (_raw(folder / files.REFERENCE), _raw(folder / files.LATENT))
        if row is None or tuple(hashlib.sha256(bytes(b)).digest() for b in row) != tuple(
            hashlib.sha256(b).digest() for b in here
        ):
            problems.append(f"voice {voice.id}: its recording or latent differs")
    checked["voice_files"] = len(voices)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise MigrationMismatch(target.where, f"after copying, {shown}; run `voicebot migrate` again")
    return checked
