"""Deletion on request (`forget_user`), a voice's use, and the purge of servers the bot left: on both
engines, a crash part-way through a forget included, and `voicebot forget|purge`."""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pytest

from bot.cli import main
from bot.store import VoiceLibrary
from tests.engines import execute, has_files, is_database_url

LATENT = np.arange(8 * 80, dtype=np.float16).reshape(8, 80)
ALICE, BOB, CAROL = 101, 202, 303
G1, G2, G3 = 11, 22, 33
DAY = 86_400.0


def add(store: VoiceLibrary, guild: int, name: str, owner: int, **kw):
    values = dict(
        owner_id=owner,
        reference_flac=b"fLaC-" + name.encode(),
        latent=LATENT,
        duration_s=6.0,
        revision="echo-abc",
        consent_by=owner,
        source="test",
    )
    values.update(kw)
    return store.add(guild, name, **values)


def ask_consent(store: VoiceLibrary, voice, speaker: int, requested_by: int) -> None:
    """A voice waiting for its speaker's consent, as the consent flow leaves it."""
    execute(store, "UPDATE voices SET consent_pending = 1 WHERE id = ?", [voice.id])
    execute(
        store,
        "INSERT INTO consents (voice_id, guild_id, speaker_id, requested_by, sentence, requested_at, "
        "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [voice.id, voice.guild_id, speaker, requested_by, "I agree", time.time(), time.time() + 3600],
    )


def count(store: VoiceLibrary, table: str, where: str = "1 = 1", args=()) -> int:
    return int(execute(store, f"SELECT count(*) FROM {table} WHERE {where}", list(args))[0][0])


@pytest.fixture
def store(open_test_library):
    return open_test_library()


@pytest.fixture
def alices_world(store):
    """Alice owns voices in two servers, Bob owns one of her (she is its speaker) and one of his own,
    Carol asked Alice's consent for a voice that waits for it; usage, defaults, auto-read and API keys
    around them."""
    voices = {
        "mine1": add(store, G1, "AliceOne", ALICE),
        "mine2": add(store, G2, "AliceTwo", ALICE),
        "of_her": add(store, G1, "AliceByBob", BOB, speaker_id=ALICE),
        "bobs": add(store, G1, "Bob", BOB),
        "waiting": add(store, G2, "AliceByCarol", CAROL),
    }
    ask_consent(store, voices["waiting"], speaker=ALICE, requested_by=CAROL)
    store.record_usage(G1, ALICE, kind="say", audio_seconds=3, gpu_seconds=1, voice_id=voices["bobs"].id)
    store.record_usage(G1, BOB, kind="say", audio_seconds=4, gpu_seconds=1, voice_id=voices["of_her"].id)
    store.record_usage(G1, BOB, kind="say", audio_seconds=5, gpu_seconds=1, voice_id=voices["bobs"].id)
    store.set_default_voice(G1, ALICE, "Bob")
    store.set_default_voice(G1, BOB, "AliceByBob")
    store.set_autoread_member(G1, ALICE, True)
    store.set_autoread_member(G1, BOB, True)
    store.update_autoread_settings(G1, fallback_voice_id=voices["of_her"].id)
    store.create_api_key(G2, created_by=ALICE, name="Alice's")
    store.create_api_key(G1, created_by=BOB, name="Bob's")
    return voices


def test_voices_of_member_are_those_they_own_or_are_the_speaker_of_across_servers(store, alices_world):
    found = {v.name for v in store.voices_of_member(ALICE)}
    assert found == {"AliceOne", "AliceTwo", "AliceByBob"}
    assert {v.name for v in store.voices_of_member(BOB)} == {"AliceByBob", "Bob"}


