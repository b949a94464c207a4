"""One batching scheduler for the GPU, used by the Modal class and by the bot's local backend alike.

Requests (a list of chunk texts in one voice) arrive from any thread or event loop; one GPU thread runs
every sampler call, encoding and decode. What it runs next:

- **Windows:** each chunk is sampled over a window sized to its text (`modal_tts.windows`); rows share a
  sampler call only with rows of the same window and settings (a compiled engine sees few shapes).
- **First chunk first:** a request's first chunk outranks every later chunk, and a batch holding first
  chunks holds nothing else, so a long request starts as soon as a short one would and a newcomer's
  first chunk is never stuck behind another request's tail. A later chunk passed over `AGING_BATCHES`
  times is promoted to first-chunk rank, so a flood of new requests can't starve it.
- **Waiting:** a request's first chunk waits behind the batch that is running, plus at most one batch
  per other window that holds older first chunks (at most `len(windows.BUCKETS)`); rows that arrive
  together share one call, up to `max_batch_rows`.
- **Blocks:** a chunk is sampled in the blocks of its request's plan (`modal_tts.plans`). A row is one
  block of one chunk; rows share a sampler call when their block size, steps, start and sampler settings
  match, across requests. After a block, the chunk's new audio is decoded and handed over at once (the
  decoder is causal: it decodes the latents so far and keeps only the new samples), and the chunk's next
  block joins the queue unless speech has ended (early stop) or the plan is done. A first block outranks
  later blocks as a first chunk outranks later chunks.
- **Cut speech:** a chunk of the whole plan whose speech was still going at the end of its window is
  sampled again, once, at the next bucket with the same seed (`windows.was_cut`); the re-sample is
  counted. Blockwise plans don't need this: their later blocks carry the speech on.
- **Silence guard:** a block whose decoded audio holds a long silence inside speech (`modal_tts.silence`,
  `params.silence_guard_s`) is sampled again, once, with new noise; counted too.
- **Cancellation:** a cancelled request (`/stop`, a caller that went away) loses its waiting rows at
  once, and its rows in the running batch are not decoded: it stops costing GPU after that block.
- **Isolation:** a request's speaker latent is checked when it arrives, so a damaged voice is refused
  alone; if a batch of several requests still fails, each request's rows run again on their own, so
  only the request that really fails gets the error.
- **Busy:** past `max_waiting_rows` waiting rows a request is refused, unless nothing else waits: a
  request longer than the limit then runs alone rather than never.
- **Watermark:** every piece is watermarked by the engine as it is handed over, once, with the chunk's
  audio before it as context (`modal_tts.watermark`): files, voice messages, live Opus and PCM all carry it.

Chunks reach the caller in order, each as its pieces (one per block; `last` marks a chunk's end); a later
chunk that is ready early waits for the ones before it. `stream`, `astream` and `run_inline` join each
chunk's pieces unless asked for them. Torch-free: the engine is reached through `sample_rows`, `extend`,
`end_of_speech`, `decode` and `watermark`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from modal_tts import plans, windows
from modal_tts.params import (
    SAMPLES_PER_LATENT,
    SynthesisParams,
    check_latent,
    check_seed,
    check_texts,
    chunk_seed,
)
from modal_tts.plans import Block
from modal_tts.silence import long_silence

log = logging.getLogger(__name__)

AGING_BATCHES = 2


class Busy(RuntimeError):
    """Other requests' rows fill the queue; try again shortly."""


class Engine(Protocol):
    """What the scheduler runs (`modal_tts.engine.EchoEngine`); `sample_rows`' keywords and `extend` are
    used by blockwise plans only."""

    def sample_rows(
        self,
        rows: Sequence[Any],
        params: SynthesisParams,
        window: int,
        *,
        start: int = 0,
        steps: int | None = None,
        prefixes: Sequence[Any] | None = None,
    ) -> Any: ...

    def extend(self, prefix: Any, latents: Any, index: int) -> Any: ...

    def end_of_speech(self, latents: Any, index: int) -> int: ...

    def decode(self, latents: Any, index: int, end: int) -> np.ndarray: ...

    def watermark(self, audio: np.ndarray, heard: int = 0) -> np.ndarray: ...


@dataclass(frozen=True)
class ChunkAudio:
    """A chunk's audio, float32 mono 44.1 kHz, how it was made and the GPU time it cost: the whole chunk,
    or one block's new samples (`block`; `last` on the chunk's final piece)."""

    index: int
    audio: np.ndarray
    gpu_seconds: float
    window: int
    resampled: bool = False
    block: int = 0
    last: bool = True
    silences: int = 0  # blocks sampled again for a long silence


