"""Speech from an EchoEngine in this process (a GPU box running the bot, or the tiny model on a CPU).

The engine sits behind the same batching scheduler as the Modal class (`modal_tts.scheduler`): one GPU
thread, windows sized to each chunk's text, first chunks first, rows of requests that wait together
sampled in one call. Each row has its own seed, so a chunk sounds the same whether it shared a batch or
not. The event loop never waits on torch.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from bot.errors import (
    BackendBusy,
    BackendError,
    BackendFailed,
    BackendInvalidRequest,
    BackendTimedOut,
    EngineNotInstalled,
    LocalEngineUnavailable,
    ModelLoadTimedOut,
    SpeakerLatentRejected,
    consent,
)
from bot.tts.base import SpeakerLatent, SpokenChunk, checked_request
from bot.wording import plural
from modal_tts import prerequisites
from modal_tts.consent_check import TooLittleSpeech as EngineTooLittleSpeech
from modal_tts.params import InvalidLatent, InvalidParams, SynthesisParams
from modal_tts.scheduler import Busy, Scheduler

if TYPE_CHECKING:
    from modal_tts.engine import EchoEngine
    from modal_tts.speakers import SpeakerVerifier

log = logging.getLogger(__name__)


def _map_error(exc: BaseException) -> BackendError:
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, InvalidLatent):
        return SpeakerLatentRejected(str(exc))
    if isinstance(exc, InvalidParams):
        return BackendInvalidRequest(str(exc))
    if isinstance(exc, Busy):
        return BackendBusy(str(exc))
    if prerequisites.is_missing_engine(exc):
        return EngineNotInstalled(prerequisites.missing_packages() or [getattr(exc, "name", None) or "?"])
    if type(exc).__name__ == "WeightsError":
        return LocalEngineUnavailable(
            str(exc).rstrip("."), "fill a weights folder with `voicebot weights fetch DIR`."
        )
    return BackendFailed(f"{type(exc).__name__}: {exc}")


class LocalBackend:
    """Every public method gives up after `timeout` seconds with BackendTimedOut (ModelLoadTimedOut
    while the weights load): a hung load or engine can't be stopped, but it never hangs the caller."""

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
        self.timeout = timeout  # longest wait for a load, an encoding, info or the next chunk
        self._engine = engine
        self._scheduler: Scheduler | None = None
        self._loading: Future[EchoEngine] | None = None
        self._verifier: SpeakerVerifier | None = None  # loaded by the first speaker check
        self._verifier_lock = threading.Lock()

    @property
    def batches_run(self) -> int:
        return self._scheduler.batches_run if self._scheduler else 0

    # --- engine ---------------------------------------------------------------------------------

    async def load(self) -> None:
        """Load the weights now rather than on the first request (errors mapped like a request's)."""
        try:
            await self._ready(self._deadline())
        except Exception as exc:
            raise _map_error(exc) from exc

    async def scheduler(self) -> Scheduler:
        """The scheduler, the weights loaded first if need be (ModelLoadTimedOut after `timeout`)."""
        return await self._ready(self._deadline())

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self.timeout

    async def _ready(self, deadline: float) -> Scheduler:
        """The scheduler by `deadline`; refused at once while the GPU thread is stuck on one job."""
        if self._scheduler is None:
            if self._engine is None:
                self._engine = await self._loaded(deadline)
            if self._scheduler is None:  # another caller may have made it while this one waited
                self._scheduler = Scheduler(
                    self._engine,
                    max_batch_rows=self.max_batch_rows,
                    max_waiting_rows=self.max_waiting_rows,
                    gather_seconds=self.gather_seconds,
                )
        # A job past the timeout is hung as far as callers know: queueing behind it only waits again.
        if self._scheduler.busy_for() >= self.timeout:
            raise BackendTimedOut(self.timeout)
        return self._scheduler

    async def _loaded(self, deadline: float) -> EchoEngine:
        """The engine from the one load in flight (started if none is), waited for until `deadline`."""
        if self._loading is None:
            self._loading = self._start_loading()
        loading = self._loading
        waiter = asyncio.wrap_future(loading)
        left = deadline - asyncio.get_running_loop().time()
        # asyncio.wait leaves the load running on timeout: the next caller waits for the same one.
        done, _ = await asyncio.wait({waiter}, timeout=max(left, 0.0))
        if not done:
            waiter.cancel()  # only this wait: the load itself is running and can't be cancelled
            raise ModelLoadTimedOut(self.timeout)
        if loading.exception() is not None and self._loading is loading:
            self._loading = None  # a failed load is tried again next time (weights fetched meanwhile)
        return waiter.result()

    def _start_loading(self) -> Future[EchoEngine]:
        future: Future[EchoEngine] = Future()
        future.set_running_or_notify_cancel()

        def load() -> None:
            try:
                future.set_result(self._load())
            except BaseException as exc:
                future.set_exception(exc)

        # Our own daemon thread, not the loop's executor: a load that hangs (a dead network disk, a
        # wedged driver) must not also hang the process's exit, which joins executor threads.
        threading.Thread(target=load, name="echo-load", daemon=True).start()
        return future

    def chosen_device(self) -> str:
        """Where the weights load: the device asked for, else `cuda` when torch sees a GPU, else `cpu`."""
        import torch  # only the local backend ever imports torch into the bot's process

        return self.device or ("cuda" if torch.cuda.is_available() else "cpu")

    def _load(self) -> EchoEngine:
        import torch

        from modal_tts.engine import EchoEngine

        device = self.chosen_device()
        if device.startswith("cuda"):
            index = int(device.partition(":")[2] or 0)
            if index >= torch.cuda.device_count():
                raise LocalEngineUnavailable(
                    f"Device {device} was asked for, but torch sees "
                    f"{plural(torch.cuda.device_count(), 'CUDA GPU')} here",
                    "check the NVIDIA driver, or use --device cpu (VOICEBOT_DEVICE=cpu).",
                )
        log.info("Loading Echo weights from %s onto %s", self.weights_dir, device)
        assert self.weights_dir is not None  # __init__ insists on weights or an engine
        engine = EchoEngine.from_dir(self.weights_dir, device=device)
        if engine.device.type == "cuda":  # the fast path is on by default on CUDA
            log.info("Fast path: %s", engine.enable_fast_path(max_batch=self.max_batch_rows))
        return engine

    async def _on_gpu(self, method: str, *args: Any) -> Any:
        """The engine's `method(*args)` on the scheduler's GPU thread, between batches, within the
        timeout (the load included); errors mapped, and a call still queued at the deadline is dropped."""
        deadline = self._deadline()
        try:
            scheduler = await self._ready(deadline)
            fn = getattr(scheduler.engine, method)
            async with asyncio.timeout_at(deadline):
                return await asyncio.wrap_future(scheduler.call(fn, *args))
        except TimeoutError:
            raise BackendTimedOut(self.timeout) from None
        except Exception as exc:
            raise _map_error(exc) from exc

    # --- the protocol ---------------------------------------------------------------------------

    async def encode_speaker(self, pcm: np.ndarray) -> SpeakerLatent:
        latent = await self._on_gpu("encode_speaker", pcm)
        return SpeakerLatent(latent, cast("EchoEngine", self._engine).revision)

    async def synthesize(
        self, texts: Sequence[str], latent: SpeakerLatent, params: SynthesisParams, seed: int
    ) -> AsyncIterator[SpokenChunk]:
        texts = checked_request(texts, seed, latent.data)
        deadline = self._deadline()  # the first chunk's, the load included
        try:
            scheduler = await self._ready(deadline)
        except Exception as exc:
            raise _map_error(exc) from exc
        chunks = scheduler.astream(texts, latent.data, params, seed, pieces=True)
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise BackendTimedOut(self.timeout) from None
                except Exception as exc:
                    raise _map_error(exc) from exc
                yield SpokenChunk(chunk.index, chunk.audio, chunk.gpu_seconds, chunk.block, chunk.last)
                deadline = self._deadline()
        finally:
            await chunks.aclose()  # the scheduler drops what was not started yet

    async def speaker_similarity(self, reference: np.ndarray, sample: np.ndarray) -> float:
        """On a worker thread with a speaker encoder of its own, not on the engine's GPU thread: it is a small
        CPU model apart from Echo, so a consent check neither waits for (nor needs) Echo's weights, nor
        holds up a batch; within the timeout, its first load included."""
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.to_thread(self._compare_speakers, reference, sample)
        except TimeoutError:
            raise BackendTimedOut(self.timeout) from None
        except EngineTooLittleSpeech as exc:
            raise consent.from_engine(exc) from exc
        except ModuleNotFoundError as exc:  # torch, resemblyzer or its librosa / webrtcvad: the engine extra
            raise EngineNotInstalled(prerequisites.missing_packages() or [exc.name or "?"]) from exc
        except Exception as exc:
            raise _map_error(exc) from exc

    def _compare_speakers(self, reference: np.ndarray, sample: np.ndarray) -> float:
        with self._verifier_lock:  # one load, however many checks arrive while it runs
            if self._verifier is None:
                from modal_tts.speakers import SpeakerVerifier

                self._verifier = SpeakerVerifier()
            verifier = self._verifier
        return float(verifier.compare(reference, sample))

    async def watermark_confidence(self, pcm: np.ndarray) -> float:
        return float(await self._on_gpu("watermark_confidence", pcm))

    async def info(self) -> dict[str, Any]:
        info: dict[str, Any] = await self._on_gpu("info")
        return info

    async def close(self) -> None:
        if self._scheduler is not None:
            # The running job gets what is left of its timeout; past that it is hung, and waiting
            # for it would only make shutdown hang too.
            wait = max(self.timeout - self._scheduler.busy_for(), 0.0)
            await asyncio.to_thread(self._scheduler.close, wait)
