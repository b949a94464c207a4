"""Small helpers shared by the fake's servers: JSON responses, snowflakes and change signals.

Discord-specific detail worth knowing here: discord.py parses a REST body as JSON only when the
``Content-Type`` header is *exactly* ``application/json`` (``http.json_or_text``), so every JSON
reply goes through :func:`json_response`, never aiohttp's ``json_response`` (which appends
``; charset=utf-8``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")

#: Discord's epoch (2015-01-01T00:00:00Z) in milliseconds, the zero of every snowflake.
DISCORD_EPOCH_MS = 1_420_070_400_000


def shard_id_for(guild_id: int, shard_count: int) -> int:
    """The shard a guild's events go to: ``(guild_id >> 22) % shard_count`` (Discord's formula)."""
    return (guild_id >> 22) % shard_count


def snowflake_on_shard(snowflake: int, shard_id: int, shard_count: int) -> int:
    """``snowflake`` moved forward by the fewest milliseconds that put it on shard ``shard_id`` of
    ``shard_count`` (its increment bits, hence its uniqueness, kept)."""
    ms = snowflake >> 22
    ms += (shard_id - ms) % shard_count
    return (ms << 22) | (snowflake & 0x3FFFFF)


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON reply whose Content-Type is exactly ``application/json``, as Discord sends it."""
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def error_response(status: int, code: int, message: str, **extra: Any) -> web.Response:
    """A Discord JSON error body: ``{"message": ..., "code": ...}`` plus any extra keys."""
    return json_response({"message": message, "code": code, **extra}, status=status)


def iso_now() -> str:
    """The current time as the ISO-8601 string Discord puts in timestamps."""
    return datetime.now(UTC).isoformat()


class SnowflakeFactory:
    """Makes unique, time-ordered snowflakes that discord.py can turn back into datetimes."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def __call__(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (next(self._counter) & 0x3FFFFF)


class Signal:
    """Wakes waiters whenever recorded state changes; each waiter re-checks its own condition.

    (The fake's waiting helpers take ``timeout=`` per call on purpose, hence the ASYNC109 pragmas.)

    The fake records everything it sees in plain lists; tests wait on conditions over those
    lists (``await signal.wait_until(lambda: len(replies) >= 2, timeout=5)``).
    """

    poll_interval = 0.05

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake every current waiter (they re-check their condition)."""
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_until(
        self,
        condition: Callable[[], T],
        *,
        timeout: float,  # noqa: ASYNC109
        describe: Callable[[], str] | None = None,
    ) -> T:
        """Return ``condition()`` once it is truthy; raise :class:`TimeoutError` after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = condition()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                detail = f": {describe()}" if describe else ""
                raise TimeoutError(f"condition not met within {timeout:.1f}s{detail}")
            event = self._event
            try:
                # Also poll, so conditions over state the fake does not record (a client's) work.
                await asyncio.wait_for(event.wait(), min(remaining, self.poll_interval))
            except TimeoutError:
                pass
