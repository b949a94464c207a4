"""Running a library method in a worker thread, as a coroutine with the method's own signature.

The library is synchronous (SQLite and file I/O, or a PostgreSQL connection, per thread), which suits the
CLI and the tests; the bot's event loop must never wait on either, so async code awaits
`library.aio.get(guild_id, name)` (`bot.store.library.AsyncVoiceLibrary`, built from `in_thread`)
instead of wrapping `library.get` in `asyncio.to_thread` itself. Signatures and errors are the sync
method's own.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class _HasSync(Protocol):
    sync: Any


def in_thread(
    method: Callable[Concatenate[Any, P], R],
) -> Callable[Concatenate[_HasSync, P], Coroutine[Any, Any, R]]:
    """`method` of the wrapped library (`self.sync`), awaited in a worker thread."""
    name = method.__name__

    @functools.wraps(method)
    async def call(self: _HasSync, *args: P.args, **kwargs: P.kwargs) -> R:
        # looked up on the library at call time: the engine's own method, or one replaced on the instance
        return await asyncio.to_thread(getattr(self.sync, name), *args, **kwargs)

    return call
