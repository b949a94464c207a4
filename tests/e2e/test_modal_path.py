"""The Modal path end to end: the real bot on the loopback Discord with the real `ModalBackend`, whose
looked-up handle is the real Modal class run in-process (`.local()`, tiny model). What crosses between them
is wire format 2 exactly as it would cross the network; the bot encodes nothing itself."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import discord
import mutagen
import pytest

from bot.client import VoiceBot, point_at_discord
from bot.config import Config
from bot.tts.modal_backend import ModalBackend
from modal_tts import wire
from tests.fakediscord import FakeDiscord
from tests.media import speech_like
from tests.modal_local import LocalModal

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*executing locally.*:UserWarning"),
]


async def test_files_and_live_speech_come_encoded_from_the_engine_side(tmp_path: Path, echo_tts, monkeypatch):
    handle = LocalModal(echo_tts)
    async with FakeDiscord(patch_discord=False) as fake:
        guild = fake.add_guild("Alpha")
        alice = fake.add_member(guild, "Alice")
        config = Config(
            data_dir=tmp_path / "data",
            backend="modal",
            discord_token=fake.token,
            discord_api_base=fake.api_base,
            discord_gateway=fake.gateway_url,
            voice_tls_verify=False,
        )
        saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        point_at_discord(config)
        bot = VoiceBot(config, backend=ModalBackend(lookup=lambda: handle, timeout=120))

        async def no_encoding_here(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("the bot encoded audio itself")

        monkeypatch.setattr(bot.encoder, "voice_message", no_encoding_here)
        monkeypatch.setattr(bot.encoder, "file", no_encoding_here)
        try:
            async with fake.running(bot, ready_timeout=20):
                await fake.wait_for_commands("say", "clone")
                latent = wire.latent_from_wire(
                    echo_tts.encode_speaker.local(wire.pcm_to_bytes(speech_like(6.0)))
                )
                bot.store.add(
                    guild.id,
                    "Ada",
                    owner_id=alice.id,
                    reference_flac=b"fLaC",
                    latent=latent[0],
                    duration_s=6.0,
                    revision=latent[1],
                    consent_by=alice.id,
                    source="test",
                )
                # A file: a voice message made, tagged and measured on the engine side.
                record = await fake.invoke(
                    "say", {"text": "Hello there, everyone.", "voice": "Ada"}, user=alice
                )
                await record.wait_for(lambda r: r.kind == "edit" and "Ada" in (r.content or ""), timeout=90)
                posted = await fake.wait_for_message(lambda m: m.flags & 8192)
                (attachment,) = posted.attachments
                (upload,) = posted.files
                assert attachment["duration_secs"] > 0.5 and base64.b64decode(attachment["waveform"])
                assert mutagen.File(io.BytesIO(upload.data)).tags["artist"] == ["Ada"]
                # Live: the engine side's Opus packets, played as they came.
                voice = next(c for c in guild.channels.values() if c.type == 2)
                await fake.member_join_voice(alice, voice)
                channel = bot.get_channel(voice.id)
                await fake.wait_until(lambda: alice.id in channel.voice_states, timeout=5)
                record = await fake.invoke(
                    "say",
                    {"text": "Now in the voice channel.", "voice": "Ada", "mode": "channel"},
                    user=alice,
                )
                await record.wait_for(lambda r: "Speaking now" in (r.content or ""), timeout=90)
                await fake.wait_until(lambda: len(fake.voice_packets(guild)) > 100, timeout=90)
                assert float(abs(fake.voice_pcm(guild, mono=True)).max()) > 0.01
            assert handle.outputs == ["file", "opus"]
            assert not fake.refused_requests, [(r.method, r.path, r.refusal) for r in fake.refused_requests]
        finally:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved
