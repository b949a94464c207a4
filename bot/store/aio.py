"""`store.aio`: the VoiceStore's methods as coroutines, each call run in a worker thread.

The store is synchronous (SQLite and file I/O under one lock), which suits the CLI and the tests; the
bot's event loop must never wait on a disk, so async code calls `await store.aio.get(guild_id, name)`
instead of wrapping `store.get` in `asyncio.to_thread` itself. Signatures and errors are the sync
method's own.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from bot.store.library import VoiceStore

P = ParamSpec("P")
R = TypeVar("R")


def _in_thread(
    method: Callable[Concatenate[Any, P], R],
) -> Callable[Concatenate[AsyncVoiceStore, P], Coroutine[Any, Any, R]]:
    """`method` of the wrapped store, awaited in a worker thread."""
    name = method.__name__

    @functools.wraps(method)
    async def call(self: AsyncVoiceStore, *args: P.args, **kwargs: P.kwargs) -> R:
        # looked up on the store at call time, so a method replaced on the instance is the one run
        return await asyncio.to_thread(getattr(self.sync, name), *args, **kwargs)

    return call


class AsyncVoiceStore:
    """Awaitable twins of the VoiceStore methods the bot calls; `sync` is the store itself."""

    def __init__(self, store: VoiceStore) -> None:
        self.sync = store

    # voices
    find = _in_thread(VoiceStore.find)
    get = _in_thread(VoiceStore.get)
    get_by_id = _in_thread(VoiceStore.get_by_id)
    list = _in_thread(VoiceStore.list)
    count = _in_thread(VoiceStore.count)
    check_can_add = _in_thread(VoiceStore.check_can_add)
    add = _in_thread(VoiceStore.add)
    rename = _in_thread(VoiceStore.rename)
    delete = _in_thread(VoiceStore.delete)
    load_latent = _in_thread(VoiceStore.load_latent)
    read_reference = _in_thread(VoiceStore.read_reference)
    replace_latent = _in_thread(VoiceStore.replace_latent)
    mark_needs_reencode = _in_thread(VoiceStore.mark_needs_reencode)
    needing_reencode = _in_thread(VoiceStore.needing_reencode)
    settle_leftovers = _in_thread(VoiceStore.settle_leftovers)
    close = _in_thread(VoiceStore.close)

    # settings and usage
    settings = _in_thread(VoiceStore.settings)
    update_settings = _in_thread(VoiceStore.update_settings)
    default_voice = _in_thread(VoiceStore.default_voice)
    set_default_voice = _in_thread(VoiceStore.set_default_voice)
    last_say_at = _in_thread(VoiceStore.last_say_at)
    record_usage = _in_thread(VoiceStore.record_usage)
    audio_seconds_since = _in_thread(VoiceStore.audio_seconds_since)

    # reading: the dictionary and auto-read
    dictionary = _in_thread(VoiceStore.dictionary)
    add_pronunciation = _in_thread(VoiceStore.add_pronunciation)
    remove_pronunciation = _in_thread(VoiceStore.remove_pronunciation)
    autoread_settings = _in_thread(VoiceStore.autoread_settings)
    update_autoread_settings = _in_thread(VoiceStore.update_autoread_settings)
    autoread_channels = _in_thread(VoiceStore.autoread_channels)
    set_autoread_channel = _in_thread(VoiceStore.set_autoread_channel)
    autoread_members = _in_thread(VoiceStore.autoread_members)
    set_autoread_member = _in_thread(VoiceStore.set_autoread_member)
    autoread_ignored_roles = _in_thread(VoiceStore.autoread_ignored_roles)
    set_autoread_ignored_role = _in_thread(VoiceStore.set_autoread_ignored_role)
