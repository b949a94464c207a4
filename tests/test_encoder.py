"""bot.encoder: files from the worker processes are what bot.audio makes in-process; held audio is bounded
and shared out fairly between servers and members; a dying worker costs one retry, then a clear error."""

from __future__ import annotations

import asyncio
import io
import os

import av
import mutagen
import numpy as np
import pytest

from bot import audio
from bot.encoder import Encoder
from bot.errors import EncoderFailed, OutputTooLarge
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


class Line:
    """Requests that hold speech until let go, the order they got in, and what was held as each did."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.entered: list[str] = []
        self.held_at_entry: list[float] = []
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._gates: dict[str, asyncio.Event] = {}

    async def ask(
        self, name: str, seconds: float, guild_id: int | None = None, user_id: int | None = None
    ) -> None:
        gate = self._gates[name] = asyncio.Event()

        async def hold() -> None:
            async with self.encoder.holding(seconds, guild_id=guild_id, user_id=user_id):
                self.entered.append(name)
                self.held_at_entry.append(self.encoder.held_s)
                await gate.wait()

        self.tasks[name] = asyncio.create_task(hold())
        await settle()

    async def let_go(self, name: str) -> None:
        self._gates[name].set()
        await settle()

    async def let_go_in_turn(self) -> None:
        """Let go of each holder in the order they got in, one at a time, until no one is left."""
        released = 0
        while released < len(self.entered):
            await self.let_go(self.entered[released])
            released += 1
        assert all(task.done() for task in self.tasks.values())


async def test_a_burst_from_one_member_does_not_hold_up_another_servers_request():
    encoder = Encoder(workers=1, max_held_s=100.0)
    line = Line(encoder)
    await line.ask("full", 100.0, guild_id=9, user_id=9)
    for n in range(1, 15):
        await line.ask(f"a{n}", 60.0, guild_id=1, user_id=1)
    await line.ask("other server", 2.0, guild_id=2, user_id=2)
    assert line.entered == ["full"]
    await line.let_go("full")
    assert line.entered == ["full", "a1", "other server"]  # in beside a1, before a2
    await line.let_go_in_turn()
    assert line.entered == ["full", "a1", "other server"] + [f"a{n}" for n in range(2, 15)]
    assert max(line.held_at_entry) <= 100.0 and encoder.held_s == 0.0


async def test_members_of_one_server_take_turns_and_keep_their_own_order():
    encoder = Encoder(workers=1, max_held_s=100.0)
    line = Line(encoder)
    await line.ask("full", 100.0, guild_id=9, user_id=9)
    for name in ("a1", "a2", "a3"):
        await line.ask(name, 60.0, guild_id=1, user_id=1)
    for name in ("b1", "b2", "b3"):
        await line.ask(name, 60.0, guild_id=1, user_id=2)
    await line.let_go_in_turn()
    assert line.entered == ["full", "a1", "b1", "a2", "b2", "a3", "b3"]
    assert max(line.held_at_entry) <= 100.0 and encoder.held_s == 0.0


async def test_a_caller_without_a_server_takes_turns_like_a_server_of_its_own():
    encoder = Encoder(workers=1, max_held_s=100.0)
    line = Line(encoder)
    await line.ask("full", 100.0, guild_id=9, user_id=9)
    for name in ("a1", "a2", "a3"):
        await line.ask(name, 60.0, guild_id=1, user_id=1)
    await line.ask("cli", 30.0)  # as the CLI calls it: no server, no member
    await line.let_go_in_turn()
    assert line.entered == ["full", "a1", "cli", "a2", "a3"]
    assert line.held_at_entry[2] == 90.0 and encoder.held_s == 0.0


async def test_a_waiter_cancelled_in_the_middle_leaves_the_others_in_order():
    encoder = Encoder(workers=1, max_held_s=100.0)
    line = Line(encoder)
    await line.ask("full", 100.0, guild_id=9, user_id=9)
    for name in ("a1", "a2", "a3"):
        await line.ask(name, 60.0, guild_id=1, user_id=1)
    for name in ("b1", "b2"):
        await line.ask(name, 60.0, guild_id=1, user_id=2)
    line.tasks["a2"].cancel()
    await settle()
    await line.let_go_in_turn()
    assert line.entered == ["full", "a1", "b1", "a3", "b2"]
    assert line.tasks["a2"].cancelled() and encoder.held_s == 0.0


async def test_cancelling_the_request_that_blocks_the_line_lets_the_next_in_at_once():
    encoder = Encoder(workers=1, max_held_s=100.0)
    line = Line(encoder)
    await line.ask("half", 50.0, guild_id=1, user_id=1)
    await line.ask("big", 80.0, guild_id=1, user_id=2)
    await line.ask("small", 10.0, guild_id=1, user_id=3)
    assert line.entered == ["half"]  # small fits, but waits behind big of its own server
    line.tasks["big"].cancel()
    await settle()
    assert line.entered == ["half", "small"] and encoder.held_s == 60.0
    await line.let_go_in_turn()
    assert encoder.held_s == 0.0


async def test_a_waiter_cancelled_just_after_being_let_in_gives_its_room_back():
    encoder = Encoder(workers=1, max_held_s=100.0)
    line = Line(encoder)
    full = encoder.holding(100.0, guild_id=9, user_id=9)
    await full.__aenter__()
    await line.ask("let in then cancelled", 60.0, guild_id=1, user_id=1)
    await full.__aexit__(None, None, None)  # lets the waiter in; it hasn't woken up yet
    line.tasks["let in then cancelled"].cancel()
    await settle()
    assert line.entered == [] and encoder.held_s == 0.0
    await line.ask("whole allowance", 100.0, guild_id=2, user_id=2)
    assert line.entered == ["whole allowance"]
    await line.let_go_in_turn()


async def test_another_server_may_pass_a_blocked_request_only_while_its_server_holds_speech():
    encoder = Encoder(workers=1, max_held_s=100.0)
    line = Line(encoder)
    await line.ask("a1", 60.0, guild_id=1, user_id=1)
    await line.ask("b1", 10.0, guild_id=2, user_id=2)
    await line.ask("a2", 90.0, guild_id=1, user_id=1)  # server 1's turn, but it doesn't fit yet
    await line.ask("b2", 10.0, guild_id=2, user_id=2)
    assert line.entered == ["a1", "b1", "b2"]  # server 1 still holds a1: b2 may pass
    await line.let_go("a1")
    await line.ask("b3", 10.0, guild_id=2, user_id=2)
    assert line.entered == ["a1", "b1", "b2"]  # server 1 holds nothing now: no one passes a2
    await line.let_go("b1")
    assert line.entered == ["a1", "b1", "b2", "a2"] and encoder.held_s == 100.0
    await line.let_go_in_turn()
    assert line.entered == ["a1", "b1", "b2", "a2", "b3"] and max(line.held_at_entry) <= 100.0


async def test_a_clip_longer_than_the_allowance_is_held_alone_and_not_passed():
    encoder = Encoder(workers=1, max_held_s=100.0)
    line = Line(encoder)
    await line.ask("some", 30.0, guild_id=1, user_id=1)
    await line.ask("huge", 500.0, guild_id=2, user_id=2)
    await line.ask("small", 5.0, guild_id=3, user_id=3)  # fits, but server 2 holds nothing to wait on
    assert line.entered == ["some"]
    await line.let_go("some")
    assert line.entered == ["some", "huge"] and encoder.held_s == 100.0
    await line.let_go_in_turn()
    assert line.entered == ["some", "huge", "small"] and encoder.held_s == 0.0


async def test_once_nothing_is_held_a_clip_as_long_as_the_allowance_fits_despite_float_sums():
    encoder = Encoder(workers=1, max_held_s=0.6)
    line = Line(encoder)
    await line.ask("a", 0.1, guild_id=1, user_id=1)
    await line.ask("b", 0.3, guild_id=2, user_id=2)
    await line.let_go("a")
    await line.let_go("b")  # 0.1 + 0.3 - 0.1 - 0.3 is a little over 0.0 in floats
    await line.ask("whole allowance", 0.6, guild_id=3, user_id=3)
    assert line.entered == ["a", "b", "whole allowance"]
    line.tasks["whole allowance"].cancel()
    await settle()


async def test_nothing_is_remembered_about_servers_once_the_line_is_empty():
    encoder = Encoder(workers=1, max_held_s=100.0)
    line = Line(encoder)
    for guild_id in range(1, 21):
        await line.ask(f"g{guild_id}", 60.0, guild_id=guild_id, user_id=guild_id)
    await line.let_go_in_turn()
    assert len(line.entered) == 20
    held = encoder._held  # the per-server and per-member bookkeeping a long-running bot keeps
    assert (held._lines, held._guild_served, held._member_served, held._holds) == ({}, {}, {}, {})


# Module-level, so the pool can pickle them by name.
def _die_the_first_time(marker: str) -> str:
    if not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os._exit(1)  # as if killed for memory
    return "made"


def _always_die() -> str:
    os._exit(1)


async def test_a_job_whose_worker_dies_is_tried_again_on_a_new_pool(encoder: Encoder, tmp_path, clip):
    marker = tmp_path / "died once"
    assert await encoder._run(_die_the_first_time, str(marker)) == "made"
    assert marker.exists()
    assert await encoder.file(clip, "wav") == audio.encode(clip, "wav")


async def test_a_job_whose_worker_dies_twice_fails_in_words(encoder: Encoder, clip):
    with pytest.raises(EncoderFailed) as failed:
        await encoder._run(_always_die)
    assert failed.value.message == (
        "Making the audio file failed (an encoder process stopped). "
        "Try again; if it keeps happening, tell a bot admin."
    )
    assert await encoder.file(clip, "wav") == audio.encode(clip, "wav")  # the next file gets a new pool