def test_forget_deletes_every_trace_of_the_member_and_nothing_of_anyone_else(store, alices_world, caplog):
    v = alices_world
    preview = store.forget_user(ALICE, requested_by=ALICE, dry_run=True)
    assert count(store, "voices") == 5 and count(store, "forgets") == 0  # a preview writes nothing
    with caplog.at_level(logging.INFO, logger="voicebot.audit"):
        report = store.forget_user(ALICE, requested_by=ALICE)
    assert report.as_dict() == preview.as_dict()
    assert report.as_dict()["voices"] == {
        str(G1): ["AliceByBob", "AliceOne"],
        str(G2): ["AliceByCarol", "AliceTwo"],
    }
    assert report.rows == {
        "usage": 1,
        "default voices": 1,
        "auto-read opt-ins": 1,
        "speech reservations": 0,
        "consent requests": 1,
        "API keys": 1,
    }
    # What is left is Bob's own, and nothing names Alice
    assert [r[0] for r in execute(store, "SELECT name FROM voices")] == ["Bob"]
    assert all(not has_files(store, voice) for key, voice in v.items() if key != "bobs")
    assert has_files(store, v["bobs"])
    for table, column in [
        ("usage", "user_id"),
        ("user_defaults", "user_id"),
        ("autoread_members", "user_id"),
    ]:
        assert count(store, table, f"{column} = ?", [ALICE]) == 0
    assert count(store, "consents") == 0 and count(store, "forgets") == 0
    # Bob's usage in the deleted voice keeps its seconds, not the voice; his default of it is gone
    assert sorted(execute(store, "SELECT audio_seconds, voice_id FROM usage WHERE user_id = ?", [BOB])) == [
        (4.0, None),
        (5.0, v["bobs"].id),
    ]
    assert store.default_voice(G1, BOB) is None
    assert store.autoread_settings(G1).fallback_voice_id is None
    assert store.autoread_members(G1) == {BOB}
    assert [k.name for g in (G1, G2) for k in store.api_keys(g)] == ["Bob's"]
    events = [getattr(r, "audit", {}) for r in caplog.records]
    assert [e["event"] for e in events].count("delete") == 4
    (forget,) = [e for e in events if e["event"] == "forget"]
    assert forget["user"] == ALICE and forget["voices"] == 4 and forget["actor"] == ALICE
    # Again: nothing left to delete, and it says so
    assert not store.forget_user(ALICE, requested_by=ALICE)


def test_a_crash_part_way_through_a_forget_is_finished_at_the_next_start(
    store, alices_world, open_test_library, monkeypatch
):
    removed = []
    remove = store._remove_voice

    def crash_after_the_first(voice):
        if removed:
            raise RuntimeError("killed")
        remove(voice)
        removed.append(voice.id)

    monkeypatch.setattr(store, "_remove_voice", crash_after_the_first)
    with pytest.raises(RuntimeError):
        store.forget_user(ALICE, requested_by="cli")
    assert count(store, "voices") == 4 and count(store, "forgets") == 1
    assert store.forgets_pending() == [ALICE]
    store.close()

    restarted = open_test_library()
    (report,) = restarted.resume_forgets()
    assert report.user_id == ALICE and report.voice_count == 3
    assert [r[0] for r in execute(restarted, "SELECT name FROM voices")] == ["Bob"]
    assert count(restarted, "usage", "user_id = ?", [ALICE]) == 0
    assert count(restarted, "forgets") == 0 and restarted.resume_forgets() == []


def test_usage_of_a_voice_says_who_when_and_how_long(store):
    voice = add(store, G1, "Ada", ALICE)
    other = add(store, G1, "Eve", ALICE)
    now = time.time()
    store.record_usage(
        G1, BOB, kind="say", audio_seconds=2.5, gpu_seconds=1, at=now - 40 * DAY, voice_id=voice.id
    )
    store.record_usage(G1, BOB, kind="say", audio_seconds=3.5, gpu_seconds=1, at=now - 60, voice_id=voice.id)
    store.record_usage(
        G1, CAROL, kind="say", audio_seconds=1.0, gpu_seconds=1, at=now - 10, voice_id=other.id
    )
    reservation = store.reserve_speech(
        G1, CAROL, 9, cooldown_s=0, daily_quota_s=100, now=now, day_start=now - 100, holder="t"
    )
    store.settle_speech(
        reservation, G1, CAROL, audio_seconds=1.5, gpu_seconds=1, at=now - 5, voice_id=voice.id
    )
    uses = store.usage_of_voice(G1, voice.id, now - 30 * DAY)
    assert [(u.user_id, u.seconds) for u in uses] == [(CAROL, 1.5), (BOB, 3.5)]
    assert store.usage_of_voice(G2, voice.id, 0) == []  # another server's view: nothing


