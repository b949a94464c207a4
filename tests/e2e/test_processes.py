"""`voicebot run --processes 2` on the loopback Discord: two real bot processes with two shards each,
over eight servers and one PostgreSQL library, as an admin would run them (settings in the environment,
the tiny model on the CPU). One scenario, in the order things happen to a running bot."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bot.restarts import CUT_SHORT
from bot.store.postgres import PostgresVoiceStore
from tests.e2e.conftest import clip
from tests.fakediscord import FakeDiscord

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SHARDS = 4


def _children(launcher: int) -> dict[str, int]:
    """The launcher's bot processes: their --shards range → pid."""
    found = {}
    for pid in subprocess.run(["pgrep", "-P", str(launcher)], capture_output=True, text=True).stdout.split():
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"--shards" in argv:
            found[argv[argv.index(b"--shards") + 1].decode()] = int(pid)
    return found


def _captioned(reply) -> bool:
    return reply.kind == "edit" and "AI-generated" in (reply.content or "")


def _voice_messages(fake: FakeDiscord, guild) -> list:
    return [m for m in fake.channel_messages(guild.text_channels[0]) if m.flags & 8192]


def _ready(fake: FakeDiscord) -> list[tuple[int, int]]:
    return [r.shard for r in fake.identifies if r.outcome == "ready"]


