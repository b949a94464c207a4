"""The HTTP speech API end to end: the real aiohttp server on a loopback port, the tiny model behind it,
and the clients people use (the official `openai` package, sync and async, and `httpx`)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import av
import httpx
import numpy as np
import openai
import pytest

from bot import audio
from bot.api.server import create_app, serve
from bot.api.service import ApiService
from bot.config import Config
from bot.limits import Limits
from bot.store import VoiceLibrary, open_library
from bot.tts.local_backend import LocalBackend
from tests.media import speech_like

GUILD, OTHER_GUILD, ADMIN = 1001, 1002, 42


@dataclass
class Api:
    url: str
    key: str
    store: VoiceLibrary
    backend: LocalBackend
    service: ApiService

    def client(self, key: str | None = None, **options) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key or self.key, max_retries=0, **options)

    def aclient(self, key: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=key or self.key, max_retries=0)


def add_voice(store: VoiceLibrary, latent: np.ndarray, revision: str, name: str, guild: int = GUILD):
    flac = audio.encode(speech_like(6.0), "flac")
    return store.add(
        guild,
        name,
        owner_id=ADMIN,
        reference_flac=flac,
        latent=latent,
        duration_s=6.0,
        revision=revision,
        consent_by=ADMIN,
        source="test",
    )


@pytest.fixture
async def api(tmp_path: Path, tiny_engine, tiny_latent) -> AsyncIterator[Api]:
    store = open_library(tmp_path / "data")
    add_voice(store, tiny_latent, tiny_engine.revision, "Ann")
    add_voice(store, tiny_latent, tiny_engine.revision, "Bob", guild=OTHER_GUILD)
    _, key = store.create_api_key(GUILD, created_by=ADMIN, name="tests")
    backend = LocalBackend(engine=tiny_engine)
    config = Config(data_dir=tmp_path / "data", max_reference_bytes=2 * 1024 * 1024)
    service = ApiService(store, backend, Limits(store, holder="api"), config)
    runner = await serve(create_app(service), "127.0.0.1", 0)
    host, port = runner.addresses[0][:2]
    yield Api(f"http://{host}:{port}", key, store, backend, service)
    await runner.cleanup()
    await backend.close()
    store.close()


def decoded(data: bytes) -> tuple[np.ndarray, int]:
    with av.open(io.BytesIO(data)) as container:
        frames = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
        rate = container.streams.audio[0].sample_rate
    return np.concatenate(frames), rate


async def test_the_openai_client_gets_speech_in_every_format(api: Api):
    client = api.client()
    for fmt in ("mp3", "opus", "aac", "flac", "wav"):
        reply = await asyncio.to_thread(
            client.audio.speech.create, model="tts-1", voice="Ann", input="Hello there.", response_format=fmt
        )
        pcm, rate = decoded(reply.content)
        assert pcm.size / rate > 0.5, fmt
        assert np.abs(pcm).max() > 0.01, fmt
    raw = await asyncio.to_thread(
        client.audio.speech.create,
        model="echo-tts",
        voice="Ann",
        input="Hello there.",
        response_format="pcm",
        extra_body={"seed": 7},
    )
    wav = await asyncio.to_thread(
        client.audio.speech.create,
        model="echo-tts",
        voice="Ann",
        input="Hello there.",
        response_format="wav",
        extra_body={"seed": 7},
    )
    samples, rate = decoded(wav.content)
    assert rate == 44100
    # pcm is OpenAI's 24 kHz: as long as the same speech at 44.1 kHz
    assert len(raw.content) / 2 / 24000 == pytest.approx(samples.size / rate, abs=0.01)


class GatedBackend:
    """The tiny model's backend, holding every piece after the first until `opened` is set."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend, self.opened, self.pieces = backend, asyncio.Event(), 0

    def __getattr__(self, name: str):
        return getattr(self.backend, name)

    async def synthesize(self, *args):
        async for piece in self.backend.synthesize(*args):
            if self.pieces:
                await asyncio.wait_for(self.opened.wait(), 60)
            self.pieces += 1
            yield piece


async def test_a_stream_starts_before_the_speech_is_done(api: Api):
    """`with_streaming_response` reads the first block's bytes while the engine still holds the rest:
    the engine gives its next pieces only once the client has bytes (a server that waited for the
    whole speech would never send any, and the test would time out)."""
    gated = GatedBackend(api.backend)
    api.service.backend = gated  # type: ignore[assignment]
    client = api.aclient()
    words = "This sentence is long enough to take more than one block. " * 3
    parts: list[bytes] = []
    async with client.audio.speech.with_streaming_response.create(
        model="tts-1-hd", voice="Ann", input=words, response_format="mp3", extra_body={"seed": 3}
    ) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        assert "content-length" not in response.headers
        async for part in response.iter_bytes():
            if not parts:
                assert gated.pieces == 1  # the first bytes came from the first piece alone
                gated.opened.set()
            parts.append(part)
    assert gated.pieces >= 2
    pcm, rate = decoded(b"".join(parts))
    assert pcm.size / rate > 2.0


