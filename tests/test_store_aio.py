"""library.aio: the library's async façade gives the sync methods' results and errors, off the loop, on
both engines."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import threading

import numpy as np
import pytest

from bot.errors import VoiceNameTaken, VoiceNotFound
from bot.store import AsyncVoiceLibrary, VoiceLibrary, VoiceStore
from bot.store.postgres import PostgresVoiceStore

LATENT = np.arange(8 * 80, dtype=np.float16).reshape(8, 80)


@pytest.fixture
def store(open_test_library):
    return open_test_library(max_voices_per_guild=3)


async def add(store: VoiceLibrary, guild: int, name: str) -> object:
    return await store.aio.add(
        guild,
        name,
        owner_id=7,
        reference_flac=b"fLaC-bytes",
        latent=LATENT,
        duration_s=6.25,
        revision="echo-abc",
        consent_by=7,
        source="test",
    )


async def test_async_calls_return_what_the_sync_store_holds(store):
    voice = await add(store, 1, "Ada")
    assert store.get(1, "Ada") == voice == await store.aio.get(1, "ada")
    assert await store.aio.list(1) == store.list(1) == [voice]
    np.testing.assert_array_equal(await store.aio.load_latent(voice), LATENT)
    settings = await store.aio.update_settings(1, cooldown_s=30.0)
    assert store.settings(1) == settings == await store.aio.settings(1)
    assert await store.aio.set_autoread_channel(1, 55, True) is True
    assert store.autoread_channels(1) == {55}


async def test_async_calls_raise_the_sync_errors(store):
    await add(store, 1, "Ada")
    with pytest.raises(VoiceNameTaken):
        await add(store, 1, "ADA")
    with pytest.raises(VoiceNotFound):
        await store.aio.get(2, "Ada")  # another guild's voice is not found


async def test_each_call_runs_in_a_worker_thread_not_on_the_event_loop(store, monkeypatch):
    assert store.aio is store.aio and store.aio.sync is store
    threads = []
    settings = store.settings

    def recording(guild_id):
        threads.append(threading.current_thread())
        return settings(guild_id)

    monkeypatch.setattr(store, "settings", recording)
    assert await store.aio.settings(1) == settings(1)
    assert threads and threads[0] is not threading.current_thread()


def test_the_façade_keeps_the_sync_signatures():
    for name, method in vars(AsyncVoiceLibrary).items():
        if name.startswith("_") or not callable(method):
            continue
        sync = getattr(VoiceLibrary, name)
        assert inspect.iscoroutinefunction(method), name
        assert inspect.signature(method) == inspect.signature(sync), name
        assert method.__doc__ == sync.__doc__, name
        for engine in (VoiceStore, PostgresVoiceStore):  # each engine keeps the API's signatures
            assert inspect.signature(getattr(engine, name)) == inspect.signature(sync), (engine, name)


async def test_a_method_replaced_on_the_store_is_the_one_the_façade_runs(store):
    store.count = lambda guild_id: 99  # as tests and repair hooks do
    assert await store.aio.count(1) == 99


async def test_closing_waits_for_a_call_whose_task_was_cancelled(store, monkeypatch):
    """Cancelling a task doesn't stop its worker thread: closing the connection under that thread's
    query crashed `voicebot sync` (SIGSEGV) when the re-encoder was cancelled at shutdown."""
    entered, release = threading.Event(), threading.Event()
    outcome: list[object] = []
    voices = store._voices

    def slow_voices(*args, **kwargs):
        entered.set()
        release.wait(10)
        try:
            outcome.append(voices(*args, **kwargs))  # this thread's connection, after close was asked
        except Exception as exc:
            outcome.append(exc)
            raise

    monkeypatch.setattr(store, "_voices", slow_voices)
    reencode = asyncio.create_task(store.aio.needing_reencode())
    await asyncio.to_thread(entered.wait, 10)
    reencode.cancel()
    closing = asyncio.create_task(store.aio.close())
    await asyncio.sleep(0.3)
    assert not closing.done()  # held until the query in flight returns
    release.set()
    await asyncio.wait_for(closing, 10)
    assert outcome == [[]]
    # A call after closing is refused, not run on a closed connection; either engine raises the same
    # "closed" error (bot.store.faults.CallsInFlight's), before it reaches its database.
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        store.count(1)
