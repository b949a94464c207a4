"""Speech from an EchoEngine in this process (a GPU box running the bot, or the tiny model on a CPU).

The engine sits behind the same batching scheduler as the Modal class (`modal_tts.scheduler`): one GPU
thread, windows sized to each chunk's text, first chunks first, rows of requests that wait together
sampled in one call. Each row has its own seed, so a chunk sounds the same whether it shared a batch or
not. The event loop never waits on torch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bot.errors import (
    BackendBusy,
    BackendError,
    BackendFailed,
    BackendInvalidRequest,
    BackendTimedOut,
    LocalEngineUnavailable,
)
from bot.tts.base import SpeakerLatent, SpokenChunk, checked_request
from bot.wording import plural
from modal_tts.params import SynthesisParams
from modal_tts.scheduler import Busy, Scheduler

if TYPE_CHECKING:
    from modal_tts.engine import EchoEngine

log = logging.getLogger(__name__)


def _map_error(exc: BaseException) -> BackendError:
    from modal_tts.params import InvalidParams

    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, InvalidParams):
        return BackendInvalidRequest(str(exc))
    if isinstance(exc, Busy):
        return BackendBusy(str(exc))
    if type(exc).__name__ == "WeightsError":
        return LocalEngineUnavailable(f"{exc} Fill a weights folder with `voicebot weights fetch DIR`.")
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
        self.gather_seconds = gather_seconds  # how long a free GPU thread waits for company
        self.timeout = timeout  # longest wait for an encoding or for the next chunk: a hung engine fails
        self._engine = engine
        self._scheduler: Scheduler | None = None
        self._load_lock = asyncio.Lock()

    @property
    def batches_run(self) -> int:
        return self._scheduler.batches_run if self._scheduler else 0

    # --- engine ---------------------------------------------------------------------------------

    async def load(self) -> None:
        """Load the weights now rather than on the first request (errors mapped like a request's)."""
        try:
            await self.scheduler()
        except Exception as exc:
            raise _map_error(exc) from exc

    async def scheduler(self) -> Scheduler:
        async with self._load_lock:
            if self._engine is None:
                self._engine = await asyncio.to_thread(self._load)
            if self._scheduler is None:
                self._scheduler = Scheduler(
                    self._engine,
                    max_batch_rows=self.max_batch_rows,
                    max_waiting_rows=self.max_waiting_rows,
                    gather_seconds=self.gather_seconds,
                )
        return self._scheduler

    def _load(self) -> EchoEngine:
        import torch  # only the local backend ever imports torch into the bot's process

        from modal_tts.engine import EchoEngine

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if device.startswith("cuda"):
            index = int(device.partition(":")[2] or 0)
            if index >= torch.cuda.device_count():
                raise LocalEngineUnavailable(
                    f"Device {device} was asked for, but torch sees "
                    f"{plural(torch.cuda.device_count(), 'CUDA GPU')} here: check the NVIDIA driver, "
                    "or use --device cpu (VOICEBOT_DEVICE=cpu)."
                )
        log.info("Loading Echo weights from %s onto %s", self.weights_dir, device)
        assert self.weights_dir is not None  # __init__ insists on weights or an engine
        engine = EchoEngine.from_dir(self.weights_dir, device=device)
        if engine.device.type == "cuda":  # the fast path is on by default on CUDA
            log.info("Fast path: %s", engine.enable_fast_path(max_batch=self.max_batch_rows))
        return engine

    async def _gpu(self, fn: Any, *args: Any) -> Any:
        """`fn(*args)` on the scheduler's GPU thread, between batches."""
        scheduler = await self.scheduler()
        return await asyncio.wrap_future(scheduler.call(fn, *args))

    # --- the protocol ---------------------------------------------------------------------------

    async def encode_speaker(self, pcm: np.ndarray) -> SpeakerLatent:
        try:
            scheduler = await self.scheduler()
            engine = cast("EchoEngine", scheduler.engine)
            latent = await asyncio.wait_for(self._gpu(engine.encode_speaker, pcm), self.timeout)
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
            scheduler = await self.scheduler()
            chunks = scheduler.astream(texts, latent.data, params, seed, chunk_timeout=self.timeout)
        except Exception as exc:
            raise _map_error(exc) from exc
        try:
            while True:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise BackendTimedOut(self.timeout) from None
                except Exception as exc:
                    raise _map_error(exc) from exc
                yield SpokenChunk(chunk.index, chunk.audio, chunk.gpu_seconds)
        finally:
            await chunks.aclose()  # the scheduler drops what was not started yet

    async def info(self) -> dict[str, Any]:
        try:
            scheduler = await self.scheduler()
            return await self._gpu(cast("EchoEngine", scheduler.engine).info)
        except Exception as exc:
            raise _map_error(exc) from exc

    async def close(self) -> None:
        if self._scheduler is not None:
            await asyncio.to_thread(self._scheduler.close)
