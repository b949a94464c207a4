"""The voice library: rows and files together, guild isolation, names, limits, migrations and the sweep.

What a user can see through the API runs on both engines (`[sqlite]`, `[postgresql]`); the SQLite
engine's own mechanics (its files, WAL, page limits, fsync, the start-up sweep) are tested on it alone.
"""

from __future__ import annotations

import errno
import os
import sqlite3

import numpy as np
import psycopg
import pytest

from bot.errors import (
    InvalidVoiceName,
    LibraryFull,
    LibraryTooNew,
    VoiceLimitReached,
    VoiceNameTaken,
    VoiceNotFound,
)
from bot.store import SCHEMA_VERSION, SweepReport, VoiceLibrary, VoiceStore, clean_name
from tests.engines import execute, stored_reference, voices_with_files

LATENT = np.arange(8 * 80, dtype=np.float16).reshape(8, 80)


def add(store: VoiceLibrary, guild: int, name: str, **kw) -> object:
    values = dict(
        owner_id=7,
        reference_flac=b"fLaC-bytes",
        latent=LATENT,
        duration_s=6.25,
        revision="echo-abc",
        consent_by=7,
        source="test",
    )
    values.update(kw)
    return store.add(guild, name, **values)


@pytest.fixture
def store(open_test_library):
    return open_test_library(max_voices_per_guild=3)


@pytest.fixture
def sqlite_store(tmp_path):
    s = VoiceStore(tmp_path, max_voices_per_guild=3)
    yield s
    s.close()


def test_a_voice_is_a_row_plus_two_files(store, engine):
    """A row in `voices`, plus its recording and latent: two files in the voice's folder (SQLite), or
    the two columns of its `voice_files` row (PostgreSQL)."""
    voice = add(store, 1, "Ada")
    if engine == "sqlite":
        folder = store.folder(1, voice.id)
        assert sorted(p.name for p in folder.iterdir()) == ["latent.npy", "reference.flac"]
    else:
        assert execute(store, "select voice_id from voice_files") == [(voice.id,)]
    assert stored_reference(store, voice) == b"fLaC-bytes" == store.read_reference(voice)
    np.testing.assert_array_equal(store.load_latent(voice), LATENT)
    columns = "guild_id, name, name_key, owner_id, duration_s, revision, consent_by, source"
    row = execute(store, f"select {columns} from voices")
    assert row == [(1, "Ada", "ada", 7, 6.25, "echo-abc", 7, "test")]
    assert len(voice.sha256) == 64 and voice.created_at.endswith("+00:00")


def test_wal_mode_and_schema_version(sqlite_store, tmp_path):
    store = sqlite_store
    conn = sqlite3.connect(tmp_path / "voicebot.db")
    assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
    assert conn.execute("pragma user_version").fetchone()[0] == SCHEMA_VERSION == store.schema_version()
    assert {"voices", "usage"} <= {r[0] for r in conn.execute("select name from sqlite_master")}


def test_reopening_keeps_everything(open_test_library):
    with_voice = open_test_library()
    voice = add(with_voice, 1, "Ada")
    with_voice.close()
    again = open_test_library()
    assert again.get(1, "ada") == voice and not again.last_sweep
    np.testing.assert_array_equal(again.load_latent(voice), LATENT)


def test_another_guilds_voice_is_simply_not_found(store):
    voice = add(store, 1, "Ada")
    assert store.list(2) == [] and store.find(2, "Ada") is None
    with pytest.raises(VoiceNotFound):
        store.get(2, "Ada")
    with pytest.raises(VoiceNotFound):
        store.get_by_id(2, voice.id)
    with pytest.raises(VoiceNotFound):
        store.delete(2, "Ada")
    assert store.get(1, "Ada") == voice
    add(store, 2, "Ada")  # the same name is free in another guild
    assert [v.guild_id for v in store.list(2)] == [2]


def test_names_are_unique_per_guild_ignoring_case(store):
    add(store, 1, "Ada")
    with pytest.raises(VoiceNameTaken, match="Ada"):
        add(store, 1, "ADA")
    assert store.get(1, "aDa").name == "Ada"


@pytest.mark.parametrize("name", ["", " ", "x" * 33, "Ada!", "a/b", "<@123>", "émoji 👍"])
def test_bad_names_are_refused(store, name):
    with pytest.raises(InvalidVoiceName, match="1 to 32 letters"):
        add(store, 1, name)
    assert store.list(1) == []


def test_names_are_tidied():
    assert clean_name("  Old   Captain_1 ") == "Old Captain_1"
    assert clean_name("Zoë-Ünal") == "Zoë-Ünal"


