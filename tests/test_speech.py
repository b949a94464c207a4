"""bot.speech: a voice the engine refuses as damaged is marked for re-encoding and said as such; speech
that arrives block by block is joined into chunks for a file."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bot import audio, speech
from bot.errors import SilentSpeech, SpeakerLatentRejected, VoiceNeedsRepair
from bot.store import VoiceStore
from bot.tts import EncodingBackend, SpokenChunk, SpokenFile
from modal_tts import wire
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


class BlockBackend:
    """Speech in pieces: each chunk as a quiet first block (a lead-in) and a louder second one, or all
    quiet for the texts in `silent`."""

    name = "blocks"

    def __init__(self, silent: frozenset[int] = frozenset()) -> None:
        self.silent = silent

    async def synthesize(self, texts, latent, params, seed):
        for i, _ in enumerate(texts):
            loud = 0.0 if i in self.silent else 0.5
            yield SpokenChunk(i, np.zeros(4410, np.float32), 0.25, block=0, last=False)
            yield SpokenChunk(i, np.full(22050, loud, np.float32) * np.sin(np.arange(22050)), 0.5, block=1)


async def test_a_file_joins_each_chunks_pieces_and_counts_progress_by_chunk(tmp_path):
    store = VoiceStore(tmp_path)
    try:
        add(store, 1, "Ada")
        request = speech.plan(
            store, guild_id=1, user_id=1, voice_name="Ada", words="Hello there. Goodbye now.", max_chars=100
        )
        request = dataclasses.replace(request, chunks=["[S1] Hello there.", "[S1] Goodbye now."])
        progress: list[tuple[int, int]] = []
        said = await speech.speak(
            store, BlockBackend(), request, progress=lambda d, n: progress.append((d, n))
        )
        assert progress == [(1, 2), (2, 2)]  # by chunk, not by block
        assert said.gpu_seconds == pytest.approx(1.5)
        assert 1.0 < said.audio_seconds < 2.0  # two 0.5 s voices, the pause, the edges: lead-ins trimmed
        with pytest.raises(SilentSpeech):  # a chunk silent in every block is a failure, as before
            await speech.speak(store, BlockBackend(silent=frozenset({1})), request)
    finally:
        store.close()


class FileMaker:
    """A backend whose engine side encodes (`bot.tts.EncodingBackend`), as the Modal one does."""

    name = "files"

    def __init__(self, peaks=(0.5, 0.5)) -> None:
        self.peaks = peaks
        self.specs = []

    async def synthesize(self, texts, latent, params, seed):
        raise AssertionError("a file request never asks for PCM")
        yield

    async def speak_live(self, texts, latent, params, seed):
        raise AssertionError("a file request never asks for live packets")
        yield

    async def speak_file(self, texts, latent, params, seed, spec):
        self.specs.append(spec)
        for done, peak in enumerate(self.peaks, start=1):
            yield wire.Progress(done, len(self.peaks), peak)
        yield SpokenFile(spec.format, b"OggS...", 3.5, 1.25, "AAAA")


async def test_a_file_made_on_the_engine_side_is_forwarded_as_it_came(tmp_path):
    store = VoiceStore(tmp_path)
    try:
        add(store, 1, "Ada")
        request = speech.plan(
            store, guild_id=1, user_id=1, voice_name="Ada", words="Hello there.", max_chars=100
        )
        maker, progress = FileMaker(), []
        made = await speech.speak_to_file(
            store,
            maker,
            request,
            file_format="ogg",
            limit_bytes=1000,
            voice_message=True,
            progress=lambda d, n: progress.append((d, n)),
        )
        assert isinstance(maker, EncodingBackend) and progress == [(1, 2), (2, 2)]
        assert maker.specs == [wire.FileSpec("ogg", "Hello there.", "Ada", 1000, True)]
        assert isinstance(made.file, audio.VoiceMessage)
        assert (made.file.data, made.file.duration_s, made.file.waveform) == (b"OggS...", 3.5, "AAAA")
        assert (made.audio_seconds, made.gpu_seconds) == (3.5, 1.25)
        with pytest.raises(SilentSpeech):  # a silent chunk fails the file as it fails PCM
            await speech.speak_to_file(
                store,
                FileMaker(peaks=(0.5, 0.0)),
                request,
                file_format="ogg",
                limit_bytes=None,
                voice_message=False,
            )
    finally:
        store.close()
