"""`voicebot run` / `python -m bot` as an admin starts it: a real process against the loopback Discord."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.fakediscord import FakeDiscord
from tests.machine import closed_port, without_engine


def bot_env(fake: FakeDiscord, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VOICEBOT_", "DISCORD_", "ECHO_", "MODAL_"))
    }
    env.update(
        {
            "DISCORD_TOKEN": fake.token,
            "VOICEBOT_DATA_DIR": str(data_dir),
            "VOICEBOT_BACKEND": "modal",  # no GPU needed to serve /voices; never called here
            # A token, and a Modal that is down: the start-up check warns and the bot starts anyway.
            "MODAL_TOKEN_ID": "ak-test",
            "MODAL_TOKEN_SECRET": "as-test",
            "MODAL_SERVER_URL": f"http://127.0.0.1:{closed_port()}",
            # The documented test-only switches: the loopback Discord's URLs, its self-signed voice TLS.
            "VOICEBOT_DISCORD_API_BASE": fake.api_base,
            "VOICEBOT_DISCORD_GATEWAY": fake.gateway_url,
            "VOICEBOT_VOICE_TLS_VERIFY": "false",
        }
    )
    env.update(extra)
    return env


async def start(env: dict[str, str], cwd: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_run_serves_commands_then_stops_gracefully_on_sigterm(tmp_path):
    async with FakeDiscord(patch_discord=False) as fake:
        guild = fake.add_guild("Alpha")
        alice = fake.add_member(guild, "Alice")
        env = bot_env(fake, tmp_path / "data")
        for run in (1, 2):
            process = await start(env, tmp_path)
            try:
                # This process's own gateway session (the first run's commands are already there).
                await fake.wait_until(lambda n=run: len(fake.gateway_sessions) >= n, timeout=30)
                await asyncio.sleep(1.0)  # on_ready follows GUILD_CREATE by guild_ready_timeout (0.5 s)
                await fake.wait_for_commands("say", "voices", timeout=30)
                record = await fake.invoke("voices", {}, user=alice)
                reply = await record.wait_for_callback(timeout=15)
                assert reply.ephemeral and "no voices yet" in reply.content
            finally:
                process.send_signal(signal.SIGTERM)
                _, stderr = await asyncio.wait_for(process.communicate(), 30)
            assert process.returncode == 0, stderr.decode()
            assert b"Traceback" not in stderr and fake.token.encode() not in stderr
            assert b"Can't reach Modal at 127.0.0.1 (Connection refused): check the network." in stderr
            if run == 1:
                assert b"Synced" in stderr
            else:  # nothing changed: Discord's command registry is left alone
                assert b"Commands unchanged" in stderr
        assert len(fake.command_syncs) == 1


@pytest.mark.parametrize(
    ("token", "message"),
    [("", "DISCORD_TOKEN is not set"), ("not-the-token", "Discord rejected DISCORD_TOKEN")],
)
async def test_a_missing_or_rejected_token_is_one_clear_line(tmp_path, token, message):
    async with FakeDiscord(patch_discord=False) as fake:
        env = bot_env(fake, tmp_path / "data", DISCORD_TOKEN=token)
        process = await start(env, tmp_path, "run")
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    lines = stderr.decode().strip().splitlines()
    assert process.returncode == 2 and lines[-1].startswith("voicebot: ") and message in lines[-1]
    assert "Traceback" not in stderr.decode()


async def test_sync_registers_commands_and_exits(tmp_path):
    async with FakeDiscord(patch_discord=False) as fake:
        fake.add_guild("Alpha")
        process = await start(bot_env(fake, tmp_path / "data"), tmp_path, "sync")
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, stderr.decode()
        assert "Slash commands registered for all servers (global)." in stdout.decode()
        assert {"say", "clone", "voices"} <= {c["name"] for c in fake.commands()}


async def test_sync_to_a_dev_guild_only(tmp_path):
    async with FakeDiscord(patch_discord=False) as fake:
        guild = fake.add_guild("Dev")
        env = bot_env(fake, tmp_path / "data", VOICEBOT_DEV_GUILD=str(guild.id))
        process = await start(env, tmp_path, "sync")
        stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, stderr.decode()
        assert f"registered for guild {guild.id}" in stdout.decode()
        assert fake.commands() == [] and {"say", "clone"} <= {c["name"] for c in fake.commands(guild)}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no Modal token", "voicebot: No Modal credentials: create a token at modal.com"),
        ("empty weights folder", "voicebot: The weights folder {weights} holds no weights: fill it with"),
        ("no engine extra", "voicebot: The local speech backend needs the engine extra (torch, echo-tts;"),
    ],
)
async def test_run_refuses_a_speech_setup_it_cannot_use_before_logging_in(tmp_path, case, message):
    weights = tmp_path / "weights"
    weights.mkdir()
    async with FakeDiscord(patch_discord=False) as fake:
        env = bot_env(fake, tmp_path / "data")
        args: tuple[str, ...] = ("run",)
        if case == "no Modal token":
            del env["MODAL_TOKEN_ID"], env["MODAL_TOKEN_SECRET"]
            env["MODAL_CONFIG_PATH"] = str(tmp_path / "no-modal.toml")
        else:
            args = ("run", "--backend", "local", "--weights", str(weights))
        if case == "no engine extra":
            (weights / "echo").mkdir()  # a complete folder: the missing extra is what stops it
            for name in ("echo/pytorch_model.safetensors", "echo/pca_state.safetensors"):
                (weights / name).write_bytes(b"x")
            (weights / "dac").mkdir()
            (weights / "dac/pytorch_model.safetensors").write_bytes(b"x")
            process = await asyncio.create_subprocess_exec(
                *without_engine("bot", *args), env=env, cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
        else:
            process = await start(env, tmp_path, *args)
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
        lines = stderr.decode().strip().splitlines()
        assert process.returncode == 2, stderr.decode()
        assert len(lines) == 1 and lines[0].startswith(message.format(weights=weights)), lines
        assert fake.gateway_sessions == [] and fake.command_syncs == []  # never logged in