def join_pieces(pieces: Sequence[ChunkAudio]) -> ChunkAudio:
    """A chunk's pieces as one chunk."""
    last = pieces[-1]
    return ChunkAudio(
        last.index,
        np.concatenate([p.audio for p in pieces]) if len(pieces) > 1 else last.audio,
        sum(p.gpu_seconds for p in pieces),
        last.window,
        any(p.resampled for p in pieces),
        silences=sum(p.silences for p in pieces),
    )


class Joiner:
    """What a caller gets of a request of `chunks` chunks, from its pieces in order: each piece as it
    comes (`pieces`), or each chunk whole once its last piece arrives; `done` after the last chunk's."""

    def __init__(self, chunks: int, *, pieces: bool) -> None:
        self.chunks, self.pieces = chunks, pieces
        self.done = False
        self._pieces: list[ChunkAudio] = []

    def add(self, piece: ChunkAudio) -> ChunkAudio | None:
        self.done = piece.last and piece.index == self.chunks - 1
        if self.pieces:
            return piece
        self._pieces.append(piece)
        if not piece.last:
            return None
        chunk, self._pieces = join_pieces(self._pieces), []
        return chunk


@dataclass(frozen=True)
class RowSpec:
    """What the engine samples for one row (mirrors `modal_tts.engine.Row`)."""

    text: str
    latent: np.ndarray
    seed: int


@dataclass(eq=False)
class Request:
    texts: list[str]
    latent: np.ndarray
    params: SynthesisParams
    seed: int
    on_chunk: Callable[[ChunkAudio], None]  # called on the GPU thread, in chunk order
    on_error: Callable[[BaseException], None]
    arrival: int = 0
    cancelled: bool = False
    resampled: int = 0
    silences: int = 0
    _ready: dict[int, list[ChunkAudio]] = field(default_factory=dict)
    _next: int = 0

    def cancel(self) -> None:
        self.cancelled = True

    @property
    def done(self) -> bool:
        return self._next >= len(self.texts)

    def _finished(self, piece: ChunkAudio) -> None:
        self._ready.setdefault(piece.index, []).append(piece)
        while self._ready.get(self._next):
            piece = self._ready[self._next].pop(0)
            self.on_chunk(piece)
            if piece.last:
                del self._ready[self._next]
                self._next += 1


@dataclass(eq=False)
class Row:
    """One block of one chunk: what a sampler call does for a request."""

    request: Request
    index: int
    blocks: tuple[Block, ...]
    step: int = 0  # which of `blocks`
    resampled: bool = False
    passed_over: int = 0
    prefix: Any = None  # the chunk's latents before this block (the engine's), None for a first block
    heard: int = 0  # latents of the chunk already handed over as audio
    attempt: int = 0  # 1 once the silence guard sampled this block again
    silences: int = 0

    @property
    def block(self) -> Block:
        return self.blocks[self.step]

    @property
    def window(self) -> int:
        return self.block.size

    @property
    def rank(self) -> tuple[int, int, int, int]:
        lead = (self.index == 0 and self.step == 0) or self.passed_over >= AGING_BATCHES
        return (0 if lead else 1, self.request.arrival, self.index, self.step)

    @property
    def key(self) -> tuple[int, int, int, SynthesisParams]:
        block = self.block
        return (block.size, block.steps, block.start, self.request.params.sampler_settings())

    def spec(self) -> RowSpec:
        request = self.request
        seed = plans.block_seed(chunk_seed(request.seed, self.index), self.step, self.attempt)
        return RowSpec(request.texts[self.index], request.latent, seed)


@dataclass
class Batch:
    window: int
    params: SynthesisParams
    rows: list[Row]

    def block_arguments(self) -> dict[str, Any]:
        """`sample_rows`' keywords for this batch's block (none for a whole-plan window)."""
        block = self.rows[0].block
        arguments: dict[str, Any] = {}
        if block.start:
            arguments.update(start=block.start, prefixes=[row.prefix for row in self.rows])
        if block.steps != self.params.steps:
            arguments["steps"] = block.steps
        return arguments


def window_of(text: str, params: SynthesisParams) -> int:
    """The window a chunk's first block is sampled in under its request's plan."""
    return chunk_blocks(text, params)[0].size


def chunk_blocks(text: str, params: SynthesisParams) -> tuple[Block, ...]:
    return tuple(plans.blocks_for(params.block_plan, text, params.steps, params.sequence_length))


