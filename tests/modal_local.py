"""The deployed Modal class as `ModalBackend` looks it up, run in-process instead: each method through
`.local()` in a thread, so the bot's side of the wire meets the app's exactly, with no network."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any


class LocalModal:
    """A handle whose `encode_speaker`, `speak` and `info` have Modal's `.remote.aio` / `.remote_gen.aio`;
    records the output kind of every `speak` request."""

    def __init__(self, obj: Any) -> None:
        self.outputs: list[str] = []
        for name in ("encode_speaker", "speak", "info"):
            setattr(self, name, self._method(getattr(obj, name)))

    def _method(self, method: Any) -> Any:
        outputs = self.outputs

        async def call(*args: Any) -> Any:
            return await asyncio.to_thread(method.local, *args)

        async def stream(*args: Any) -> AsyncIterator[Any]:
            outputs.append(args[0]["output"])
            for reply in await asyncio.to_thread(lambda: list(method.local(*args))):
                yield reply

        remote = type("Remote", (), {"aio": staticmethod(call)})()
        remote_gen = type("RemoteGen", (), {"aio": staticmethod(stream)})()
        return type("Method", (), {"remote": remote, "remote_gen": remote_gen})()
