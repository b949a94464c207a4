"""ModalBackend: the production path with the looked-up handle injected, so no token or network."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import modal.exception as mx
import numpy as np
import pytest

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
    OutputTooLarge,
)
from bot.tts.base import SpeakerLatent
from bot.tts.modal_backend import ModalBackend
from modal_tts import output, wire
from modal_tts.params import InvalidParams, SynthesisParams
from tests.modal_local import LocalModal

LATENT = SpeakerLatent(np.zeros((8, 80), dtype=np.float16), "rev-1")
PARAMS = SynthesisParams(steps=4, sequence_length=32)


def chunk(i: int, n: int = 4410, *, block: int = 0, last: bool = True) -> dict[str, Any]:
    """A piece of chunk `i` as the app's `speak` sends it (the whole chunk by default)."""
    return wire.pcm_chunk_to_wire(i, np.full(n, 0.1 * (i + 1), dtype=np.float32), 0.5, block=block, last=last)


class Method:
    """Stands in for a Modal method handle: `.remote.aio(...)` and `.remote_gen.aio(...)`."""

    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes  # per call: a value, an exception, or a list (a stream)
        self.calls: list[tuple[Any, ...]] = []
        self.remote = type("R", (), {"aio": self._call})()
        self.remote_gen = type("G", (), {"aio": self._stream})()

    def _next(self, args: tuple[Any, ...]) -> Any:
        self.calls.append(args)
        return self.outcomes.pop(0)

    async def _call(self, *args: Any) -> Any:
        outcome = self._next(args)
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            return await outcome()
        return outcome

    async def _stream(self, *args: Any):
        for item in self._next(args):
            if isinstance(item, BaseException):
                raise item
            yield item


class Handle:
    def __init__(self, **methods: Method) -> None:
        self.__dict__.update(methods)


def backend(**methods: Method) -> ModalBackend:
    return ModalBackend(lookup=lambda: Handle(**methods), retry_delay=0, timeout=5)


# Every Modal exception a call can raise, and what the user is told.
CASES = [
    (mx.AuthError("Token missing"), BackendUnauthorised),
    (mx.PermissionDeniedError("no access"), BackendUnauthorised),
    (mx.NotFoundError("App 'echo-voicebot' not found"), BackendNotDeployed),
    (mx.FunctionTimeoutError("timed out"), BackendTimedOut),
    (mx.TimeoutError("timed out"), BackendTimedOut),
    (mx.ResourceExhaustedError("too many"), BackendBusy),
    (mx.ExecutionError("boom"), BackendFailed),
    (mx.RemoteError("remote"), BackendFailed),
    (mx.DeserializationError("bad"), BackendFailed),
    (mx.SerializationError("bad"), BackendFailed),
    (mx.VersionError("client too old"), BackendFailed),
    (mx.InputCancellation("cancelled"), BackendFailed),
    (mx.InvalidError("invalid"), BackendFailed),
    (mx.RequestSizeError("too big"), BackendInvalidRequest),
    (mx.DeprecationError("old API"), BackendFailed),
    (InvalidParams("steps is 0; allowed is 1 to 200."), BackendInvalidRequest),
    (RuntimeError("CUDA error: an illegal memory access"), BackendFailed),
]


@pytest.mark.parametrize(("exc", "expected"), CASES, ids=lambda v: type(v).__name__)
async def test_each_modal_exception_maps_to_one_typed_error(exc, expected):
    method = Method([exc])
    with pytest.raises(expected) as info:
        await backend(encode_speaker=method).encode_speaker(np.zeros(44100, dtype=np.float32))
    assert len(method.calls) == 1  # not transient: no retry
    assert info.value.message and "Traceback" not in info.value.message


def test_deprecation_error_is_not_a_modal_error_but_is_still_mapped():
    assert not issubclass(mx.DeprecationError, mx.Error)


def test_every_modal_exception_class_is_covered():
    """No modal.exception type can escape as itself: each maps to a BackendError (or a retry)."""
    from bot.tts.modal_backend import _map_error, _Transient

    for name, cls in inspect.getmembers(mx, inspect.isclass):
        if not issubclass(cls, BaseException) or name.startswith("_"):
            continue
        try:
            exc = cls("x")
        except TypeError:
            continue  # needs structured arguments; never raised bare by a call
        assert isinstance(_map_error(exc, 1.0), BackendError | _Transient), name


