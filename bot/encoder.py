"""Encoding finished speech into files in worker processes, so encoding never holds the bot's GIL.

Encoding in threads didn't scale (two encoding threads ran at 0.73× the speed of one: PyAV holds the
GIL for much of the work), and a burst of files starved the event loop of gateway heartbeats and
every other reply. So files are encoded in a small `ProcessPoolExecutor`: created on first use, one
worker per core, fork-server workers that import `bot.audio` once, shut down with the bot.

Choices worth knowing:
- The audio held for files is bounded: a file's speech is gathered only once `holding(seconds)`
  has room for it (`MAX_HELD_S` in all, first come first served), so a burst that outruns the
  encoders makes later requests wait before synthesis instead of piling up clips in memory.
- At most one job per worker is handed to the pool at a time; the rest wait here, each holding only
  its own clip, so the pool never queues pickled copies of audio.
- PCM crosses as float32, the dtype every caller already holds: the file is byte-for-byte what
  `bot.audio` makes in-process. Converting to int16 would halve a transient copy (≤ one per worker)
  at the cost of that equality, and an extra pass over every clip.
- A worker that dies (killed for memory, say) breaks the pool: the job fails and the next one gets
  a fresh pool.
- Live voice keeps encoding in a thread per item: `bot.playback` says why.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import multiprocessing
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

import numpy as np

from bot import audio

log = logging.getLogger(__name__)

T = TypeVar("T")

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


class Encoder:
    """`await encoder.file(...)` / `await encoder.voice_message(...)`: `bot.audio`'s encoders, run in
    the pool. `await encoder.close()` shuts the pool down (safe to call twice; a later job starts a
    new one)."""

    def __init__(self, workers: int | None = None, *, max_held_s: float = MAX_HELD_S) -> None:
        self.workers = workers or default_workers()
        self.max_held_s = max_held_s
        self.held_s = 0.0
        self._pool: ProcessPoolExecutor | None = None
        self._slots = asyncio.Semaphore(self.workers)
        self._room = asyncio.Condition()
        self._waiting: collections.deque[object] = collections.deque()

    @contextlib.asynccontextmanager
    async def holding(self, seconds: float) -> AsyncIterator[None]:
        """Wait (first come, first served) until `seconds` more audio may be held for encoding, and
        hold it for the block. A clip longer than the whole allowance waits to be held alone."""
        seconds = min(max(seconds, 0.0), self.max_held_s)
        turn = object()
        async with self._room:
            self._waiting.append(turn)
            try:
                await self._room.wait_for(
                    lambda: self._waiting[0] is turn and self.held_s + seconds <= self.max_held_s
                )
            finally:
                self._waiting.remove(turn)
                self._room.notify_all()  # the next in line may fit too (or may now be first)
            self.held_s += seconds
        try:
            yield
        finally:
            async with self._room:
                self.held_s -= seconds
                self._room.notify_all()

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
            pool = self._pool
            if pool is None:
                pool = self._pool = ProcessPoolExecutor(self.workers, mp_context=_context())
            try:
                # Submitting may start a worker and wait for the fork-server: not on the event loop.
                job = await asyncio.to_thread(pool.submit, fn, *args)
                return await asyncio.wrap_future(job)
            except BrokenProcessPool:
                log.error("an encoder process died; starting a new pool for the next file")
                if self._pool is pool:
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
