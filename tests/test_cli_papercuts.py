"""Papercuts users reported in `voicebot`: examples in every command's help, what its usage line shows,
unknown options named as such, the dictionary's listing and replacements, `export --out` onto an
existing file, and messages that name the path and the guild."""

from __future__ import annotations

import argparse
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bot import archive
from bot.cli import build_parser, main
from bot.store import VoiceStore


def _call(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's --help and usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _commands() -> Iterator[list[str]]:
    """Every command and family, as the words typed after `voicebot` (`["voice", "rename"]`)."""

    def walk(parser: argparse.ArgumentParser) -> Iterator[list[str]]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield sub.prog.split()[1:]
                    yield from walk(sub)

    yield from walk(build_parser())


COMMANDS = list(_commands())


@pytest.fixture
def data(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout
    return tmp_path / "data"


def _local(tiny_model_dir: Path, data: Path) -> list[str]:
    return [
        "--data-dir",
        str(data),
        "--backend",
        "local",
        "--weights",
        str(tiny_model_dir),
        "--device",
        "cpu",
    ]


def _add_voice(store: VoiceStore, guild: int, name: str) -> None:
    store.add(
        guild,
        name,
        owner_id=7,
        reference_flac=b"fLaC-" + name.encode(),
        latent=np.ones((8, 80), np.float16),
        duration_s=6.5,
        revision="echo-abc",
        consent_by=8,
        source="test",
    )


# --- help ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_commands_help_ends_with_examples_of_it_one_a_line(command, capsys):
    code, out, _ = _call(capsys, *command, "--help")
    assert code == 0 and "\nexamples:\n" in out, out
    shown = out.split("\nexamples:\n", 1)[1].splitlines()
    assert 1 <= len(shown) <= 3 and all(line.startswith("  ") and "voicebot " in line for line in shown)
    assert any(f"voicebot {' '.join(command)} " in f"{line} " for line in shown), shown


def test_clone_shows_consent_as_required_and_keeps_its_own_words_when_it_is_missing(
    data, tiny_model_dir, capsys
):
    code, out, _ = _call(capsys, "clone", "--help")
    usage = " ".join(out.split("\n\n", 1)[0].split())
    assert code == 0 and " --consent USER_ID " in usage and "[--consent" not in usage, usage
    clip = data.parent / "ada.ogg"
    clip.write_bytes(b"not read: consent is checked first")
    argv = ["clone", *_local(tiny_model_dir, data), "--guild", "1", "--name", "Ada", str(clip)]
    code, out, err = _call(capsys, *argv)
    assert (code, out, err) == (
        2,
        "",
        "voicebot: A voice can only be cloned with its speaker's permission: confirm it with --consent "
        "USER_ID.\n",
    )
    assert not data.exists()


def test_voice_is_offered_by_name_or_id_wherever_a_command_takes_it(capsys):
    helps = {}
    for command in COMMANDS:
        out = _call(capsys, *command, "--help")[1]
        if "  --voice" in out:
            helps[" ".join(command)] = " ".join(out.split())
    assert set(helps) == {"say", "delete", "voice rename", "voice info", "voice default"}
    assert all("--voice NAME_OR_ID" in text and "name or id" in text for text in helps.values()), helps


# --- usage errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--verison"], "unrecognized arguments: --verison (see voicebot --help)"),
        (["say", "--bogus"], "unrecognized arguments: --bogus (see voicebot say --help)"),
        (
            ["voice", "rename", "--bogus"],
            "unrecognized arguments: --bogus (see voicebot voice rename --help)",
        ),
        (["voices", "--gild", "1"], "unrecognized arguments: --gild 1 (see voicebot voices --help)"),
    ],
    ids=["--verison", "say --bogus", "voice rename --bogus", "voices --gild"],
)
def test_an_unknown_option_is_named_not_reported_as_missing_arguments(argv, expected, capsys):
    assert _call(capsys, *argv) == (2, "", f"voicebot: {expected}\n")


def test_missing_arguments_without_an_unknown_option_are_still_named(capsys):
    code, _, err = _call(capsys, "dictionary", "add", "--guild", "1", "lonely")
    assert (code, err) == (
        2,
        "voicebot: the following arguments are required: spoken_as (see voicebot dictionary add --help)\n",
    )


# --- the dictionary --------------------------------------------------------------------------


def test_an_empty_dictionary_is_said_on_stdout_as_for_voices_and_is_an_empty_json_list(data, capsys):
    for _ in range(2):  # before the library exists, and after
        code, out, err = _call(capsys, "dictionary", "list", "--guild", "1", "--data-dir", str(data))
        assert (code, err) == (0, "") and out.startswith("Guild 1 has no pronunciations."), (out, err)
        assert _call(capsys, "dictionary", "list", "--guild", "1", "--json", "--data-dir", str(data)) == (
            0,
            "[]\n",
            "",
        )
        VoiceStore(data).close()  # the second time round, a library without a dictionary