@pytest.mark.parametrize(("exc", "error"), [(mx.InternalFailure("oops"), BackendFailed)])
async def test_transient_failures_are_retried_once(exc, error):
    reply = wire.latent_to_wire(LATENT.data, "rev-2")
    method = Method([exc, reply])
    latent = await backend(encode_speaker=method).encode_speaker(np.zeros(44100, dtype=np.float32))
    assert latent.revision == "rev-2" and latent.data.shape == (8, 80)
    assert len(method.calls) == 2

    method = Method([exc, exc])
    with pytest.raises(error):
        await backend(encode_speaker=method).encode_speaker(np.zeros(44100, dtype=np.float32))
    assert len(method.calls) == 2


async def test_a_slow_call_times_out():
    async def slow() -> None:
        await asyncio.sleep(5)

    b = ModalBackend(lookup=lambda: Handle(info=Method([slow])), timeout=0.05)
    with pytest.raises(BackendTimedOut) as info:
        await b.info()
    assert "0 s" in info.value.message or "within" in info.value.message


async def test_the_handle_is_looked_up_lazily_once():
    looked_up = []

    def lookup() -> Handle:
        looked_up.append(1)
        return Handle(info=Method([{"revision": "a"}, {"revision": "b"}]))

    b = ModalBackend(lookup=lookup)
    assert looked_up == []
    assert (await b.info())["revision"] == "a" and (await b.info())["revision"] == "b"
    assert looked_up == [1]


async def test_synthesize_streams_chunks_in_order():
    method = Method([[chunk(0), chunk(1), chunk(2)]])
    b = backend(speak=method)
    got = [c async for c in b.synthesize(["a", "b", "c"], LATENT, PARAMS, seed=9)]
    assert [c.index for c in got] == [0, 1, 2]
    assert [round(float(c.audio[0]), 3) for c in got] == [0.1, 0.2, 0.3]
    (message,) = method.calls[0]
    asked = wire.speak_request_from_wire(message)
    assert asked.texts == ["a", "b", "c"] and asked.seed == 9 and asked.params == PARAMS.to_dict()
    assert asked.revision == "rev-1" and message["v"] == wire.WIRE_VERSION


async def test_blocks_stream_as_pieces_of_their_chunk():
    pieces = [
        chunk(0, block=0, last=False),
        chunk(0, block=1),
        chunk(1, block=0, last=False),
        chunk(1, block=1),
    ]
    got = [c async for c in backend(speak=Method([pieces])).synthesize(["a", "b"], LATENT, PARAMS, 1)]
    assert [(c.index, c.block, c.last) for c in got] == [
        (0, 0, False),
        (0, 1, True),
        (1, 0, False),
        (1, 1, True),
    ]
    with pytest.raises(BackendFailed) as cut_short:
        async for _ in backend(speak=Method([[chunk(0, last=False)]])).synthesize(["a"], LATENT, PARAMS, 1):
            pass
    assert "after 0 of 1 chunks" in cut_short.value.detail


@pytest.mark.parametrize(
    "failure",
    [
        mx.NotFoundError("Class has no method `speak` and attributes can't be accessed for remote classes"),
        wire.WireVersionMismatch(app_version=3, bot_version=2),
    ],
    ids=["app-older-than-the-bot", "app-newer-than-the-bot"],
)
async def test_an_app_of_another_version_says_redeploy(failure):
    with pytest.raises(BackendOutdated, match="another version of this bot") as info:
        async for _ in backend(speak=Method([[failure]])).synthesize(["a"], LATENT, PARAMS, 1):
            pass
    assert "voicebot deploy" in info.value.admin_hint


async def test_a_reply_of_another_version_says_redeploy():
    old = wire.chunk_to_wire(0, np.zeros(10, np.float32), 44_100, 0.1)  # version 1: no "v"
    with pytest.raises(BackendOutdated):
        async for _ in backend(speak=Method([[old]])).synthesize(["a"], LATENT, PARAMS, 1):
            pass


async def test_modal_unreachable_is_not_retried_on_top_of_its_clients_own_retries():
    method = Method([mx.ConnectionError("Could not connect to the Modal server."), LATENT])
    with pytest.raises(BackendUnreachable, match="can't reach its speech engine"):
        await backend(encode_speaker=method).encode_speaker(np.zeros(44100, dtype=np.float32))
    assert len(method.calls) == 1


async def test_a_stream_is_retried_only_before_its_first_chunk():
    method = Method([[mx.InternalFailure("drop")], [chunk(0), chunk(1)]])
    got = [c.index async for c in backend(speak=method).synthesize(["a", "b"], LATENT, PARAMS, 1)]
    assert got == [0, 1] and len(method.calls) == 2

    method = Method([[chunk(0), mx.InternalFailure("drop")], [chunk(0), chunk(1)]])
    got = []
    with pytest.raises(BackendFailed):
        async for c in backend(speak=method).synthesize(["a", "b"], LATENT, PARAMS, 1):
            got.append(c.index)
    assert got == [0] and len(method.calls) == 1  # audio already played is never repeated


async def test_a_stream_that_ends_early_or_out_of_order_fails_cleanly():
    with pytest.raises(BackendFailed) as short:
        async for _ in backend(speak=Method([[chunk(0)]])).synthesize(["a", "b"], LATENT, PARAMS, 1):
            pass
    assert "after 1 of 2 chunks" in short.value.detail
    with pytest.raises(BackendFailed) as shuffled:
        async for _ in backend(speak=Method([[chunk(1)]])).synthesize(["a"], LATENT, PARAMS, 1):
            pass
    assert "chunk 1 arrived when 0 was expected" in shuffled.value.detail


async def test_bad_requests_never_reach_modal():
    method = Method([])
    with pytest.raises(BackendInvalidRequest, match="769 bytes"):
        async for _ in backend(speak=method).synthesize(["x" * 769], LATENT, PARAMS, 1):
            pass
    assert method.calls == []


@pytest.mark.filterwarnings("ignore:.*executing locally.*:UserWarning")
async def test_round_trip_against_the_real_modal_class(echo_tts, tiny_engine):
    """The bot's wire format against the app's, with `.local()` standing in for the network."""
    handle = LocalModal(echo_tts)
    b = ModalBackend(lookup=lambda: handle)
    from tests.media import speech_like

    latent = await b.encode_speaker(speech_like(6.0))
    assert latent.revision == tiny_engine.revision and latent.data.dtype == np.float16
    chunks = [c async for c in b.synthesize(["[S1] Hi.", "[S1] Bye."], latent, PARAMS, 4)]
    expected = tiny_engine.synthesize(["[S1] Hi.", "[S1] Bye."], latent.data, PARAMS, seed=4)
    for got, want in zip(chunks, expected, strict=True):
        np.testing.assert_allclose(got.audio, np.clip(want, -1, 1), atol=1e-4)
    assert (await b.info())["revision"] == tiny_engine.revision
    # A file made on the engine side: progress per chunk, then the bytes the bot would have encoded.
    spec = wire.FileSpec("mp3", title="Hi.", voice="Ada", limit_bytes=5_000_000)
    replies = [r async for r in b.speak_file(["[S1] Hi.", "[S1] Bye."], latent, PARAMS, 4, spec)]
    *progress, made = replies
    assert [(p.done, p.total) for p in progress] == [(1, 2), (2, 2)]
    assert made.format == "mp3" and made.data[:3] == b"ID3" and made.gpu_seconds > 0
    assert made.seconds == pytest.approx(output.stitch(expected).size / 44_100)


async def test_live_speech_arrives_as_opus_packets_and_the_stream_asks_for_them():
    from bot import speech

    blocks = [
        wire.opus_block_to_wire(0, 0, [b"\x01", b"\x02"], 1764, 0.1, last=False, peak=0.4),
        wire.opus_block_to_wire(0, 1, [b"\x03"], 882, 0.2, last=True, peak=0.3),
    ]
    method = Method([blocks])
    got = [c async for c in backend(speak=method).speak_live(["a"], LATENT, PARAMS, 1)]
    assert [(c.packets, c.samples, c.last, c.audio.size) for c in got] == [
        ((b"\x01", b"\x02"), 1764, False, 0),
        ((b"\x03",), 882, True, 0),
    ]
    assert method.calls[0][0]["output"] == "opus"
    assert isinstance(ModalBackend(), speech.EncodingBackend)  # live voice asks it for packets


async def test_a_file_too_big_on_the_engine_side_is_told_as_the_bots_own_error():
    too_big = output.OutputTooLarge(600.0, "wav", 52_000_000, 10_485_760)
    spec = wire.FileSpec("wav", title="t", voice="v", limit_bytes=10_485_760)
    with pytest.raises(OutputTooLarge, match=r"upload limit here is 10\.0 MiB"):
        async for _ in backend(speak=Method([[too_big]])).speak_file(["a"], LATENT, PARAMS, 1, spec):
            pass


async def test_keep_warm_sets_the_autoscaler_and_a_failure_is_only_logged(caplog):
    calls: list[dict[str, Any]] = []

    class Autoscaler:
        async def aio(self, **settings: Any) -> None:
            calls.append(settings)
            if len(calls) == 3:
                raise mx.ConnectionError("offline")

    b = ModalBackend(lookup=lambda: Handle(update_autoscaler=Autoscaler()))
    await b.keep_warm(True)
    await b.keep_warm(False)
    await b.keep_warm(True)  # fails: logged, not raised
    assert calls == [{"min_containers": 1}, {"min_containers": 0}, {"min_containers": 1}]
    assert "Could not keep the GPU container warm" in caplog.text
