"""The GPU scheduler's choices, on a fake engine that records what it was asked to run."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from modal_tts import windows
from modal_tts.params import SAMPLES_PER_LATENT, InvalidLatent, SynthesisParams
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
        run_batch(engine, planner, batch)


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
    run_batch(engine, planner, batch)
    assert engine.decoded == [] and planner.next_batch() is None


def test_a_failing_batch_fails_only_its_requests():
    engine, got, errors = FakeEngine(), [], []
    engine.fail_on = LONG
    planner = Planner()
    planner.add(request([LONG, SHORT], got, errors))
    planner.add(request([SHORT], got, errors))
    drain(engine, planner)
    assert len(errors) == 1 and [c.index for c in got] == [0]


def test_a_failing_batch_runs_each_request_alone_so_only_the_culprit_fails():
    poison = "[S1] The row the sampler chokes on."
    assert windows.window_for(poison) == windows.window_for(SHORT)  # so all three share one call
    engine, errors = FakeEngine(), {}
    engine.fail_on = poison
    planner = Planner()
    got: dict[str, list] = {"a": [], "bad": [], "b": []}
    for name, text in (("a", SHORT), ("bad", poison), ("b", "[S1] Hello there.")):
        errors[name] = []
        planner.add(request([text], got[name], errors[name]))
    drain(engine, planner)
    assert [texts for _, texts in engine.calls] == [
        [SHORT, poison, "[S1] Hello there."],  # the shared call fails …
        [SHORT],  # … so each request runs again on its own
        [poison],
        ["[S1] Hello there."],
    ]
    assert [len(got["a"]), len(got["bad"]), len(got["b"])] == [1, 0, 1]
    assert errors["a"] == errors["b"] == [] and [str(e) for e in errors["bad"]] == ["sampler broke"]


def test_a_failing_batch_of_one_request_is_not_run_again():
    engine, errors = FakeEngine(), []
    engine.fail_on = SHORT
    planner = Planner()
    planner.add(request([SHORT, SHORT], [], errors))
    drain(engine, planner)
    assert len(engine.calls) == 1 and len(errors) == 1


@pytest.mark.parametrize(
    "latent",
    [
        np.full((8, 80), np.nan, np.float16),
        np.where(np.eye(8, 80) > 0, np.inf, 0).astype(np.float16),
        np.zeros((7, 80), np.float16),
        np.zeros((8, 79), np.float16),
    ],
    ids=["nan", "inf", "7x80", "8x79"],
)
def test_a_damaged_voice_is_refused_on_arrival_and_never_joins_a_batch(latent):
    engine = FakeEngine()
    scheduler = Scheduler(engine, gather_seconds=0.0)
    try:
        with pytest.raises(InvalidLatent):
            scheduler.submit([SHORT], latent, PARAMS, 1, [].append, [].append)
        with pytest.raises(InvalidLatent):
            list(run_inline(engine, [SHORT], latent, PARAMS, 1))
        assert scheduler.planner.waiting == [] and engine.calls == []
    finally:
        scheduler.close()


def test_a_full_queue_is_busy():
    planner = Planner(max_waiting_rows=3)
    planner.add(request([SHORT, SHORT], []))
    with pytest.raises(Busy):
        planner.add(request([SHORT, SHORT], []))


def test_cancelled_rows_do_not_make_the_queue_busy():
    planner = Planner(max_waiting_rows=3)
    planner.add(request([SHORT, SHORT], [])).cancel()
    planner.add(request([SHORT, SHORT], []))
    assert len(planner.waiting) == 2


def test_a_request_longer_than_the_queue_runs_when_nothing_else_waits():
    engine = FakeEngine()
    scheduler = Scheduler(engine, max_waiting_rows=64, gather_seconds=0.0)
    try:
        gate = threading.Event()
        scheduler.call(gate.wait)  # hold the GPU thread: the long request surely still waits below
        texts = [f"[S1] Sentence number {i}." for i in range(70)]
        got: list = []
        errors: list = []
        finished = threading.Event()

        def on_chunk(chunk) -> None:
            got.append(chunk)
            if len(got) == len(texts):
                finished.set()

        def on_error(exc: BaseException) -> None:
            errors.append(exc)
            finished.set()

        scheduler.submit(texts, LATENT, PARAMS, 1, on_chunk, on_error)
        with pytest.raises(Busy):  # "busy" now means what it says: others are waiting
            scheduler.submit([SHORT], LATENT, PARAMS, 2, [].append, [].append)
        gate.set()
        assert finished.wait(30)
        assert errors == [] and [c.index for c in got] == list(range(70))
    finally:
        scheduler.close()


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


# --- blocks ---------------------------------------------------------------------------------------------

BLOCKS = SynthesisParams(steps=2, block_plan="low-latency", silence_guard_s=None)


class BlockEngine(FakeEngine):
    """Latents as (text, start, size) per row; `extend` keeps a chunk's blocks so far as a list."""

    def sample_rows(self, rows, params, window, *, start=0, steps=None, prefixes=None):
        self.calls.append((window, [r.text for r in rows]))
        self.blocks = getattr(self, "blocks", [])
        self.blocks.append((start, window, steps, len(prefixes or [])))
        return [(r.text, start, window) for r in rows]

    def extend(self, prefix, latents, index):
        return [[*(prefix[0] if prefix else []), latents[index]]]  # a batch of one row, as the engine

    def end_of_speech(self, latents, index):
        text, start, size = latents[index][-1]
        total = start + size
        return min(self.ends.get(text, total), total)

    def decode(self, latents, index, end):
        self.decoded.append(latents[index][-1][0])
        return np.full(end * SAMPLES_PER_LATENT, 0.5, np.float32)


