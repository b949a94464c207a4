"""Cooldowns and the daily speech quota, held under concurrency: reserve first, settle after.

A request reserves its estimated seconds (and its member's cooldown slot) before any GPU time is spent;
it settles with the seconds actually delivered (a file that reached Discord, audio that was heard), or
is released on failure, which charges nothing and starts no cooldown. Checks and reservations happen
under one lock, so simultaneous requests can't all pass the same check.

The counts of what was delivered live in the store (they survive a restart); what is in flight lives
here, in the one bot process that serves a server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.errors import CooldownActive, QuotaExhausted
from bot.store import GuildSettings, VoiceStore


@dataclass(eq=False)
class Reservation:
    guild_id: int
    user_id: int
    seconds: float  # estimated speech, held against the daily quota until settled
    started_at: float  # time.time()
    done: bool = False


def utc_midnight(now: float) -> float:
    """When today's quota began: midnight UTC of the day `now` falls in."""
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp()


class Limits:
    def __init__(self, store: VoiceStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store, self._clock = store, clock
        self._locks: dict[int, asyncio.Lock] = {}  # per server: one server's checks never wait on another's
        self._in_flight: dict[tuple[int, int], int] = {}  # (guild, member) → requests not yet settled
        self._reserved: dict[int, float] = {}  # guild → seconds reserved by requests in flight

    def reserved_seconds(self, guild_id: int) -> float:
        return self._reserved.get(guild_id, 0.0)

    async def reserve(self, settings: GuildSettings, user_id: int, estimated_s: float) -> Reservation:
        """Hold `estimated_s` of today's quota and the member's cooldown, or refuse with why."""
        guild_id, key = settings.guild_id, (settings.guild_id, user_id)
        async with self._locks.setdefault(guild_id, asyncio.Lock()):
            now = self._clock()
            if settings.cooldown_s:
                if self._in_flight.get(key):
                    raise CooldownActive(settings.cooldown_s)
                # Counted from when the last delivery was settled (recorded in the store).
                last = await self.store.aio.last_say_at(guild_id, user_id)
                if last is not None and now - last < settings.cooldown_s:
                    raise CooldownActive(settings.cooldown_s - (now - last))
            if settings.daily_quota_s:
                used = await self.store.aio.audio_seconds_since(guild_id, utc_midnight(now))
                held = used + self.reserved_seconds(guild_id)
                if held + estimated_s > settings.daily_quota_s:
                    raise QuotaExhausted(held, settings.daily_quota_s)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            self._reserved[guild_id] = self.reserved_seconds(guild_id) + estimated_s
            return Reservation(guild_id, user_id, estimated_s, now)

    async def settle(self, reservation: Reservation, delivered_s: float, *, gpu_seconds: float = 0.0) -> None:
        """The request delivered `delivered_s` of speech: charge that, and start the cooldown."""
        if reservation.done:
            return
        if delivered_s <= 0:
            self.release(reservation)
            return
        await self.store.aio.record_usage(
            reservation.guild_id,
            reservation.user_id,
            kind="say",
            audio_seconds=delivered_s,
            gpu_seconds=gpu_seconds,
        )
        self.release(reservation)

    def release(self, reservation: Reservation) -> None:
        """The request failed or was refused later on: nothing charged, no cooldown started."""
        if reservation.done:
            return
        reservation.done = True
        key = (reservation.guild_id, reservation.user_id)
        self._in_flight[key] -= 1
        if not self._in_flight[key]:
            del self._in_flight[key]
        left = self._reserved.pop(reservation.guild_id) - reservation.seconds
        if left > 1e-9:
            self._reserved[reservation.guild_id] = left
