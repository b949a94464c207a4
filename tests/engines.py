"""The two engines, for tests that run on each: open a library by where it lives (a data folder for
SQLite, a database URL for PostgreSQL), and reach past the API into where each engine keeps a voice's
recording and latent, to damage them as a failing disk, a bad restore or a hand edit would.

SQLite keeps them as files (voices/<guild>/<voice>/reference.flac and latent.npy); PostgreSQL as the
columns of the voice's `voice_files` row. "Lost" means: a file deleted, or an empty column (the columns
can't be NULL); "all files gone": the folder deleted, or the `voice_files` row.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Sequence
from typing import Any

from bot.store import LATENT, REFERENCE, Voice, VoiceLibrary, VoiceStore, open_library

ENGINES = ["sqlite", "postgresql"]


def is_database_url(where: str) -> bool:
    return where.startswith(("postgresql://", "postgres://"))


def open_at(where: str, **options: Any) -> VoiceLibrary:
    """The library at `where`: a PostgreSQL URL, or a SQLite data folder."""
    return open_library(where, where if is_database_url(where) else None, **options)


def where_of(library: VoiceLibrary) -> str:
    """Where `library` lives, as `open_at` takes it (for another process to open it too)."""
    if isinstance(library, VoiceStore):
        return str(library.data_dir)
    return str(library.url)  # type: ignore[attr-defined]


def execute(library: VoiceLibrary, statement: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """One statement (`?` placeholders) on the library's database from another connection, as an admin's
    shell would run it; committed at once. Its rows, if it returns any."""
    if isinstance(library, VoiceStore):
        conn = sqlite3.connect(library.data_dir / "voicebot.db")
        try:
            rows = conn.execute(statement, list(parameters)).fetchall()
            conn.commit()
        finally:
            conn.close()
        return rows
    import psycopg  # here only, as in the library: a SQLite writer process starts faster without it

    with psycopg.connect(where_of(library), autocommit=True) as pg:
        cursor = pg.execute(statement.replace("?", "%s").encode(), list(parameters))
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []


def _folder(library: VoiceStore, voice: Voice):
    return library.folder(voice.guild_id, voice.id)


def set_latent(library: VoiceLibrary, voice: Voice, data: bytes | None) -> None:
    """Overwrite the voice's kept latent with `data` (garbage, a truncated array); None: lose it."""
    if isinstance(library, VoiceStore):
        path = _folder(library, voice) / LATENT
        if data is None:
            path.unlink()
        else:
            path.write_bytes(data)
        return
    execute(library, "UPDATE voice_files SET latent = ? WHERE voice_id = ?", [data or b"", voice.id])


def lose_latent(library: VoiceLibrary, voice: Voice) -> None:
    set_latent(library, voice, None)


def lose_reference(library: VoiceLibrary, voice: Voice) -> None:
    """The voice's reference recording gone; its latent kept."""
    if isinstance(library, VoiceStore):
        (_folder(library, voice) / REFERENCE).unlink()
    else:
        execute(library, "UPDATE voice_files SET reference = ? WHERE voice_id = ?", [b"", voice.id])


def lose_files(library: VoiceLibrary, voice: Voice) -> None:
    """Both the recording and the latent gone; the voice's row kept."""
    if isinstance(library, VoiceStore):
        shutil.rmtree(_folder(library, voice))
    else:
        execute(library, "DELETE FROM voice_files WHERE voice_id = ?", [voice.id])


def stored_reference(library: VoiceLibrary, voice: Voice) -> bytes | None:
    """The reference recording as kept (unchecked), or None when nothing is kept for the voice."""
    if isinstance(library, VoiceStore):
        path = _folder(library, voice) / REFERENCE
        return path.read_bytes() if path.is_file() else None
    rows = execute(library, "SELECT reference FROM voice_files WHERE voice_id = ?", [voice.id])
    return bytes(rows[0][0]) if rows and rows[0][0] else None


def has_files(library: VoiceLibrary, voice: Voice) -> bool:
    """Whether anything at all is kept for the voice's recording and latent (a folder, a row)."""
    if isinstance(library, VoiceStore):
        return _folder(library, voice).exists()
    return bool(execute(library, "SELECT 1 FROM voice_files WHERE voice_id = ?", [voice.id]))


def voices_with_files(library: VoiceLibrary, guild_id: int) -> set[str]:
    """The ids of the guild's voices that have their files kept (a folder, a `voice_files` row)."""
    if isinstance(library, VoiceStore):
        folder = library.voices_dir / str(guild_id)
        return {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    rows = execute(
        library,
        "SELECT f.voice_id FROM voice_files f JOIN voices v ON v.id = f.voice_id WHERE v.guild_id = ?",
        [guild_id],
    )
    return {row[0] for row in rows}
