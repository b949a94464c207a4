"""Cooldowns and the daily speech quota, held under concurrency: reserve first, settle after.

A request reserves the most speech it can deliver (`bot.speech.longest_seconds`: each chunk's largest
window, since a chunk's audio can be many times its text's estimate) and its member's cooldown slot
before any GPU time is spent; it settles with the seconds actually delivered (a file that reached
Discord, audio that was heard), or is released on failure, which charges nothing and starts no cooldown.

Reservations and what was delivered live in the library (`bot.store.quotas`): the check and the
reservation are one transaction under the server's lock there, so no two requests pass the same check,
whichever processes they are in (two bot processes, the CLI, an API process). A request the library
can't take a reservation for is refused with the library's own message.

If the library can't take the write when a request settles (a full disk, a database gone for a
moment), the delivery still counts: it is held here, in the quota and the cooldown alike, and written by
a later settle. Whatever happens, settling releases the reservation, so a failed write never leaves a
member "slowed down" or the seconds held until a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.errors import LibraryError
from bot.store import GuildSettings, VoiceLibrary

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Reservation:
    guild_id: int
    user_id: int
    seconds: float  # the most speech it can deliver, held against the daily quota until settled
    started_at: float  # time.time()
    id: str = ""  # the library's reservation; "" where the server has no quota or cooldown to hold
    done: bool = False
    voice_id: str | None = None  # the voice it speaks in, recorded with its usage


@dataclass(frozen=True)
class Delivered:
    """Speech that reached members but is not in the library yet (its write failed)."""

    guild_id: int
    user_id: int
    at: float
    audio_seconds: float
    gpu_seconds: float
    voice_id: str | None = None


def utc_midnight(now: float) -> float:
    """When today's quota began: midnight UTC of the day `now` falls in."""
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp()


