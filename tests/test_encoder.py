"""bot.encoder: files from the worker processes are what bot.audio makes in-process; held audio is bounded."""

from __future__ import annotations

import asyncio
import io

import av
import mutagen
import numpy as np
import pytest

from bot import audio
from bot.encoder import Encoder
from bot.errors import OutputTooLarge
from tests.media import speech_like

TAGS = audio.Tags(title="Hello there", voice="Ada")
LIMIT = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return audio.stitch([speech_like(3.0, seed=1), speech_like(2.0, seed=2)])


@pytest.fixture
async def encoder():
    encoder = Encoder(workers=1)
    yield encoder
    await encoder.close()


def ogg_packets(data: bytes) -> list[bytes]:
    """The Opus packets of an Ogg file: what it says, without the stream's random serial number."""
    with av.open(io.BytesIO(data)) as container:
        return [bytes(packet) for packet in container.demux(audio=0) if packet.size]


def tags_of(data: bytes) -> dict[str, list[str]]:
    return dict(mutagen.File(io.BytesIO(data)).tags)


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
async def test_files_from_the_pool_are_the_bytes_made_in_process(encoder: Encoder, clip, fmt):
    assert await encoder.file(clip, fmt, LIMIT, TAGS) == audio.fit_to_limit(clip, fmt, LIMIT, TAGS)
    assert await encoder.file(clip, fmt, None, TAGS) == audio.encode(clip, fmt, tags=TAGS)


async def test_voice_messages_from_the_pool_match_the_in_process_ones(encoder: Encoder, clip):
    pooled = await encoder.voice_message(clip, tags=TAGS, limit_bytes=LIMIT)
    local = audio.voice_message(clip, tags=TAGS, limit_bytes=LIMIT)
    assert (pooled.duration_s, pooled.waveform) == (local.duration_s, local.waveform)
    assert pooled.duration_s == pytest.approx(clip.size / audio.SAMPLE_RATE)
    assert ogg_packets(pooled.data) == ogg_packets(local.data) and len(ogg_packets(local.data)) > 100
    assert tags_of(pooled.data) == tags_of(local.data)


async def test_a_file_over_the_limit_is_refused_in_the_same_words(encoder: Encoder, clip):
    with pytest.raises(OutputTooLarge) as pooled:
        await encoder.file(clip, "ogg", 2000, TAGS)
    with pytest.raises(OutputTooLarge) as local:
        audio.fit_to_limit(clip, "ogg", 2000, TAGS)
    assert pooled.value.message == local.value.message


async def test_closing_ends_the_pool_and_a_later_file_starts_a_new_one(clip):
    encoder = Encoder(workers=1)
    first = await encoder.file(clip, "wav")
    await encoder.close()
    await encoder.close()
    assert await encoder.file(clip, "wav") == first
    await encoder.close()


async def settle() -> None:
    """Let every task that can run go as far as it can (a count of loop turns, not a time)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def test_audio_held_for_encoding_is_bounded_and_served_in_turn():
    encoder = Encoder(workers=1, max_held_s=10.0)
    entered: list[str] = []
    gates = {name: asyncio.Event() for name in ("a", "b", "c", "huge")}

    async def hold(name: str, seconds: float) -> None:
        async with encoder.holding(seconds):
            entered.append(name)
            await gates[name].wait()

    tasks = []
    for name, seconds in (("a", 6.0), ("b", 6.0), ("huge", 60.0), ("c", 1.0)):
        tasks.append(asyncio.create_task(hold(name, seconds)))
        await asyncio.sleep(0)
    await settle()
    assert entered == ["a"]  # b doesn't fit beside a; c fits but waits its turn behind b
    gates["a"].set()
    await settle()
    assert entered == ["a", "b"] and encoder.held_s == 6.0
    gates["b"].set()
    await settle()
    assert entered == ["a", "b", "huge"] and encoder.held_s == 10.0  # longer than all of it: held alone
    gates["huge"].set()
    gates["c"].set()
    await asyncio.gather(*tasks)
    assert entered == ["a", "b", "huge", "c"] and encoder.held_s == 0.0
