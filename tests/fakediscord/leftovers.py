"""The check every voice test ends with: discord.py's (and our) threads stopped, no task pending."""

from __future__ import annotations

import asyncio
import threading

DISCORD_THREADS = ("keep-alive-handler", "voice-keep-alive-handler", "voice-socket-reader", "audio-player")


def running_threads(prefixes: tuple[str, ...] = DISCORD_THREADS) -> list[threading.Thread]:
    """Threads with these name prefixes still working. A voice SocketReader told to stop is counted
    as stopped: it sits in ``select(..., 30)`` on its closed socket and exits when that times out."""
    running = []
    for thread in threading.enumerate():
        if not thread.is_alive() or not thread.name.startswith(prefixes):
            continue
        if thread.name.startswith("voice-socket-reader") and thread._end.is_set():  # type: ignore[attr-defined]
            continue
        running.append(thread)
    return running


async def assert_nothing_left_behind(
    prefixes: tuple[str, ...] = DISCORD_THREADS, *, within: float = 3.0
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        threads = running_threads(prefixes)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        if (not threads and not tasks) or loop.time() >= deadline:
            break
        await asyncio.sleep(0.05)
    assert not threads, f"threads left running: {threads}"
    assert not tasks, f"tasks left pending: {tasks}"
