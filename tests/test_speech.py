"""bot.speech: a voice the engine refuses as damaged is marked for re-encoding and said as such."""

from __future__ import annotations

import pytest

from bot import speech
from bot.errors import SpeakerLatentRejected, VoiceNeedsRepair
from bot.store import VoiceStore
from tests.test_store import add


class RefusingBackend:
    """An engine whose own check of the latent is stricter than the library's."""

    name = "strict"

    async def synthesize(self, texts, latent, params, seed):
        raise SpeakerLatentRejected("A speaker latent holds values far outside what the model makes.")
        yield  # an async generator, as backends are


async def test_a_latent_the_engine_rejects_marks_the_voice_for_re_encoding(tmp_path):
    store = VoiceStore(tmp_path)
    try:
        add(store, 1, "Ada")
        request = speech.plan(store, guild_id=1, user_id=1, voice_name="Ada", words="Hello.", max_chars=100)
        with pytest.raises(VoiceNeedsRepair) as told:
            async for _ in speech.stream(store, RefusingBackend(), request):
                pass
        assert told.value.reference_kept and "being rebuilt from its recording" in told.value.message
        assert [v.name for v in store.needing_reencode()] == ["Ada"]
    finally:
        store.close()
