"""LocalBackend on a load or an engine that hangs: every public method gives up after the backend's
timeout with BackendTimedOut, and a stuck GPU thread refuses later calls instead of queueing them.

Each call runs under a generous `asyncio.wait_for(…, GUARD)`: what is asserted is that it returns
with the configured timeout's error rather than hanging, never how fast it did."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bot.errors import BackendTimedOut, ModelLoadTimedOut
from bot.tts.base import SpeakerLatent
from bot.tts.local_backend import LocalBackend
from modal_tts.params import SynthesisParams

TIMEOUT = 0.5
GUARD = 30.0
PARAMS = SynthesisParams(steps=2, sequence_length=32)
VOICE = SpeakerLatent(np.zeros((8, 80), np.float16), "rev")
HANG = "[S1] The chunk the engine hangs on."


class BlockingEngine:
    """Work that blocks on `release` (every method, or only sampling a row whose text is `hang_on`)."""

    revision = "blocking"
    device = SimpleNamespace(type="cpu")  # all LocalBackend's load asks of a loaded engine

    def __init__(self, hang_on: str | None = None) -> None:
        self.release = threading.Event()
        self.hang_on = hang_on
        self.sampled: list[list[str]] = []

    def _block(self) -> None:
        self.release.wait()

    def encode_speaker(self, pcm: np.ndarray) -> np.ndarray:
        self._block()
        return np.zeros((8, 80), np.float16)

    def info(self) -> dict:
        self._block()
        return {"revision": self.revision}

    def sample_rows(self, rows, params, window):
        texts = [r.text for r in rows]
        self.sampled.append(texts)
        if self.hang_on is None or self.hang_on in texts:
            self._block()
            raise RuntimeError("released")
        return [window] * len(rows)

    def end_of_speech(self, latents, index: int) -> int:
        return latents[index]

    def decode(self, latents, index: int, end: int) -> np.ndarray:
        return np.full(end * 2048, 0.25, np.float32)


@pytest.fixture
def engine() -> Iterator[BlockingEngine]:
    engine = BlockingEngine()
    yield engine
    engine.release.set()  # let the GPU thread end


@pytest.fixture
async def backend(engine: BlockingEngine):
    backend = LocalBackend(engine=engine, timeout=TIMEOUT, gather_seconds=0.0)
    yield backend
    engine.release.set()
    await backend.close()


async def guarded(awaitable):
    return await asyncio.wait_for(awaitable, GUARD)


async def collect(stream) -> list:
    return [chunk async for chunk in stream]


def assert_configured_timeout(error: BackendTimedOut) -> None:
    assert error.seconds == TIMEOUT and f"{TIMEOUT:.0f} s" in error.message


async def test_info_on_a_hung_engine_times_out(backend):
    with pytest.raises(BackendTimedOut) as info:
        await guarded(backend.info())
    assert_configured_timeout(info.value)


async def test_encode_speaker_on_a_hung_engine_times_out(backend):
    with pytest.raises(BackendTimedOut) as info:
        await guarded(backend.encode_speaker(np.zeros(44_100, np.float32)))
    assert_configured_timeout(info.value)


async def test_a_hung_sampler_times_out_the_first_chunk(backend):
    with pytest.raises(BackendTimedOut) as info:
        await guarded(collect(backend.synthesize([HANG], VOICE, PARAMS, seed=1)))
    assert_configured_timeout(info.value)


async def test_a_hung_sampler_times_out_a_later_chunk():
    engine = BlockingEngine(hang_on=HANG)
    # The first chunk gets all the time it needs, whatever this machine's speed; then the timeout.
    backend = LocalBackend(engine=engine, timeout=GUARD, gather_seconds=0.0, max_batch_rows=1)
    got = []
    try:
        with pytest.raises(BackendTimedOut) as info:
            async for chunk in backend.synthesize(["[S1] Fine.", HANG], VOICE, PARAMS, seed=1):
                got.append(chunk.index)
                backend.timeout = TIMEOUT
        assert got == [0] and engine.sampled[-1] == [HANG]
        assert_configured_timeout(info.value)
    finally:
        engine.release.set()
        await backend.close()


async def test_a_stuck_gpu_thread_refuses_later_calls_instead_of_queueing_them(backend, engine):
    scheduler = await backend.scheduler()
    scheduler.call(engine.release.wait)  # the GPU thread hangs, whenever this machine gets to it
    # Stuck: on one job for longer than the timeout. A clock, not an event, so it is polled.
    while scheduler.busy_for() < TIMEOUT:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    with pytest.raises(BackendTimedOut) as info:
        await guarded(collect(backend.synthesize([HANG], VOICE, PARAMS, seed=2)))
    assert_configured_timeout(info.value)
    assert scheduler.planner.waiting == []  # refused, not queued behind the hung batch
    for call in (backend.encode_speaker(np.zeros(44_100, np.float32)), backend.info()):
        with pytest.raises(BackendTimedOut):
            await guarded(call)
    await guarded(backend.close())  # no waiting for a job that won't end
    assert engine.sampled == []


async def test_a_hung_load_times_out_and_says_the_model_was_loading(tmp_path: Path, monkeypatch):
    from modal_tts.engine import EchoEngine

    release, loads = threading.Event(), []
    late = BlockingEngine()
    late.release.set()  # the engine the load finally returns works

    def from_dir(path, device=None, **_):
        loads.append(path)
        release.wait()
        return late

    monkeypatch.setattr(EchoEngine, "from_dir", from_dir)
    backend = LocalBackend(tmp_path, device="cpu", timeout=TIMEOUT)
    try:
        for call in (
            backend.load(),
            backend.info(),
            backend.encode_speaker(np.zeros(44_100, np.float32)),
            collect(backend.synthesize(["[S1] Hello."], VOICE, PARAMS, seed=1)),
        ):
            with pytest.raises(ModelLoadTimedOut) as info:
                await guarded(call)
            assert isinstance(info.value, BackendTimedOut) and info.value.seconds == TIMEOUT
            assert "Loading the speech model timed out" in info.value.message
        release.set()
        while True:  # the load that hung finishes: the next call uses it
            try:
                assert (await guarded(backend.info())) == {"revision": "blocking"}
                break
            except ModelLoadTimedOut:
                continue
        assert len(loads) == 1  # one load, shared by every caller, never started again
    finally:
        release.set()
        await backend.close()
