"""Cooldowns and the daily speech quota, held under concurrency: reserve first, settle after.

A request reserves the most speech it can deliver (`bot.speech.longest_seconds`: each chunk's largest
window, since a chunk's audio can be many times its text's estimate) and its member's cooldown slot
before any GPU time is spent; it settles with the seconds actually delivered (a file that reached
Discord, audio that was heard), or is released on failure, which charges nothing and starts no cooldown.
Checks and reservations happen under one lock per server, so simultaneous requests can't all pass the
same check.

The counts of what was delivered live in the store (they survive a restart). If the store can't take
the write when a request settles (a full disk, a library locked by another process), the delivery still
counts: it is held here, in the quota and the cooldown alike, and written by a later settle. Whatever
happens, settling releases the reservation, so a failed write never leaves a member "slowed down" or
the seconds held until a restart. What is in flight lives here, in the one bot process that serves a
server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.errors import CooldownActive, LibraryError, QuotaExhausted
from bot.store import GuildSettings, VoiceLibrary

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Reservation:
    guild_id: int
    user_id: int
    seconds: float  # the most speech it can deliver, held against the daily quota until settled
    started_at: float  # time.time()
    done: bool = False


@dataclass(frozen=True)
class Delivered:
    """Speech that reached members but is not in the store yet (its write failed)."""

    guild_id: int
    user_id: int
    at: float
    audio_seconds: float
    gpu_seconds: float


def utc_midnight(now: float) -> float:
    """When today's quota began: midnight UTC of the day `now` falls in."""
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp()


class Limits:
    def __init__(self, store: VoiceLibrary, *, clock: Callable[[], float] = time.time) -> None:
        self.store, self._clock = store, clock
        self._locks: dict[int, asyncio.Lock] = {}  # per server: one server's checks never wait on another's
        self._in_flight: dict[tuple[int, int], int] = {}  # (guild, member) → requests not yet settled
        self._reserved: dict[int, float] = {}  # guild → seconds reserved by requests in flight
        self._unrecorded: list[Delivered] = []  # delivered, waiting for the store to take the write
        self._writing = asyncio.Lock()  # one writer of `_unrecorded` at a time: each is written once

    def reserved_seconds(self, guild_id: int) -> float:
        return self._reserved.get(guild_id, 0.0)

    def unrecorded(self, guild_id: int) -> list[Delivered]:
        return [d for d in self._unrecorded if d.guild_id == guild_id]

    async def reserve(self, settings: GuildSettings, user_id: int, seconds: float) -> Reservation:
        """Hold `seconds` (the most the request can deliver) of today's quota and the member's cooldown,
        or refuse with why."""
        guild_id, key = settings.guild_id, (settings.guild_id, user_id)
        async with self._locks.setdefault(guild_id, asyncio.Lock()):
            await self._write_unrecorded()
            now = self._clock()
            if settings.cooldown_s:
                if self._in_flight.get(key):
                    raise CooldownActive(settings.cooldown_s)
                # Counted from when the last delivery was settled (recorded in the store, or held here).
                last = await self.store.aio.last_say_at(guild_id, user_id)
                held_here = [d.at for d in self.unrecorded(guild_id) if d.user_id == user_id]
                last = max([t for t in (last, *held_here) if t is not None], default=None)
                if last is not None and now - last < settings.cooldown_s:
                    raise CooldownActive(settings.cooldown_s - (now - last))
            if settings.daily_quota_s:
                since = utc_midnight(now)
                used = await self.store.aio.audio_seconds_since(guild_id, since)
                used += sum(d.audio_seconds for d in self.unrecorded(guild_id) if d.at >= since)
                held = used + self.reserved_seconds(guild_id)
                if held + seconds > settings.daily_quota_s:
                    raise QuotaExhausted(held, settings.daily_quota_s, seconds)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            self._reserved[guild_id] = self.reserved_seconds(guild_id) + seconds
            return Reservation(guild_id, user_id, seconds, now)

    async def settle(self, reservation: Reservation, delivered_s: float, *, gpu_seconds: float = 0.0) -> None:
        """The request delivered `delivered_s` of speech: charge that, and start the cooldown. Never
        fails for the store's sake: the delivery happened, so it counts (see the module docstring)."""
        if reservation.done:
            return
        try:
            if delivered_s > 0:
                self._unrecorded.append(
                    Delivered(
                        reservation.guild_id, reservation.user_id, self._clock(), delivered_s, gpu_seconds
                    )
                )
                await self._write_unrecorded()
        finally:
            self.release(reservation)

    async def _write_unrecorded(self) -> None:
        """Write what was delivered but not recorded yet, oldest first; keep what the store refuses."""
        async with self._writing:
            await self._write_each()

    async def _write_each(self) -> None:
        while self._unrecorded:
            delivered = self._unrecorded[0]
            try:
                await self.store.aio.record_usage(
                    delivered.guild_id,
                    delivered.user_id,
                    kind="say",
                    audio_seconds=delivered.audio_seconds,
                    gpu_seconds=delivered.gpu_seconds,
                    at=delivered.at,
                )
            except LibraryError as exc:
                log.error(
                    "Usage of %.1f s in guild %s not recorded yet (%d waiting): %s",
                    delivered.audio_seconds,
                    delivered.guild_id,
                    len(self._unrecorded),
                    exc.admin_message,
                )
                return
            self._unrecorded.pop(0)

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
