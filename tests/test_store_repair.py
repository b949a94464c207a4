"""Repairs never lose a voice: a reference is never deleted, missing files are reported, reads repair
nothing, and the start-up sweep touches only what a crash can leave (never every voice's folder).

A voice's damage as a user meets it (a latent lost or garbled, a recording gone, an add killed mid-way,
a voice deleted while the repairer works) is tested on both engines: files on disk for SQLite, the
`voice_files` row for PostgreSQL (tests/engines.py damages either). The SQLite engine's folders, staging
and sweep are tested on it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main
from bot.errors import VoiceDeleted, VoiceNameTaken, VoiceNeedsRepair
from bot.store import VoiceLibrary, VoiceStore
from bot.store.files import latent_bytes
from tests import media
from tests.engines import (
    execute,
    has_files,
    lose_files,
    lose_latent,
    lose_reference,
    set_latent,
    stored_reference,
    voices_with_files,
    where_of,
)
from tests.test_store import LATENT, add

ROOT = Path(__file__).resolve().parent.parent


def snapshot(data: Path) -> tuple[dict[str, bytes], list[tuple]]:
    """Every file under voices/ with its bytes, and every voice row."""
    import sqlite3

    files = {str(p.relative_to(data)): p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file()}
    files = {k: v for k, v in files.items() if k.startswith("voices")}
    conn = sqlite3.connect(data / "voicebot.db")
    rows = conn.execute("select * from voices order by id").fetchall()
    conn.close()
    return files, rows


def library_snapshot(library: VoiceLibrary) -> object:
    """Everything kept of the library's voices: their rows, recordings and latents."""
    if isinstance(library, VoiceStore):
        return snapshot(library.data_dir)
    return (
        execute(library, "select * from voices order by id"),
        execute(library, "select * from voice_files order by voice_id"),
    )


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.delenv("VOICEBOT_DATABASE_URL", raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "no-modal.toml"))
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str) -> tuple[int, str, str]:
        code = main([args[0], "--data-dir", str(tmp_path), *args[1:]])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture
def library_cli(engine, library_at, tmp_path, monkeypatch, capsys):
    """`voicebot` commands on this test's library: `--data-dir` (SQLite) or VOICEBOT_DATABASE_URL."""
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "no-modal.toml"))
    monkeypatch.chdir(tmp_path)
    if engine == "postgresql":
        monkeypatch.setenv("VOICEBOT_DATABASE_URL", library_at)
        data_dir = str(tmp_path / "unused")
    else:
        monkeypatch.delenv("VOICEBOT_DATABASE_URL", raising=False)
        data_dir = library_at

    def invoke(*args: str) -> tuple[int, str, str]:
        code = main([args[0], "--data-dir", data_dir, *args[1:]])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_a_voice_missing_its_latent_keeps_its_reference_and_its_row(open_test_library):
    store = open_test_library()
    voice = add(store, 1, "Ada")
    lose_latent(store, voice)
    store.close()

    again = open_test_library()  # a start-up, sweep and all
    assert [v.id for v in again.list(1)] == [voice.id]
    assert stored_reference(again, voice) == b"fLaC-bytes"
    with pytest.raises(VoiceNeedsRepair, match="“Ada”") as caught:
        again.load_latent(voice)
    assert "voicebot doctor --repair" in caught.value.admin_message
    assert [v.id for v in again.needing_reencode()] == [voice.id]  # marked for the re-encoder
    assert stored_reference(again, voice) == b"fLaC-bytes" == again.read_reference(voice)


@pytest.mark.parametrize("damage", [b"", b"garbage" * 10, b"\x93NUMPY\x01\x00" + b"x" * 50])
def test_a_garbled_latent_is_a_typed_error_not_a_numpy_traceback(open_test_library, damage):
    store = open_test_library()
    voice = add(store, 1, "Ada")
    set_latent(store, voice, damage)
    with pytest.raises(VoiceNeedsRepair, match="“Ada”") as caught:
        store.load_latent(voice)
    assert "reference recording is intact" in caught.value.admin_message
    assert stored_reference(store, voice) == b"fLaC-bytes"
    assert [v.id for v in store.needing_reencode()] == [voice.id]