class Planner:
    """What to run next: pure bookkeeping, no threads (the Scheduler adds the GPU thread)."""

    def __init__(self, *, max_batch_rows: int = 8, max_waiting_rows: int = 256) -> None:
        self.max_batch_rows, self.max_waiting_rows = max_batch_rows, max_waiting_rows
        self.waiting: list[Row] = []
        self._arrivals = itertools.count()
        self.batches_run = 0
        self.resampled = 0
        self.silences = 0

    def add(self, request: Request) -> Request:
        """Queue `request`'s rows; InvalidLatent for a damaged voice, Busy when others fill the queue."""
        check_latent(request.latent)  # here, not in the sampler: a bad voice must fail alone
        self.waiting = [row for row in self.waiting if not row.request.cancelled]
        # A request longer than the limit is admitted when nothing waits (it runs alone): "busy" means
        # others are waiting, never "too long for this queue".
        if self.waiting and len(self.waiting) + len(request.texts) > self.max_waiting_rows:
            raise Busy(f"{len(self.waiting)} chunks are already waiting")
        request.arrival = next(self._arrivals)
        for index, text in enumerate(request.texts):
            self.waiting.append(Row(request, index, chunk_blocks(text, request.params)))
        return request

    def next_batch(self) -> Batch | None:
        self.waiting = [row for row in self.waiting if not row.request.cancelled]
        if not self.waiting:
            return None
        self.waiting.sort(key=lambda row: row.rank)
        top = self.waiting[0]
        leading = top.rank[0] == 0
        chosen = [row for row in self.waiting if row.key == top.key and (row.rank[0] == 0) == leading]
        chosen = chosen[: self.max_batch_rows]
        taken = set(map(id, chosen))
        self.waiting = [row for row in self.waiting if id(row) not in taken]
        for row in self.waiting:
            row.passed_over += 1
        self.batches_run += 1
        return Batch(top.window, top.request.params, chosen)

    def cut(self, row: Row, end_of_speech: int) -> bool:
        """Whether a whole-plan `row` ran out of window: if so it waits again, at the next bucket, ahead
        of the rest."""
        params = row.request.params
        if row.resampled or params.sequence_length is not None or params.block_plan != plans.WHOLE:
            return False
        bigger = windows.next_bucket(row.window)
        if bigger is None or not windows.was_cut(row.request.texts[row.index], row.window, end_of_speech):
            return False
        self.resampled += 1
        row.request.resampled += 1
        blocks = (replace(row.block, size=bigger),)
        self.waiting.append(replace(row, blocks=blocks, resampled=True, passed_over=AGING_BATCHES))
        return True

    def silent(self, row: Row) -> bool:
        """Whether `row`'s block may be sampled again for a long silence: if so it waits again, with new
        noise, ahead of the rest (once per block)."""
        if row.attempt:
            return False
        self.silences += 1
        row.request.silences += 1
        self.waiting.append(replace(row, attempt=1, silences=row.silences + 1, passed_over=AGING_BATCHES))
        return True

    def follow(self, row: Row, prefix: Any, heard: int) -> None:
        """Queue the chunk's next block after `row`'s, attending to the latents so far."""
        self.waiting.append(
            replace(row, step=row.step + 1, prefix=prefix, heard=heard, attempt=0, silences=0, passed_over=0)
        )


def run_batch(engine: Engine, planner: Planner, batch: Batch, lock: Any = None) -> None:
    """Sample one batch, then decode and hand over each row's new audio in rank order (first blocks
    first), queueing what comes next through `planner` (under `lock`, if given: other threads add rows).
    """
    started = time.perf_counter()
    try:
        latents = engine.sample_rows(
            [row.spec() for row in batch.rows], batch.params, batch.window, **batch.block_arguments()
        )
    except Exception as exc:
        requests: dict[int, list[Row]] = {}
        for row in batch.rows:
            requests.setdefault(id(row.request), []).append(row)
        if len(requests) == 1:
            request = batch.rows[0].request
            request.cancel()
            request.on_error(exc)
            return
        # One request's bad row must not cost other servers their speech: the GPU time of sampling
        # each request again on its own buys that, and only the request that fails alone fails.
        log.warning("A batch of %d requests failed (%s); running each alone", len(requests), exc)
        for rows in requests.values():
            if not rows[0].request.cancelled:
                run_batch(engine, planner, Batch(batch.window, batch.params, rows), lock)
        return
    share = (time.perf_counter() - started) / len(batch.rows)
    guarded = contextlib.nullcontext() if lock is None else lock
    for position, row in sorted(enumerate(batch.rows), key=lambda item: item[1].rank):
        request = row.request
        if request.cancelled:
            continue  # nobody is waiting for it: skip the decode
        try:
            decode_started = time.perf_counter()
            piece = _hand_over(engine, planner, guarded, row, latents, position)
            if piece is None:
                continue
            cost = share + time.perf_counter() - decode_started
        except Exception as exc:
            request.cancel()
            request.on_error(exc)
            continue
        request._finished(replace(piece, gpu_seconds=cost))