def test_the_limit_per_guild(store):
    kept = {add(store, 1, name).id for name in ("a", "b", "c")}
    with pytest.raises(VoiceLimitReached, match="limit of 3"):
        add(store, 1, "d")
    assert voices_with_files(store, 1) == kept and store.count(1) == 3
    assert add(store, 2, "d").name == "d"  # the limit is per guild


def test_voices_are_listed_alphabetically_as_people_read_them(store):
    for name in ("Padded", "me", "Ada"):
        add(store, 1, name)
    # the look-alike key reads "me" as "rne", which used to put it after "Padded"
    assert [v.name for v in store.list(1)] == ["Ada", "me", "Padded"]


def test_a_voice_can_be_named_by_its_id_in_its_own_guild_only(store):
    ada = add(store, 1, "Ada")
    other = add(store, 2, "Bob")
    assert store.get(1, ada.id) == ada and store.get(1, f" {ada.id} ") == ada
    with pytest.raises(VoiceNotFound):
        store.get(1, other.id)  # another guild's voice stays "not found", by id as by name
    named_like_an_id = add(store, 1, other.id)  # a name always wins over an id
    assert store.get(1, other.id) == named_like_an_id
    assert store.delete(1, ada.id) == ada and store.find(1, "Ada") is None


def test_rename_and_delete(store):
    voice = add(store, 1, "Ada")
    add(store, 1, "Bob")
    with pytest.raises(VoiceNameTaken):
        store.rename(1, "Ada", "bob")
    renamed = store.rename(1, "Ada", "Ada Lovelace")
    assert renamed.id == voice.id and store.find(1, "Ada") is None
    store.delete(1, "ada lovelace")
    assert [v.name for v in store.list(1)] == ["Bob"]
    assert voice.id not in voices_with_files(store, 1)  # its recording and latent went with it


def test_sweep_undoes_interrupted_adds_finishes_deletes_and_touches_nothing_else(tmp_path):
    store = VoiceStore(tmp_path)
    kept = add(store, 1, "Kept")
    adding = add(store, 1, "Adding")  # made to look interrupted before its rename below
    deleting = add(store, 2, "Deleting")
    latentless = add(store, 1, "Latentless")
    (tmp_path / "voices" / "1" / latentless.id / "latent.npy").unlink()
    (tmp_path / "voices" / ".staging" / "feedfacecafebeef").mkdir(parents=True)
    (tmp_path / "voices" / "5" / "0123456789abcdef").mkdir(parents=True)  # no row: not ours to judge
    store.db.execute("update voices set state = 'adding' where id = ?", [adding.id])
    store.db.execute("update voices set state = 'deleting' where id = ?", [deleting.id])
    store.close()
    (tmp_path / "voices" / "1" / adding.id).rename(tmp_path / "voices" / ".staging" / adding.id)

    again = VoiceStore(tmp_path)
    assert again.last_sweep == SweepReport(undone_adds=1, finished_deletes=1, staging_removed=1)
    assert [v.name for v in again.list(1)] == ["Kept", "Latentless"] and again.list(2) == []
    assert sorted(p.name for p in (tmp_path / "voices" / "1").iterdir()) == sorted([kept.id, latentless.id])
    assert (tmp_path / "voices" / "1" / latentless.id / "reference.flac").exists()
    assert list((tmp_path / "voices" / "2").iterdir()) == []
    assert list((tmp_path / "voices" / ".staging").iterdir()) == []
    assert (tmp_path / "voices" / "5" / "0123456789abcdef").is_dir()
    assert again.integrity_check() == "ok"
    again.close()


def test_a_failed_insert_leaves_no_files(store, engine, monkeypatch):
    """The database failing as the voice is written: nothing of it is kept."""
    if engine == "sqlite":
        failure, seen = sqlite3.OperationalError("disk I/O error"), sqlite3.OperationalError
    else:  # the server's disk full mid-write; the library says so as LibraryFull
        failure, seen = psycopg.errors.DiskFull("could not extend file"), LibraryFull

    def boom(*a, **k):
        raise failure

    monkeypatch.setattr("bot.store.sql.insert", boom)
    with pytest.raises(seen):
        add(store, 1, "Ada")
    monkeypatch.undo()
    assert voices_with_files(store, 1) == set()
    if engine == "sqlite":
        assert [p for p in store.voices_dir.rglob("*") if p.is_file()] == []
    assert execute(store, "select count(*) from voices") == [(0,)]
    assert add(store, 1, "Ada").name == "Ada"  # name and slot are free