def test_a_request_streams_a_piece_per_block_and_stops_when_speech_ends():
    long_text = "[S1] " + "word " * 60
    engine, got = BlockEngine(ends={long_text: 100}), []
    planner = Planner()
    planner.add(request([SHORT, long_text], got, params=BLOCKS))
    drain(engine, planner)
    # SHORT: 32 then 128 (its cap is one bucket); the long text ends at 100, inside its second block.
    assert [(c.index, c.block, c.last, c.audio.size // SAMPLES_PER_LATENT) for c in got] == [
        (0, 0, False, 32),
        (0, 1, True, 128),
        (1, 0, False, 32),
        (1, 1, True, 68),
    ]
    assert engine.blocks == [(0, 32, 8, 0), (32, 128, 15, 1), (0, 32, 8, 0), (32, 128, 15, 1)]


def test_blocks_of_different_requests_share_a_call_and_first_blocks_go_first():
    engine, got = BlockEngine(), []
    planner = Planner()
    planner.add(request([SHORT], got, params=BLOCKS))
    first = planner.next_batch()  # the first request's first block runs alone …
    run_batch(engine, planner, first)
    planner.add(request([SHORT], got, params=BLOCKS))  # … a newcomer arrives
    planner.add(request([SHORT], got, params=BLOCKS))
    drain(engine, planner)
    # The newcomers' first blocks together, ahead of the first request's second block; then the two
    # newcomers' second blocks together with it: the same block of the plan, whoever asked.
    assert [len(texts) for _, texts in engine.calls] == [1, 2, 3]
    assert [(start, size) for start, size, _, _ in engine.blocks] == [(0, 32), (0, 32), (32, 128)]


def test_a_cancelled_request_stops_at_the_next_block_boundary():
    engine, got = BlockEngine(), []
    planner = Planner()
    job = planner.add(request([SHORT], got, params=BLOCKS))
    run_batch(engine, planner, planner.next_batch())
    assert [(c.block, c.last) for c in got] == [(0, False)] and len(planner.waiting) == 1
    job.cancel()
    assert planner.next_batch() is None and len(engine.calls) == 1


def test_a_stream_joins_pieces_unless_asked_for_them():
    long_text = "[S1] " + "word " * 60
    scheduler = Scheduler(BlockEngine(), gather_seconds=0.0)
    try:
        chunks = list(scheduler.stream([SHORT, long_text], LATENT, BLOCKS, 1, chunk_timeout=10))
        pieces = list(scheduler.stream([SHORT, long_text], LATENT, BLOCKS, 1, chunk_timeout=10, pieces=True))
    finally:
        scheduler.close()
    assert [(c.index, c.audio.size // SAMPLES_PER_LATENT) for c in chunks] == [(0, 160), (1, 640)]
    assert [(p.index, p.block) for p in pieces] == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]


def test_a_tail_that_may_be_the_end_waits_for_the_next_block():
    """Speech turns flat 20 latents into a 32-latent block: those 20 are heard at once, the flat tail is
    held until the next block shows it was the end, and nothing after it is heard."""
    engine, got = BlockEngine(ends={SHORT: 20}), []
    planner = Planner()
    planner.add(request([SHORT], got, params=BLOCKS))
    drain(engine, planner)
    assert [(c.block, c.last, c.audio.size // SAMPLES_PER_LATENT) for c in got] == [
        (0, False, 20),
        (1, True, 0),
    ]