def _hand_over(
    engine: Engine, planner: Planner, lock: Any, row: Row, latents: Any, position: int
) -> ChunkAudio | None:
    """Row `position`'s new audio after its block, or None when there is none yet (the block waits to be
    sampled again, or all it added is held back).

    The whole plan decodes the window up to the end of speech. A blockwise plan decodes the chunk's
    latents so far and keeps the samples not yet heard; it holds back a tail that might be the end of
    speech until the next block shows whether it is."""
    request, block = row.request, row.block
    blockwise = request.params.block_plan != plans.WHOLE
    if blockwise:
        latents, position = engine.extend(row.prefix, latents, position), 0
    end = engine.end_of_speech(latents, position)
    if not blockwise:
        with lock:
            if planner.cut(row, end):
                return None
    final = row.step == len(row.blocks) - 1 or plans.speech_ended(end, block.end)
    audible = max(plans.audible_until(end, block.end, final), row.heard)
    audio = engine.decode(latents, position, audible) if audible > row.heard else np.zeros(0, np.float32)
    guard = request.params.silence_guard_s
    if (
        guard is not None
        and audio.size
        and long_silence(audio, guard, checked_from=block.start * SAMPLES_PER_LATENT)
    ):
        with lock:
            if planner.silent(row):
                return None
    if not final:
        with lock:
            planner.follow(row, latents, audible)
        if audible == row.heard:
            return None  # nothing new to hear yet: the next block decides the held-back tail
    return ChunkAudio(
        row.index,
        _marked(engine, audio, row.heard * SAMPLES_PER_LATENT),
        0.0,
        block.end,
        row.resampled,
        block=row.step,
        last=final,
        silences=row.silences,
    )


def _marked(engine: Engine, audio: np.ndarray, heard: int) -> np.ndarray:
    """The new samples, `audio[heard:]`, watermarked by the engine with the samples before them as
    context; a test engine without `watermark` hands them over as decoded."""
    mark = getattr(engine, "watermark", None)
    return audio[heard:] if mark is None else mark(audio, heard)


def run_inline(
    engine: Engine,
    texts: Sequence[str],
    latent: np.ndarray,
    params: SynthesisParams,
    seed: int,
    *,
    pieces: bool = False,
) -> Iterator[ChunkAudio]:
    """One request, scheduled exactly as the GPU thread would, on the calling thread: whole chunks, or
    each block's piece as it is decoded (`pieces`)."""
    out: list[ChunkAudio] = []
    errors: list[BaseException] = []
    planner = Planner(max_batch_rows=len(texts), max_waiting_rows=2 * len(texts))
    planner.add(
        Request(check_texts(list(texts)), latent, params, check_seed(seed), out.append, errors.append)
    )
    joiner = Joiner(len(texts), pieces=pieces)
    while (batch := planner.next_batch()) is not None:
        run_batch(engine, planner, batch)
        if errors:
            raise errors[0]
        for piece in out:
            if (handed := joiner.add(piece)) is not None:
                yield handed
        out.clear()