async def test_two_processes_share_eight_servers_one_library_and_its_limits(
    tmp_path: Path, tiny_model_dir: Path, tiny_latent, postgres_url: str
):
    async with FakeDiscord(patch_discord=False) as fake:
        fake.sharding.shards = SHARDS  # Discord's recommendation, which the launcher follows
        fake.sharding.identify_window = 0.4  # IDENTIFYs of one bucket closer than this are refused
        guilds = [fake.add_guild(f"Server {n}", shard=(n % SHARDS, SHARDS)) for n in range(8)]
        members = [fake.add_member(guild, f"Member {n}") for n, guild in enumerate(guilds)]
        library = PostgresVoiceStore(postgres_url)
        for guild, member in zip(guilds, members, strict=True):
            library.add(
                guild.id,
                "Ada",
                owner_id=member.id,
                reference_flac=b"fLaC",
                latent=tiny_latent,
                duration_s=6.0,
                revision="tiny",
                consent_by=member.id,
                source="test",
            )
        library.update_settings(guilds[0].id, speaker_consent=False)  # "Bea" below is ready at once
        env = {
            **os.environ,
            "DISCORD_TOKEN": fake.token,
            "VOICEBOT_DISCORD_API_BASE": fake.api_base,
            "VOICEBOT_DISCORD_GATEWAY": fake.gateway_url,
            "VOICEBOT_VOICE_TLS_VERIFY": "false",
            "VOICEBOT_IDENTIFY_INTERVAL": "0.5",
            "VOICEBOT_DATABASE_URL": postgres_url,
            "VOICEBOT_DATA_DIR": str(tmp_path / "data"),
            "VOICEBOT_BACKEND": "local",
            "ECHO_WEIGHTS_DIR": str(tiny_model_dir),
            "VOICEBOT_DEVICE": "cpu",
        }
        log_file = tmp_path / "bots.log"
        with await asyncio.to_thread(open, log_file, "wb") as logs:
            launcher = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "run",
                "--processes",
                "2",
                env=env,
                cwd=tmp_path,
                stdout=logs,
                stderr=logs,
            )
        try:
            await fake.wait_until(
                lambda: len(_ready(fake)) == SHARDS, timeout=120, describe=log_file.read_text
            )
            await fake.wait_for_commands("say", "clone", timeout=60)
            processes = _children(launcher.pid)
            assert sorted(processes) == ["0-1", "2-3"]
            assert sorted(_ready(fake)) == [(s, SHARDS) for s in range(SHARDS)]
            # IDENTIFYs took turns across the two processes: none came too early in its bucket (each
            # process first asks for Message Content, which this Discord's Portal refuses: 4014)
            assert {r.outcome for r in fake.identifies} == {"ready", "closed"}, fake.identifies
            assert {r.close_code for r in fake.identifies if r.outcome == "closed"} == {4014}

            # Every server is answered, each by exactly one process: one deferral, one caption, one
            # voice message in its channel.
            says = [
                await fake.invoke("say", {"text": f"Hello, server {n}.", "voice": "Ada"}, user=member)
                for n, member in enumerate(members)
            ]
            for record, guild in zip(says, guilds, strict=True):
                await record.wait_for(_captioned, timeout=90)
                await fake.wait_until(lambda g=guild: _voice_messages(fake, g), timeout=30)
            await asyncio.sleep(1)  # time for a second answer, were there one
            for record, guild in zip(says, guilds, strict=True):
                assert record.callback_type == 5 and len([r for r in record.replies if _captioned(r)]) == 1
                assert len(_voice_messages(fake, guild)) == 1
            assert not fake.refused_requests

            # A voice cloned through the process of shards 0-1 is used from the CLI.
            upload = fake.attachment("bea.ogg", clip(), content_type="audio/ogg")
            clone = await fake.invoke(
                "clone", {"name": "Bea", "consent": True}, user=members[0], attachments=[upload]
            )
            await clone.wait_for(lambda r: r.kind == "edit" and r.embeds, timeout=60)
            out = tmp_path / "bea.ogg"
            cli = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "say", "--guild", str(guilds[0].id), "--voice", "Bea",
                "--out", str(out), "Said from the terminal.", env=env, cwd=tmp_path,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            _, err = await cli.communicate()
            assert cli.returncode == 0 and out.stat().st_size > 1000, err.decode()

            # Server 2's quota is spent; server 6 (same shard) is mid-/say when its process is killed.
            used = library.audio_seconds_since(guilds[2].id, 0)
            library.update_settings(guilds[2].id, daily_quota_s=used + 0.5)
            long_text = " ".join(f"Sentence number {n} of a long reading." for n in range(12))
            spoken_in_6 = library.audio_seconds_since(guilds[6].id, 0)
            cut = await fake.invoke("say", {"text": long_text, "voice": "Ada"}, user=members[6])
            await cut.wait_for_callback(timeout=30)
            await fake.wait_until(lambda: library.reserved_speech(guilds[6].id) > 0, timeout=30)  # speaking
            os.kill(processes["2-3"], signal.SIGKILL)
            # The other process keeps serving meanwhile.
            other = await fake.invoke("say", {"text": "Still here?", "voice": "Ada"}, user=members[1])
            await other.wait_for(_captioned, timeout=90)

            # The launcher starts it again; it tells the member whose /say was cut short, once.
            await fake.wait_until(
                lambda: len(_ready(fake)) == SHARDS + 2, timeout=120, describe=log_file.read_text
            )
            told = await cut.wait_for(
                lambda r: r.kind == "edit" and CUT_SHORT in (r.content or ""), timeout=30
            )
            assert told is not None and not [r for r in cut.replies if _captioned(r)]
            assert _voice_messages(fake, guilds[6]) == _voice_messages(fake, guilds[6])[:1]  # the first only
            assert _children(launcher.pid)["2-3"] != processes["2-3"]
            assert library.reserved_speech(guilds[6].id) == 0  # nothing charged or held for it
            assert library.audio_seconds_since(guilds[6].id, 0) == spoken_in_6  # nothing charged for it
            # The restarted process holds server 2 to the quota the first one spent.
            refused = await fake.invoke("say", {"text": "One more?", "voice": "Ada"}, user=members[2])
            await refused.wait_for(lambda r: "today's" in (r.content or ""), timeout=60)
            # And the voice cloned through the other process is still there for it.
            assert [v.name for v in library.list(guilds[0].id)] == ["Ada", "Bea"]
        finally:
            if launcher.returncode is None:
                launcher.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(launcher.wait(), timeout=60)
            if code != 0:
                library.close()
        assert code == 0, log_file.read_text()[-3000:]
        assert _children(launcher.pid) == {}
        # Stopped cleanly: nothing held, nothing half written.
        assert library.reserved_speech(guilds[6].id) == 0 and library.audit().voices == 9
        library.close()