class Limits:
    """This process's side of the limits. `holder` names the process's role (the same after a restart),
    so reservations a killed run left are cleared when it starts again (`start`)."""

    def __init__(
        self, store: VoiceLibrary, *, clock: Callable[[], float] = time.time, holder: str = "bot"
    ) -> None:
        self.store, self._clock, self.holder = store, clock, holder
        self._locks: dict[int, asyncio.Lock] = {}  # per server: one server's checks never wait on another's
        self._reserved: dict[int, float] = {}  # guild → seconds reserved by this process's requests
        self._unrecorded: list[Delivered] = []  # delivered, waiting for the library to take the write
        self._writing = asyncio.Lock()  # one writer of `_unrecorded` at a time: each is written once
        self._releasing: set[asyncio.Task[None]] = set()  # releases on their way to the library

    async def start(self) -> list[str]:
        """Clear what an earlier run of this holder left when it died (it delivers nothing now); where
        to tell the members whose requests it was making (`reply_to`), each once."""
        cleared = await self.store.aio.clear_reservations(self.holder)
        if cleared:
            log.warning("Cleared %d speech reservations an earlier run of %s left", len(cleared), self.holder)
        return [reply for reply in cleared if reply]

    def reserved_seconds(self, guild_id: int) -> float:
        """Seconds this process's requests in flight hold (the library knows every process's)."""
        return self._reserved.get(guild_id, 0.0)

    def unrecorded(self, guild_id: int) -> list[Delivered]:
        return [d for d in self._unrecorded if d.guild_id == guild_id]

    async def reserve(
        self,
        settings: GuildSettings,
        user_id: int,
        seconds: float,
        *,
        reply_to: str | None = None,
        voice_id: str | None = None,
    ) -> Reservation:
        """Hold `seconds` (the most the request can deliver) of today's quota and the member's cooldown,
        or refuse with why. `reply_to` ("application id:token" of the interaction) is kept with it, so
        a process killed mid-request can tell the member after its restart. `voice_id`: the voice the
        request speaks in, recorded with what it delivers."""
        guild_id = settings.guild_id
        if not settings.cooldown_s and not settings.daily_quota_s and not reply_to:  # nothing to keep
            self._reserved[guild_id] = self.reserved_seconds(guild_id) + seconds
            return Reservation(guild_id, user_id, seconds, self._clock(), voice_id=voice_id)
        async with self._locks.setdefault(guild_id, asyncio.Lock()):
            await self.released()
            await self._write_unrecorded()
            now = self._clock()
            since = utc_midnight(now)
            held_here = self.unrecorded(guild_id)
            reservation_id = await self.store.aio.reserve_speech(
                guild_id,
                user_id,
                seconds,
                cooldown_s=settings.cooldown_s,
                daily_quota_s=settings.daily_quota_s,
                now=now,
                day_start=since,
                holder=self.holder,
                unrecorded_seconds=sum(d.audio_seconds for d in held_here if d.at >= since),
                unrecorded_last_at=max((d.at for d in held_here if d.user_id == user_id), default=None),
                reply_to=reply_to,
            )
            self._reserved[guild_id] = self.reserved_seconds(guild_id) + seconds
            return Reservation(guild_id, user_id, seconds, now, reservation_id, voice_id=voice_id)

    async def settle(self, reservation: Reservation, delivered_s: float, *, gpu_seconds: float = 0.0) -> None:
        """The request delivered `delivered_s` of speech: charge that, and start the cooldown. Never
        fails for the library's sake: the delivery happened, so it counts (see the module docstring)."""
        if reservation.done:
            return
        reservation.done = True  # settled once, however many times this is called
        try:
            if not reservation.id:  # reserved nothing in the library: only what was delivered to write
                if delivered_s > 0:
                    self._unrecorded.append(self._delivered(reservation, delivered_s, gpu_seconds))
                    await self._write_unrecorded()
                return
            await self.store.aio.settle_speech(
                reservation.id,
                reservation.guild_id,
                reservation.user_id,
                audio_seconds=delivered_s,
                gpu_seconds=gpu_seconds,
                at=self._clock(),
                voice_id=reservation.voice_id,
            )
        except LibraryError as exc:
            if delivered_s > 0:
                self._unrecorded.append(self._delivered(reservation, delivered_s, gpu_seconds))
            log.error(
                "Usage of %.1f s in guild %s not recorded yet (%d waiting): %s",
                delivered_s,
                reservation.guild_id,
                len(self._unrecorded),
                exc.admin_message,
            )
            self._release_in_library(reservation)
        finally:
            self._let_go_here(reservation)

    def _delivered(self, reservation: Reservation, seconds: float, gpu_seconds: float) -> Delivered:
        """A delivery, now, to write to the library once it takes it."""
        return Delivered(
            reservation.guild_id,
            reservation.user_id,
            self._clock(),
            seconds,
            gpu_seconds,
            reservation.voice_id,
        )

    async def _write_unrecorded(self) -> None:
        """Write what was delivered but not recorded yet, oldest first; keep what the library refuses."""
        async with self._writing:
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
                        voice_id=delivered.voice_id,
                    )
                except LibraryError as exc:
                    log.warning(
                        "Usage of %.1f s in guild %s not recorded yet (%d waiting): %s",
                        delivered.audio_seconds,
                        delivered.guild_id,
                        len(self._unrecorded),
                        exc.admin_message,
                    )
                    return
                self._unrecorded.pop(0)

    def release(self, reservation: Reservation) -> None:
        """The request failed or was refused later on: nothing charged, no cooldown started. Callable
        from any `finally`: the library's side is let go of in the background (`released()` waits)."""
        if reservation.done:
            return
        reservation.done = True
        self._let_go_here(reservation)
        if reservation.id:
            self._release_in_library(reservation)

    async def released(self) -> None:
        """Wait until every release this process made has reached the library."""
        while self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)

    def _let_go_here(self, reservation: Reservation) -> None:
        left = self._reserved.pop(reservation.guild_id, 0.0) - reservation.seconds
        if left > 1e-9:
            self._reserved[reservation.guild_id] = left

    def _release_in_library(self, reservation: Reservation) -> None:
        async def release() -> None:
            try:
                await self.store.aio.release_speech(reservation.id, reservation.guild_id)
            except LibraryError as exc:  # it ends with its lease, or when this process starts again
                log.error("Reservation %s not released yet: %s", reservation.id, exc.admin_message)

        task = asyncio.get_running_loop().create_task(release())
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)