class Scheduler:
    """The GPU thread and its queue; thread-safe. `stream` serves threads, `astream` event loops."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch_rows: int = 8,
        max_waiting_rows: int = 256,
        gather_seconds: float = 0.01,
    ) -> None:
        self.engine = engine
        self.planner = Planner(max_batch_rows=max_batch_rows, max_waiting_rows=max_waiting_rows)
        self.gather_seconds = gather_seconds  # how long an idle GPU thread waits for company
        self._cond = threading.Condition()
        self._calls: list[tuple[Callable[..., Any], tuple[Any, ...], Future[Any]]] = []
        self._closed = False
        self._thread: threading.Thread | None = None
        self._job_started: float | None = None  # monotonic start of the call or batch now running

    @property
    def batches_run(self) -> int:
        return self.planner.batches_run

    def busy_for(self) -> float:
        """Seconds the GPU thread has spent on the call or batch it is running (0 when idle). A hung
        engine can't be stopped: callers use this to refuse at once rather than queue behind it."""
        started = self._job_started
        return 0.0 if started is None else time.monotonic() - started

    # --- submitting ------------------------------------------------------------------------------

    def submit(
        self,
        texts: Sequence[str],
        latent: np.ndarray,
        params: SynthesisParams,
        seed: int,
        on_chunk: Callable[[ChunkAudio], None],
        on_error: Callable[[BaseException], None],
    ) -> Request:
        request = Request(check_texts(list(texts)), latent, params, check_seed(seed), on_chunk, on_error)
        with self._cond:
            if self._closed:
                raise RuntimeError("the scheduler is closed")
            self.planner.add(request)
            self._start()
            self._cond.notify()
        return request

    def call(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run `fn(*args)` on the GPU thread before the next batch (speaker encoding, warm-up)."""
        future: Future[Any] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the scheduler is closed")
            self._calls.append((fn, args, future))
            self._start()
            self._cond.notify()
        return future

    def stream(
        self,
        texts: Sequence[str],
        latent: np.ndarray,
        params: SynthesisParams,
        seed: int,
        *,
        chunk_timeout: float | None = None,
        pieces: bool = False,
    ) -> Iterator[ChunkAudio]:
        """For a thread (a Modal input): chunks in order, or their pieces as each block is decoded
        (`pieces`); closing the iterator cancels the rest. `chunk_timeout` bounds the wait for each."""
        results: queue.Queue[ChunkAudio | BaseException] = queue.Queue()
        request = self.submit(texts, latent, params, seed, results.put, results.put)
        joiner = Joiner(len(request.texts), pieces=pieces)
        try:
            while not joiner.done:
                item = results.get(timeout=chunk_timeout)
                if isinstance(item, BaseException):
                    raise item
                if (handed := joiner.add(item)) is not None:
                    yield handed
        except queue.Empty:
            raise TimeoutError(f"no chunk within {chunk_timeout:g} s") from None
        finally:
            request.cancel()

    async def astream(
        self,
        texts: Sequence[str],
        latent: np.ndarray,
        params: SynthesisParams,
        seed: int,
        *,
        chunk_timeout: float | None = None,
        pieces: bool = False,
    ) -> AsyncGenerator[ChunkAudio, None]:
        """For an event loop (the bot's local backend): as `stream`, without blocking the loop."""
        loop = asyncio.get_running_loop()
        results: asyncio.Queue[ChunkAudio | BaseException] = asyncio.Queue()

        def hand_over(item: ChunkAudio | BaseException) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
                loop.call_soon_threadsafe(results.put_nowait, item)

        request = self.submit(texts, latent, params, seed, hand_over, hand_over)
        joiner = Joiner(len(request.texts), pieces=pieces)
        try:
            while not joiner.done:
                try:
                    item = await asyncio.wait_for(results.get(), chunk_timeout)
                except TimeoutError:
                    raise TimeoutError(f"no chunk within {chunk_timeout:g} s") from None
                if isinstance(item, BaseException):
                    raise item
                if (handed := joiner.add(item)) is not None:
                    yield handed
        finally:
            request.cancel()

    def close(self, wait: float = 30.0) -> None:
        """Refuse new work, fail what waits, and give the running batch up to `wait` seconds to end."""
        with self._cond:
            self._closed = True
            for request in {id(r.request): r.request for r in self.planner.waiting}.values():
                request.cancel()
                request.on_error(RuntimeError("the speech engine is shutting down"))
            self.planner.waiting.clear()
            for _, _, future in self._calls:
                future.cancel()
            self._calls.clear()
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=wait)  # bounded: a hung engine must not hang shutdown too

    # --- the GPU thread ----------------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="echo-gpu", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                if not (self._calls or self.planner.waiting or self._closed):
                    while not (self._calls or self.planner.waiting or self._closed):
                        self._cond.wait()
                    # Requests that arrive together (several servers, one burst) share the batch.
                    deadline = time.monotonic() + self.gather_seconds
                    while not self._closed and (left := deadline - time.monotonic()) > 0:
                        self._cond.wait(left)
                if self._closed:
                    return
                call = self._calls.pop(0) if self._calls else None
                batch = None if call else self.planner.next_batch()
            self._job_started = time.monotonic()
            try:
                if call is not None:
                    fn, args, future = call
                    if future.set_running_or_notify_cancel():
                        try:
                            future.set_result(fn(*args))
                        except BaseException as exc:
                            future.set_exception(exc)
                elif batch is not None:
                    try:
                        # Under the lock only to queue rows: other threads add rows meanwhile.
                        run_batch(self.engine, self.planner, batch, self._cond)
                    except BaseException:
                        log.exception("The GPU thread failed on a batch")
            finally:
                self._job_started = None