def test_the_audit_names_what_each_damaged_voice_needs(open_test_library):
    """What `voicebot doctor` reports: a latent lost, garbled or holding NaN with the recording kept is
    re-encodable; a lost recording leaves a voice that speaks but can't be re-encoded; with both gone
    it needs a backup. Reading it changes nothing."""
    store = open_test_library()
    fine, lost, garbled, nan, no_reference, gone = (
        add(store, 1, name) for name in ("Fine", "Lost", "Garbled", "Nan", "Unrecorded", "Gone")
    )
    lose_latent(store, lost)
    set_latent(store, garbled, b"garbage" * 10)
    with_nan = LATENT.copy()
    with_nan[3, 5] = np.nan
    set_latent(store, nan, latent_bytes(with_nan))
    lose_reference(store, no_reference)
    lose_files(store, gone)
    before = library_snapshot(store)

    found = store.audit()
    assert found.voices == 6 and not found.look_alikes
    assert sorted(v.name for v, _ in found.reencodable) == ["Garbled", "Lost", "Nan"]
    assert all(problem.startswith(("missing", "damaged")) for _, problem in found.reencodable)
    assert [v.name for v in found.no_reference] == ["Unrecorded"]
    assert [v.name for v in found.files_missing] == ["Gone"]
    assert found.repairable
    assert library_snapshot(store) == before
    np.testing.assert_array_equal(store.load_latent(fine), LATENT)
    np.testing.assert_array_equal(store.load_latent(no_reference), LATENT)  # it still speaks
    with pytest.raises(VoiceNeedsRepair) as caught:
        store.read_reference(no_reference)
    assert "lost its reference recording" in caught.value.admin_message


def test_a_missing_voices_folder_deletes_nothing(tmp_path, cli):
    """An unmounted volume, or a backup restored DB-first: rows stay, and so do the folders after."""
    from bot.errors import VoicesFolderMissing

    store = VoiceStore(tmp_path)
    ada, bob = add(store, 1, "Ada"), add(store, 2, "Bob")
    store.close()
    before = snapshot(tmp_path)
    (tmp_path / "voices").rename(tmp_path / "voices.unmounted")

    code, out, _ = cli("voices", "--guild", "1")
    assert code == 0 and "Ada" in out
    store = VoiceStore(tmp_path)  # the bot's start-up, while the folder is away
    with pytest.raises(VoicesFolderMissing) as caught:
        store.load_latent(ada)
    assert "mounted" in caught.value.admin_message and "lists 2 voices:" in caught.value.admin_message
    with pytest.raises(VoicesFolderMissing):
        add(store, 1, "New")  # its folder would hide under the volume once it is back
    store.close()
    assert not (tmp_path / "voices").exists()

    (tmp_path / "voices.unmounted").rename(tmp_path / "voices")  # the volume is back
    again = VoiceStore(tmp_path)
    assert {v.id for g in (1, 2) for v in again.list(g)} == {ada.id, bob.id}
    again.close()
    assert snapshot(tmp_path) == before


def test_a_voice_whose_files_are_all_gone_is_kept(open_test_library):
    store = open_test_library()
    voice = add(store, 1, "Ada")
    lose_files(store, voice)
    store.close()
    again = open_test_library()
    assert [v.id for v in again.list(1)] == [voice.id]
    with pytest.raises(VoiceNeedsRepair) as caught:
        again.load_latent(voice)
    assert "lost its reference recording" in caught.value.admin_message
    assert again.needing_reencode() == []  # nothing to re-encode from: not marked


