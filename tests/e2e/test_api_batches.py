"""The HTTP API and Discord on one engine: a request made through the API and a /say from a member
are sampled in one batch, as two Discord requests are (the Modal app's scheduler is the same code)."""

from __future__ import annotations

import asyncio
import threading

import httpx

from bot import speech
from bot.api.server import create_app, serve
from bot.api.service import ApiService
from bot.limits import Limits
from bot.tts import SpeakerLatent
from bot.tts.local_backend import LocalBackend
from tests.e2e.conftest import World


class BatchRecorder:
    """The tiny engine, recording the texts of every sampler call; a call with "Hold." waits for
    `release`, so the requests a test makes meanwhile are all waiting when the GPU thread is free."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.batches: list[list[str]] = []
        self.release = threading.Event()

    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def sample_rows(self, rows, params, window, **options):
        self.batches.append([row.text for row in rows])
        if any("Hold." in row.text for row in rows):
            self.release.wait(60)
        return self.engine.sample_rows(rows, params, window, **options)


async def test_an_api_request_and_a_say_share_one_batch(world: World, tiny_engine):
    recorder = BatchRecorder(tiny_engine)
    local = LocalBackend(engine=recorder)
    replaced, world.backend.inner = world.backend.inner, local
    await replaced.close()
    voice = world.add_voice("Ada", world.alice)
    _, key = world.bot.store.create_api_key(world.guild.id, created_by=world.admin.id, name="overlay")
    api = ApiService(world.bot.store, world.backend, Limits(world.bot.store, holder="api"), world.bot.config)
    runner = await serve(create_app(api), "127.0.0.1", 0)
    host, port = runner.addresses[0][:2]
    await world.join_voice(world.alice)
    try:
        # the GPU thread busy on another request: what comes next waits together
        latent = SpeakerLatent(world.bot.store.load_latent(voice), voice.revision)
        hold = asyncio.create_task(
            anext(local.synthesize(["[S1] Hold."], latent, speech.settings(live=True), 1))
        )
        await world.fake.wait_until(lambda: recorder.batches, timeout=30)
        said = await world.fake.invoke(
            "say", {"text": "From Discord.", "voice": "Ada", "mode": "channel"}, user=world.alice
        )
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=120) as http:
            call = asyncio.create_task(
                http.post(
                    "/v1/audio/speech",
                    headers={"Authorization": f"Bearer {key}"},
                    json={
                        "model": "tts-1",
                        "voice": "Ada",
                        "input": "From the API.",
                        "response_format": "wav",
                    },
                )
            )
            scheduler = await local.scheduler()

            def waiting() -> set[str]:
                return {row.request.texts[row.index] for row in list(scheduler.planner.waiting)}

            await world.fake.wait_until(
                lambda: {"[S1] From Discord.", "[S1] From the API."} <= waiting(), timeout=30
            )
            recorder.release.set()
            reply = await call
        assert reply.status_code == 200 and len(reply.content) > 44
        await hold
        shared = [b for b in recorder.batches if {"[S1] From Discord.", "[S1] From the API."} <= set(b)]
        assert shared, recorder.batches
        await world.fake.wait_until(lambda: world.fake.voice_packets(world.guild), timeout=30)
        assert said.ephemeral
    finally:
        recorder.release.set()
        await runner.cleanup()
