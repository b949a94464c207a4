"""The model changes under a serving bot: its voices are re-encoded in the background, one at a time,
while members keep getting their /say answered; afterwards every voice carries the new model."""

from __future__ import annotations

import asyncio

import pytest

from bot import audio
from bot.tts.local_backend import LocalBackend
from tests.e2e.conftest import World
from tests.media import speech_like

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def upgraded_engine(tmp_path_factory):
    """The tiny model with other weights: what the engine runs after an upgrade."""
    from modal_tts.engine import EchoEngine
    from modal_tts.tiny import write_tiny_model

    return EchoEngine.from_dir(
        write_tiny_model(tmp_path_factory.mktemp("tiny-upgraded"), seed=1), device="cpu"
    )


@pytest.fixture
def quick_rounds(monkeypatch):
    """The bot looks for voices behind the model every 0.2 s instead of every few minutes (before the
    bot starts: ask for this fixture before `world`)."""
    monkeypatch.setattr("bot.reencode.ROUND_EVERY_S", 0.2)
    monkeypatch.setattr("bot.reencode.PAUSE_S", 0.05)


async def test_voices_follow_a_new_model_while_the_bot_keeps_answering(
    quick_rounds, world: World, upgraded_engine
):
    store, old_engine = world.bot.store, world.backend.inner._engine
    names = ("Ada", "Bea", "Cy")
    references = {}
    for seed, name in enumerate(names):
        pcm = speech_like(6.0, seed=seed)
        voice = store.add(world.guild.id, name, owner_id=world.alice.id,
                          reference_flac=audio.encode(pcm, "flac"), latent=old_engine.encode_speaker(pcm),
                          duration_s=6.0, revision=old_engine.revision, consent_by=world.alice.id,
                          source="test")  # fmt: skip
        references[voice.id] = store.read_reference(voice)
    latents = {v.id: store.load_latent(v).tobytes() for v in store.all_voices()}

    # The second re-encoding waits for the test's word: the bot is then mid-way, and must still answer.
    encodings, held, go_on = 0, asyncio.Event(), asyncio.Event()
    encode = world.backend.encode_speaker

    async def held_at_the_second(pcm):
        nonlocal encodings
        encodings += 1
        if encodings == 2:
            held.set()
            await go_on.wait()
        return await encode(pcm)

    world.backend.encode_speaker = held_at_the_second  # type: ignore[method-assign]
    previous = world.backend.inner
    world.backend.inner = LocalBackend(engine=upgraded_engine)  # the engine now runs the new model
    await previous.close()
    new = upgraded_engine.revision
    assert new != old_engine.revision

    await asyncio.wait_for(held.wait(), 120)
    assert sorted(v.revision == new for v in store.all_voices()) == [False, False, True]
    record = await world.fake.invoke("say", {"text": "Still here.", "voice": "Cy"}, user=world.bob)
    await record.wait_for(lambda r: r.kind == "edit" and "Cy" in (r.content or ""), timeout=120)
    posted = await world.fake.wait_for_message(lambda m: m.flags & 8192, timeout=60)
    assert posted.files and not go_on.is_set()  # answered while the re-encoding waited

    go_on.set()
    await world.fake.wait_until(lambda: {v.revision for v in store.all_voices()} == {new}, timeout=120)
    for voice in store.all_voices():
        assert store.read_reference(voice) == references[voice.id]  # each recording kept as it was
        assert store.load_latent(voice).tobytes() != latents[voice.id]  # the new model's latent
    assert encodings == len(names)
