"""LocalBackend: the engine in a worker thread, batching across requests, a responsive event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

import numpy as np
import pytest

from bot.errors import (
    BackendBusy,
    BackendInvalidRequest,
    BackendTimedOut,
    LocalEngineUnavailable,
    SpeakerLatentRejected,
)
from bot.tts.base import SpeakerLatent
from bot.tts.local_backend import LocalBackend, _map_error
from modal_tts.engine import Row
from modal_tts.params import InvalidLatent, SynthesisParams, chunk_seed
from tests.media import speech_like

FAST = SynthesisParams(steps=6, sequence_length=96)
TEXTS = ["[S1] First.", "[S1] Second one.", "[S1] Third, and last."]


@pytest.fixture
async def local(tiny_engine):
    backend = LocalBackend(engine=tiny_engine)
    yield backend
    await backend.close()


@pytest.fixture(scope="module")
def voice(tiny_latent) -> SpeakerLatent:
    return SpeakerLatent(tiny_latent, "rev")


async def collect(stream) -> list:
    return [chunk async for chunk in stream]


async def test_chunks_stream_in_order_and_match_the_engine(local, voice, tiny_engine):
    chunks = await collect(local.synthesize(TEXTS, voice, FAST, seed=5))
    expected = tiny_engine.synthesize(TEXTS, voice.data, FAST, seed=5)
    assert [c.index for c in chunks] == [0, 1, 2]
    for chunk, audio in zip(chunks, expected, strict=True):
        np.testing.assert_allclose(chunk.audio, audio, atol=2e-4)
        assert chunk.gpu_seconds > 0


async def test_live_speech_arrives_block_by_block(local, voice, tiny_engine):
    """The live settings sample in the low-latency plan: the first 32 latents (1.5 s) come as a piece of
    their own, before the rest of the chunk exists; the pieces join into the engine's chunk."""
    from bot import speech

    live = dataclasses.replace(speech.settings(live=True), steps=4, silence_guard_s=None)
    assert live.block_plan == "low-latency" and speech.settings().block_plan == "whole"
    text = "[S1] A sentence long enough to need a second block."
    stream = local.synthesize([text], voice, live, seed=5)
    first = await anext(stream)
    assert (first.index, first.block, first.last) == (0, 0, False)
    assert first.audio.size == 32 * 2048
    rest = await collect(stream)
    assert [(c.block, c.last) for c in rest] == [(1, True)]
    (expected,) = tiny_engine.synthesize([text], voice.data, live, seed=5)
    np.testing.assert_allclose(np.concatenate([first.audio, rest[0].audio]), expected, atol=2e-4)


async def test_the_event_loop_stays_responsive_while_the_engine_works(local, voice):
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    chunks = await collect(local.synthesize(TEXTS, voice, SynthesisParams(), seed=1))
    busy = time.perf_counter() - started
    done.set()
    await task
    assert len(chunks) == 3 and busy > 0.5  # the engine really worked for a while …
    assert len(lags) > busy / 0.05  # … the loop kept ticking through it …
    assert max(lags) < 0.25, f"worst event-loop lag {max(lags) * 1000:.0f} ms"  # … and never stalled
    print(f"engine busy {busy:.2f} s; loop lag max {max(lags) * 1e3:.1f} ms")


async def waiting_together(backend: LocalBackend, rows: int, *streams):
    """Run `streams` with the GPU thread held until all their `rows` wait, so they surely arrive together."""
    scheduler = await backend.scheduler()
    gate = threading.Event()
    scheduler.call(gate.wait)
    tasks = [asyncio.create_task(collect(stream)) for stream in streams]
    for _ in range(1000):
        if len(scheduler.planner.waiting) == rows:
            break
        await asyncio.sleep(0.01)
    gate.set()
    return await asyncio.gather(*tasks)


async def test_requests_that_arrive_together_share_one_batch(local, voice, tiny_engine):
    other = SpeakerLatent(tiny_engine.encode_speaker(speech_like(9.0, seed=2)), "rev")
    a, b = await waiting_together(
        local,
        3,
        local.synthesize(TEXTS[:2], voice, FAST, seed=10),
        local.synthesize(TEXTS[2:], other, FAST, seed=20),
    )
    # Both first chunks share one sampler call; a's second chunk comes in the call after it.
    assert local.batches_run == 2
    # Each chunk is what it would be alone: its own seed, its own voice.
    ((_, alone),) = tiny_engine.synthesize_rows([Row(TEXTS[2], other.data, chunk_seed(20, 0))], FAST)
    np.testing.assert_allclose(b[0].audio, alone, atol=2e-4)
    assert [c.index for c in a] == [0, 1] and [c.index for c in b] == [0]


async def test_requests_with_different_settings_do_not_share(local, voice):
    await waiting_together(
        local,
        2,
        local.synthesize(TEXTS[:1], voice, FAST, seed=1),
        local.synthesize(TEXTS[:1], voice, SynthesisParams(steps=5, sequence_length=96), 1),
    )
    assert local.batches_run == 2