def test_purge_deletes_a_departed_server_after_its_grace_period_only(store):
    kept = add(store, G2, "Stays", ALICE)
    gone = [add(store, G1, "Ada", ALICE), add(store, G1, "Eve", BOB)]
    store.record_usage(G1, ALICE, kind="say", audio_seconds=1, gpu_seconds=1, voice_id=gone[0].id)
    store.record_usage(G2, ALICE, kind="say", audio_seconds=1, gpu_seconds=1)
    store.update_settings(G1, cooldown_s=5.0)
    store.set_default_voice(G1, BOB, "Ada")
    store.add_pronunciation(G1, "GIF", "jif")
    store.set_autoread_channel(G1, 5, True)
    store.set_autoread_member(G1, BOB, True)
    store.create_api_key(G1, created_by=BOB, name="CI")
    store.create_api_key(G2, created_by=BOB, name="CI")
    t0 = 1_000_000.0
    store.departed(G1, at=t0)
    store.departed(G1, at=t0 + 50)  # leaving again before a return keeps the first time
    assert store.departures() == {G1: t0}

    assert store.purge(t0 + 30 * DAY - 1, grace_s=30 * DAY).guilds == []
    preview = store.purge(t0 + 30 * DAY, grace_s=30 * DAY, dry_run=True)
    assert [(g.guild_id, sorted(g.voices)) for g in preview.guilds] == [(G1, ["Ada", "Eve"])]
    assert count(store, "voices", "guild_id = ?", [G1]) == 2  # a dry run deletes nothing

    report = store.purge(t0 + 30 * DAY, grace_s=30 * DAY)
    (purged,) = report.guilds
    assert purged.guild_id == G1 and sorted(purged.voices) == ["Ada", "Eve"]
    assert purged.rows["usage"] == 1 and purged.rows["pronunciations"] == 1 and purged.rows["api_keys"] == 1
    assert [k.guild_id for k in store.api_keys(G1) + store.api_keys(G2)] == [G2]
    assert store.guilds_with_data() == {G2}
    assert not any(has_files(store, v) for v in gone) and has_files(store, kept)
    assert store.departures() == {} and store.purge(t0 + 90 * DAY, grace_s=30 * DAY).guilds == []


def test_a_return_before_the_grace_period_ends_keeps_everything(store):
    voice = add(store, G1, "Ada", ALICE)
    store.departed(G1, at=1000.0)
    assert store.returned(G1) is True and store.returned(G1) is False
    assert store.purge(1000.0 + 365 * DAY, grace_s=30 * DAY).guilds == []
    assert store.get(G1, "Ada") == voice and has_files(store, voice)


def test_purge_only_the_servers_picked(store):
    add(store, G1, "Ada", ALICE)
    add(store, G3, "Eve", ALICE)
    store.departed(G1, at=0.0)
    store.departed(G3, at=0.0)
    report = store.purge(100 * DAY, grace_s=DAY, only=lambda guild: guild == G3)
    assert [g.guild_id for g in report.guilds] == [G3] and store.departures() == {G1: 0.0}


# --- the CLI -------------------------------------------------------------------------------------