def test_a_failed_file_write_releases_the_reserved_row(sqlite_store, tmp_path, monkeypatch):
    store = sqlite_store

    def boom(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        add(store, 1, "Ada")
    monkeypatch.undo()
    assert [p for p in (tmp_path / "voices").rglob("*") if p.is_file()] == []
    assert store.db.execute("select count(*) from voices").fetchone()[0] == 0
    assert add(store, 1, "Ada").name == "Ada"  # name and slot are free again


def test_a_full_database_is_library_full_and_leaves_nothing(sqlite_store, tmp_path):
    store = sqlite_store

    pages = store.db.execute("pragma page_count").fetchone()[0]
    store.db.execute(f"pragma max_page_count = {pages}")  # SQLite's own "database or disk is full"
    with pytest.raises(LibraryFull, match="disk is full"):
        for i in range(3):
            add(store, 1, f"v{i}", source="x" * 3000)
    rows = store.db.execute("select id, state from voices").fetchall()
    assert {state for _, state in rows} <= {"ready"}  # no reservation left behind
    folders = {p.name for p in (tmp_path / "voices" / "1").iterdir()} if rows else set()
    assert folders == {voice_id for voice_id, _ in rows}
    assert list((tmp_path / "voices" / ".staging").iterdir()) == []


def test_replace_latent_after_a_model_change(store):
    voice = add(store, 1, "Ada")
    newer = store.replace_latent(voice, LATENT + 1, "echo-new")
    assert newer.revision == "echo-new" and newer.id == voice.id
    np.testing.assert_array_equal(store.load_latent(newer), LATENT + 1)


def test_usage_is_summed_per_guild_and_user(store):
    store.record_usage(1, 10, kind="say", audio_seconds=5.0, gpu_seconds=0.2)
    store.record_usage(1, 11, kind="say", audio_seconds=3.0, gpu_seconds=0.1)
    store.record_usage(2, 10, kind="say", audio_seconds=100.0, gpu_seconds=1.0)
    assert store.audio_seconds_since(1, 0) == 8.0
    assert store.audio_seconds_since(1, 0, user_id=10) == 5.0
    assert store.audio_seconds_since(1, 1e12) == 0.0


def test_a_newer_schema_is_refused(open_test_library, engine):
    library = open_test_library()
    latest = library.schema_latest
    if engine == "sqlite":
        assert latest == SCHEMA_VERSION
        execute(library, f"pragma user_version = {latest + 1}")
    else:
        execute(library, "insert into schema_version (version) values (?)", [latest + 1])
    library.close()
    with pytest.raises(LibraryTooNew, match="newer version") as refused:
        open_test_library()
    assert f"schema {latest + 1}, newer than this voicebot knows ({latest})" in refused.value.admin_message
    with pytest.raises(LibraryTooNew):
        open_test_library(read_only=True)


def test_guild_settings_default_then_persist(store, open_test_library):
    assert store.settings(1).default_mode == "auto" and store.settings(1).daily_quota_s is None
    store.update_settings(1, cooldown_s=30.0, daily_quota_s=600.0, file_format="mp3", clone_role_id=99)
    again = open_test_library()
    settings = again.settings(1)
    assert (settings.cooldown_s, settings.daily_quota_s, settings.file_format, settings.clone_role_id) == (
        30.0,
        600.0,
        "mp3",
        99,
    )
    assert again.settings(2).cooldown_s == 0.0  # per guild
    assert again.update_settings(1, clone_role_id=None).clone_role_id is None
    with pytest.raises(ValueError):
        again.update_settings(1, default_mode="shout")
    assert again.settings(1).default_mode == "auto"  # nothing of a refused change is kept


def test_default_voice_per_user_and_guild_and_gone_with_the_voice(store):
    add(store, 1, "Ada")
    assert store.default_voice(1, 10) is None
    assert store.set_default_voice(1, 10, "ada").name == "Ada"
    assert store.default_voice(1, 10).name == "Ada" and store.default_voice(1, 11) is None
    with pytest.raises(VoiceNotFound):
        store.set_default_voice(2, 10, "Ada")  # another guild's voice can't be anyone's default
    store.delete(1, "Ada")
    assert store.default_voice(1, 10) is None
    assert execute(store, "select count(*) from user_defaults") == [(0,)]


def test_last_say_is_per_guild_and_user(store):
    assert store.last_say_at(1, 10) is None
    store.record_usage(1, 10, kind="say", audio_seconds=1.0, gpu_seconds=0.1)
    store.record_usage(1, 11, kind="clone", audio_seconds=0.0, gpu_seconds=0.1)
    assert store.last_say_at(1, 10) is not None and store.last_say_at(1, 11) is None
    assert store.last_say_at(2, 10) is None
