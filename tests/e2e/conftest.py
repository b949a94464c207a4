"""Fixtures for end-to-end tests against the loopback fake Discord (``tests/fakediscord``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakediscord import FakeDiscord


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started :class:`FakeDiscord` with discord.py pointed at it; stopped and restored after.

    Build the world (``add_guild``/``add_member``), then run the bot with
    ``async with fake_discord.running(client):`` where ``client`` was created with
    ``connector=fake_discord.connector()`` and a small ``guild_ready_timeout`` (e.g. 0.1).
    """
    async with FakeDiscord() as fake:
        yield fake
