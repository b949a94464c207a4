"""The GPU scheduler's choices, on a fake engine that records what it was asked to run."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from modal_tts import windows
from modal_tts.params import SynthesisParams
from modal_tts.scheduler import AGING_BATCHES, Busy, Planner, Request, Scheduler, run_batch, run_inline

LATENT = np.zeros((8, 80), np.float16)
PARAMS = SynthesisParams(steps=2)
SHORT = "[S1] Hi there."  # a 160-latent window
LONG = "[S1] " + "word " * 70  # 350 characters, 25 s: the full window


class FakeEngine:
    """Speech that ends where `ends` says (default: the window's end, as random weights do)."""

    def __init__(self, ends: dict[str, int] | None = None) -> None:
        self.ends = ends or {}
        self.calls: list[tuple[int, list[str]]] = []
        self.decoded: list[str] = []
        self.fail_on: str | None = None

    def sample_rows(self, rows, params, window):
        texts = [r.text for r in rows]
        self.calls.append((window, texts))
        if self.fail_on in texts:
            raise RuntimeError("sampler broke")
        return [(r.text, window) for r in rows]

    def end_of_speech(self, latents, index):
        text, window = latents[index]
        return min(self.ends.get(text, window), window)

    def decode(self, latents, index, end):
        self.decoded.append(latents[index][0])
        return np.full(end, 0.5, np.float32)


def request(texts, got, errors=None, params=PARAMS) -> Request:
    return Request(list(texts), LATENT, params, 1, got.append, (errors if errors is not None else []).append)


def drain(engine, planner) -> None:
    while (batch := planner.next_batch()) is not None:
        run_batch(engine, planner.cut, batch)


def test_windows_are_sized_to_the_text_from_a_few_buckets():
    assert windows.window_for("[S1] Hello.") == 160
    assert windows.window_for(LONG) == 640
    assert {windows.window_for("[S1] " + "a" * n) for n in range(0, 767, 7)} <= set(windows.BUCKETS)
    assert windows.next_bucket(160) == 256 and windows.next_bucket(640) is None
    # Cut: speech still going at the window's end, for a text that could fill it.
    assert windows.was_cut("[S1] " + "word " * 30, 256, 256) and not windows.was_cut(
        "[S1] " + "word " * 30, 256, 200
    )
    assert not windows.was_cut("[S1] Hello.", 160, 160)  # a short text that never ends: tail noise


def test_first_chunks_go_first_and_alone():
    engine, got = FakeEngine(), []
    planner = Planner()
    planner.add(request([SHORT, SHORT, SHORT], got))  # an older, long request
    planner.add(request([SHORT], got))  # a newcomer
    drain(engine, planner)
    # Both first chunks in one call, nothing else with them; the older request's rest after.
    assert [len(texts) for _, texts in engine.calls] == [2, 2]
    assert [c.index for c in got[:2]] == [0, 0]


def test_a_later_chunk_passed_over_is_promoted():
    planner = Planner(max_batch_rows=1)
    old = planner.add(request([SHORT, SHORT], []))
    planner.next_batch()  # old's first chunk
    served = []
    for _ in range(2 * AGING_BATCHES):  # a newcomer every round: its first chunk outranks old's second
        planner.add(request([SHORT], []))
        served.append(planner.next_batch().rows[0].request is old)
    assert served.index(True) < AGING_BATCHES  # not starved by the stream of newcomers


def test_rows_share_a_call_only_with_the_same_window_and_settings():
    engine, got = FakeEngine(), []
    planner = Planner()
    for texts, params in (
        ([SHORT], PARAMS),
        ([LONG], PARAMS),
        ([SHORT], SynthesisParams(steps=3)),
        ([SHORT], PARAMS),
    ):
        planner.add(request(texts, got, params=params))
    drain(engine, planner)
    assert sorted((w, len(t)) for w, t in engine.calls) == [(160, 1), (160, 2), (640, 1)]


def test_cut_speech_is_sampled_again_once_at_the_next_bucket():
    filled = "[S1] " + "word " * 20  # 7 s: a 256 window, and long enough to have filled it
    assert windows.window_for(filled) == 256
    engine, got = FakeEngine(), []
    planner = Planner()
    job = planner.add(request([filled, SHORT], got))
    drain(engine, planner)
    assert [(w, t) for w, t in engine.calls] == [(256, [filled]), (384, [filled]), (160, [SHORT])]
    assert planner.resampled == job.resampled == 1  # once: at 384 it is accepted as it is
    assert [(c.index, c.window, c.resampled) for c in got] == [(0, 384, True), (1, 160, False)]
    # Speech that ends in time, or a window asked for explicitly, is never re-sampled.
    for engine, params, size in (
        (FakeEngine(ends={filled: 150}), PARAMS, 150),
        (FakeEngine(), SynthesisParams(steps=2, sequence_length=256), 256),
    ):
        got, planner = [], Planner()
        planner.add(request([filled], got, params=params))
        drain(engine, planner)
        assert planner.resampled == 0 and [c.audio.size for c in got] == [size]


def test_chunks_reach_the_caller_in_order():
    engine, got = FakeEngine(), []
    planner = Planner()
    planner.add(request([SHORT, LONG, SHORT], got))  # chunk 2 (160) is ready before chunk 1 (640)
    drain(engine, planner)
    assert [c.index for c in got] == [0, 1, 2]


def test_cancelled_requests_stop_costing_after_the_current_batch():
    engine, got = FakeEngine(), []
    planner = Planner()
    job = planner.add(request([SHORT, SHORT, SHORT], got))
    batch = planner.next_batch()
    job.cancel()
    run_batch(engine, planner.cut, batch)
    assert engine.decoded == [] and planner.next_batch() is None


def test_a_failing_batch_fails_only_its_requests():
    engine, got, errors = FakeEngine(), [], []
    engine.fail_on = LONG
    planner = Planner()
    planner.add(request([LONG, SHORT], got, errors))
    planner.add(request([SHORT], got, errors))
    drain(engine, planner)
    assert len(errors) == 1 and [c.index for c in got] == [0]


def test_a_full_queue_is_busy():
    planner = Planner(max_waiting_rows=3)
    planner.add(request([SHORT, SHORT], []))
    with pytest.raises(Busy):
        planner.add(request([SHORT, SHORT], []))


def test_run_inline_schedules_one_request_as_the_gpu_thread_would():
    engine = FakeEngine()
    chunks = list(run_inline(engine, [SHORT, LONG, SHORT], LATENT, PARAMS, 3))
    assert [c.index for c in chunks] == [0, 1, 2] and engine.calls[0] == (160, [SHORT])


def test_the_gpu_thread_serves_threads_and_closes():
    engine = FakeEngine()
    scheduler = Scheduler(engine, gather_seconds=0.0)
    try:
        gate = threading.Event()
        scheduler.call(gate.wait)
        results: dict[int, list] = {}

        def ask(n: int) -> None:
            results[n] = list(scheduler.stream([SHORT], LATENT, PARAMS, n, chunk_timeout=30))

        threads = [threading.Thread(target=ask, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        while len(scheduler.planner.waiting) < 4:
            threading.Event().wait(0.01)
        gate.set()
        for thread in threads:
            thread.join()
        assert scheduler.batches_run == 1 and all(len(r) == 1 for r in results.values())
        assert scheduler.call(lambda: "on the gpu thread").result(timeout=30) == "on the gpu thread"
    finally:
        scheduler.close()
    assert scheduler._thread is not None and not scheduler._thread.is_alive()
