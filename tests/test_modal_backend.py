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
    BackendTimedOut,
    BackendUnauthorised,
    BackendUnreachable,
)
from bot.tts.base import SpeakerLatent
from bot.tts.modal_backend import ModalBackend
from modal_tts import wire
from modal_tts.params import InvalidParams, SynthesisParams

LATENT = SpeakerLatent(np.zeros((8, 80), dtype=np.float16), "rev-1")
PARAMS = SynthesisParams(steps=4, sequence_length=32)


def chunk(i: int, n: int = 4410) -> dict[str, Any]:
    return wire.chunk_to_wire(i, np.full(n, 0.1 * (i + 1), dtype=np.float32), 44_100, 0.5)


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
    b = backend(synthesize=method)
    got = [c async for c in b.synthesize(["a", "b", "c"], LATENT, PARAMS, seed=9)]
    assert [c.index for c in got] == [0, 1, 2]
    assert [round(float(c.audio[0]), 3) for c in got] == [0.1, 0.2, 0.3]
    texts, latent_msg, params, seed = method.calls[0]
    assert texts == ["a", "b", "c"] and seed == 9 and params == PARAMS.to_dict()
    assert wire.latent_from_wire(latent_msg)[1] == "rev-1"


async def test_modal_unreachable_is_not_retried_on_top_of_its_clients_own_retries():
    method = Method([mx.ConnectionError("Could not connect to the Modal server."), LATENT])
    with pytest.raises(BackendUnreachable, match="can't reach its speech engine"):
        await backend(encode_speaker=method).encode_speaker(np.zeros(44100, dtype=np.float32))
    assert len(method.calls) == 1


async def test_a_stream_is_retried_only_before_its_first_chunk():
    method = Method([[mx.InternalFailure("drop")], [chunk(0), chunk(1)]])
    got = [c.index async for c in backend(synthesize=method).synthesize(["a", "b"], LATENT, PARAMS, 1)]
    assert got == [0, 1] and len(method.calls) == 2

    method = Method([[chunk(0), mx.InternalFailure("drop")], [chunk(0), chunk(1)]])
    got = []
    with pytest.raises(BackendFailed):
        async for c in backend(synthesize=method).synthesize(["a", "b"], LATENT, PARAMS, 1):
            got.append(c.index)
    assert got == [0] and len(method.calls) == 1  # audio already played is never repeated


async def test_a_stream_that_ends_early_or_out_of_order_fails_cleanly():
    with pytest.raises(BackendFailed) as short:
        async for _ in backend(synthesize=Method([[chunk(0)]])).synthesize(["a", "b"], LATENT, PARAMS, 1):
            pass
    assert "after 1 of 2 chunks" in short.value.detail
    with pytest.raises(BackendFailed) as shuffled:
        async for _ in backend(synthesize=Method([[chunk(1)]])).synthesize(["a"], LATENT, PARAMS, 1):
            pass
    assert "chunk 1 arrived when 0 was expected" in shuffled.value.detail


async def test_bad_requests_never_reach_modal():
    method = Method([])
    with pytest.raises(BackendInvalidRequest, match="769 bytes"):
        async for _ in backend(synthesize=method).synthesize(["x" * 769], LATENT, PARAMS, 1):
            pass
    assert method.calls == []


@pytest.mark.filterwarnings("ignore:.*executing locally.*:UserWarning")
async def test_round_trip_against_the_real_modal_class(tiny_model_dir, tiny_engine, monkeypatch):
    """The bot's wire format against the app's, with `.local()` standing in for the network."""
    monkeypatch.setenv("ECHO_WEIGHTS_DIR", str(tiny_model_dir))
    from modal_tts.app import EchoTTS

    obj = EchoTTS()

    class Local:
        def __init__(self, method: Any) -> None:
            async def call(*args: Any) -> Any:
                return await asyncio.to_thread(method.local, *args)

            async def stream(*args: Any):
                for item in await asyncio.to_thread(lambda: list(method.local(*args))):
                    yield item

            self.remote = type("R", (), {"aio": staticmethod(call)})()
            self.remote_gen = type("G", (), {"aio": staticmethod(stream)})()

    handle = Handle(**{m: Local(getattr(obj, m)) for m in ("encode_speaker", "synthesize", "info")})
    b = ModalBackend(lookup=lambda: handle)
    from tests.media import speech_like

    latent = await b.encode_speaker(speech_like(6.0))
    assert latent.revision == tiny_engine.revision and latent.data.dtype == np.float16
    chunks = [c async for c in b.synthesize(["[S1] Hi.", "[S1] Bye."], latent, PARAMS, 4)]
    expected = tiny_engine.synthesize(["[S1] Hi.", "[S1] Bye."], latent.data, PARAMS, seed=4)
    for got, want in zip(chunks, expected, strict=True):
        np.testing.assert_allclose(got.audio, np.clip(want, -1, 1), atol=1e-4)
    assert (await b.info())["revision"] == tiny_engine.revision


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