def test_dictionary_list_json_is_the_entries_and_nothing_else(data, capsys):
    for word, spoken in (("SQL", "sequel"), ("GIF", "jiff")):
        assert (
            _call(capsys, "dictionary", "add", "--guild", "1", word, spoken, "--data-dir", str(data))[0] == 0
        )
    code, out, err = _call(capsys, "dictionary", "list", "--guild", "1", "--json", "--data-dir", str(data))
    assert (code, err) == (0, "") and json.loads(out) == [
        {"word": "GIF", "spoken_as": "jiff"},
        {"word": "SQL", "spoken_as": "sequel"},
    ]


def test_re_adding_a_word_says_it_replaced_what_it_was_said_as(data, capsys):
    def add(word: str, spoken: str) -> tuple[int, str, str]:
        return _call(capsys, "dictionary", "add", "--guild", "1", word, spoken, "--data-dir", str(data))

    assert add("GIF", "jiff") == (0, "Guild 1 now says “GIF” as “jiff”.\n", "")
    assert add("gif", "giff") == (0, "Replaced “gif”: guild 1 now says it as “giff” (was “jiff”).\n", "")
    assert add("gif", "giff") == (0, "Guild 1 already says “gif” as “giff”.\n", "")
    store = VoiceStore(data)
    try:
        assert store.dictionary(1) == {"gif": "giff"}
    finally:
        store.close()


# --- export and import -----------------------------------------------------------------------


def test_export_refuses_to_replace_an_archive_without_force(data, capsys):
    store = VoiceStore(data)
    _add_voice(store, 1, "Ada")
    store.close()
    out = data.parent / "guild-1.tar"
    out.write_bytes(b"last week's backup")
    argv = ["export", "--guild", "1", "--out", str(out), "--data-dir", str(data)]
    code, stdout, err = _call(capsys, *argv)
    assert (code, stdout) == (2, "") and err.count("\n") == 1 and "--force" in err and str(out) in err, err
    assert out.read_bytes() == b"last week's backup"
    assert sorted(p.name for p in data.parent.iterdir()) == ["data", "guild-1.tar"]  # no leftover part file
    code, stdout, err = _call(capsys, *argv, "--force")
    assert (code, err) == (0, "") and stdout == f"Exported 1 voice of guild 1 to {out}.\n"
    with tarfile.open(out) as tar:
        assert tar.getnames()[0] == archive.MANIFEST


def test_an_import_clash_names_the_guild_the_archive_goes_to(data, capsys):
    source = VoiceStore(data.parent / "source")
    _add_voice(source, 5, "Ada")
    tar, _ = archive.export_guild(source, 5)
    source.close()
    path = data.parent / "guild-5.tar"
    path.write_bytes(tar)
    target = VoiceStore(data)
    _add_voice(target, 5, "Ada")
    target.close()
    code, out, err = _call(capsys, "import", str(path), "--data-dir", str(data))
    assert (code, out, err) == (
        2,
        "",
        "voicebot: Guild 5 already has a voice called “Ada”. Import with --rename to add it as “NAME-2”, "
        "or delete that one.\n",
    )
    code, out, _ = _call(capsys, "import", str(path), "--rename", "--data-dir", str(data))
    assert code == 0 and out.splitlines()[-1] == "1 voice imported into guild 5."


# --- naming the --out path -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"), [("a", "no file type"), ("a.xyz", "“.xyz” is not an audio type")], ids=["a", "a.xyz"]
)
def test_an_out_path_say_cannot_write_is_named_whole(name, why, data, tiny_model_dir, capsys):
    out = data.parent / name
    argv = ["say", *_local(tiny_model_dir, data), "--guild", "1", "--voice", "Ada", "--out", str(out), "Hi."]
    code, stdout, err = _call(capsys, *argv)
    assert (code, stdout) == (2, "") and err.startswith(f"voicebot: Can't write {out} ({why}"), err
    assert "end --out in .ogg, .mp3 or .wav" in err and not out.exists()


def test_a_missing_consent_is_named_before_the_machines_speech_set_up(tmp_path, monkeypatch, capsys):
    """A command-line mistake first: no Modal token on this machine must not hide it."""
    monkeypatch.chdir(tmp_path)
    for name in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "none.toml"))
    clip = tmp_path / "clip.ogg"
    clip.write_bytes(b"OggS")
    args = ["clone", "--backend", "modal", "--guild", "1", "--name", "Ada", str(clip)]
    assert main([*args, "--data-dir", str(tmp_path / "data")]) == 2
    assert capsys.readouterr().err == (
        "voicebot: A voice can only be cloned with its speaker's permission: confirm it with "
        "--consent USER_ID.\n"
    )
    assert main([*args, "--consent", "7", "--data-dir", str(tmp_path / "data")]) == 2
    assert capsys.readouterr().err.startswith("voicebot: No Modal credentials: ")
    assert not (tmp_path / "data").exists()
