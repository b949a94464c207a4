"""Voice queue and streaming playback (bot/playback.py), driven through the real discord.py client
against the loopback fake Discord: every test checks what the fake received (decoded audio, packet
arrival times, voice states) and what each item's `on_finish` was told.

Items are tones of different pitch, so the order of what played can be read back from the
dominant frequency of the received audio.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import discord
import numpy as np
import pytest

from bot import audio
from bot.errors import BackendFailed
from bot.playback import OPUS_SILENCE, Ending, Outcome, Packets, Playback, QueueItem, StreamingSource
from tests.fakediscord import FakeDiscord
from tests.fakediscord.audio import align
from tests.fakediscord.leftovers import DISCORD_THREADS, assert_nothing_left_behind
from tests.media import resample, tone

RATE = 48_000  # what the fake decodes to


@pytest.fixture(autouse=True)
async def leaves_nothing_behind() -> AsyncIterator[None]:
    """Every test must end with discord.py's threads stopped and no asyncio task still pending."""
    yield
    await assert_nothing_left_behind((*DISCORD_THREADS, "voice-encoder"))


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@asynccontextmanager
async def running_bot(fake: FakeDiscord, **options: float) -> AsyncIterator[tuple[discord.Client, Playback]]:
    """A plain discord.Client wired to a Playback the way the bot's client wires it."""
    client = discord.Client(
        intents=discord.Intents.default(), connector=fake.connector(), guild_ready_timeout=0.1
    )
    playback = Playback(**options)

    @client.event
    async def on_voice_state_update(
        member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        await playback.on_voice_state_update(member, before, after)

    async with fake.running(client):
        try:
            yield client, playback
        finally:
            await playback.close()


class Stream:
    """A stand-in for a synthesis stream: yields `chunks` `delay` seconds apart (optionally raising
    before chunk `fail_at`) and records when it yielded and whether it was closed."""

    def __init__(self, chunks: Iterable[np.ndarray], *, delay: float = 0.05, fail_at: int | None = None):
        self.chunks = list(chunks)
        self.delay = delay
        self.fail_at = fail_at
        self.error = BackendFailed("GPU fell over")
        self.yielded_at: list[float] = []
        self.started = False
        self.finally_ran = False
        self.iterator = self._run()

    async def _run(self) -> AsyncIterator[np.ndarray]:
        self.started = True
        try:
            for index, chunk in enumerate(self.chunks):
                await asyncio.sleep(self.delay)
                if index == self.fail_at:
                    raise self.error
                self.yielded_at.append(time.monotonic())
                yield chunk
        finally:
            self.finally_ran = True

    @property
    def closed(self) -> bool:
        """Can never yield again: ran its `finally`, or was closed before it started."""
        return self.finally_ran or self.iterator.ag_frame is None


def tones(seconds: float, freq: float, *, chunk_s: float = 0.5) -> list[np.ndarray]:
    count = max(1, round(seconds / chunk_s))
    return [tone(chunk_s, freq, amplitude=0.4) for _ in range(count)]


class Finished:
    """Collects each item's outcome, in the order on_finish was called."""

    def __init__(self) -> None:
        self.outcomes: dict[str, Outcome] = {}

    def item(self, title: str, stream: Stream, requester_id: int = 42) -> QueueItem:
        async def on_finish(outcome: Outcome) -> None:
            self.outcomes[title] = outcome

        return QueueItem(title, requester_id, stream.iterator, on_finish)

    def endings(self) -> dict[str, Ending]:
        return {title: outcome.ending for title, outcome in self.outcomes.items()}


def pitch_runs(pcm: np.ndarray, *, window_s: float = 0.1, floor: float = 0.05) -> list[tuple[int, float]]:
    """[(dominant Hz rounded to 50, seconds)] over 100 ms windows with sound, runs merged."""
    mono = pcm.mean(axis=1) if pcm.ndim == 2 else pcm
    size = int(window_s * RATE)
    runs: list[list] = []
    for start in range(0, len(mono) - size + 1, size):
        window = mono[start : start + size]
        if np.sqrt(np.mean(window**2)) < floor:
            continue
        spectrum = np.abs(np.fft.rfft(window * np.hanning(size)))
        hz = int(round(np.argmax(spectrum) * RATE / size / 50) * 50)
        if runs and runs[-1][0] == hz:
            runs[-1][1] += window_s
        else:
            runs.append([hz, window_s])
    return [(hz, round(seconds, 2)) for hz, seconds in runs]


def pitch_order(pcm: np.ndarray) -> list[int]:
    return [hz for hz, seconds in pitch_runs(pcm) if seconds >= 0.15]


def seconds_of(pcm: np.ndarray, hz: int) -> float:
    return sum(seconds for f, seconds in pitch_runs(pcm) if f == hz)


def voiced_seconds(pcm: np.ndarray, *, floor: float = 0.05) -> float:
    """Duration of the 20 ms frames that carry sound."""
    mono = pcm.mean(axis=1) if pcm.ndim == 2 else pcm
    frames = mono[: len(mono) // 960 * 960].reshape(-1, 960)
    return float(np.sum(np.sqrt(np.mean(frames**2, axis=1)) >= floor)) * 0.02


def voice_channel(client: discord.Client, guild_id: int, name: str = "Voice") -> discord.VoiceChannel:
    return discord.utils.get(client.get_guild(guild_id).voice_channels, name=name)


def playback_tasks() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("playback") and not t.done()]


# --- the audio source on its own ----------------------------------------------------------------


async def test_source_never_blocks_the_player_and_fills_gaps_with_silence() -> None:
    chunks = [tone(0.3, 300), tone(0.3, 500), tone(0.3, 700)]
    stream = Stream(chunks, delay=0.5)  # slower than real time: 0.3 s of audio every 0.5 s
    source = StreamingSource(stream.iterator, loop=asyncio.get_running_loop(), name="unit")
    source.start()
    await source.wait_ready()

    def play() -> tuple[list[bytes], float]:  # what discord.py's player thread does, every 20 ms
        got, slowest = [], 0.0
        while True:
            started = time.perf_counter()
            packet = source.read()
            slowest = max(slowest, time.perf_counter() - started)
            if not packet:
                return got, slowest
            got.append(packet)
            time.sleep(0.02)

    packets, slowest = await asyncio.to_thread(play)
    await source.aclose()

    assert slowest < 0.005
    audio_packets = [p for p in packets if p != OPUS_SILENCE]
    assert audio_packets == list(audio.opus_packets(chunks))  # every packet, in order, nothing else
    assert source.silence_sent >= 5 and len(packets) == len(audio_packets) + source.silence_sent
    first_gap = next(i for i, p in enumerate(packets) if p == OPUS_SILENCE)
    assert 0 < first_gap < len(audio_packets)  # the silence sits between chunks, not at the start
    assert source.exhausted and source.error is None and stream.finally_ran


async def test_packets_encoded_on_the_engine_side_are_played_as_they_came() -> None:
    """Live speech from an encoding backend: its Opus packets go out untouched, nothing is encoded here."""
    chunks = [tone(0.3, 300), tone(0.3, 500)]
    packets = list(audio.opus_packets(chunks))
    stream = Stream([Packets(tuple(packets[:7])), Packets(tuple(packets[7:]))], delay=0.0)
    source = StreamingSource(stream.iterator, loop=asyncio.get_running_loop(), name="unit")
    source.start()
    await source.wait_ready()
    played = await asyncio.to_thread(lambda: list(iter(source.read, b"")))
    await source.aclose()
    assert [p for p in played if p != OPUS_SILENCE] == packets and source.error is None


# --- playing through Discord ----------------------------------------------------------------------


async def test_playback_starts_on_the_first_chunk_while_the_rest_is_synthesised(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    finished = Finished()
    stream = Stream(tones(2.0, 440), delay=0.4)  # four 0.5 s chunks, the last ~1.6 s in

    async with running_bot(fake) as (client, playback):
        channel = voice_channel(client, guild.id)
        assert await playback.enqueue(channel, finished.item("hello", stream)) == 0
        assert fake.bot_voice_channel(guild).id == channel.id
        assert playback.connected_channel(guild.id) == channel
        await fake.wait_until(lambda: "hello" in finished.outcomes, timeout=10)

    packets = fake.voice_packets(guild)
    assert packets[0].arrival < stream.yielded_at[-1] - 0.5  # speaking long before synthesis ended
    assert finished.outcomes["hello"].ending is Ending.PLAYED
    assert finished.outcomes["hello"].seconds == pytest.approx(2.0, abs=0.1)
    pcm = fake.voice_pcm(guild)
    assert voiced_seconds(pcm) == pytest.approx(2.0, abs=0.1)
    assert pitch_order(pcm) == [450]  # 440 Hz, in 50 Hz bins
    assert stream.finally_ran


async def test_items_play_in_queue_order(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    finished = Finished()
    streams = {name: Stream(tones(0.5, hz)) for name, hz in (("low", 300), ("mid", 500), ("high", 700))}

    async with running_bot(fake) as (client, playback):
        channel = voice_channel(client, guild.id)
        positions = [await playback.enqueue(channel, finished.item(n, s)) for n, s in streams.items()]
        assert positions == [0, 1, 2]
        assert [item.title for item in playback.queue(guild.id)] == ["low", "mid", "high"]
        await fake.wait_until(lambda: len(finished.outcomes) == 3, timeout=10)
        assert playback.queue(guild.id) == []

    assert list(finished.outcomes) == ["low", "mid", "high"]
    assert set(finished.endings().values()) == {Ending.PLAYED}
    pcm = fake.voice_pcm(guild)
    assert pitch_order(pcm) == [300, 500, 700]
    for hz in (300, 500, 700):
        assert seconds_of(pcm, hz) == pytest.approx(0.5, abs=0.15)
    assert all(stream.finally_ran for stream in streams.values())


async def test_synthesis_slower_than_real_time_fills_gaps_and_plays_everything(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    finished = Finished()
    chunks = [tone(0.3, 300, amplitude=0.4), tone(0.3, 500, amplitude=0.4), tone(0.3, 700, amplitude=0.4)]
    stream = Stream(chunks, delay=0.7)  # each 0.3 s chunk takes 0.7 s to make

    async with running_bot(fake) as (client, playback):
        await playback.enqueue(voice_channel(client, guild.id), finished.item("slow", stream))
        await fake.wait_until(lambda: "slow" in finished.outcomes, timeout=10)

    outcome = finished.outcomes["slow"]
    assert outcome.ending is Ending.PLAYED and outcome.seconds == pytest.approx(0.9, abs=0.05)
    packets = fake.voice_packets(guild)
    assert packets[-1].arrival > stream.yielded_at[-1]  # still playing when the last chunk came
    pcm = fake.voice_pcm(guild)
    assert pitch_order(pcm) == [300, 500, 700]
    assert voiced_seconds(pcm) == pytest.approx(0.9, abs=0.08)
    silent = len(packets) - round(voiced_seconds(pcm) / 0.02)
    assert silent >= 2 * round(0.3 / 0.02)  # two gaps of ≥0.3 s were bridged with silence
    for chunk in chunks:
        _, correlation = align(resample(chunk, 44100, RATE), pcm, max_lag=len(pcm))
        assert correlation >= 0.9


async def test_skip_ends_the_current_item_closes_its_stream_and_plays_the_next(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    finished = Finished()
    long = Stream(tones(20.0, 400))
    short = Stream(tones(0.5, 600))

    async with running_bot(fake) as (client, playback):
        channel = voice_channel(client, guild.id)
        assert playback.skip(guild.id) is False  # nothing to skip yet
        await playback.enqueue(channel, finished.item("long", long))
        assert await playback.enqueue(channel, finished.item("short", short)) == 1
        await fake.wait_until(lambda: len(fake.voice_packets(guild)) >= 25)
        assert playback.skip(guild.id) is True
        await fake.wait_until(lambda: len(finished.outcomes) == 2, timeout=10)
        assert playback.connected_channel(guild.id) == channel

    assert list(finished.outcomes) == ["long", "short"]
    assert finished.endings() == {"long": Ending.SKIPPED, "short": Ending.PLAYED}
    assert finished.outcomes["long"].seconds < 1.5
    assert long.finally_ran and len(long.yielded_at) < len(long.chunks)
    pcm = fake.voice_pcm(guild)
    assert pitch_order(pcm) == [400, 600]
    assert 0.3 <= seconds_of(pcm, 400) < 1.5
    assert seconds_of(pcm, 600) == pytest.approx(0.5, abs=0.15)


async def test_skip_before_the_first_chunk_plays_nothing(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    finished = Finished()
    slow = Stream(tones(1.0, 400), delay=5.0)  # still synthesising its first chunk

    async with running_bot(fake) as (client, playback):
        await playback.enqueue(voice_channel(client, guild.id), finished.item("slow", slow))
        await fake.wait_until(lambda: slow.started)
        assert [item.title for item in playback.queue(guild.id)] == ["slow"]
        assert playback.skip(guild.id) is True
        assert playback.skip(guild.id) is False  # already ending
        await fake.wait_until(lambda: "slow" in finished.outcomes, timeout=2)

    assert finished.outcomes["slow"] == Outcome(Ending.SKIPPED, None, 0.0)
    assert slow.finally_ran and slow.yielded_at == []
    assert fake.voice_packets(guild) == []


async def test_stop_clears_the_queue_closes_every_stream_and_nothing_more_plays(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    finished = Finished()
    streams = {"a": Stream(tones(20.0, 400)), "b": Stream(tones(1.0, 600)), "c": Stream(tones(1.0, 800))}

    async with running_bot(fake) as (client, playback):
        channel = voice_channel(client, guild.id)
        for name, stream in streams.items():
            await playback.enqueue(channel, finished.item(name, stream))
        await fake.wait_until(lambda: len(fake.voice_packets(guild)) >= 25)
        assert playback.stop(guild.id) == 3
        assert playback.queue(guild.id)[1:] == []
        await fake.wait_until(lambda: len(finished.outcomes) == 3, timeout=10)
        assert playback.queue(guild.id) == []
        sent = len(fake.voice_packets(guild))
        await asyncio.sleep(0.3)  # would be time enough for b to start
        assert len(fake.voice_packets(guild)) == sent
        assert playback.connected_channel(guild.id) == channel  # stop doesn't leave
        assert playback.stop(guild.id) == 0

    assert finished.endings() == {"a": Ending.STOPPED, "b": Ending.STOPPED, "c": Ending.STOPPED}
    assert all(stream.closed for stream in streams.values())
    assert streams["a"].finally_ran and streams["b"].yielded_at == [] and streams["c"].yielded_at == []
    assert pitch_order(fake.voice_pcm(guild)) == [400]


async def test_a_stream_that_fails_midway_reports_the_error_and_the_queue_goes_on(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    finished = Finished()
    broken = Stream(tones(2.0, 400), fail_at=2)  # two 0.5 s chunks, then the backend raises
    dead = Stream(tones(1.0, 500), fail_at=0)  # fails before its first chunk
    after = Stream(tones(0.5, 700))

    async with running_bot(fake) as (client, playback):
        channel = voice_channel(client, guild.id)
        for name, stream in (("broken", broken), ("dead", dead), ("after", after)):
            await playback.enqueue(channel, finished.item(name, stream))
        await fake.wait_until(lambda: len(finished.outcomes) == 3, timeout=10)

    assert list(finished.outcomes) == ["broken", "dead", "after"]
    assert finished.endings() == {"broken": Ending.FAILED, "dead": Ending.FAILED, "after": Ending.PLAYED}
    assert finished.outcomes["broken"].error is broken.error
    assert finished.outcomes["dead"].error is dead.error
    assert finished.outcomes["broken"].seconds == pytest.approx(1.0, abs=0.05)
    pcm = fake.voice_pcm(guild)
    assert pitch_order(pcm) == [400, 700]  # what was synthesised before the failure still played
    assert seconds_of(pcm, 400) == pytest.approx(1.0, abs=0.15)
    assert all(stream.finally_ran for stream in (broken, dead, after))


async def test_leaves_after_idle_timeout(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    finished = Finished()

    async with running_bot(fake, idle_timeout=0.4) as (client, playback):
        channel = voice_channel(client, guild.id)
        await playback.enqueue(channel, finished.item("hi", Stream(tones(0.5, 400))))
        await fake.wait_until(lambda: "hi" in finished.outcomes, timeout=10)
        assert playback.connected_channel(guild.id) == channel
        await fake.wait_until(lambda: fake.bot_voice_channel(guild) is None, timeout=5)
        left_at = time.monotonic()
        assert playback.connected_channel(guild.id) is None
        await fake.wait_until(lambda: client.get_guild(guild.id).voice_client is None, timeout=2)

    last_packet = fake.voice_packets(guild)[-1].arrival
    assert 0.4 <= left_at - last_packet < 1.5
    assert [f["d"]["channel_id"] for f in fake.gateway.received if f["op"] == 4] == [channel.id, None]
    assert not any(session.connected for session in fake.voice_sessions(guild))
    assert finished.outcomes["hi"].ending is Ending.PLAYED


async def test_leaves_when_nobody_is_left_listening(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    bob = fake.add_member(guild, "bob")
    helper = fake.add_member(guild, "helper-bot", bot=True)
    finished = Finished()
    long = Stream(tones(20.0, 400))

    async with running_bot(fake, alone_timeout=0.4) as (client, playback):
        channel = voice_channel(client, guild.id)
        await fake.member_join_voice(bob, guild.voice_channels[0])
        await fake.member_join_voice(helper, guild.voice_channels[0])  # bots don't count as listeners
        await fake.wait_until(lambda: len(channel.voice_states) == 2)
        await playback.enqueue(channel, finished.item("long", long))
        await fake.wait_until(lambda: len(fake.voice_packets(guild)) >= 40)  # 0.8 s > alone_timeout
        assert playback.connected_channel(guild.id) == channel

        await fake.member_leave_voice(bob)
        bob_left = time.monotonic()
        await fake.wait_until(lambda: fake.bot_voice_channel(guild) is None, timeout=5)
        bot_left = time.monotonic()
        await fake.wait_until(lambda: "long" in finished.outcomes, timeout=5)
        assert playback.connected_channel(guild.id) is None

    assert 0.4 <= bot_left - bob_left < 1.5
    assert finished.outcomes["long"].ending is Ending.STOPPED and long.finally_ran


async def test_voice_websocket_drop_is_survived_and_playback_continues(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    bob = fake.add_member(guild, "bob")
    finished = Finished()
    t = np.arange(round(3.0 * 44100)) / 44100
    chirp = (0.4 * np.sin(2 * np.pi * (300 * t + 50 * t * t))).astype(np.float32)  # 300 → 600 Hz
    stream = Stream(np.array_split(chirp, 6))  # one alignment only, so a lost stretch would show

    async with running_bot(fake) as (client, playback):
        channel = voice_channel(client, guild.id)
        await fake.member_join_voice(bob, guild.voice_channels[0])
        await playback.enqueue(channel, finished.item("sweep", stream))
        await fake.wait_until(lambda: len(fake.voice_packets(guild)) >= 10)
        # Bob talks, so discord.py's UDP reader isn't stuck in its 30 s select when it rediscovers
        await fake.member_speak(bob, [OPUS_SILENCE] * 3)
        dropped = await fake.drop_voice(guild)  # TCP abort: close code 1006, discord.py reconnects
        await fake.wait_until(lambda: "sweep" in finished.outcomes, timeout=15)
        assert playback.connected_channel(guild.id) == channel
        assert client.get_guild(guild.id).voice_client.is_connected()

    first, second = fake.voice_sessions(guild)
    assert first is dropped and first.close_codes == [1006] and second.packets
    assert finished.outcomes["sweep"].ending is Ending.PLAYED
    assert finished.outcomes["sweep"].seconds == pytest.approx(3.0, abs=0.05)
    pcm = fake.voice_pcm(guild, mono=True)
    assert voiced_seconds(pcm) == pytest.approx(3.0, abs=0.1)
    lag, correlation = align(resample(chirp, 44100, RATE), pcm)
    assert correlation >= 0.9 and 0 <= lag < 960


async def test_disconnected_by_someone_ends_the_queue_as_disconnected(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    finished = Finished()
    long, queued = Stream(tones(20.0, 400)), Stream(tones(1.0, 600))
    again = Stream(tones(0.5, 700))

    async with running_bot(fake) as (client, playback):
        channel = voice_channel(client, guild.id)
        await playback.enqueue(channel, finished.item("long", long))
        await playback.enqueue(channel, finished.item("queued", queued))
        await fake.wait_until(lambda: len(fake.voice_packets(guild)) >= 25)
        fake.gateway.set_voice_state(guild.id, fake.bot_user.id, None)  # a moderator disconnects it
        await fake.wait_until(lambda: len(finished.outcomes) == 2, timeout=10)
        assert playback.connected_channel(guild.id) is None
        assert client.get_guild(guild.id).voice_client is None
        assert playback.queue(guild.id) == []

        assert await playback.enqueue(channel, finished.item("again", again)) == 0  # joins afresh
        await fake.wait_until(lambda: "again" in finished.outcomes, timeout=10)
        assert playback.connected_channel(guild.id) == channel

    assert finished.endings() == {
        "long": Ending.DISCONNECTED,
        "queued": Ending.DISCONNECTED,
        "again": Ending.PLAYED,
    }
    assert long.closed and queued.closed
    assert pitch_order(fake.voice_pcm(guild)) == [400, 700]


async def test_a_voice_connection_that_never_comes_back_ends_the_item(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    finished = Finished()
    long, queued = Stream(tones(20.0, 400)), Stream(tones(1.0, 600))

    async with running_bot(fake, connect_timeout=1.0) as (client, playback):
        channel = voice_channel(client, guild.id)
        await playback.enqueue(channel, finished.item("long", long))
        await playback.enqueue(channel, finished.item("queued", queued))
        await fake.wait_until(lambda: len(fake.voice_packets(guild)) >= 25)
        # 4015: discord.py tries to resume, never gets there, and gives up after connect_timeout
        await fake.drop_voice(guild, code=4015)
        await fake.wait_until(lambda: playback.connected_channel(guild.id) is None, timeout=1)
        await fake.wait_until(lambda: len(finished.outcomes) == 2, timeout=10)
        assert playback.connected_channel(guild.id) is None
        await fake.wait_until(lambda: fake.bot_voice_channel(guild) is None, timeout=5)

    assert finished.endings() == {"long": Ending.DISCONNECTED, "queued": Ending.DISCONNECTED}
    assert long.closed and queued.closed


async def test_items_for_another_channel_move_the_bot_when_their_turn_comes(fake: FakeDiscord) -> None:
    guild = fake.add_guild(voice_channels=("Voice", "Lounge"))
    finished = Finished()

    async with running_bot(fake) as (client, playback):
        voice, lounge = voice_channel(client, guild.id), voice_channel(client, guild.id, "Lounge")
        await playback.enqueue(voice, finished.item("here", Stream(tones(1.0, 400))))
        assert await playback.enqueue(lounge, finished.item("there", Stream(tones(0.5, 600)))) == 1
        with pytest.raises(discord.ClientException, match="Already speaking in Voice"):
            await playback.join(lounge)
        await fake.wait_until(lambda: len(finished.outcomes) == 2, timeout=10)
        assert playback.connected_channel(guild.id) == lounge
        assert fake.bot_voice_channel(guild).id == lounge.id

    assert finished.endings() == {"here": Ending.PLAYED, "there": Ending.PLAYED}
    joins = [f["d"]["channel_id"] for f in fake.gateway.received if f["op"] == 4]
    assert joins[:3] == [voice.id, None, lounge.id]
    first, second = fake.voice_sessions(guild)
    assert pitch_order(np.concatenate([p.pcm for p in first.packets])) == [400]
    assert pitch_order(np.concatenate([p.pcm for p in second.packets])) == [600]


async def test_close_stops_everything_and_leaves_nothing_running(fake: FakeDiscord) -> None:
    guild = fake.add_guild()
    finished = Finished()
    playing, queued, late = Stream(tones(20.0, 400)), Stream(tones(1.0, 600)), Stream(tones(1.0, 800))

    async with running_bot(fake) as (client, playback):
        channel = voice_channel(client, guild.id)
        await playback.enqueue(channel, finished.item("playing", playing))
        await playback.enqueue(channel, finished.item("queued", queued))
        await fake.wait_until(lambda: len(fake.voice_packets(guild)) >= 10)

        await playback.close()

        assert finished.endings() == {"playing": Ending.STOPPED, "queued": Ending.STOPPED}
        assert playing.finally_ran and queued.closed
        assert fake.bot_voice_channel(guild) is None and playback.connected_channel(guild.id) is None
        assert client.get_guild(guild.id).voice_client is None
        assert playback_tasks() == []
        assert not [t for t in threading.enumerate() if t.name.startswith("voice-encoder")]
        with pytest.raises(RuntimeError, match="closed"):
            await playback.enqueue(channel, finished.item("late", late))
        assert late.closed and "late" not in finished.outcomes
        sent = len(fake.voice_packets(guild))
        await asyncio.sleep(0.2)
        assert len(fake.voice_packets(guild)) == sent
