"""`voicebot apikey create|list|revoke` on both engines: `create` prints the key alone, `list` and
`revoke` never show one, and bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.store.api_keys import MAX_API_KEYS
from tests.engines import execute, is_database_url, open_at

G1, G2 = 11, 22


@pytest.fixture
def cli(library_at, tmp_path, capsys, monkeypatch):
    """`voicebot ARGS` on this test's library: (exit status, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout
    monkeypatch.delenv("VOICEBOT_DATABASE_URL", raising=False)
    data = library_at
    if is_database_url(library_at):
        monkeypatch.setenv("VOICEBOT_DATABASE_URL", library_at)
        data = str(tmp_path / "data")

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main([*args, "--data-dir", data])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def store(library_at, cli):
    opened = []

    def open_store():
        opened.append(open_at(library_at))
        return opened[-1]

    yield open_store
    for library in opened:
        library.close()


def test_create_prints_the_key_alone_and_it_works(cli, store):
    code, out, err = cli("apikey", "create", "--guild", str(G1), "--name", "CI", "--owner", "456")
    assert code == 0 and out.count("\n") == 1 and out.endswith("\n")
    full_key = out.strip()
    assert full_key.startswith("vbk_") and len(full_key.split("_")) == 3
    assert full_key not in err and full_key.split("_")[2] not in err
    key = store().api_key_for(full_key)
    assert (key.guild_id, key.name, key.created_by) == (G1, "CI", 456)
    # without --owner it belongs to no member; without --name it is "key"
    code, out, _ = cli("apikey", "create", "--guild", str(G1))
    assert code == 0 and store().api_key_for(out.strip()).created_by == 0
    assert store().api_key_for(out.strip()).name == "key"


def test_create_says_shown_once_on_a_terminal_and_never_there_the_key(cli, monkeypatch):
    monkeypatch.setattr("bot.cli.apikeys.stderr_is_terminal", lambda: True)
    code, out, err = cli("apikey", "create", "--guild", str(G1), "--name", "CI")
    assert code == 0 and out.count("\n") == 1
    assert "shown once" in err and "key_" in err and out.strip().split("_")[2] not in err


def test_list_shows_ids_names_and_owners_never_a_key(cli):
    _, first, _ = cli("apikey", "create", "--guild", str(G1), "--name", "CI", "--owner", "456")
    cli("apikey", "create", "--guild", str(G1), "--name", "cron")
    cli("apikey", "create", "--guild", str(G2), "--name", "elsewhere")
    code, out, err = cli("apikey", "list", "--guild", str(G1))
    lines = out.splitlines()
    assert (code, err) == (0, "") and lines[0].split() == ["ID", "NAME", "OWNER", "CREATED", "LAST", "USED"]
    assert [line.split()[1:3] for line in lines[1:]] == [["CI", "456"], ["cron", "terminal"]]
    assert all(line.startswith("key_") and line.endswith("never") for line in lines[1:])
    assert first.strip().split("_")[2] not in out and "elsewhere" not in out
    code, out, _ = cli("apikey", "list", "--guild", str(G1), "--json")
    listed = json.loads(out)
    assert code == 0 and [k["name"] for k in listed] == ["CI", "cron"]
    assert set(listed[0]) == {"id", "guild_id", "created_by", "name", "created_at", "last_used_at"}
    assert cli("apikey", "list", "--guild", "99") == (
        0,
        "Guild 99 has no API keys. Make one with: voicebot apikey create --guild 99\n",
        "",
    )
    assert cli("apikey", "list", "--guild", "99", "--json")[:2] == (0, "[]\n")


def test_revoke_by_name_or_id_is_one_line_and_the_key_stops_working(cli, store):
    _, ci, _ = cli("apikey", "create", "--guild", str(G1), "--name", "CI")
    _, cron, _ = cli("apikey", "create", "--guild", str(G1), "--name", "cron")
    cron_id = store().api_key_for(cron.strip()).id
    code, out, _ = cli("apikey", "revoke", "--guild", str(G1), "ci")
    assert code == 0 and out.startswith("Revoked API key key_") and "“CI”" in out and out.count("\n") == 1
    code, out, _ = cli("apikey", "revoke", "--guild", str(G1), cron_id)
    assert code == 0 and f"Revoked API key {cron_id} (“cron”) of guild {G1}" in out
    assert store().api_key_for(ci.strip()) is None and store().api_key_for(cron.strip()) is None
    code, out, err = cli("apikey", "revoke", "--guild", str(G1), "CI")
    assert (code, out) == (2, "") and err == (
        f"voicebot: Guild {G1} has no API key called “CI”. See them with "
        f"`voicebot apikey list --guild {G1}`.\n"
    )


def test_bad_input_is_one_line_exit_2_and_writes_nothing(cli, store, library_at):
    for argv, expected in [
        (["create", "--guild", str(G1), "--name", "x" * 65], "use at most 64 characters"),
        (["create", "--guild", "abc"], "'abc' is not a guild id"),
        (["create", "--guild", str(G1), "--owner", "0"], "0 is not a Discord user id"),
        (["revoke", "--guild", str(G1), "CI"], f"Guild {G1} has no API key called “CI”"),
        (["revoke", "--guild", str(G1), "vbk_0123456789ab_" + "f" * 64], "called “key_0123456789ab”"),
        (["revoke", "--guild", str(G1)], "the following arguments are required: KEY"),
        (["list"], "the following arguments are required: --guild"),
    ]:
        code, out, err = cli("apikey", *argv)
        assert (code, out) == (2, "") and err.count("\n") == 1 and expected in err, (argv, err)
    if not is_database_url(library_at):  # not even an empty library was made
        assert not Path(library_at).exists()
    else:
        assert execute(store(), "SELECT count(*) FROM api_keys") == [(0,)]


def test_a_name_taken_and_a_full_server_are_refused_in_the_terminals_words(cli):
    assert cli("apikey", "create", "--guild", str(G1), "--name", "CI")[0] == 0
    code, _, err = cli("apikey", "create", "--guild", str(G1), "--name", "ci")
    assert code == 2 and err == (
        f"voicebot: Guild {G1} already has an API key called “CI”. Pick another --name, or revoke that one.\n"
    )
    for i in range(MAX_API_KEYS - 1):
        assert cli("apikey", "create", "--guild", str(G1), "--name", f"k{i}")[0] == 0
    code, out, err = cli("apikey", "create", "--guild", str(G1), "--name", "one more")
    assert (code, out) == (2, "") and err == (
        f"voicebot: Guild {G1} has reached its limit of {MAX_API_KEYS} API keys. Revoke one with "
        "`voicebot apikey revoke` first.\n"
    )