async def test_sse_sends_deltas_then_done_with_usage(api: Api):
    async with httpx.AsyncClient(base_url=api.url, timeout=120) as http:
        reply = await http.post(
            "/v1/audio/speech",
            headers={"Authorization": f"Bearer {api.key}"},
            json={
                "model": "echo-tts",
                "voice": "Ann",
                "input": "Hi there.",
                "stream_format": "sse",
                "response_format": "wav",
                "seed": 1,
            },
        )
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line.removeprefix("data: ")) for line in reply.text.split("\n\n") if line]
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    done = events[-1]
    assert done["type"] == "speech.audio.done"
    assert done["usage"]["input_tokens"] == len("Hi there.")
    assert done["usage"]["total_tokens"] == done["usage"]["input_tokens"] + done["usage"]["output_tokens"] > 9
    pcm, rate = decoded(b"".join(base64.b64decode(e["audio"]) for e in events[:-1]))
    assert done["usage"]["output_tokens"] == pytest.approx(pcm.size / rate * 21.5, abs=2)


async def test_the_same_seed_says_it_the_same_way(api: Api):
    client = api.client()
    said = [
        (
            await asyncio.to_thread(
                client.audio.speech.create,
                model="tts-1",
                voice={"id": voice_id},
                input="Again.",
                response_format="pcm",
                extra_body={"seed": 11, "force_speaker": True},
            )
        ).content
        for voice_id in [api.store.get(GUILD, "Ann").id] * 2
    ]
    assert said[0] == said[1]


async def test_keys_are_checked_and_scoped_to_their_server(api: Api):
    for key in ("", "vbk_nope", api.key[:-1] + ("0" if api.key[-1] != "0" else "1")):
        with pytest.raises(openai.AuthenticationError) as caught:
            await asyncio.to_thread(
                api.client(key or "x").audio.speech.create, model="tts-1", voice="Ann", input="Hi."
            )
        assert caught.value.status_code == 401
        assert caught.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as caught:  # Bob is another server's voice
        await asyncio.to_thread(api.client().audio.speech.create, model="tts-1", voice="Bob", input="Hi.")
    assert caught.value.body["param"] == "voice"
    async with httpx.AsyncClient(base_url=api.url) as http:
        reply = await http.post("/v1/audio/speech", json={"model": "tts-1", "voice": "Ann", "input": "Hi."})
        assert reply.status_code == 401
        assert set(reply.json()["error"]) == {"message", "type", "param", "code"}


async def test_a_revoked_key_stops_working(api: Api, monkeypatch: pytest.MonkeyPatch):
    from bot.api import service

    client = api.client()
    listed = await asyncio.to_thread(client.get, "/audio/voices", cast_to=httpx.Response)
    assert listed.status_code == 200
    monkeypatch.setattr(service, "KEY_RECHECK_S", 0.0)  # otherwise within 5 s
    api.store.revoke_api_key(GUILD, "tests")
    with pytest.raises(openai.AuthenticationError):
        await asyncio.to_thread(client.get, "/audio/voices", cast_to=httpx.Response)


