"""Fixtures for end-to-end tests against the loopback fake Discord (``tests/fakediscord``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import discord
import numpy as np
import pytest

from bot.client import VoiceBot, point_at_discord
from bot.config import Config
from bot.errors import BackendError
from bot.tts.local_backend import LocalBackend
from tests.fakediscord import FakeDiscord, Intent
from tests.fakediscord.models import Guild, Member, Perm
from tests.media import speech_like


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started :class:`FakeDiscord` with discord.py pointed at it; stopped and restored after.

    Build the world (``add_guild``/``add_member``), then run the bot with
    ``async with fake_discord.running(client):`` where ``client`` was created with
    ``connector=fake_discord.connector()`` and a small ``guild_ready_timeout`` (e.g. 0.1).
    """
    async with FakeDiscord() as fake:
        yield fake


class SwitchableBackend:
    """The tiny-model LocalBackend, which a test can make fail with a chosen backend error."""

    def __init__(self, inner: LocalBackend) -> None:
        self.inner, self.name = inner, "local"
        self.failure: BackendError | None = None
        self.silent = False  # answer with silence, as a broken engine might
        self.kept_warm: list[bool] = []  # keep_warm(...) calls, as the Modal backend would get them
        self.chunk_times: list[float] = []  # time.monotonic() as each chunk left the backend
        self.texts: list[str] = []  # every chunk of text handed to synthesize, in order

    async def encode_speaker(self, pcm):
        if self.failure:
            raise self.failure
        return await self.inner.encode_speaker(pcm)

    async def synthesize(self, texts, latent, params, seed):
        if self.failure:
            raise self.failure
        self.texts.extend(texts)
        async for chunk in self.inner.synthesize(texts, latent, params, seed):
            self.chunk_times.append(time.monotonic())
            yield replace(chunk, audio=np.zeros_like(chunk.audio)) if self.silent else chunk

    async def speaker_similarity(self, reference, sample):
        if self.failure:
            raise self.failure
        return await self.inner.speaker_similarity(reference, sample)

    async def watermark_confidence(self, pcm):
        if self.failure:
            raise self.failure
        return await self.inner.watermark_confidence(pcm)

    async def info(self):
        return await self.inner.info()

    async def keep_warm(self, warm: bool) -> None:
        self.kept_warm.append(warm)

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class World:
    fake: FakeDiscord
    bot: VoiceBot
    backend: SwitchableBackend
    guild: Guild
    other_guild: Guild
    admin: Member
    alice: Member
    bob: Member
    carol: Member  # in the other guild

    @property
    def voice_channel(self):
        return next(c for c in self.guild.channels.values() if c.type == 2)

    @property
    def text_channel(self):
        return next(c for c in self.guild.channels.values() if c.type == 0)

    async def join_voice(self, member: Member) -> None:
        """A member joins the voice channel, and the bot has seen it (voice state cached)."""
        await self.fake.member_join_voice(member, self.voice_channel)
        channel = self.bot.get_channel(self.voice_channel.id)
        await self.fake.wait_until(lambda: member.id in channel.voice_states, timeout=5)

    def without_speaker_consent(self, guild: Guild | None = None) -> None:
        """A server that lets voices be used without their speaker's voice message (tests of cloning
        itself; the consent gate has tests of its own in test_consent.py)."""
        self.bot.store.update_settings((guild or self.guild).id, speaker_consent=False)

    def add_voice(self, name: str, owner: Member, guild: Guild | None = None, seconds: float = 6.0):
        """A voice put straight into the library (cloning through Discord has tests of its own)."""
        engine = self.backend.inner._engine
        key = (engine.revision, seconds)
        if key not in _LATENTS:  # the same clip always gives the same latent: encode it once per session
            _LATENTS[key] = engine.encode_speaker(speech_like(seconds))
        latent = _LATENTS[key]
        return self.bot.store.add(
            (guild or self.guild).id,
            name,
            owner_id=owner.id,
            reference_flac=b"fLaC",
            latent=latent,
            duration_s=seconds,
            revision=engine.revision,
            consent_by=owner.id,
            source="test",
        )


_LATENTS: dict[tuple[str, float], np.ndarray] = {}


@pytest.fixture
def message_content() -> bool:
    """Whether the bot asks for (and the Portal grants) the Message Content intent; auto-read tests
    override this fixture."""
    return False


@pytest.fixture
def api_address() -> tuple[str, int] | None:
    """Where the bot serves the speech API from its own process (`voicebot run --api-port`): nowhere,
    unless a test module overrides this fixture."""
    return None


@pytest.fixture
async def world(
    tmp_path: Path, tiny_engine, tiny_model_dir, message_content: bool, api_address: tuple[str, int] | None
) -> AsyncIterator[World]:
    """The real bot (bot/client.py) on the loopback Discord, configured only through its settings."""
    async with FakeDiscord(patch_discord=False) as fake:
        if message_content:
            fake.privileged_intents |= Intent.MESSAGE_CONTENT
        guild = fake.add_guild("Alpha")
        other = fake.add_guild("Beta")
        admin = fake.add_member(guild, "Admin", permissions=Perm.MANAGE_GUILD)
        alice = fake.add_member(guild, "Alice")
        bob = fake.add_member(guild, "Bob")
        carol = fake.add_member(other, "Carol")
        config = Config(
            data_dir=tmp_path / "data",
            backend="local",
            weights_dir=tiny_model_dir,
            discord_token=fake.token,
            discord_api_base=fake.api_base,
            discord_gateway=fake.gateway_url,
            voice_tls_verify=False,
            idle_leave_s=30,
        )
        saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        point_at_discord(config)
        backend = SwitchableBackend(LocalBackend(engine=tiny_engine))
        bot = VoiceBot(config, backend=backend, message_content=message_content, api_address=api_address)
        try:
            async with fake.running(bot, ready_timeout=20):
                await fake.wait_for_commands("say", "clone", "voices")
                yield World(fake, bot, backend, guild, other, admin, alice, bob, carol)
            # Discord would have refused these; the bot may have swallowed the error, the test must not.
            assert not fake.refused_requests, [(r.method, r.path, r.refusal) for r in fake.refused_requests]
        finally:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved
            await asyncio.sleep(0)


def clip(seconds: float = 7.0, seed: int = 0) -> bytes:
    from tests import media

    return media.encode(media.speech_like(seconds, seed=seed), "voice-message")
