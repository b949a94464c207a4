"""Per-server API keys in the library (bot.store.api_keys), on both engines: a key works once made and
stops when revoked, only its hash is kept, a wrong or foreign key is nobody's, the limit and names hold,
and forget, purge and migrate treat keys as the module says."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from bot.errors import ApiKeyNameTaken, ApiKeyNotFound, InvalidApiKeyName, TooManyApiKeys
from bot.store import VoiceLibrary
from bot.store.api_keys import MAX_API_KEYS, ApiKey
from tests.engines import execute

G1, G2 = 11, 22
ALICE, BOB = 101, 202


@pytest.fixture
def store(open_test_library) -> VoiceLibrary:
    return open_test_library()


def test_a_new_key_works_and_is_shown_once_in_its_documented_shape(store):
    key, full_key = store.create_api_key(G1, created_by=ALICE, name="  CI  ")
    assert isinstance(key, ApiKey) and (key.guild_id, key.created_by, key.name) == (G1, ALICE, "CI")
    prefix, key_hex, secret = full_key.split("_")
    assert (prefix, f"key_{key_hex}") == ("vbk", key.id) and len(secret) == 64
    assert int(key_hex, 16) >= 0 and int(secret, 16) >= 0 and key.last_used_at is None
    assert store.api_key_for(full_key) == key
    assert store.api_key_for(f" {full_key}\n") == key  # as a header or a file may carry it
    assert store.api_keys(G1) == [key] and store.api_keys(G2) == []
    # a second key has its own id and secret
    other, other_full = store.create_api_key(G1, created_by=BOB, name="home")
    assert other.id != key.id and other_full.split("_")[2] != secret
    assert [k.name for k in store.api_keys(G1)] == ["CI", "home"]


def test_the_library_keeps_no_secret_and_lists_never_show_one(store):
    key, full_key = store.create_api_key(G1, created_by=ALICE, name="CI")
    secret = full_key.rsplit("_", 1)[1]
    (row,) = execute(store, "SELECT * FROM api_keys")
    assert not any(secret in str(value) or full_key in str(value) for value in row)
    assert all(secret not in repr(k) and "hash" not in repr(k) for k in [key, *store.api_keys(G1)])
    assert not hasattr(key, "secret_hash")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda full: full[:-1] + ("0" if full[-1] != "0" else "1"),  # a wrong secret
        lambda full: full[:-1],  # cut short
        lambda full: full + "0",  # too long
        lambda full: full.upper(),
        lambda full: full.replace("vbk_", "sk-"),
        lambda full: full.split("_", 2)[2],  # the secret alone
        lambda full: "vbk_000000000000_" + full.split("_", 2)[2],  # its secret with an unknown id
        lambda full: "",
        lambda full: "garbage",
        lambda full: "Bearer " + full,
        lambda full: "vbk_" + "é" * 12 + "_" + "0" * 64,
    ],
    ids=[
        "wrong-secret",
        "truncated",
        "too-long",
        "upper-case",
        "other-prefix",
        "secret-alone",
        "unknown-id",
        "empty",
        "garbage",
        "bearer-prefix",
        "not-hex",
    ],
)
def test_anything_but_the_key_itself_is_nobodys(store, tamper):
    _, full_key = store.create_api_key(G1, created_by=ALICE, name="CI")
    assert store.api_key_for(tamper(full_key)) is None
    assert store.api_key_for(full_key) is not None


def test_a_key_is_its_servers_only(store):
    theirs, their_full = store.create_api_key(G2, created_by=BOB, name="CI")
    _, my_full = store.create_api_key(G1, created_by=ALICE, name="CI")  # the same name, elsewhere: fine
    # another server's id with this server's secret, and the other way round
    their_id, my_secret = their_full.split("_")[1], my_full.split("_")[2]
    assert store.api_key_for(f"vbk_{their_id}_{my_secret}") is None
    assert store.api_key_for(their_full).guild_id == G2 and store.api_key_for(my_full).guild_id == G1
    with pytest.raises(ApiKeyNotFound):
        store.revoke_api_key(G1, theirs.id)  # another server's key, by its id
    assert store.api_key_for(their_full) == theirs


def test_revoking_by_id_name_or_the_key_itself_stops_it_at_once(store, caplog):
    by_id, by_id_full = store.create_api_key(G1, created_by=ALICE, name="one")
    by_name, by_name_full = store.create_api_key(G1, created_by=ALICE, name="Two")
    _, itself_full = store.create_api_key(G1, created_by=ALICE, name="three")
    with caplog.at_level(logging.INFO, logger="voicebot.audit"):
        assert store.revoke_api_key(G1, by_id.id, actor=ALICE) == by_id
        assert store.revoke_api_key(G1, " two ", actor=ALICE) == by_name  # names are case-blind
        assert store.revoke_api_key(G1, itself_full, actor="cli").name == "three"
    assert [store.api_key_for(k) for k in (by_id_full, by_name_full, itself_full)] == [None, None, None]
    assert store.api_keys(G1) == [] and execute(store, "SELECT count(*) FROM api_keys") == [(0,)]
    with pytest.raises(ApiKeyNotFound) as missing:
        store.revoke_api_key(G1, "one")
    assert "no API key called “one”" in missing.value.message and "/apikey list" in missing.value.message
    for pasted in (itself_full, itself_full[:-3]):  # a pasted key, whole or cut, is never repeated back
        with pytest.raises(ApiKeyNotFound) as refused:
            store.revoke_api_key(G1, pasted)
        assert itself_full.split("_")[2][:8] not in refused.value.message
    events = [r.audit for r in caplog.records if getattr(r, "audit", {}).get("action") == "revoke"]
    assert [(e["action"], e["actor"]) for e in events] == [
        ("revoke", ALICE),
        ("revoke", ALICE),
        ("revoke", "cli"),
    ]
    assert not any(itself_full.split("_")[2] in r.getMessage() for r in caplog.records)


def test_every_create_and_revoke_is_audited_with_the_id_and_name_never_the_key(store, caplog):
    with caplog.at_level(logging.INFO, logger="voicebot.audit"):
        key, full_key = store.create_api_key(G1, created_by=ALICE, name="CI")
        store.create_api_key(G1, created_by=0, name="cron", actor="cli")
        store.revoke_api_key(G1, "CI", actor=BOB)
    events = [r.audit for r in caplog.records if hasattr(r, "audit")]
    assert [(e["event"], e["action"], e["actor"], e["guild"], e["name"]) for e in events] == [
        ("apikey", "create", ALICE, G1, "CI"),
        ("apikey", "create", "cli", G1, "cron"),
        ("apikey", "revoke", BOB, G1, "CI"),
    ]
    assert events[0]["key"] == key.id
    secret = full_key.split("_")[2]
    assert not any(secret in r.getMessage() or full_key in str(r.__dict__) for r in caplog.records)


def test_names_are_labels_unique_in_a_server(store):
    store.create_api_key(G1, created_by=ALICE, name="CI")
    with pytest.raises(ApiKeyNameTaken) as taken:
        store.create_api_key(G1, created_by=BOB, name="ci")
    assert "already has an API key called “CI”" in taken.value.message
    for name, problem in [
        ("x" * 65, "at most 64 characters"),
        ("bell\x07", "letters, digits"),
        ("vbk_0123456789ab_" + "0" * 64, "looks like a key"),
        ("key_0123456789ab", "looks like a key"),
    ]:
        with pytest.raises(InvalidApiKeyName, match=problem) as refused:
            store.create_api_key(G1, created_by=ALICE, name=name)
        assert "0" * 64 not in refused.value.message
    assert store.create_api_key(G1, created_by=ALICE, name="x" * 64)[0].name == "x" * 64
    assert store.create_api_key(G1, created_by=ALICE, name=" two\n words ")[0].name == "two words"
    # no name: "key", then the first free "key-N"
    assert [store.create_api_key(G1, created_by=ALICE, name=" ")[0].name for _ in range(3)] == [
        "key",
        "key-2",
        "key-3",
    ]
    assert len(store.api_keys(G1)) == 6


def test_a_server_holds_at_most_the_limit_even_when_made_at_once(store, open_test_library):
    for i in range(MAX_API_KEYS - 4):
        store.create_api_key(G1, created_by=ALICE, name=f"k{i}")
    others = [open_test_library() for _ in range(8)]
    made, refused = [], []

    def make(library: VoiceLibrary, i: int) -> None:
        try:
            made.append(library.create_api_key(G1, created_by=BOB, name=f"race{i}"))
        except TooManyApiKeys as exc:
            refused.append(exc)

    threads = [threading.Thread(target=make, args=(lib, i)) for i, lib in enumerate(others)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(made), len(refused)) == (4, 4) and len(store.api_keys(G1)) == MAX_API_KEYS
    with pytest.raises(TooManyApiKeys) as full:
        store.create_api_key(G1, created_by=ALICE, name="one more")
    assert f"limit of {MAX_API_KEYS} API keys" in full.value.message
    assert store.create_api_key(G2, created_by=ALICE, name="elsewhere")[0].guild_id == G2
    store.revoke_api_key(G1, "k0")
    assert store.create_api_key(G1, created_by=ALICE, name="one more")[0].name == "one more"


def test_last_used_is_noted(store):
    key, full_key = store.create_api_key(G1, created_by=ALICE, name="CI")
    store.api_key_used(key.id, at=1234.5)
    assert store.api_key_for(full_key).last_used_at == 1234.5
    store.api_key_used(key.id)
    (listed,) = store.api_keys(G1)
    assert listed.last_used_at is not None and listed.last_used_at >= key.created_at
    store.api_key_used("key_000000000000")  # a key revoked meanwhile: nothing to note, no error


def test_the_awaitable_twins_do_the_same(store):
    async def scenario() -> None:
        key, full_key = await store.aio.create_api_key(G1, created_by=ALICE, name="CI")
        assert await store.aio.api_key_for(full_key) == key
        await store.aio.api_key_used(key.id, 99.0)
        assert [k.last_used_at for k in await store.aio.api_keys(G1)] == [99.0]
        assert (await store.aio.revoke_api_key(G1, "CI")).id == key.id
        assert await store.aio.api_key_for(full_key) is None

    asyncio.run(scenario())


def test_a_forget_deletes_the_keys_the_member_made_and_no_others(store):
    _, alices = store.create_api_key(G1, created_by=ALICE, name="alice")
    _, alices_too = store.create_api_key(G2, created_by=ALICE, name="alice")
    bobs_key, bobs = store.create_api_key(G1, created_by=BOB, name="bob")
    preview = store.forget_user(ALICE, requested_by=ALICE, dry_run=True)
    assert preview.rows["API keys"] == 2 and store.api_key_for(alices) is not None
    report = store.forget_user(ALICE, requested_by=ALICE)
    assert report.rows["API keys"] == 2
    assert store.api_key_for(alices) is None and store.api_key_for(alices_too) is None
    assert store.api_key_for(bobs) == bobs_key
    assert execute(store, "SELECT count(*) FROM api_keys WHERE created_by = ?", [ALICE]) == [(0,)]


def test_a_purge_deletes_the_keys_of_a_server_the_bot_left(store):
    _, gone = store.create_api_key(G1, created_by=ALICE, name="CI")
    _, kept = store.create_api_key(G2, created_by=ALICE, name="CI")
    store.departed(G1, at=1000.0)
    assert store.guilds_with_data() == {G1, G2}
    preview = store.purge(1000.0 + 31 * 86_400, grace_s=30 * 86_400, dry_run=True)
    assert preview.guilds[0].rows["api_keys"] == 1 and store.api_key_for(gone) is not None
    (purged,) = store.purge(1000.0 + 31 * 86_400, grace_s=30 * 86_400).guilds
    assert purged.guild_id == G1 and purged.rows["api_keys"] == 1
    assert store.api_key_for(gone) is None and store.api_key_for(kept) is not None
    assert store.guilds_with_data() == {G2}


def test_migrate_copies_keys_and_they_keep_working_in_postgresql(tmp_path, postgres_url, monkeypatch, capsys):
    import json

    from bot.cli import main
    from bot.store import VoiceStore
    from bot.store.postgres import PostgresVoiceStore

    monkeypatch.chdir(tmp_path)
    source = VoiceStore(tmp_path / "data")
    key, full_key = source.create_api_key(G1, created_by=ALICE, name="CI")
    source.api_key_used(key.id, at=500.0)
    source.create_api_key(G2, created_by=0, name="cron")
    source.close()
    code = main(["--data-dir", str(tmp_path / "data"), "migrate", "--to", postgres_url, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["verified_rows"]["api_keys"] == 2
    target = PostgresVoiceStore(postgres_url)
    try:
        assert target.api_key_for(full_key) == ApiKey(key.id, G1, ALICE, "CI", key.created_at, 500.0)
        assert [k.name for k in target.api_keys(G2)] == ["cron"]
    finally:
        target.close()