async def test_bad_input_is_refused_in_openais_shape(api: Api):
    auth = {"Authorization": f"Bearer {api.key}"}
    good = {"model": "tts-1", "voice": "Ann", "input": "Hi."}
    async with httpx.AsyncClient(base_url=api.url, headers=auth) as http:
        cases = [
            (http.post("/v1/audio/speech", json={**good, "speed": 9}), 400, "speed"),
            (http.post("/v1/audio/speech", json={**good, "model": "whisper-1"}), 400, "model"),
            (http.post("/v1/audio/speech", json={**good, "input": "x" * 4097}), 400, "input"),
            (
                http.post(
                    "/v1/audio/speech", content=b"{not json", headers={"Content-Type": "application/json"}
                ),
                400,
                None,
            ),
            (http.post("/v1/audio/speech", json={**good, "input": "x" * 70_000}), 413, None),
            (http.get("/v1/nothing-here"), 404, None),
            (http.delete("/v1/audio/speech"), 405, None),
        ]
        for call, status, param in cases:
            reply = await call
            assert reply.status_code == status, reply.text
            error = reply.json()["error"]
            assert error["param"] == param
            assert error["message"] and "Traceback" not in reply.text
    # a body over the cap is refused from its Content-Length, before any of it is sent
    url = httpx.URL(api.url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(
        b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {api.key}\r\nContent-Length: 50000000\r\n\r\n".encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 413")
    writer.close()


async def test_limits_answer_429_with_retry_after(api: Api):
    api.store.update_settings(GUILD, cooldown_s=120)
    client = api.client()
    await asyncio.to_thread(client.audio.speech.create, model="tts-1", voice="Ann", input="One.")
    with pytest.raises(openai.RateLimitError) as caught:
        await asyncio.to_thread(client.audio.speech.create, model="tts-1", voice="Ann", input="Two.")
    assert caught.value.body["code"] == "cooldown"
    assert 100 <= int(caught.value.response.headers["retry-after"]) <= 120


class FailingBackend:
    """The tiny model's backend, failing as told: before any audio (`at=0`) or after `at` pieces."""

    def __init__(self, backend: LocalBackend, error: Exception, at: int = 0) -> None:
        self.backend, self.error, self.at = backend, error, at

    def __getattr__(self, name: str):
        return getattr(self.backend, name)

    async def synthesize(self, *args):
        made = 0
        async for piece in self.backend.synthesize(*args):
            if made == self.at:
                raise self.error
            made += 1
            yield piece


async def test_an_engine_that_is_down_answers_503_with_retry_after(api: Api):
    from bot.errors import BackendBusy, BackendNotDeployed

    for error, code in ((BackendNotDeployed(), "engine_unavailable"), (BackendBusy(), "engine_busy")):
        api.service.backend = FailingBackend(api.backend, error)  # type: ignore[assignment]
        with pytest.raises(openai.InternalServerError) as caught:
            await asyncio.to_thread(api.client().audio.speech.create, model="tts-1", voice="Ann", input="Hi.")
        assert caught.value.status_code == 503
        assert caught.value.body["code"] == code
        assert int(caught.value.response.headers["retry-after"]) >= 1
    assert api.store.reserved_speech(GUILD) == 0  # nothing held, nothing charged
    assert api.store.audio_seconds_since(GUILD, 0) == 0


async def test_a_failure_mid_stream_cuts_the_stream_and_charges_what_was_sent(api: Api):
    from bot.errors import BackendFailed

    api.service.backend = FailingBackend(api.backend, BackendFailed("boom"), at=1)  # type: ignore[assignment]
    words = "This sentence is long enough to take more than one block. " * 3
    async with httpx.AsyncClient(base_url=api.url, timeout=120) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(
                "/v1/audio/speech",
                headers={"Authorization": f"Bearer {api.key}"},
                json={"model": "tts-1", "voice": "Ann", "input": words, "response_format": "wav"},
            )
        reply = await http.post(
            "/v1/audio/speech",
            headers={"Authorization": f"Bearer {api.key}"},
            json={"model": "tts-1", "voice": "Ann", "input": words, "stream_format": "sse"},
        )
    events = [json.loads(line.removeprefix("data: ")) for line in reply.text.split("\n\n") if line]
    assert events[0]["type"] == "speech.audio.delta"
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["code"] == "server_error"
    for _ in range(100):  # settled just after each response ended
        if api.service.limits.reserved_seconds(GUILD) == 0:
            break
        await asyncio.sleep(0.05)
    charged = api.store.audio_seconds_since(GUILD, 0)
    assert 1.0 < charged < 2 * 4.0  # two first blocks (1.5 s each), not the texts' whole length


async def test_voices_are_listed_cloned_and_deleted(api: Api):
    client = api.client()
    listed = await asyncio.to_thread(client.get, "/audio/voices", cast_to=httpx.Response)
    assert [v["name"] for v in listed.json()["data"]] == ["Ann"]
    assert set(listed.json()["data"][0]) == {"id", "object", "name", "owner", "created", "seconds"}
    clip = audio.encode(speech_like(6.0), "wav")
    form = {"name": "Cleo", "consent": "true"}
    auth = {"Authorization": f"Bearer {api.key}"}
    async with httpx.AsyncClient(base_url=api.url, headers=auth, timeout=120) as http:
        refused = await http.post("/v1/audio/voices", data=form, files={"audio_sample": ("c.wav", clip)})
        assert refused.status_code == 403  # the server asks speakers for their own consent (the default)
        assert refused.json()["error"]["code"] == "speaker_consent_required"
        api.store.update_settings(GUILD, speaker_consent=False)
        no_consent = await http.post(
            "/v1/audio/voices", data={**form, "consent": "false"}, files={"audio_sample": ("c.wav", clip)}
        )
        assert no_consent.status_code == 400
        made = await http.post("/v1/audio/voices", data=form, files={"audio_sample": ("c.wav", clip)})
        assert made.status_code == 201, made.text
        cleo = made.json()
        assert cleo["name"] == "Cleo" and cleo["seconds"] == pytest.approx(6.0, abs=0.1)
        taken = await http.post("/v1/audio/voices", data=form, files={"audio_sample": ("c.wav", clip)})
        assert taken.status_code == 400 and taken.json()["error"]["param"] == "name"
        not_audio = await http.post(
            "/v1/audio/voices",
            data={**form, "name": "Dee"},
            files={"audio_sample": ("d.wav", b"hello" * 100)},
        )
        assert not_audio.status_code == 400 and not_audio.json()["error"]["param"] == "audio_sample"
        too_big = await http.post(
            "/v1/audio/voices",
            data={**form, "name": "Eve"},
            files={"audio_sample": ("e.wav", b"\0" * (3 * 1024 * 1024))},
        )
        assert too_big.status_code == 413
    said = await asyncio.to_thread(
        client.audio.speech.create, model="tts-1", voice="Cleo", input="New voice.", response_format="wav"
    )
    assert decoded(said.content)[0].size > 0
    async with httpx.AsyncClient(base_url=api.url, headers=auth) as http:
        gone = await http.delete(f"/v1/audio/voices/{cleo['id']}")
        assert gone.json() == {"id": cleo["id"], "object": "audio.voice.deleted", "deleted": True}
        again = await http.delete(f"/v1/audio/voices/{cleo['id']}")
        assert again.status_code == 404
        other = await http.delete(f"/v1/audio/voices/{api.store.get(OTHER_GUILD, 'Bob').id}")
        assert other.status_code == 404  # another server's voice is not this key's to see
    assert [v.name for v in api.store.list(GUILD)] == ["Ann"]
    assert [v.name for v in api.store.list(OTHER_GUILD)] == ["Bob"]


async def test_health_openapi_and_no_cors_unless_configured(api: Api):
    async with httpx.AsyncClient(base_url=api.url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        spec = (await http.get("/openapi.json")).json()
        assert spec["openapi"].startswith("3.")
        assert {"/v1/audio/speech", "/v1/audio/voices", "/v1/audio/voices/{voice_id}"} <= set(spec["paths"])
        pre = await http.options(
            "/v1/audio/speech",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in pre.headers
    runner = await serve(create_app(api.service, cors_origins=("https://app.example",)), "127.0.0.1", 0)
    try:
        host, port = runner.addresses[0][:2]
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
            pre = await http.options(
                "/v1/audio/speech",
                headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
            )
            assert pre.status_code == 204
            assert pre.headers["access-control-allow-origin"] == "https://app.example"
            other = await http.get("/healthz", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers
            # a streamed answer carries it too (its headers leave before the handler returns)
            spoken = await http.post(
                "/v1/audio/speech",
                headers={"Origin": "https://app.example", "Authorization": f"Bearer {api.key}"},
                json={"model": "tts-1", "voice": "Ann", "input": "Hi.", "response_format": "wav"},
                timeout=120,
            )
            assert spoken.status_code == 200
            assert spoken.headers["access-control-allow-origin"] == "https://app.example"
    finally:
        await runner.cleanup()


async def test_slow_clients_are_cut_off(api: Api, monkeypatch: pytest.MonkeyPatch):
    """Headers that never finish, or a body that never comes, don't hold a connection."""
    from bot.api import server

    monkeypatch.setattr(server, "HEADER_TIMEOUT_S", 0.5)
    monkeypatch.setattr(server, "BODY_TIMEOUT_S", 0.5)
    monkeypatch.setattr(server, "LINGER_S", 0.5)
    runner = await serve(create_app(api.service), "127.0.0.1", 0)
    try:
        host, port = runner.addresses[0][:2]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed, unanswered
        writer.close()
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {api.key}\r\nContent-Length: 100\r\n\r\n{{".encode()
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
        assert answer.startswith(b"HTTP/1.1 408")
        writer.close()
    finally:
        await runner.cleanup()


def test_voicebot_api_listens_on_this_machine_unless_told_otherwise():
    from bot.cli.main import build_parser

    args = build_parser().parse_args(["api"])
    assert (args.host, args.port) == ("127.0.0.1", 8080)
    assert build_parser().parse_args(["api", "--host", "0.0.0.0", "--port", "9000"]).port == 9000
