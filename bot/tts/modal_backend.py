"""Speech from the Modal app (`modal_tts/app.py`), called by name; no torch on this side.

Every `modal.exception.*` (and anything else a call can raise) becomes one of the typed backend errors
in `bot.errors`, in `_map_error` alone. Transient failures (connection, Modal internals) are retried
once, and a stream only while it has yielded nothing, so a retry never repeats audio.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

import modal
import modal.exception as mx
import numpy as np

from bot.errors import (
    BackendBusy,
    BackendError,
    BackendFailed,
    BackendInvalidRequest,
    BackendNotDeployed,
    BackendOutdated,
    BackendTimedOut,
    BackendUnauthorised,
    BackendUnreachable,
    ModalCredentialsMissing,
    OutputTooLarge,
    SpeakerLatentRejected,
    consent,
)
from bot.tts.base import SpeakerLatent, SpokenChunk, SpokenFile, checked_request
from bot.tts.readiness import modal_credentials
from modal_tts import consent_check, wire
from modal_tts.output.errors import OutputTooLarge as EngineOutputTooLarge
from modal_tts.params import SAMPLE_RATE, InvalidLatent, SynthesisParams

log = logging.getLogger(__name__)

_NO_AUDIO = np.zeros(0, np.float32)
Piece = TypeVar("Piece", wire.PcmChunk, wire.OpusBlock)
_TRANSIENT = (mx.ConnectionError, mx.InternalFailure, mx.InternalError, mx.ServiceError)


class _Transient(Exception):
    """A failure worth one more try; carries the typed error to raise if the retry fails too."""

    def __init__(self, error: BackendError) -> None:
        super().__init__(str(error))
        self.error = error


def _map_error(exc: BaseException, timeout: float) -> BackendError | _Transient:
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, mx.AuthError) and not modal_credentials():
        return ModalCredentialsMissing()  # Modal's client says "token missing" as an AuthError too
    if isinstance(exc, mx.AuthError | mx.PermissionDeniedError):
        return BackendUnauthorised(detail)
    if isinstance(exc, mx.NotFoundError) and "has no method" in str(exc):
        return BackendOutdated(detail)  # an app deployed before the method this bot calls
    if isinstance(exc, mx.NotFoundError):
        return BackendNotDeployed(detail)
    if isinstance(exc, wire.WireVersionMismatch):
        return BackendOutdated(str(exc))
    if isinstance(exc, mx.TimeoutError | TimeoutError):
        return BackendTimedOut(timeout)
    if isinstance(exc, mx.ResourceExhaustedError):
        return BackendBusy(detail)
    if isinstance(exc, mx.ConnectionError | ConnectionError):
        # Modal's client raises this only after its own retries (58 s with no network, measured here):
        # another try would double the member's wait for the same answer.
        return BackendUnreachable(str(exc) or type(exc).__name__)
    if isinstance(exc, _TRANSIENT):
        return _Transient(BackendFailed(detail))
    if isinstance(exc, mx.RequestSizeError):
        return BackendInvalidRequest("That request is too large for the speech engine.")
    if isinstance(exc, InvalidLatent):
        # Modal unpickles the container's exception as its own type: the voice's latent is at fault.
        return SpeakerLatentRejected(str(exc))
    if isinstance(exc, ValueError):
        # InvalidParams / WireError raised in the container: the message names the bad setting.
        return BackendInvalidRequest(str(exc))
    # ExecutionError, RemoteError, (De)SerializationError, VersionError, DeprecationError (a
    # UserWarning, not a modal.Error), InputCancellation, CUDA errors re-raised from the container …
    return BackendFailed(detail)


def _compared(pcm: np.ndarray) -> bytes:
    return wire.pcm_to_bytes(np.asarray(pcm)[: round(consent_check.MAX_COMPARED_SECONDS * SAMPLE_RATE)])


class ModalBackend:
    name = "modal"

    def __init__(
        self,
        app_name: str = "echo-voicebot",
        class_name: str = "EchoTTS",
        *,
        timeout: float = 180.0,
        retry_delay: float = 1.0,
        lookup: Callable[[], Any] | None = None,
        lookup_class: Callable[[], Any] | None = None,
    ) -> None:
        self.app_name, self.class_name = app_name, class_name
        self.timeout = timeout  # per call, and per chunk of a stream (cold start included)
        self.retry_delay = retry_delay
        self._lookup = lookup or self._from_name
        self._lookup_class = lookup_class or (lambda: modal.Cls.from_name(self.app_name, self.class_name))
        self._handle: Any = None

    def _from_name(self) -> Any:
        # Lazy: nothing touches the network until the first call, where a missing token or app shows.
        return modal.Cls.from_name(self.app_name, self.class_name)()

    def _obj(self) -> Any:
        if self._handle is None:
            self._handle = self._lookup()
        return self._handle

    async def _call(self, method: str, *args: Any) -> Any:
        for attempt in (1, 2):
            try:
                fn = getattr(self._obj(), method)
                async with asyncio.timeout(self.timeout):
                    return await fn.remote.aio(*args)
            except asyncio.CancelledError:
                raise
            except (Exception, mx.InputCancellation) as exc:  # all become typed errors here
                mapped = _map_error(exc, self.timeout)
                if isinstance(mapped, _Transient):
                    if attempt == 1:
                        log.warning("Modal %s failed (%s); retrying once", method, mapped)
                        await asyncio.sleep(self.retry_delay)
                        continue
                    mapped = mapped.error
                raise mapped from exc
        raise AssertionError("unreachable")

    async def encode_speaker(self, pcm: np.ndarray) -> SpeakerLatent:
        reply = await self._call("encode_speaker", wire.pcm_to_bytes(pcm))
        try:
            data, revision = wire.latent_from_wire(reply)
        except wire.WireError as exc:
            raise BackendFailed(str(exc)) from exc
        return SpeakerLatent(data, revision)

    async def synthesize(
        self, texts: Sequence[str], latent: SpeakerLatent, params: SynthesisParams, seed: int
    ) -> AsyncIterator[SpokenChunk]:
        texts = checked_request(texts, seed, latent.data)  # a damaged voice never costs a Modal call
        request = wire.SpeakRequest(texts, latent.data, latent.revision, params.to_dict(), seed)
        async for piece in self._pieces(request, wire.PcmChunk):
            yield SpokenChunk(piece.index, piece.audio, piece.gpu_seconds, piece.block, piece.last)

    async def speak_live(
        self, texts: Sequence[str], latent: SpeakerLatent, params: SynthesisParams, seed: int
    ) -> AsyncIterator[SpokenChunk]:
        """As `synthesize`, each piece already 20 ms Opus packets: live voice encodes nothing here."""
        texts = checked_request(texts, seed, latent.data)
        request = wire.SpeakRequest(texts, latent.data, latent.revision, params.to_dict(), seed, "opus")
        async for block in self._pieces(request, wire.OpusBlock):
            yield SpokenChunk(
                block.index,
                _NO_AUDIO,
                block.gpu_seconds,
                block.block,
                block.last,
                packets=block.packets,
                samples=block.samples,
                peak=block.peak,
            )

    async def _pieces(self, request: wire.SpeakRequest, kind: type[Piece]) -> AsyncIterator[Piece]:
        """The request's pieces, all of `kind`, chunk after chunk: anything else, a chunk out of order or
        a stream that ends before the last chunk's last piece is BackendFailed."""
        done = 0  # chunks whose last piece arrived
        async for piece in self._speak(request):
            if not isinstance(piece, kind):
                raise BackendFailed(f"a {type(piece).__name__} arrived where {kind.__name__} was asked for")
            if piece.index != done:
                raise BackendFailed(f"chunk {piece.index} arrived when {done} was expected")
            done += piece.last
            yield piece
        if done != len(request.texts):
            raise BackendFailed(f"stream ended after {done} of {len(request.texts)} chunks")

    async def speak_file(
        self,
        texts: Sequence[str],
        latent: SpeakerLatent,
        params: SynthesisParams,
        seed: int,
        spec: wire.FileSpec,
    ) -> AsyncIterator[wire.Progress | SpokenFile]:
        """The speech as a finished file made on the engine side: a Progress per chunk, then the file.
        The bot spends no CPU on encoding (OutputTooLarge, in the bot's words, if it can't fit)."""
        texts = checked_request(texts, seed, latent.data)
        request = wire.SpeakRequest(texts, latent.data, latent.revision, params.to_dict(), seed, "file", spec)
        made = False
        async for reply in self._speak(request):
            if isinstance(reply, wire.Progress):
                yield reply
            elif isinstance(reply, wire.EncodedFile) and not made:
                made = True
                yield SpokenFile(reply.format, reply.data, reply.seconds, reply.gpu_seconds, reply.waveform)
            else:
                raise BackendFailed(f"a {type(reply).__name__} arrived where a file was asked for")
        if not made:
            raise BackendFailed("the stream ended without the file")

    async def _speak(
        self, request: wire.SpeakRequest
    ) -> AsyncIterator[wire.PcmChunk | wire.OpusBlock | wire.EncodedFile | wire.Progress]:
        """The app's replies to `request`, parsed; a failure before the first reply is retried once
        when it is transient (so a retry never repeats audio), and every failure is a typed error."""
        message = wire.speak_request_to_wire(request)
        yielded = 0
        for attempt in (1, 2):
            stream = None
            try:
                stream = self._obj().speak.remote_gen.aio(message)
                while True:
                    try:
                        async with asyncio.timeout(self.timeout):
                            reply = await anext(stream)
                    except StopAsyncIteration:
                        return
                    parsed = wire.reply_from_wire(reply)
                    yielded += 1
                    yield parsed
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except BackendError:
                raise
            except wire.WireVersionMismatch as exc:
                raise BackendOutdated(str(exc)) from exc
            except wire.WireError as exc:
                raise BackendFailed(f"malformed reply from the GPU: {exc}") from exc
            except EngineOutputTooLarge as exc:
                raise OutputTooLarge.from_engine(exc) from exc
            except (Exception, mx.InputCancellation) as exc:
                mapped = _map_error(exc, self.timeout)
                if isinstance(mapped, _Transient):
                    if attempt == 1 and yielded == 0:
                        log.warning("Modal speak failed (%s); retrying once", mapped)
                        await asyncio.sleep(self.retry_delay)
                        continue
                    mapped = mapped.error
                raise mapped from exc
            finally:
                if stream is not None and hasattr(stream, "aclose"):
                    await stream.aclose()

    async def speaker_similarity(self, reference: np.ndarray, sample: np.ndarray) -> float:
        """The app's `compare_speakers` (an app deployed before it says "redeploy", as for any method); only
        the part of each recording the encoder reads is sent."""
        reply = await self._call("compare_speakers", _compared(reference), _compared(sample))
        try:
            return consent_check.reply_from_wire(reply)
        except consent_check.TooLittleSpeech as exc:
            raise consent.from_engine(exc) from exc
        except ValueError as exc:
            raise BackendFailed(str(exc)) from exc

    async def watermark_confidence(self, pcm: np.ndarray) -> float:
        """The app's `check_watermark` (an app deployed before it says "redeploy", as for any method)."""
        reply = await self._call("check_watermark", wire.pcm_to_bytes(pcm))
        try:
            confidence = float(reply["confidence"])
        except (TypeError, KeyError, ValueError) as exc:
            raise BackendFailed(f"malformed watermark reply from the GPU: {reply!r:.80}") from exc
        if not 0.0 <= confidence <= 1.0:
            raise BackendFailed(f"watermark confidence {confidence} is outside 0..1")
        return confidence

    async def info(self) -> dict[str, Any]:
        return await self._call("info")

    async def check_deployed(self) -> None:
        """Look the app up without running it (no GPU container starts): BackendNotDeployed if it isn't
        deployed, BackendUnauthorised if Modal refuses the token, the mapped error otherwise."""
        try:
            async with asyncio.timeout(self.timeout):
                await self._lookup_class().hydrate.aio()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            mapped = _map_error(exc, self.timeout)
            raise (mapped.error if isinstance(mapped, _Transient) else mapped) from exc

    async def keep_warm(self, warm: bool) -> None:
        """Hold one GPU container up (or let it scale to zero again) while the bot sits in voice, so
        that live speech never waits for a cold start. Costs the GPU's price for every hour held."""
        try:
            await self._obj().update_autoscaler.aio(min_containers=1 if warm else 0)
        except Exception as exc:  # an optimisation: a failure is logged, never shown to members
            log.warning("Could not %s the GPU container warm: %s", "keep" if warm else "stop keeping", exc)

    async def close(self) -> None:
        self._handle = None
