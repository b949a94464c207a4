"""The HTTP API on the production backend: the real `ModalBackend`, whose looked-up handle is the real Modal
class run in-process (`.local()`, tiny model), behind the real aiohttp server. The API asks the engine for
PCM pieces (`synthesize`) and encodes the response's format on the bot's side, as it streams."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from bot.api.server import create_app, serve
from bot.api.service import ApiService
from bot.config import Config
from bot.limits import Limits
from bot.store import open_library
from bot.tts.modal_backend import ModalBackend
from tests.media import speech_like
from tests.modal_local import LocalModal
from tests.test_api_server import GUILD, add_voice, decoded

pytestmark = pytest.mark.filterwarnings("ignore:.*executing locally.*:UserWarning")


@dataclass
class ModalApi:
    url: str
    key: str
    handle: LocalModal

    def aclient(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=self.key, max_retries=0, timeout=300)


@pytest.fixture
async def api(tmp_path: Path, echo_tts) -> AsyncIterator[ModalApi]:
    handle = LocalModal(echo_tts)
    backend = ModalBackend(lookup=lambda: handle, timeout=120)
    store = open_library(tmp_path / "data")
    latent = await backend.encode_speaker(speech_like(6.0))  # the app's encoder: its revision is the app's
    add_voice(store, latent.data, latent.revision, "Ann")
    _, key = store.create_api_key(GUILD, created_by=42, name="tests")
    config = Config(data_dir=tmp_path / "data", backend="modal")
    runner = await serve(
        create_app(ApiService(store, backend, Limits(store, holder="api"), config)), "127.0.0.1", 0
    )
    host, port = runner.addresses[0][:2]
    yield ModalApi(f"http://{host}:{port}", key, handle)
    await runner.cleanup()
    await backend.close()
    store.close()


async def test_mp3_streams_in_parts_from_the_modal_engine(api: ModalApi):
    words = "This sentence is long enough to take more than one block. It has a second one. And a third."
    parts: list[bytes] = []
    async with api.aclient().audio.speech.with_streaming_response.create(
        model="tts-1", voice="Ann", input=words, response_format="mp3", extra_body={"seed": 3}
    ) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        # sent as it is encoded: chunked, its length unknown when the headers left
        assert response.headers["transfer-encoding"] == "chunked" and "content-length" not in response.headers
        async for part in response.iter_bytes():
            parts.append(part)
    assert len(parts) >= 2
    pcm, rate = decoded(b"".join(parts))
    assert pcm.size / rate > 2.0
    assert api.handle.outputs == ["pcm"]  # the engine sent PCM; the mp3 was made here


async def test_the_same_seed_gives_the_same_pcm_through_modal(api: ModalApi):
    client = api.aclient()
    said = [
        (
            await client.audio.speech.create(
                model="tts-1",
                voice="Ann",
                input="Again, please.",
                response_format="pcm",
                extra_body={"seed": 5},
            )
        ).content
        for _ in range(2)
    ]
    assert len(said[0]) > 24000 and said[0] == said[1]  # over half a second of 16-bit 24 kHz


async def test_sse_through_modal_ends_with_done(api: ModalApi):
    async with httpx.AsyncClient(base_url=api.url, timeout=300) as http:
        reply = await http.post(
            "/v1/audio/speech",
            headers={"Authorization": f"Bearer {api.key}"},
            json={"model": "tts-1", "voice": "Ann", "input": "Hi there.", "stream_format": "sse", "seed": 1},
        )
    assert reply.status_code == 200, reply.text
    events = [json.loads(line.removeprefix("data: ")) for line in reply.text.split("\n\n") if line]
    assert events and [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1)
    assert events[-1]["type"] == "speech.audio.done"
    assert events[-1]["usage"]["output_tokens"] > 0
    pcm, rate = decoded(b"".join(base64.b64decode(e["audio"]) for e in events[:-1]))
    assert pcm.size / rate > 0.5
