"""`voicebot`'s conventions and the admin commands beyond clone/say: help, options, stdout, JSON, progress,
voice/settings, export/import, deploy (fake Modal), run/sync with Discord unreachable."""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
from pathlib import Path

import pytest

from bot.cli import build_parser, deploy, main
from bot.config import _ENV
from bot.errors import ModalCredentialsMissing
from tests import test_cli
from tests.test_cli import GOOD_CLIP

run = test_cli.run  # the same `voicebot ARGS` fixture, on the tiny model


def _call(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_bare_voicebot_prints_help_and_exits_2(capsys):
    code, out, err = _call(capsys)
    assert code == 2 and out.startswith("usage: voicebot") and err == ""


def test_version_and_help_list_examples_and_every_environment_variable(capsys):
    code, out, _ = _call(capsys, "--version")
    assert code == 0 and out.startswith("voicebot ")
    code, out, _ = _call(capsys, "--help")
    assert code == 0 and "examples:" in out and "voicebot clone --guild 123" in out
    assert all(var in out for var in _ENV.values())


def test_every_option_of_every_command_has_help():
    def parsers(parser: argparse.ArgumentParser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    for parser in parsers(build_parser()):
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):  # it lists the commands' own help
                assert action.help, (parser.prog, action.dest)


def test_options_a_command_does_not_use_are_refused_naming_its_help(capsys):
    code, _, err = _call(capsys, "voices", "--guild", "1", "--backend", "local")
    assert (
        code == 2
        and err == "voicebot: unrecognized arguments: --backend local (see voicebot voices --help)\n"
    )
    code, _, err = _call(
        capsys, "say", "--guild", "1", "--voice", "A", "--out", "x.ogg", "--device", "gpu0", "Hi"
    )
    assert code == 2 and "'gpu0' is not a device; use cpu, cuda or cuda:N" in err


def test_data_dir_before_or_after_the_command(run, tmp_path, capsys):
    clip = tmp_path / "ada.ogg"
    clip.write_bytes(GOOD_CLIP)
    assert run("clone", "--guild", "1", "--name", "Ada", str(clip))[0] == 0
    data = str(tmp_path / "data")
    for argv in (
        ["--data-dir", data, "voices", "--guild", "1"],
        ["voices", "--guild", "1", "--data-dir", data],
    ):
        code, out, _ = _call(capsys, *argv)
        lines = out.splitlines()
        assert code == 0 and lines[0].split() == ["NAME", "LENGTH", "OWNER", "CREATED", "ID"]
        assert lines[1].startswith("Ada ")


def test_voices_needs_no_backend_settings(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VOICEBOT_BACKEND", "local")  # and no ECHO_WEIGHTS_DIR
    monkeypatch.delenv("ECHO_WEIGHTS_DIR", raising=False)
    code, out, err = _call(capsys, "voices", "--guild", "9", "--data-dir", str(tmp_path / "d"))
    assert (code, err) == (0, "")
    # a wrong --data-dir must not look like an empty guild: the message names the folder
    assert out.startswith(f"Guild 9 has no voices in {tmp_path / 'd'} (no voice library there yet).")


def test_clone_needs_consent_and_records_it(run, tmp_path):
    clip = tmp_path / "ada.ogg"
    clip.write_bytes(GOOD_CLIP)
    code, _, err = run("clone", "--guild", "1", "--name", "Ada", "--consent", "0", str(clip))
    assert code == 2 and "0 is not a Discord user id" in err
    code, out, err = run("clone", "--guild", "1", "--name", "Ada", "--consent", "42", "--json", str(clip))
    voice = json.loads(out)
    assert (code, err) == (0, "") and (voice["consent_by"], voice["owner_id"], voice["format"]) == (
        42,
        42,
        "ogg/opus",
    )


def test_say_to_stdout_writes_only_audio_there_and_progress_on_a_terminal(run, tmp_path, monkeypatch):
    clip = tmp_path / "ada.ogg"
    clip.write_bytes(GOOD_CLIP)
    assert run("clone", "--guild", "1", "--name", "Ada", str(clip))[0] == 0
    monkeypatch.setattr("bot.cli.common.stderr_is_terminal", lambda: True)
    stdout = io.TextIOWrapper(io.BytesIO())
    monkeypatch.setattr(sys, "stdout", stdout)
    code, _, err = run("say", "--guild", "1", "--voice", "Ada", "--out", "-", "--seed", "3", "Hello there.")
    assert code == 0
    stdout.flush()
    audio = stdout.buffer.getvalue()
    assert audio[:4] == b"OggS" and b"Wrote" not in audio
    lines = err.splitlines()
    assert lines[0].startswith("voicebot: Loading the model from ") and lines[0].endswith(" on cpu…")
    assert "voicebot: Speaking 1 chunk in “Ada”'s voice…" in lines
    assert "voicebot: Chunk 1 of 1 spoken." in lines
    assert lines[-1].startswith("Wrote ") and "voice to stdout (1 chunk, seed 3)" in lines[-1]


def test_say_json_and_no_progress_without_a_terminal(run, tmp_path):
    clip = tmp_path / "ada.ogg"
    clip.write_bytes(GOOD_CLIP)
    assert run("clone", "--guild", "1", "--name", "Ada", str(clip))[0] == 0
    out_file = tmp_path / "a.mp3"
    code, out, err = run(
        "say", "--guild", "1", "--voice", "Ada", "--out", str(out_file), "--json", "Hi there."
    )
    assert (code, err) == (0, "") and out_file.is_file()
    summary = json.loads(out) | {"seed": 0, "seconds": 0}
    expected = {"out": str(out_file), "format": "mp3", "voice": "Ada", "guild_id": 1, "chunks": 1}
    assert summary == expected | {"seed": 0, "seconds": 0}


def test_voice_rename_info_default_and_settings(run, tmp_path):
    clip = tmp_path / "ada.ogg"
    clip.write_bytes(GOOD_CLIP)
    assert run("clone", "--guild", "1", "--name", "Ada", str(clip))[0] == 0
    code, out, _ = run("voice", "rename", "--guild", "1", "--voice", "ada", "Grace")
    assert (code, out) == (0, "Renamed “Ada” to “Grace” in guild 1.\n")
    code, out, _ = run("voice", "info", "--guild", "1", "--voice", "Grace", "--json")
    assert json.loads(out)["name"] == "Grace"
    code, out, _ = run("voice", "default", "--guild", "1", "--voice", "Grace", "--user", "5")
    assert (code, out) == (0, "User 5's default voice in guild 1 is now “Grace”.\n")
    code, _, err = run("voice", "info", "--guild", "1", "--voice", "Ada")
    assert code == 2 and err == (
        "voicebot: Guild 1 has no voice called “Ada”. See the list with `voicebot voices --guild 1`.\n"
    )

    code, out, _ = run(
        "settings", "--guild", "1", "--cooldown", "5", "--daily-quota", "10", "--file-format", "mp3"
    )
    assert code == 0 and out.startswith("Saved. Settings for guild 1:")
    code, out, _ = run("settings", "--guild", "1", "--json")
    settings = json.loads(out)
    assert (settings["cooldown_s"], settings["daily_quota_s"], settings["file_format"]) == (5.0, 600.0, "mp3")
    code, _, err = run("settings", "--guild", "1", "--cooldown", "9999")
    assert code == 2 and "9999 is out of range; allowed is 0 to 3600" in err


def test_export_then_import_into_another_guild_refuses_or_renames_collisions(run, tmp_path):
    clip = tmp_path / "ada.ogg"
    clip.write_bytes(GOOD_CLIP)
    assert run("clone", "--guild", "1", "--name", "Ada", str(clip))[0] == 0
    backup = tmp_path / "g1.tar"
    code, out, _ = run("export", "--guild", "1", "--out", str(backup))
    assert (code, out) == (0, f"Exported 1 voice of guild 1 to {backup}.\n")
    with tarfile.open(backup) as tar:
        assert tar.getnames()[0] == "manifest.json" and len(tar.getnames()) == 3

    code, out, _ = run("import", "--guild", "2", str(backup))
    assert code == 0 and out.endswith("1 voice imported into guild 2.\n")
    code, _, err = run("import", "--guild", "2", str(backup))
    assert code == 2 and "Guild 2 already has a voice called “Ada”. Import with --rename" in err
    code, out, _ = run("import", "--guild", "2", "--rename", str(backup))
    assert code == 0 and "Imported “Ada-2” (renamed from “Ada”) into guild 2." in out
    voices = json.loads(run("voices", "--guild", "2", "--json")[1])
    assert sorted(v["name"] for v in voices) == ["Ada", "Ada-2"] and voices[0]["consent_by"] == 7

    tampered = tmp_path / "bad.tar"
    with tarfile.open(backup) as src, tarfile.open(tampered, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name.endswith("latent.npy"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.addfile(member, io.BytesIO(data))
    code, _, err = run("import", "--guild", "3", str(tampered))
    assert code == 2 and "latent.npy fails its checksum" in err and "Nothing was imported" in err
    assert json.loads(run("voices", "--guild", "3", "--json")[1]) == []
    code, _, err = run("export", "--guild", "4", "--out", str(tmp_path / "empty.tar"))
    assert code == 2 and not (tmp_path / "empty.tar").exists()


class FakeModal:
    def __init__(self, error: Exception | None = None) -> None:
        self.error, self.deployed_with = error, None

    def deploy(self, env):
        if self.error:
            raise self.error
        self.deployed_with = env

    def fill_weights(self, app_name):
        return ["echo/pytorch_model.safetensors"]

    def info(self, app_name):
        return {"gpu": "L40S", "device_name": "NVIDIA L40S", "revision": "echo-abc123"}


def _deploy_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["deploy", *argv])


def test_deploy_passes_settings_fills_weights_and_reports_gpu_revision_cold_start(capsys):
    cloud = FakeModal()
    ticks = iter([100.0, 142.5])
    assert deploy.run(_deploy_args("--gpu", "H100", "--min-containers", "1"), cloud, lambda: next(ticks)) == 0
    assert cloud.deployed_with["ECHO_GPU"] == "H100" and cloud.deployed_with["ECHO_MIN_CONTAINERS"] == "1"
    assert (
        cloud.deployed_with["ECHO_SCALEDOWN_WINDOW"] == "120"
        and cloud.deployed_with["ECHO_MAX_CONTAINERS"] == "2"
    )
    assert capsys.readouterr().out == (
        "Deployed echo-voicebot on L40S (NVIDIA L40S).\n"
        "Weights Volume: fetched 1 file. Model revision echo-abc123.\n"
        "First call answered in 42.5 s (a cold start; warm calls skip it).\n"
    )


def test_deploy_without_or_with_rejected_credentials_is_one_line(capsys, monkeypatch, tmp_path):
    import modal.exception

    for var in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", str(tmp_path / "none.toml"))
    code, out, err = _call(capsys, "deploy")
    assert (code, out) == (2, "") and err == f"voicebot: {ModalCredentialsMissing().admin_message}\n"
    cloud = FakeModal(modal.exception.AuthError("Token is invalid"))
    assert deploy.run(_deploy_args(), cloud) == 1
    # the same words as `say` or `clone` meeting a rejected token
    assert capsys.readouterr().err.splitlines()[-1] == (
        "voicebot: Modal rejected the credentials: run `uv run modal token new`, or fix MODAL_TOKEN_ID and "
        "MODAL_TOKEN_SECRET (in the environment or .env)."
    )


@pytest.mark.parametrize("command", ["run", "sync"])
def test_run_and_sync_with_discord_unreachable_are_one_line(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISCORD_TOKEN", "x" * 20)
    monkeypatch.setenv("VOICEBOT_DISCORD_API_BASE", "http://127.0.0.1:9/api/v10")  # a closed port
    monkeypatch.setenv("VOICEBOT_BACKEND", "modal")
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")  # run's start-up check passes (Modal down: a warning)
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")
    monkeypatch.setenv("MODAL_SERVER_URL", "http://127.0.0.1:9")
    code, _, err = _call(capsys, command, "--data-dir", str(tmp_path / "data"))
    lines = [line for line in err.splitlines() if line.startswith("voicebot: ")]
    assert code == 1 and "Traceback" not in err and len(lines) == 1
    assert lines[0].startswith("voicebot: Can't reach Discord at http://127.0.0.1:9/api/v10 (")


def test_doctor_checks_the_token_and_servers_against_discord():
    import asyncio

    from bot.cli.doctor import check_discord
    from bot.config import Config

    async def discord(responses):
        async def get(url, headers):
            return responses[url.rsplit("/api/v10", 1)[1]]

        return await check_discord(Config(discord_token="t", discord_api_base="http://d/api/v10"), get)

    me = (200, {"id": "99", "username": "Echo"})
    found = asyncio.run(discord({"/users/@me": me, "/users/@me/guilds": (200, [{"id": "1"}])}))
    assert [f.render() for f in found] == [
        "ok   Discord token accepted: the bot is Echo (99).",
        "ok   The bot is in 1 server.",
    ]
    found = asyncio.run(discord({"/users/@me": me, "/users/@me/guilds": (200, [])}))
    assert found[1].problem and "client_id=99" in found[1].fix
    found = asyncio.run(discord({"/users/@me": (401, None)}))
    assert (
        found[0].render().startswith("FIX  Discord rejected DISCORD_TOKEN (401).\n       fix: copy a fresh")
    )


def test_import_of_a_non_archive_or_a_cut_one_and_export_of_a_damaged_voice_are_one_line(run, tmp_path):
    (tmp_path / "notes.md").write_text("# not an archive\n")
    code, _, err = run("import", "--guild", "2", str(tmp_path / "notes.md"))
    assert code == 2 and err.count("\n") == 1 and "it is not a .tar file" in err
    clip = tmp_path / "ada.ogg"
    clip.write_bytes(GOOD_CLIP)
    assert run("clone", "--guild", "1", "--name", "Ada", str(clip))[0] == 0
    backup = tmp_path / "g1.tar"
    assert run("export", "--guild", "1", "--out", str(backup))[0] == 0
    (tmp_path / "cut.tar").write_bytes(backup.read_bytes()[:3000])
    code, _, err = run("import", "--guild", "2", str(tmp_path / "cut.tar"))
    assert code == 2 and err.count("\n") == 1 and "it ends too soon" in err

    (reference,) = (tmp_path / "data" / "voices" / "1").glob("*/reference.flac")
    reference.unlink()
    code, _, err = run("export", "--guild", "1", "--out", str(tmp_path / "g2.tar"))
    assert code == 66 and err.count("\n") == 1 and "“Ada”" in err and "lost its reference" in err
    assert not (tmp_path / "g2.tar").exists()


def test_voice_commands_take_the_id_that_voices_shows(run, tmp_path):
    clip = tmp_path / "ada.ogg"
    clip.write_bytes(GOOD_CLIP)
    assert run("clone", "--guild", "1", "--name", "Ada", str(clip))[0] == 0
    (listed,) = json.loads(run("voices", "--guild", "1", "--json")[1])
    code, out, _ = run("voice", "info", "--guild", "1", "--voice", listed["id"], "--json")
    assert code == 0 and json.loads(out)["name"] == "Ada"
    code, _, err = run("voice", "info", "--guild", "2", "--voice", listed["id"])
    assert code == 2 and f"Guild 2 has no voice called “{listed['id']}”" in err


def test_doctors_invite_link_asks_for_what_the_bot_needs_as_the_readme_does():
    import re

    import discord

    from bot.cli.doctor import INVITE_PERMISSIONS, invite_link

    needed = discord.Permissions(INVITE_PERMISSIONS)
    assert needed.attach_files and needed.send_voice_messages and needed.connect and needed.speak
    assert needed.view_channel and needed.send_messages and needed.embed_links and needed.read_message_history
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert set(re.findall(r"permissions=(\d+)", readme)) == {str(INVITE_PERMISSIONS)}
    assert invite_link(99).endswith(
        f"client_id=99&scope=bot+applications.commands&permissions={INVITE_PERMISSIONS}"
    )
