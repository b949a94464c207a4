"""Speech from an EchoEngine in this process (a GPU box running the bot, or the tiny model on a CPU).

One worker thread owns the engine, so exactly one GPU job runs at a time and the event loop never
waits on torch. Requests queue their chunks; when the worker is free it takes the oldest request's
chunks and, up to `max_batch_rows`, the chunks of every other request waiting with the same settings,
and samples them in one batched call. Each row has its own seed, so a chunk sounds the same whether
it shared a batch or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.errors import (
    BackendBusy,
    BackendError,
    BackendFailed,
    BackendInvalidRequest,
    BackendNotDeployed,
    BackendTimedOut,
)
from bot.tts.base import SpeakerLatent, SpokenChunk, checked_request
from modal_tts.params import SynthesisParams, chunk_seed

if TYPE_CHECKING:
    from modal_tts.engine import EchoEngine

log = logging.getLogger(__name__)

_DONE = object()


@dataclass(eq=False)
class _Request:
    texts: list[str]
    latent: np.ndarray
    params: SynthesisParams
    seed: int
    results: asyncio.Queue[Any]
    next_row: int = 0  # first row not yet handed to the engine
    cancelled: bool = False

    @property
    def waiting_rows(self) -> int:
        return len(self.texts) - self.next_row


@dataclass
class _Batch:
    params: SynthesisParams
    parts: list[tuple[_Request, int, int]] = field(default_factory=list)  # (request, first, stop)


def _map_error(exc: BaseException) -> BackendError:
    from modal_tts.params import InvalidParams

    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, InvalidParams):
        return BackendInvalidRequest(str(exc))
    if type(exc).__name__ == "WeightsError":
        return BackendNotDeployed(str(exc))
    return BackendFailed(f"{type(exc).__name__}: {exc}")


class LocalBackend:
    name = "local"

    def __init__(
        self,
        weights_dir: str | Path | None = None,
        *,
        device: str | None = None,
        engine: EchoEngine | None = None,
        max_batch_rows: int = 8,
        max_waiting_rows: int = 64,
        gather_seconds: float = 0.02,
        timeout: float = 180.0,
    ) -> None:
        if engine is None and weights_dir is None:
            raise ValueError("LocalBackend needs a weights directory or an engine")
        self.weights_dir, self.device = weights_dir, device
        self.max_batch_rows, self.max_waiting_rows = max_batch_rows, max_waiting_rows
        self.gather_seconds = gather_seconds  # how long a free worker waits for company
        self.timeout = timeout  # longest wait for an encoding or for the next chunk: a hung engine fails
        self._engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="echo-engine")
        self._waiting: deque[_Request] = deque()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._load_lock = asyncio.Lock()
        self.batches_run = 0

    # --- engine ---------------------------------------------------------------------------------

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def engine(self) -> EchoEngine:
        async with self._load_lock:
            if self._engine is None:
                self._engine = await self._run(self._load)
        return self._engine

    def _load(self) -> EchoEngine:
        import torch  # only the local backend ever imports torch into the bot's process

        from modal_tts.engine import EchoEngine

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        log.info("Loading Echo weights from %s onto %s", self.weights_dir, device)
        return EchoEngine.from_dir(self.weights_dir, device=device)

    # --- the protocol ---------------------------------------------------------------------------

    async def encode_speaker(self, pcm: np.ndarray) -> SpeakerLatent:
        try:
            engine = await self.engine()
            latent = await asyncio.wait_for(self._run(engine.encode_speaker, pcm), self.timeout)
        except TimeoutError:
            raise BackendTimedOut(self.timeout) from None
        except Exception as exc:
            raise _map_error(exc) from exc
        return SpeakerLatent(latent, engine.revision)

    async def synthesize(
        self, texts: Sequence[str], latent: SpeakerLatent, params: SynthesisParams, seed: int
    ) -> AsyncIterator[SpokenChunk]:
        texts = checked_request(texts, seed)
        try:
            await self.engine()
        except Exception as exc:
            raise _map_error(exc) from exc
        if sum(r.waiting_rows for r in self._waiting) + len(texts) > self.max_waiting_rows:
            raise BackendBusy(f"{self.max_waiting_rows} chunks already waiting")
        request = _Request(texts, latent.data, params, seed, asyncio.Queue())
        self._waiting.append(request)
        self._wake.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="echo-local-worker")
        try:
            for _ in texts:
                try:
                    item = await asyncio.wait_for(request.results.get(), self.timeout)
                except TimeoutError:
                    raise BackendTimedOut(self.timeout) from None
                if isinstance(item, BaseException):
                    raise _map_error(item) from item
                yield item
        finally:
            request.cancelled = True  # rows not started yet are dropped; a running batch finishes

    async def info(self) -> dict[str, Any]:
        engine = await self.engine()
        return engine.info()

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for request in self._waiting:
            request.results.put_nowait(BackendFailed("the bot is shutting down"))
        self._waiting.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)

    # --- the worker -----------------------------------------------------------------------------

    def _next_batch(self) -> _Batch | None:
        while self._waiting and (self._waiting[0].cancelled or not self._waiting[0].waiting_rows):
            self._waiting.popleft()
        if not self._waiting:
            return None
        batch = _Batch(self._waiting[0].params)
        room = self.max_batch_rows
        for request in self._waiting:
            if room == 0:
                break
            if request.cancelled or request.params != batch.params or not request.waiting_rows:
                continue
            take = min(room, request.waiting_rows)
            batch.parts.append((request, request.next_row, request.next_row + take))
            request.next_row += take
            room -= take
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting:
                self._wake.clear()
                await self._wake.wait()
                # Requests that arrive together (several users, one burst) share the batch.
                await asyncio.sleep(self.gather_seconds)
            batch = self._next_batch()
            if batch is None:
                continue
            try:
                await self._run(self._run_batch, batch, loop)
            except Exception as exc:  # deliver the failure to every request in the batch
                log.exception("Local synthesis failed")
                for request, _, _ in batch.parts:
                    request.results.put_nowait(exc)
                    request.cancelled = True

    def _run_batch(self, batch: _Batch, loop: asyncio.AbstractEventLoop) -> None:
        """In the worker thread: sample every row together, hand each chunk back as it is decoded."""
        import time

        from modal_tts.engine import Row

        owners: list[tuple[_Request, int]] = []
        rows: list[Row] = []
        for request, first, stop in batch.parts:
            for i in range(first, stop):
                rows.append(Row(request.texts[i], request.latent, chunk_seed(request.seed, i)))
                owners.append((request, i))
        self.batches_run += 1
        started = time.perf_counter()
        for position, audio in self._engine.synthesize_rows(rows, batch.params):
            now = time.perf_counter()
            request, index = owners[position]
            chunk = SpokenChunk(index, audio, now - started)
            loop.call_soon_threadsafe(request.results.put_nowait, chunk)
            started = time.perf_counter()
