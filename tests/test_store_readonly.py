"""Commands that promise to change nothing (doctor, voices, export, info, listing) open the library
read-only: on either engine they read what a writer kept. An older SQLite library is left exactly as
they found it (they read an upgraded copy in memory); a writing command migrates the file."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import sqlite_utils

from bot.cli import main
from bot.errors import LibraryReadOnly
from bot.store import MIGRATIONS, SCHEMA_VERSION, VoiceStore
from bot.store.files import latent_bytes
from tests.test_store import LATENT, add

OLD = 3


def older_library(data: Path) -> Path:
    """A library as a bot of schema 3 left it: WAL, one voice with its files."""
    db = sqlite_utils.Database(data / "voicebot.db")
    db.execute("pragma journal_mode=wal")
    for migrate in MIGRATIONS[:OLD]:
        migrate(db)
    db.execute(f"pragma user_version = {OLD}")
    sha256 = hashlib.sha256(b"fLaC").hexdigest()
    db["voices"].insert(
        dict(id="a" * 16, guild_id=1, name="Ada", name_key="ada", owner_id=7,
             created_at="2025-01-01T00:00:00+00:00", duration_s=6.0, sha256=sha256,
             consent_by=7, consent_at="2025-01-01T00:00:00+00:00", revision="r", source="old",
             state="ready", needs_reencode=0)
    )  # fmt: skip
    db.conn.commit()
    db.close()
    folder = data / "voices" / "1" / ("a" * 16)
    folder.mkdir(parents=True)
    (folder / "reference.flac").write_bytes(b"fLaC")
    (folder / "latent.npy").write_bytes(latent_bytes(np.ones((8, 80), dtype=np.float16)))
    return data / "voicebot.db"


def state_of(db_file: Path) -> tuple[str, int]:
    conn = sqlite3.connect(db_file)
    try:
        version = conn.execute("pragma user_version").fetchone()[0]
    finally:
        conn.close()
    return hashlib.sha256(db_file.read_bytes()).hexdigest(), version


def test_reading_commands_leave_an_older_library_untouched(tmp_path, capsys):
    db_file = older_library(tmp_path)
    before = state_of(db_file)
    assert before[1] == OLD
    lib = ["--data-dir", str(tmp_path)]

    assert main([*lib, "voices", "--guild", "1"]) == 0
    assert "Ada" in capsys.readouterr().out
    assert main([*lib, "voice", "info", "--guild", "1", "--voice", "Ada"]) == 0
    assert main([*lib, "settings", "--guild", "1"]) == 0
    assert main([*lib, "dictionary", "list", "--guild", "1"]) == 0
    assert main([*lib, "export", "--guild", "1", "--out", str(tmp_path / "backup.tar")]) == 0
    main([*lib, "doctor"])
    out = capsys.readouterr().out
    assert f"Schema version {OLD}, older than this bot's {SCHEMA_VERSION}" in out and "changed nothing" in out
    assert state_of(db_file) == before

    # A command that writes upgrades it, as the bot's start does.
    assert main([*lib, "voice", "rename", "--guild", "1", "--voice", "Ada", "Grace"]) == 0
    assert state_of(db_file)[1] == SCHEMA_VERSION


def test_a_read_only_store_reads_an_older_library_through_an_upgraded_copy(tmp_path):
    db_file = older_library(tmp_path)
    before = state_of(db_file)
    store = VoiceStore(tmp_path, read_only=True)
    try:
        assert store.schema_on_disk == OLD and store.schema_version() == SCHEMA_VERSION
        assert [v.name for v in store.list(1)] == ["Ada"]
        assert store.dictionary(1) == {} and store.autoread_channels(1) == set()  # tables of later schemas
    finally:
        store.close()
    assert state_of(db_file) == before


def test_a_read_only_library_reads_what_a_writer_kept_and_refuses_writes(open_test_library):
    writer = open_test_library()
    ada = add(writer, 1, "Ada")
    writer.update_settings(1, cooldown_s=5.0)
    writer.add_pronunciation(1, "GIF", "jiff")
    writer.set_autoread_channel(1, 10, True)
    writer.close()

    reader = open_test_library(read_only=True)
    assert reader.schema_on_disk == reader.schema_latest == reader.schema_version()
    assert reader.list(1) == [ada] and reader.get(1, "ada") == ada and reader.count(1) == 1
    np.testing.assert_array_equal(reader.load_latent(ada), LATENT)
    assert reader.read_reference(ada) == b"fLaC-bytes"
    assert reader.settings(1).cooldown_s == 5.0 and reader.dictionary(1) == {"GIF": "jiff"}
    assert reader.autoread_channels(1) == {10} and not reader.last_sweep
    # Its connections are read-only: a write is refused as LibraryReadOnly, with nothing changed.
    writes = [
        lambda: add(reader, 1, "Bob"),
        lambda: reader.rename(1, "Ada", "Grace"),
        lambda: reader.delete(1, "Ada"),
        lambda: reader.update_settings(1, cooldown_s=1.0),
        lambda: reader.add_pronunciation(1, "SQL", "sequel"),
    ]
    for write in writes:
        with pytest.raises(LibraryReadOnly):
            write()
    assert reader.list(1) == [ada] and reader.settings(1).cooldown_s == 5.0
    assert reader.dictionary(1) == {"GIF": "jiff"}