async def test_long_requests_are_split_into_batches_in_order(tiny_engine, voice):
    backend = LocalBackend(engine=tiny_engine, max_batch_rows=2)
    try:
        texts = [f"[S1] Sentence number {i}." for i in range(5)]
        chunks = await collect(backend.synthesize(texts, voice, FAST, seed=3))
        assert [c.index for c in chunks] == [0, 1, 2, 3, 4]
        assert backend.batches_run == 3
    finally:
        await backend.close()


async def test_a_full_queue_says_busy(tiny_engine, voice):
    backend = LocalBackend(engine=tiny_engine, max_waiting_rows=2)
    gate = threading.Event()
    try:
        scheduler = await backend.scheduler()
        scheduler.call(gate.wait)  # hold the GPU thread: the first request surely still waits
        first = asyncio.create_task(collect(backend.synthesize(TEXTS[:1], voice, FAST, seed=1)))
        for _ in range(1000):
            if scheduler.planner.waiting:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(BackendBusy):  # 1 waiting + 2 more is past the limit of 2
            await collect(backend.synthesize(TEXTS[:2], voice, FAST, seed=2))
        gate.set()
        assert [c.index for c in await first] == [0]
    finally:
        gate.set()
        await backend.close()


async def test_a_request_longer_than_the_queue_runs_when_nothing_else_waits(tiny_engine, voice):
    backend = LocalBackend(engine=tiny_engine, max_waiting_rows=2)
    try:
        chunks = await collect(backend.synthesize(TEXTS, voice, FAST, seed=1))
        assert [c.index for c in chunks] == [0, 1, 2]
    finally:
        await backend.close()


async def test_a_consumer_that_stops_early_cancels_its_remaining_chunks(tiny_engine, voice):
    backend = LocalBackend(engine=tiny_engine, max_batch_rows=1)
    try:
        stream = backend.synthesize(TEXTS, voice, FAST, seed=1)
        first = await anext(stream)
        await stream.aclose()
        await asyncio.sleep(0.5)
        assert first.index == 0 and backend.batches_run <= 2  # the third chunk never ran
    finally:
        await backend.close()


async def test_bad_input_and_bad_weights_are_typed_errors(local, voice, tmp_path):
    with pytest.raises(BackendInvalidRequest, match="769 bytes"):
        await collect(local.synthesize(["x" * 769], voice, FAST, seed=1))
    broken = LocalBackend(tmp_path / "no-weights", device="cpu")
    try:
        with pytest.raises(LocalEngineUnavailable) as info:
            await broken.encode_speaker(speech_like(6.0))
        assert "does not exist" in info.value.detail and "voicebot weights fetch" in info.value.detail
        with pytest.raises(LocalEngineUnavailable):
            await broken.load()
        with pytest.raises(LocalEngineUnavailable):
            await broken.info()
    finally:
        await broken.close()


async def test_a_damaged_voice_is_rejected_as_the_voices_fault(local, voice):
    damaged = voice.data.copy()
    damaged[2, 3] = np.nan
    with pytest.raises(SpeakerLatentRejected, match="damaged") as info:
        await collect(local.synthesize(TEXTS[:1], SpeakerLatent(damaged, voice.revision), FAST, seed=1))
    assert "NaN" in info.value.detail and isinstance(info.value, BackendInvalidRequest)
    assert local.batches_run == 0  # refused before it reached the engine
    # The scheduler's own check (behind the backend's) maps the same way.
    assert isinstance(_map_error(InvalidLatent("A speaker latent has 7 frames")), SpeakerLatentRejected)


async def test_encode_speaker_and_info(local, tiny_engine):
    latent = await local.encode_speaker(speech_like(6.0))
    assert latent.revision == tiny_engine.revision
    np.testing.assert_array_equal(latent.data, tiny_engine.encode_speaker(speech_like(6.0)))
    assert (await local.info())["revision"] == tiny_engine.revision


def test_importing_the_backends_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, bot.tts, bot.tts.modal_backend, bot.tts.local_backend, bot.errors; "
        "assert 'torch' not in sys.modules and 'modal_tts.engine' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class HungEngine:
    """An engine whose work never finishes until the test lets it go."""

    revision = "hung"

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()

    def encode_speaker(self, pcm):
        self.release.wait()
        return np.zeros((4, 80), np.float16)

    def sample_rows(self, rows, params, window):
        self.release.wait()
        raise RuntimeError("released")


async def test_a_hung_engine_times_out_instead_of_waiting_forever(voice):
    engine = HungEngine()
    backend = LocalBackend(engine=engine, timeout=0.5)
    try:
        with pytest.raises(BackendTimedOut):
            await collect(backend.synthesize(TEXTS[:1], voice, FAST, seed=1))
        with pytest.raises(BackendTimedOut):  # requests behind the hung one fail too, rather than pile up
            await collect(backend.synthesize(TEXTS[:1], voice, FAST, seed=2))
        with pytest.raises(BackendTimedOut):
            await backend.encode_speaker(speech_like(6.0))
    finally:
        engine.release.set()
        await backend.close()