@pytest.fixture
def cli(library_at, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VOICEBOT_DATABASE_URL", raising=False)
    monkeypatch.delenv("VOICEBOT_PURGE_GRACE_DAYS", raising=False)
    data = library_at
    if is_database_url(library_at):
        monkeypatch.setenv("VOICEBOT_DATABASE_URL", library_at)
        data = str(tmp_path / "data")

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main([args[0], "--data-dir", data, *args[1:]])
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_forget_prints_what_went_and_what_earlier_copies_still_hold(cli, store, alices_world):
    code, out, err = cli("forget", "--user", str(ALICE))
    assert (code, err) == (0, "")
    assert f"Deleted everything stored about member {ALICE}:" in out
    assert f"guild {G1}: AliceByBob, AliceOne" in out and "4 voices" in out
    assert "voicebot export" in out and "backups" in out
    assert count(store, "voices") == 1
    code, out, _ = cli("forget", "--user", str(ALICE), "--json")
    assert code == 0 and json.loads(out)["voices"] == {} and "earlier_copies" in json.loads(out)


def test_cli_forget_refuses_a_bad_id_and_finds_nothing_without_a_library(cli, tmp_path):
    code, out, err = cli("forget", "--user", "alice")
    assert code == 2 and out == "" and "is not a Discord user id" in err
    code, out, _ = cli("forget", "--user", "5")
    assert code == 0 and out.startswith("Nothing was stored about member 5.")


def test_cli_purge_lists_with_dry_run_and_purges_what_is_due(cli, store, monkeypatch):
    add(store, G1, "Ada", ALICE)
    add(store, G2, "Eve", ALICE)
    store.departed(G1, at=time.time() - 31 * DAY)
    store.departed(G2, at=time.time() - DAY)
    code, out, err = cli("purge", "--dry-run")
    assert (code, err) == (0, "") and out.startswith(f"Would purge guild {G1} ") and "1 voice (Ada)" in out
    assert count(store, "voices") == 2
    code, out, _ = cli("purge", "--json")
    result = json.loads(out)
    assert (
        code == 0
        and [g["guild_id"] for g in result["guilds"]] == [G1]
        and list(result["waiting"]) == [str(G2)]
    )
    assert [r[0] for r in execute(store, "SELECT name FROM voices")] == ["Eve"]
    monkeypatch.setenv("VOICEBOT_PURGE_GRACE_DAYS", "0")
    code, out, _ = cli("purge")
    assert code == 0 and out.startswith(f"Purged guild {G2} ") and count(store, "voices") == 0
    monkeypatch.setenv("VOICEBOT_PURGE_GRACE_DAYS", "-1")
    code, out, err = cli("purge")
    assert code == 2 and "VOICEBOT_PURGE_GRACE_DAYS is -1; allowed is 0 to 3650." in err


# --- migrate and export carry what privacy needs ---------------------------------------------------


def test_migrate_carries_pending_voices_consents_departures_forgets_and_usage_voices(
    tmp_path, postgres_url, capsys, monkeypatch
):
    from bot.store import VoiceStore
    from bot.store.postgres import PostgresVoiceStore

    monkeypatch.chdir(tmp_path)
    source = VoiceStore(tmp_path / "data")
    voice = add(source, G1, "Ada", ALICE)
    waiting = add(source, G1, "Eve", BOB)
    ask_consent(source, waiting, speaker=CAROL, requested_by=BOB)
    source.record_usage(G1, BOB, kind="say", audio_seconds=2.0, gpu_seconds=1, at=50.0, voice_id=voice.id)
    execute(source, "INSERT INTO guild_settings (guild_id, speaker_consent) VALUES (?, 0)", [G1])
    source.departed(G2, at=123.0)
    execute(
        source, "INSERT INTO forgets (user_id, requested_at, requested_by) VALUES (?, 1.0, 'cli')", [CAROL]
    )
    source.close()
    code, _, err = (
        main(["--data-dir", str(tmp_path / "data"), "migrate", "--to", postgres_url]),
        *capsys.readouterr(),
    )
    assert code == 0, err
    target = PostgresVoiceStore(postgres_url)
    try:
        assert [v.pending for v in sorted(target.all_voices(), key=lambda v: v.name)] == [False, True]
        assert execute(target, "SELECT voice_id, speaker_id, requested_by FROM consents") == [
            (waiting.id, CAROL, BOB)
        ]
        assert [(u.user_id, u.seconds) for u in target.usage_of_voice(G1, voice.id, 0)] == [(BOB, 2.0)]
        assert execute(target, "SELECT speaker_consent FROM guild_settings") == [(0,)]
        assert target.departures() == {G2: 123.0} and target.forgets_pending() == [CAROL]
    finally:
        target.close()


def test_an_export_leaves_out_voices_waiting_for_consent_and_import_refuses_them(tmp_path):
    import io
    import tarfile

    from bot import archive
    from bot.errors import InvalidInput
    from bot.store import VoiceStore

    store = VoiceStore(tmp_path / "data")
    add(store, G1, "Ada", ALICE)
    ask_consent(store, add(store, G1, "Eve", BOB), speaker=CAROL, requested_by=BOB)
    data, voices = archive.export_guild(store, G1)
    assert [v.name for v in voices] == ["Ada"]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    manifest = json.loads(members.pop(archive.MANIFEST))
    assert [v["name"] for v in manifest["voices"]] == ["Ada"]
    manifest["voices"][0]["consent_pending"] = 1  # as a hand-edited archive could say
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, body in [(archive.MANIFEST, json.dumps(manifest).encode()), *members.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    path = tmp_path / "edited.tar"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(InvalidInput, match="waits for its speaker's consent"):
        archive.import_guild(store, path, G2)
    assert store.list(G2) == []
    store.close()
