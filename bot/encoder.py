"""Encoding finished speech into files in worker processes, so encoding never holds the bot's GIL.

Encoding in threads didn't scale (two encoding threads ran at 0.73× the speed of one: PyAV holds the
GIL for much of the work), and a burst of files starved the event loop of gateway heartbeats and
every other reply. So files are encoded in a small `ProcessPoolExecutor`: created on first use, one
worker per core, fork-server workers that import `bot.audio` once, shut down with the bot.

Choices worth knowing:
- The audio held for files is bounded: a file's speech is gathered only once `holding(seconds)`
  has room for it (`MAX_HELD_S` in all), so a burst that outruns the encoders makes later requests
  wait before synthesis instead of piling up clips in memory.
- The line for that room is fair: servers take turns (the one served least recently first), then
  members within a server, and each member's own requests keep their order. One member's burst of
  long files no longer makes another server's one-liner wait behind all of it. A request that
  doesn't fit yet holds up the line (or long ones would starve), except that fitting requests from
  other servers may pass it while its own server still holds speech.
- At most one job per worker is handed to the pool at a time; the rest wait here, each holding only
  its own clip, so the pool never queues pickled copies of audio.
- PCM crosses as float32, the dtype every caller already holds: the file is byte-for-byte what
  `bot.audio` makes in-process. Converting to int16 would halve a transient copy (≤ one per worker)
  at the cost of that equality, and an extra pass over every clip.
- A worker that dies (killed for memory, say) breaks the pool: the job is tried once more on a fresh
  pool, and if that breaks too the member is told in words (`EncoderFailed`).
- Live voice keeps encoding in a thread per item: `bot.playback` says why.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import logging
import multiprocessing
import os
from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

import numpy as np

from bot import audio
from bot.errors import EncoderFailed

log = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

# 15 min of speech: 32 twenty-second requests synthesising with a dozen more waiting to be encoded,
# about 160 MB as float32 (twice that while a clip is stitched).
MAX_HELD_S = 900.0


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _context() -> multiprocessing.context.BaseContext:
    """Fork-server where there is one (workers fork from a process that imported `bot.audio` and the
    main module once; forking the bot itself would copy its threads' locks), else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["__main__", "bot.audio"])
        return context
    return multiprocessing.get_context("spawn")


@dataclasses.dataclass(eq=False)
class _Turn:
    """One request waiting to hold `seconds` of speech."""

    seconds: float
    guild_id: int | None
    user_id: int | None
    arrival: int
    admitted: bool = False
    ready: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


class HeldSpeech:
    """The speech held in memory for files: at most `max_held_s` seconds, shared out in fair turns.

    Waiting requests are lined up per (server, member). The next one let in comes from the server
    served least recently (among those with someone waiting), then from that server's member served
    least recently; a member's own requests keep their order. Never-served counts as least recently.
    """

    def __init__(self, max_held_s: float) -> None:
        self.max_held_s = max_held_s
        self.held_s = 0.0
        self._lines: dict[int | None, dict[int | None, collections.deque[_Turn]]] = {}
        self._holds: collections.Counter[int | None] = collections.Counter()  # per server
        self._arrivals = itertools.count()
        self._services = itertools.count()
        self._guild_served: dict[int | None, int] = {}
        self._member_served: dict[tuple[int | None, int | None], int] = {}

    @contextlib.asynccontextmanager
    async def holding(
        self, seconds: float, *, guild_id: int | None = None, user_id: int | None = None
    ) -> AsyncIterator[None]:
        """Wait for this server's and member's turn, and until `seconds` more speech fits; hold it
        for the block. A clip longer than the whole allowance waits to be held alone."""
        turn = _Turn(min(max(seconds, 0.0), self.max_held_s), guild_id, user_id, next(self._arrivals))
        self._lines.setdefault(guild_id, {}).setdefault(user_id, collections.deque()).append(turn)
        self._admit()
        try:
            await turn.ready.wait()
        except BaseException:
            # Cancelled: maybe let in already, between being admitted and waking up.
            if turn.admitted:
                self._release(turn)
            else:
                self._leave(turn)
            raise
        try:
            yield
        finally:
            self._release(turn)

    def _admit(self) -> None:
        """Let in every waiter whose turn it is and who fits, in turn order."""
        while (turn := self._next_to_admit()) is not None:
            self._take_from_line(turn)
            self.held_s += turn.seconds
            self._holds[turn.guild_id] += 1
            served = next(self._services)
            self._guild_served[turn.guild_id] = self._member_served[turn.guild_id, turn.user_id] = served
            turn.admitted = True
            turn.ready.set()
        _forget_served(self._guild_served, self._lines, lambda guild_id: None)
        waiting_members = [(guild_id, user_id) for guild_id, line in self._lines.items() for user_id in line]
        _forget_served(self._member_served, waiting_members, lambda member: member[0])

    def _next_to_admit(self) -> _Turn | None:
        # A request that doesn't fit yet blocks everyone behind it, or big ones would starve. The one
        # exception: while its server still holds speech, a fitting request from another server may go
        # ahead. That server's holdings only shrink (none of its requests pass it), and once it holds
        # nothing the line is strict again, so the blocked request is delayed by finitely many clips,
        # while other servers' one-liners don't wait on this server's burst.
        guild_ids = sorted(self._lines, key=self._guild_order)
        if not guild_ids:
            return None
        first = self._next_in(guild_ids[0])
        if self._fits(first):
            return first
        if not self._holds[first.guild_id]:
            return None
        return next((turn for guild_id in guild_ids[1:] if self._fits(turn := self._next_in(guild_id))), None)

    def _guild_order(self, guild_id: int | None) -> tuple[int, int]:
        first_arrival = min(line[0].arrival for line in self._lines[guild_id].values())
        return self._guild_served.get(guild_id, -1), first_arrival

    def _next_in(self, guild_id: int | None) -> _Turn:
        lines = self._lines[guild_id]
        user_id = min(
            lines,
            key=lambda user_id: (self._member_served.get((guild_id, user_id), -1), lines[user_id][0].arrival),
        )
        return lines[user_id][0]

    def _fits(self, turn: _Turn) -> bool:
        return self.held_s + turn.seconds <= self.max_held_s

    def _take_from_line(self, turn: _Turn) -> None:
        lines = self._lines[turn.guild_id]
        lines[turn.user_id].remove(turn)
        if not lines[turn.user_id]:
            del lines[turn.user_id]
        if not lines:
            del self._lines[turn.guild_id]

    def _leave(self, turn: _Turn) -> None:
        self._take_from_line(turn)
        self._admit()  # the one it blocked, or those behind it, may fit

    def _release(self, turn: _Turn) -> None:
        self.held_s -= turn.seconds
        self._holds[turn.guild_id] -= 1
        if not self._holds[turn.guild_id]:
            del self._holds[turn.guild_id]
        if not self._holds:
            self.held_s = 0.0  # sums of floats drift; a clip as long as the allowance must fit again
        self._admit()


def _forget_served(served: dict[K, int], waiting: Iterable[K], group: Callable[[K], Hashable]) -> None:
    """Forget when keys were last served once that no longer orders anything, so the record stays
    as small as the line: a key that waits for nothing and was served before every waiting key of
    its group would come first when it returns, and forgotten (never served) it still does."""
    waiting = set(waiting)
    oldest: dict[Hashable, int] = {}
    for key in waiting:
        last = served.get(key, -1)
        oldest[group(key)] = min(last, oldest.get(group(key), last))
    for key in [key for key in served if key not in waiting]:
        if group(key) not in oldest or served[key] < oldest[group(key)]:
            del served[key]


class Encoder:
    """`await encoder.file(...)` / `await encoder.voice_message(...)`: `bot.audio`'s encoders, run in
    the pool. `await encoder.close()` shuts the pool down (safe to call twice; a later job starts a
    new one). `encoder.holding(...)`: `HeldSpeech.holding`, the bound on speech waiting for files."""

    def __init__(self, workers: int | None = None, *, max_held_s: float = MAX_HELD_S) -> None:
        self.workers = workers or default_workers()
        self._held = HeldSpeech(max_held_s)
        self._pool: ProcessPoolExecutor | None = None
        self._slots = asyncio.Semaphore(self.workers)

    @property
    def held_s(self) -> float:
        return self._held.held_s

    @property
    def max_held_s(self) -> float:
        return self._held.max_held_s

    def holding(
        self, seconds: float, *, guild_id: int | None = None, user_id: int | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """`async with encoder.holding(seconds, guild_id=..., user_id=...):` see `HeldSpeech.holding`."""
        return self._held.holding(seconds, guild_id=guild_id, user_id=user_id)

    async def file(
        self, pcm: np.ndarray, fmt: str, limit_bytes: int | None = None, tags: audio.Tags | None = None
    ) -> bytes:
        """`audio.encode`, or `audio.fit_to_limit` when there is a limit."""
        if limit_bytes is None:
            return await self._run(_encode, pcm, fmt, tags)
        return await self._run(audio.fit_to_limit, pcm, fmt, limit_bytes, tags)

    async def voice_message(
        self, pcm: np.ndarray, *, tags: audio.Tags | None = None, limit_bytes: int | None = None
    ) -> audio.VoiceMessage:
        """`audio.voice_message`: Ogg/Opus bytes, duration and waveform."""
        return await self._run(_voice_message, pcm, tags, limit_bytes)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        async with self._slots:
            try:
                return await self._run_in_pool(fn, *args)
            except BrokenProcessPool:
                log.warning("an encoder process died; trying the file again on a new pool")
            try:
                return await self._run_in_pool(fn, *args)
            except BrokenProcessPool as error:
                log.error("an encoder process died again on the retry; the file is given up")
                raise EncoderFailed() from error

    async def _run_in_pool(self, fn: Callable[..., T], *args: object) -> T:
        pool = self._pool
        if pool is None:
            pool = self._pool = ProcessPoolExecutor(self.workers, mp_context=_context())
        try:
            # Submitting may start a worker and wait for the fork-server: not on the event loop.
            job = await asyncio.to_thread(pool.submit, fn, *args)
            return await asyncio.wrap_future(job)
        except BrokenProcessPool:
            if self._pool is pool:  # the first job to find it broken replaces it for all
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


# Module-level, so the pool can pickle them by name.
def _encode(pcm: np.ndarray, fmt: str, tags: audio.Tags | None) -> bytes:
    return audio.encode(pcm, fmt, tags=tags)


def _voice_message(pcm: np.ndarray, tags: audio.Tags | None, limit_bytes: int | None) -> audio.VoiceMessage:
    return audio.voice_message(pcm, tags=tags, limit_bytes=limit_bytes)