def test_read_only_commands_repair_nothing(tmp_path, cli):
    store = VoiceStore(tmp_path)
    add(store, 1, "Ada")
    store.close()
    # What a crash or a stray copy can leave: a half-written folder, a folder with no row.
    (tmp_path / "voices" / "1" / ".tmp-deadbeef").mkdir()
    (tmp_path / "voices" / "1" / ".tmp-deadbeef" / "reference.flac").write_bytes(b"fLaC-partial")
    (tmp_path / "voices" / "5" / "0123456789abcdef").mkdir(parents=True)
    (tmp_path / "voices" / "5" / "0123456789abcdef" / "reference.flac").write_bytes(b"fLaC-stray")
    before = snapshot(tmp_path)
    assert cli("voices", "--guild", "1")[0] == 0
    assert cli("voices", "--guild", "5", "--json")[0] == 0
    assert snapshot(tmp_path) == before


def _fs_calls(data: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the store stats or lists while it opens (its start-up sweep included)."""
    seen: list[str] = []
    for name in ("stat", "lstat", "listdir", "scandir"):
        real = getattr(os, name)

        def spy(path=".", *a, _real=real, **k):
            seen.append(os.fsdecode(path) if isinstance(path, str | bytes | os.PathLike) else str(path))
            return _real(path, *a, **k)

        monkeypatch.setattr(os, name, spy)
    try:
        VoiceStore(data).close()
    finally:
        monkeypatch.undo()
    return seen


@pytest.mark.parametrize("voices", [3, 30])
def test_the_start_up_sweep_never_visits_voice_folders(tmp_path, monkeypatch, voices):
    data = tmp_path / str(voices)
    store = VoiceStore(data, max_voices_per_guild=100)
    for i in range(voices):
        add(store, 1 + i % 3, f"v{i}")
    store.close()
    VoiceStore(data).close()  # any one-off upgrade happens here, not in the measured open
    seen = _fs_calls(data, monkeypatch)
    guild_dirs = [str(data / "voices" / str(g)) for g in (1, 2, 3)]
    assert not [p for p in seen if any(p.startswith(g) for g in guild_dirs)], seen


def test_the_start_up_sweep_does_the_same_work_for_3_or_300_voices(tmp_path, monkeypatch):
    counts = []
    for voices in (3, 300):
        data = tmp_path / str(voices)
        store = VoiceStore(data, max_voices_per_guild=1000)
        for i in range(voices):
            add(store, 1 + i % 30, f"v{i}")
        store.close()
        VoiceStore(data).close()
        counts.append(len(_fs_calls(data, monkeypatch)))
    assert counts[0] == counts[1]


KILLED_MID_ADD = """
import os, sys
import numpy as np
from bot.store import VoiceStore, sql
from tests.engines import open_at
store = open_at(sys.argv[1])
def die():
    os._exit(9)  # as SIGKILL would: no clean-up runs
if isinstance(store, VoiceStore):  # killed as the staged folder is renamed into place
    real_rename = os.rename
    def rename_then_die(source, target, *args, **kwargs):
        if sys.argv[2] == "after":
            real_rename(source, target)
        die()
    os.rename = os.replace = rename_then_die
elif sys.argv[2] == "before":  # PostgreSQL: mid-transaction, its row written but not its recording
    real_insert = sql.insert
    def insert_or_die(tx, table, row):
        if table == "voice_files":
            die()
        real_insert(tx, table, row)
    sql.insert = insert_or_die
else:  # PostgreSQL: right after the add's transaction committed
    real_store_voice = store._store_voice
    def store_voice_then_die(*args):
        real_store_voice(*args)
        die()
    store._store_voice = store_voice_then_die
store.add(1, "Ada", owner_id=1, reference_flac=b"fLaC-new", latent=np.ones((4, 80), np.float16),
          duration_s=6.0, revision="r", consent_by=1, source="crash")
"""


def _killed_mid_add(library: VoiceLibrary, moment: str) -> None:
    """A `voicebot clone` adding “Ada” to `library`'s guild 1, killed before its recording is kept
    for good (`before`: SQLite's staged folder not yet in place, PostgreSQL's transaction not yet
    committed) or just after (`after`)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    where = where_of(library)
    code = subprocess.run([sys.executable, "-c", KILLED_MID_ADD, where, moment], cwd=ROOT, env=env)
    assert code.returncode == 9


def test_an_add_killed_before_its_files_were_in_place_is_undone_at_the_next_start(open_test_library, engine):
    store = open_test_library()
    kept = add(store, 1, "Kept")
    store.close()
    _killed_mid_add(store, "before")

    again = open_test_library()
    assert [v.name for v in again.list(1)] == ["Kept"]
    assert voices_with_files(again, 1) == {kept.id}
    assert execute(again, "select name from voices") == [("Kept",)]  # no row reserved or left behind
    if engine == "sqlite":
        voices = again.voices_dir
        leftovers = [p for p in voices.rglob("*") if p.is_dir() and p.name != kept.id]
        assert [p.name for p in leftovers if any(p.iterdir())] == ["1"]  # only the guild folder holds any
    assert add(again, 1, "Ada").name == "Ada"  # the name and the slot are free again


def test_an_add_killed_after_its_files_were_in_place_is_completed_not_deleted(open_test_library, engine):
    store = open_test_library()
    add(store, 1, "Kept")
    store.close()
    _killed_mid_add(store, "after")

    again = open_test_library()
    if engine == "sqlite":  # its row was still 'adding': the start-up sweep completes it
        assert again.last_sweep.finished_adds == 1 and not again.last_sweep.undone_adds
    else:  # PostgreSQL: the add was one transaction, committed whole; nothing was left to complete
        assert not again.last_sweep
    ada = again.get(1, "Ada")
    assert stored_reference(again, ada) == b"fLaC-new" == again.read_reference(ada)
    assert again.load_latent(ada).shape == (4, 80)


def test_a_backup_taken_as_the_readme_says_mid_add_restores_the_recording(tmp_path):
    """README: copy the database with `.backup`, then copy voices/. An add between its reserved row and
    'ready' can land in the copy as a row still 'adding' with its files already in place."""
    live, restored = tmp_path / "live", tmp_path / "restored"
    store = VoiceStore(live)
    add(store, 1, "Kept")
    row_reserved, may_finish = threading.Event(), threading.Event()
    write_files = store._write_files

    def paused(*args):
        row_reserved.set()
        assert may_finish.wait(30)
        write_files(*args)

    store._write_files = paused
    adding = threading.Thread(target=add, args=(store, 1, "Ada"), kwargs={"reference_flac": b"fLaC-ada"})
    adding.start()
    assert row_reserved.wait(30)
    restored.mkdir()
    backup = sqlite3.connect(restored / "voicebot.db")
    sqlite3.connect(live / "voicebot.db").backup(backup)  # what `sqlite3 … ".backup …"` does
    backup.close()
    may_finish.set()
    adding.join(30)
    shutil.copytree(live / "voices", restored / "voices")  # then voices/, as the README says
    store.close()

    again = VoiceStore(restored)
    assert sorted(v.name for v in again.list(1)) == ["Ada", "Kept"]
    ada = again.get(1, "Ada")
    assert (restored / "voices" / "1" / ada.id / "reference.flac").read_bytes() == b"fLaC-ada"
    assert again.read_reference(ada) == b"fLaC-ada"
    again.close()


class FakeBackend:
    name = "fake"

    def __init__(self) -> None:
        self.encoded: list[int] = []

    async def encode_speaker(self, pcm: np.ndarray):
        from bot.tts import SpeakerLatent

        self.encoded.append(len(pcm))
        return SpeakerLatent(np.full((8, 80), 0.5, np.float16), "echo-new")


def _real_voice(store: VoiceLibrary, guild: int, name: str):
    from bot import audio

    flac = audio.encode(media.speech_like(6.0), "flac")
    return add(store, guild, name, reference_flac=flac)


async def test_reencode_pending_rebuilds_a_missing_latent_from_the_kept_reference(open_test_library):
    from bot.cloning import reencode_pending

    store = open_test_library()
    ada, bob = _real_voice(store, 1, "Ada"), _real_voice(store, 1, "Bob")
    reference = stored_reference(store, ada)
    lose_latent(store, ada)
    with pytest.raises(VoiceNeedsRepair):
        store.load_latent(ada)
    backend = FakeBackend()
    repaired = await reencode_pending(store, backend)
    assert [v.id for v in repaired.done] == [ada.id] and len(backend.encoded) == 1 and not repaired.failed
    np.testing.assert_array_equal(store.load_latent(ada), np.full((8, 80), 0.5, np.float16))
    assert store.get(1, "Ada").revision == "echo-new" and store.get(1, "Bob").revision == "echo-abc"
    assert store.needing_reencode() == [] and store.load_latent(bob).shape == LATENT.shape
    assert stored_reference(store, ada) == reference  # re-encoded from it, and kept


def kept_references(library: VoiceLibrary) -> dict[object, bytes]:
    """Every recording the library keeps: by path under voices/ (SQLite, a stray folder's included), by
    voice (PostgreSQL)."""
    if isinstance(library, VoiceStore):
        return {p: p.read_bytes() for p in library.voices_dir.rglob("reference.flac")}
    return {row[0]: bytes(row[1]) for row in execute(library, "select voice_id, reference from voice_files")}


def test_doctor_reports_what_a_repair_would_do_and_changes_nothing(open_test_library, engine, library_cli):
    store = open_test_library()
    no_latent = _real_voice(store, 1, "Latentless")
    gone = add(store, 1, "Gone")
    add(store, 2, "Fine")
    lose_latent(store, no_latent)
    lose_files(store, gone)
    store.close()
    if engine == "sqlite":  # a folder no row knows: only files on a disk can outlive their row
        stray = store.voices_dir / "5" / "0123456789abcdef"
        stray.mkdir(parents=True)
        (stray / "reference.flac").write_bytes(b"fLaC-stray")
    before = library_snapshot(store)

    code, out, err = library_cli("doctor", "--backend", "modal")
    assert code == 1 and err == ""
    assert "“Latentless”" in out and "re-encode" in out
    assert "“Gone”" in out and "backup" in out
    assert ("0123456789abcdef" in out) == (engine == "sqlite")
    assert library_snapshot(store) == before  # doctor without --repair changes nothing


def test_doctor_repair_reencodes_and_tidies_but_deletes_no_reference(
    open_test_library, engine, library_cli, tiny_model_dir
):
    """Re-encodes a lost latent from its recording, on either engine. On SQLite it also settles what a
    crash left (PostgreSQL never leaves any: each write is one transaction)."""
    store = open_test_library()
    no_latent = _real_voice(store, 1, "Latentless")
    gone = add(store, 1, "Gone")
    complete = add(store, 2, "Complete")
    lose_latent(store, no_latent)
    lose_files(store, gone)
    if engine == "sqlite":
        interrupted = add(store, 2, "Interrupted")
        store.db.execute(
            "update voices set state = 'adding' where id in (?, ?)", [interrupted.id, complete.id]
        )
    store.close()
    if engine == "sqlite":
        voices = store.voices_dir
        # Killed before its staged folder was renamed into place: never whole, never confirmed.
        staged = voices / ".staging" / interrupted.id
        staged.parent.mkdir(exist_ok=True)
        (voices / "2" / interrupted.id).rename(staged)
        (voices / "1" / ".tmp-deadbeef").mkdir()  # where older versions staged an add
        (voices / "5" / "0123456789abcdef").mkdir(parents=True)
        (voices / "5" / "0123456789abcdef" / "reference.flac").write_bytes(b"fLaC-stray")
    references = kept_references(store)
    if engine == "sqlite":
        references.pop(staged / "reference.flac")  # never committed

    local = ["--backend", "local", "--weights", str(tiny_model_dir), "--device", "cpu"]
    code, out, err = library_cli("doctor", "--repair", *local)
    assert err == "" and "Re-encoded voice “Latentless”" in out, out
    if engine == "sqlite":
        assert "undid 1 interrupted add, completed 1 add whose files were in place" in out, out
        assert "removed 1 temporary folder." in out, out
        assert not staged.exists()
        assert not (voices / "1" / ".tmp-deadbeef").exists()
    else:
        assert "Repaired:" not in out, out  # nothing half written to tidy
    kept = kept_references(store)
    assert {k: kept[k] for k in references} == references  # every kept recording is still there

    again = open_test_library(sweep=False)
    assert again.load_latent(no_latent).shape[1] == 80
    assert again.get(1, "Latentless").revision.startswith("echo-")
    assert {v.name for v in again.list(1)} == {"Latentless", "Gone"}
    assert [v.name for v in again.list(2)] == ["Complete"]
    again.close()
    code, out, _ = library_cli("doctor", *local)  # what is left needs a person: the voice with no files …
    assert code == 1
    assert "“Gone”" in out and "re-encode" not in out
    assert ("0123456789abcdef" in out) == (engine == "sqlite")  # … and, on SQLite, the stray folder


async def test_the_bots_repairer_rebuilds_a_voice_marked_while_it_runs(open_test_library):
    from bot.cloning import keep_voices_encoded

    store = open_test_library()
    ada = _real_voice(store, 1, "Ada")
    loop = asyncio.get_running_loop()
    rounds: asyncio.Queue[int] = asyncio.Queue()
    looked = store.needing_reencode

    def needing_reencode():  # each call starts a round: the one before it has finished
        voices = looked()
        loop.call_soon_threadsafe(rounds.put_nowait, len(voices))
        return voices

    store.needing_reencode = needing_reencode
    backend = FakeBackend()
    repairer = asyncio.create_task(keep_voices_encoded(store, backend, every_s=0))
    assert await rounds.get() == 0
    await asyncio.to_thread(lose_latent, store, ada)
    with pytest.raises(VoiceNeedsRepair):
        await asyncio.to_thread(store.load_latent, ada)  # a /say meets the damage and marks the voice
    while await rounds.get() == 0:
        pass
    assert await rounds.get() == 0  # the round that found it re-encoded it
    repairer.cancel()
    np.testing.assert_array_equal(store.load_latent(ada), np.full((8, 80), 0.5, np.float16))
    assert backend.encoded and store.get(1, "Ada").revision == "echo-new"


def test_an_emptied_database_beside_voices_is_refused_not_started_afresh(tmp_path):
    from bot.errors import LibraryDamaged

    store = VoiceStore(tmp_path)
    ada = add(store, 1, "Ada")
    store.close()
    (tmp_path / "voicebot.db").write_bytes(b"")  # truncated to nothing: SQLite would call it a new database
    with pytest.raises(LibraryDamaged) as caught:
        VoiceStore(tmp_path)
    assert "restore it from a backup" in caught.value.admin_message
    assert (tmp_path / "voicebot.db").stat().st_size == 0
    assert (tmp_path / "voices" / "1" / ada.id / "reference.flac").exists()


def test_doctor_repair_leaves_a_write_in_flight_alone(tmp_path, cli, monkeypatch):
    """An add that starts in another process (the running bot) after the repair's sweep keeps its
    staged folder: only the sweep, under the exclusive files lock, removes temporary folders."""
    from bot.store import health

    store = VoiceStore(tmp_path)
    add(store, 1, "Ada")
    store.close()
    in_flight = tmp_path / "voices" / ".staging" / "feedfacecafebeef"
    audit = health.audit

    def audit_while_the_bot_adds(store):
        in_flight.mkdir(parents=True, exist_ok=True)
        (in_flight / "reference.flac").write_bytes(b"fLaC-being-written")
        return audit(store)

    monkeypatch.setattr(health, "audit", audit_while_the_bot_adds)
    _, out, _ = cli("doctor", "--repair", "--backend", "modal")
    assert "1 temporary folder" in out  # reported as a write under way or left over …
    assert (in_flight / "reference.flac").read_bytes() == b"fLaC-being-written"  # … and not touched


@pytest.mark.parametrize("moment", ["before", "after"])
def test_an_add_killed_in_another_process_does_not_hold_its_name_until_a_restart(open_test_library, moment):
    running = open_test_library()  # the bot, open all along
    add(running, 1, "Kept")
    _killed_mid_add(running, moment)  # a `voicebot clone` killed mid-way
    if moment == "before":  # never whole: the name and the slot are free at once
        assert running.check_can_add(1, "Ada") == "Ada"
        assert add(running, 1, "Ada", reference_flac=b"fLaC-again").name == "Ada"
        ada = running.get(1, "Ada")
        assert running.read_reference(ada) == b"fLaC-again"
    else:  # its files were whole: it is completed, so the name is really taken
        with pytest.raises(VoiceNameTaken):
            add(running, 1, "Ada")
        assert running.read_reference(running.get(1, "Ada")) == b"fLaC-new"
    assert running.count(1) == 2


class DeletingBackend(FakeBackend):
    """Deletes the voice it is encoding, as a member's /voice delete would while the repairer works."""

    def __init__(self, store: VoiceLibrary, name: str) -> None:
        super().__init__()
        self.store, self.name = store, name

    async def encode_speaker(self, pcm: np.ndarray):
        if self.name is not None:
            await asyncio.to_thread(self.store.delete, 1, self.name)
            self.name = None
        return await super().encode_speaker(pcm)


@pytest.mark.parametrize("which", ["being encoded", "waiting its turn"])
async def test_a_voice_deleted_while_the_repairer_works_is_passed_over_and_the_rest_rebuilt(
    open_test_library, which
):
    from bot.cloning import reencode_pending

    store = open_test_library()
    for voice in (_real_voice(store, 1, "Ada"), _real_voice(store, 1, "Bob")):
        lose_latent(store, voice)
        store.mark_needs_reencode(voice)
    first, second = store.needing_reencode()
    deleted, kept = (first, second) if which == "being encoded" else (second, first)
    repairs = await reencode_pending(store, DeletingBackend(store, deleted.name))
    assert [v.name for v in repairs.done] == [kept.name] and not repairs.failed
    assert not has_files(store, deleted)  # no latent written into a deleted voice
    assert [v.name for v in store.list(1)] == [kept.name] and store.needing_reencode() == []
    np.testing.assert_array_equal(store.load_latent(kept), np.full((8, 80), 0.5, np.float16))


def test_a_voice_deleted_while_its_latent_is_swapped_is_gone_and_the_swap_says_so(open_test_library):
    """A member deletes a voice while the repairer swaps in its new latent, the two writes overlapping
    at each moment of the delete in turn: the delete goes through, the swap either came first or is
    told the voice is gone (VoiceDeleted), neither is ever refused as "busy", and no latent is left
    behind for the deleted voice."""
    store = open_test_library()
    transaction = store.transaction
    pause_after = 0  # the deleter pauses after this many of its statements
    mid_delete, may_go_on = threading.Event(), threading.Event()

    class Pausing:  # the deleter's transaction, held open after its `pause_after`th statement
        def __init__(self, tx, ran: list[str]):
            self.tx, self.ran = tx, ran

        def execute(self, statement, parameters=()):
            result = self.tx.execute(statement, parameters)
            self.ran.append(statement)
            if len(self.ran) == pause_after:
                mid_delete.set()
                assert may_go_on.wait(30)
            return result

    ran: list[str] = []

    @contextlib.contextmanager
    def pausing_in_the_deleter(**kwargs):
        with transaction(**kwargs) as tx:
            yield Pausing(tx, ran) if threading.current_thread().name == "deleter" else tx

    store.transaction = pausing_in_the_deleter
    outcomes: dict[str, object] = {}

    def run(name: str, call) -> threading.Thread:
        def attempt() -> None:
            try:
                outcomes[name] = call()
            except Exception as exc:
                outcomes[name] = exc

        thread = threading.Thread(target=attempt, name=name)
        thread.start()
        return thread

    while True:
        pause_after += 1
        ran.clear()
        outcomes.clear()
        mid_delete.clear()
        may_go_on.clear()
        voice = add(store, 1, f"Ada{pause_after}")
        deleter = run("deleter", functools.partial(store.delete, 1, voice.name))
        while not mid_delete.wait(0.01) and deleter.is_alive():
            pass
        if not mid_delete.is_set():  # the delete ran to its end without reaching that statement
            break
        swapper = run("swapper", functools.partial(store.replace_latent, voice, LATENT + 1, "echo-new"))
        swapper.join(1.0)  # the swap waits for the delete's write, or came first
        may_go_on.set()
        deleter.join(30)
        swapper.join(30)
        moment = (pause_after, ran[pause_after - 1])  # which statement the delete was paused after
        assert outcomes["deleter"] == voice, moment
        swapped = outcomes["swapper"]
        assert isinstance(swapped, VoiceDeleted) or getattr(swapped, "revision", "") == "echo-new", moment
        assert store.list(1) == [] and not has_files(store, voice), moment
    assert outcomes["deleter"] == voice and pause_after > 2  # every statement of a delete was a moment


async def test_a_latent_that_is_a_folder_is_rebuilt_without_stopping_the_round(tmp_path):
    from bot.cloning import reencode_pending

    store = VoiceStore(tmp_path)
    ada, bob = _real_voice(store, 1, "Ada"), _real_voice(store, 1, "Bob")
    folder = tmp_path / "voices" / "1" / ada.id
    (folder / "latent.npy").unlink()
    (folder / "latent.npy").mkdir()
    (folder / "latent.npy" / "something").write_bytes(b"kept")
    (tmp_path / "voices" / "1" / bob.id / "latent.npy").unlink()
    for voice in (ada, bob):
        store.mark_needs_reencode(voice)
    repairs = await reencode_pending(store, FakeBackend())
    assert sorted(v.name for v in repairs.done) == ["Ada", "Bob"] and not repairs.failed
    np.testing.assert_array_equal(store.load_latent(ada), np.full((8, 80), 0.5, np.float16))
    aside = [p for p in folder.iterdir() if p.name.startswith("latent.npy.not-a-file-")]
    assert len(aside) == 1 and (aside[0] / "something").read_bytes() == b"kept"  # moved, not deleted
    store.close()


def test_doctor_repair_reports_a_latent_that_is_a_folder_instead_of_exiting_74(tmp_path, cli, tiny_model_dir):
    store = VoiceStore(tmp_path)
    ada = _real_voice(store, 1, "Ada")
    store.close()
    folder = tmp_path / "voices" / "1" / ada.id
    (folder / "latent.npy").unlink()
    (folder / "latent.npy").mkdir()
    local = ["--backend", "local", "--weights", str(tiny_model_dir), "--device", "cpu"]
    code, out, err = cli("doctor", "--repair", *local)
    assert code != 74 and err == "", err
    assert "Re-encoded voice “Ada”" in out, out
    assert VoiceStore(tmp_path, read_only=True).load_latent(ada).shape[1] == 80


async def test_the_repairer_keeps_running_after_a_round_fails_unexpectedly(open_test_library):
    from bot.cloning import keep_voices_encoded

    store = open_test_library()
    rounds = 0
    looked = store.needing_reencode
    second_round = asyncio.Event()

    def needing_reencode():
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            raise FileNotFoundError("voices/1/x/latent.npy")  # not a LibraryError nor a backend error
        second_round.set()
        return looked()

    store.needing_reencode = needing_reencode
    repairer = asyncio.create_task(keep_voices_encoded(store, FakeBackend(), every_s=0))
    await asyncio.wait_for(second_round.wait(), 30)
    assert not repairer.done() and rounds >= 2
    repairer.cancel()
