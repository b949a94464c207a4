"""Speaking live in voice channels: one FIFO queue per guild, played through an Opus source that is
fed by synthesis while it streams, so the bot starts talking on the first chunk.

Public API (one `Playback` per bot; everything runs on the bot's event loop):

- `Playback(idle_timeout=300.0, alone_timeout=60.0, connect_timeout=30.0)` (seconds).
- `QueueItem(title, requester_id, chunks, on_finish=None)`: `chunks` is an async iterator of
  float32 mono 44.1 kHz arrays (or `SpokenChunk`s), started or not; the queue owns it from
  `enqueue` on and always closes it (`aclose()`), so the backend stops working on a skipped item.
- `await playback.enqueue(channel, item) -> int`: the item's place in the queue (0 = playing now).
  When the guild is idle it joins (or moves to) `channel` first and raises what discord.py raised
  if it can't (`asyncio.TimeoutError`, `discord.ClientException`); the item is then not queued
  and its stream is closed. Otherwise the bot moves to each item's channel when its turn comes.
- `await playback.join(channel) -> VoiceClient` (refused with `discord.ClientException` while
  speaking in another channel), `playback.skip(guild_id) -> bool`,
  `playback.stop(guild_id) -> int` (items ended: the current one and all queued; stays in voice),
  `await playback.leave(guild_id) -> bool`, `playback.queue(guild_id)` (current first),
  `playback.connected_channel(guild_id)` (the channel of a voice connection that is up right now,
  else None — also None while discord.py is reconnecting), `await playback.close()`.
- `await playback.on_voice_state_update(member, before, after)`: the client calls it from its
  `on_voice_state_update` event; it arms/disarms the "alone in the channel" timer.
- Every accepted item gets exactly one `on_finish(Outcome(ending, error, seconds))`, after its
  stream is closed, with `ending` one of `played`, `skipped`, `stopped` (stop, leave, nobody left
  listening, shutdown), `failed` (`error` says why: the stream raised, or joining for it failed)
  or `disconnected`; `seconds` is how much audio was sent. `item_outcome(ItemEnd(...))` is that
  decision as one pure function of the state the item was left in.

Choices worth knowing:
- Bridge: a feeder task iterates the async stream and puts chunks on a thread-safe queue; one
  encoder thread per item turns them into 20 ms Opus packets (`audio.opus_packets`, PyAV's libopus)
  as fast as they come and appends them to a deque; discord.py's player thread pops one packet per
  `read()`. The event loop never encodes and `read()` never waits.
- Live Opus stays in that thread, unlike files (`bot.encoder`'s process pool). Measured on the 2-vCPU
  dev machine (one vCPU free of other work): each PyAV call holds the GIL ≤ 2.5 ms (0.25 s pieces),
  far under the 20 ms packet interval; with 8 items' 20 s of audio all landing at the same instant,
  loop lag p99 stayed at 8–22 ms (16 at once: 40–58 ms). The work is paced by synthesis, one item
  per guild, about 8 ms of CPU per second of speech. A process would need a packet stream back per
  item, add a hop before the first packet (what members wait for), and queue live speech behind a
  burst of files in the shared pool.
- Playback starts when the first packet exists (not before, so nobody "speaks" silence while the
  first chunk is synthesised). When synthesis falls behind real time, `read()` returns Opus silence
  frames until more audio comes; it returns b"" only when the stream has ended (or failed) and
  everything encoded has been sent.
- A stream that raises mid-way plays what was already synthesised, then ends `failed(error)`;
  the queue goes on with the next item.
- Voice drops: discord.py reconnects by itself and its player waits for that (up to
  `connect_timeout`), so playback just continues. If the connection does not come back, or
  someone disconnects the bot, the current item ends `disconnected`, every queued item ends
  `disconnected` too (nothing is replayed behind the users' backs), and the bot disconnects for
  good so its state is definite; the next `enqueue` joins afresh.
- Leaves after `idle_timeout` with nothing queued, and after `alone_timeout` with no humans in its
  channel (members whose bot flag is unknown count as humans).
- Moving between channels is leave-then-join rather than `VoiceClient.move_to`, which completes
  only when the voice server closes the old websocket with 4014.
- discord.py quirks handled here: its player waits `connect_timeout` for a lost connection and then
  ends with `after(None)`, the same as a finished source, so the outcome comes from the source's
  own state; `VoiceClient.disconnect()` leaves discord.py's reconnect loop running, which could
  rejoin the channel afterwards, so that loop is cancelled first (`bot.discord_compat`, the one place
  that touches discord.py's private attributes).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import enum
import logging
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import discord
import numpy as np

from bot import audio
from bot.discord_compat import stop_reconnecting
from bot.tts.base import SpokenChunk

log = logging.getLogger(__name__)

OPUS_SILENCE = b"\xf8\xff\xfe"  # one 20 ms Opus frame of silence, as discord.py sends it
FRAME_S = 0.020

VoiceChannel = discord.VoiceChannel | discord.StageChannel


class Ending(enum.StrEnum):
    PLAYED = "played"
    SKIPPED = "skipped"
    STOPPED = "stopped"
    FAILED = "failed"
    DISCONNECTED = "disconnected"
    WITHHELD = "withheld"  # someone listening may not hear it (`QueueItem.may_hear`)


@dataclass(frozen=True)
class Outcome:
    """How a queue item ended; `error` is set when it `failed`."""

    ending: Ending
    error: Exception | None = None
    seconds: float = 0.0  # audio sent to Discord, not counting silence while waiting for synthesis


OnFinish = Callable[[Outcome], Awaitable[None]]


@dataclass(frozen=True)
class ItemEnd:
    """What is known about an item once it is over: who ended it, and the state its source, the
    player and the voice connection were left in. `item_outcome()` turns it into the
    item's Outcome."""

    interrupted: Ending | None = None  # skip/stop/leave/shutdown ended it: that wins over the rest
    failure: Exception | None = None  # joining for it failed, or discord.py refused to play it
    voice_down: bool = False  # the connection was down (and didn't come back) when it came to play
    player_error: Exception | None = None  # what discord.py's player passed to `after`
    exhausted: bool = False  # the source ran out because its stream ended (or had nothing at all)
    source_error: Exception | None = None  # the stream, or its encoder, raised
    connected: bool = True  # the connection was still up, and ours, when the player stopped
    packets_sent: int = 0


def item_outcome(end: ItemEnd) -> Outcome:
    """How an item ended, from the state it was left in (pure: `tests/test_playback.py` has the table).

    discord.py's player ends with `after(None)` both when a source is finished and when it gave up
    waiting for a lost connection, so a source that ran out played, one that failed failed, and one
    that did neither was cut off: by a lost connection, else by someone stopping our player.
    """
    seconds = end.packets_sent * FRAME_S
    if end.interrupted is not None:
        return Outcome(end.interrupted, None, seconds)
    if end.failure is not None:
        return Outcome(Ending.FAILED, end.failure, seconds)
    if end.voice_down:
        return Outcome(Ending.DISCONNECTED, None, seconds)
    if end.player_error is not None:
        return Outcome(Ending.FAILED, end.player_error, seconds)
    if end.exhausted or end.source_error is not None:
        ending = Ending.FAILED if end.source_error is not None else Ending.PLAYED
        return Outcome(ending, end.source_error, seconds)
    if not end.connected:
        return Outcome(Ending.DISCONNECTED, None, seconds)  # discord.py gave up the connection mid-item
    return Outcome(Ending.STOPPED, None, seconds)  # someone else stopped our player


@dataclass(eq=False)
class QueueItem:
    title: str  # shown to users, e.g. the first words
    requester_id: int
    chunks: AsyncIterator[np.ndarray] | AsyncIterator[SpokenChunk]
    on_finish: OnFinish | None = None
    # Whether a member may hear it (e.g. they can see the channel it was posted in and every channel it
    # names). Checked for every listener when it starts, and for each member who joins while it plays:
    # anyone who may not withholds it (`Ending.WITHHELD`). None: anyone may.
    may_hear: Callable[[discord.Member], bool] | None = None


async def _aclose(chunks: object) -> None:
    """Close a stream so its producer stops (and its `finally` runs); never raises."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:
        log.warning("closing a synthesis stream failed", exc_info=True)


# --- the audio source -------------------------------------------------------------------------

_END = object()


class StreamingSource(discord.AudioSource):
    """An `is_opus()` source playing an async stream of PCM chunks as it is produced.

    `start()` on the event loop; `read()` from discord.py's player thread; `stop()` from anywhere;
    `await aclose()` to stop and wait until the stream is closed and the encoder thread is gone.
    """

    def __init__(
        self,
        chunks: AsyncIterator[Any],
        *,
        loop: asyncio.AbstractEventLoop,
        sample_rate: int = audio.SAMPLE_RATE,
        name: str = "stream",
    ) -> None:
        self._chunks = chunks
        self._loop = loop
        self._sample_rate = sample_rate
        self._name = name
        self._pcm: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._packets: collections.deque[bytes] = collections.deque()
        self._encoded = threading.Event()  # every packet there will be is in _packets
        self._stopped = threading.Event()
        self._last: bytes | None = None  # the packet read() handed out last
        self._ready = asyncio.Event()  # a first packet exists, or there will be none
        self._encoder_done = asyncio.Event()
        self._feeder: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self.error: Exception | None = None
        self.exhausted = False  # read() ran out because the stream ended, not because of stop()
        self.packets_sent = 0
        self.silence_sent = 0

    # -- event loop side ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._encode, name=f"voice-encoder:{self._name}", daemon=True)
        self._thread.start()
        self._feeder = self._loop.create_task(self._feed(), name=f"playback-feed:{self._name}")

    async def _feed(self) -> None:
        try:
            async for chunk in self._chunks:
                if self._stopped.is_set():
                    break
                self._pcm.put(getattr(chunk, "audio", chunk))
        except Exception as exc:  # the backend failed mid-way: what came before still plays
            self.error = exc
        finally:
            self._pcm.put(_END)
            await _aclose(self._chunks)

    async def wait_ready(self) -> None:
        """Until the first packet is encoded, or the stream ended without one, or stop()."""
        await self._ready.wait()

    def unread_last(self) -> None:
        """Put back the packet read() handed out last: discord.py's player reads a packet before it
        checks the connection, and drops it when it then gives up. Only while no player runs."""
        if self._last is not None:
            self._packets.appendleft(self._last)
            self.packets_sent -= 1
            self._last = None

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    @property
    def has_audio(self) -> bool:
        return bool(self._packets) or self.packets_sent > 0

    async def aclose(self) -> None:
        self.stop()
        if self._feeder is not None:
            await asyncio.wait({self._feeder})
        if self._thread is not None:
            await self._encoder_done.wait()

    def _on_encoded(self) -> None:
        self._ready.set()
        self._encoder_done.set()

    def _cancel(self) -> None:
        if self._feeder is not None:
            self._feeder.cancel()
        self._ready.set()

    def _call_soon(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(callback)

    # -- encoder thread ----------------------------------------------------------------------------

    def _pcm_chunks(self) -> Any:
        # in short pieces, so no single PyAV call holds the GIL long enough to delay the player
        piece = self._sample_rate // 4
        while (chunk := self._pcm.get()) is not _END:
            pcm = np.asarray(chunk, dtype=np.float32).reshape(-1)
            for start in range(0, pcm.size, piece):
                yield pcm[start : start + piece]

    def _encode(self) -> None:
        try:
            for packet in audio.opus_packets(self._pcm_chunks(), sample_rate=self._sample_rate):
                if self._stopped.is_set():
                    break
                self._packets.append(packet)
                if not self._ready.is_set():
                    self._call_soon(self._ready.set)
        except Exception as exc:
            log.exception("encoding %s for voice failed", self._name)
            self.error = self.error or exc
        finally:
            self._encoded.set()
            self._call_soon(self._on_encoded)

    # -- player thread -----------------------------------------------------------------------------

    def read(self) -> bytes:
        if self._stopped.is_set():
            return b""
        try:
            packet = self._packets.popleft()
        except IndexError:
            if not self._encoded.is_set():  # synthesis is behind real time: keep the line open
                self.silence_sent += 1
                return OPUS_SILENCE
            try:  # the last packets may have landed between popleft() and the check
                packet = self._packets.popleft()
            except IndexError:
                self.exhausted = True
                return b""
        self.packets_sent += 1
        self._last = packet
        return packet

    def is_opus(self) -> bool:
        return True

    # -- any thread --------------------------------------------------------------------------------

    def stop(self) -> None:
        """read() returns b"" from now on; the stream is cancelled and closed (idempotent)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._pcm.put(_END)
        self._call_soon(self._cancel)

    def cleanup(self) -> None:
        # discord.py calls this from the player thread whenever its player ends, also when it gave
        # up on a connection that discord.py is still re-establishing: the item may then resume with
        # this same source, so its owner (`GuildPlayer`, through `aclose()`) ends it, not the player.
        pass

    def __del__(self) -> None:
        if hasattr(self, "_stopped"):
            self.stop()


# --- one guild --------------------------------------------------------------------------------


@dataclass(eq=False)
class _Entry:
    item: QueueItem
    channel: VoiceChannel
    ending: Ending | None = None  # set when skip/stop/leave ends it before it ends by itself
    source: StreamingSource | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)  # player ended, or interrupted


def _people_in(channel: VoiceChannel) -> list[tuple[int, discord.Member | None]]:
    """Who is in `channel` besides us and other bots: (user id, member, or None when the bot's cache
    doesn't know them, in which case they count as a person)."""
    guild = channel.guild
    me = guild.me.id if guild.me is not None else None
    people = []
    for user_id in channel.voice_states:
        member = guild.get_member(user_id)
        if user_id != me and (member is None or not member.bot):
            people.append((user_id, member))
    return people


def _listeners_who_may_not_hear(channel: VoiceChannel, item: QueueItem) -> list[int]:
    """The people in `channel` who may not hear `item`; someone the bot knows nothing about counts as
    one (their permissions can't be checked)."""
    if item.may_hear is None:
        return []
    return [user_id for user_id, member in _people_in(channel) if member is None or not item.may_hear(member)]


def _humans(channel: VoiceChannel) -> int:
    return len(_people_in(channel))


class GuildPlayer:
    """The queue, voice connection and timers of one guild. Use it through `Playback`."""

    def __init__(self, playback: Playback, guild_id: int) -> None:
        self.playback = playback
        self.guild_id = guild_id
        self.voice: discord.VoiceClient | None = None
        self.pending: collections.deque[_Entry] = collections.deque()
        self.current: _Entry | None = None
        self._wake = asyncio.Event()
        self._admit = asyncio.Lock()  # one enqueue/join at a time, so positions match the order
        self._voice_lock = asyncio.Lock()  # one connect/disconnect at a time
        self.runner: asyncio.Task[None] | None = None
        self._alone_timer: asyncio.Task[None] | None = None

    # -- state -------------------------------------------------------------------------------------

    def held_voice(self) -> discord.VoiceClient | None:
        """Our voice client while discord.py still has it (connected, or reconnecting on its own)."""
        vc = self.voice
        return vc if vc is not None and _registered(vc) else None

    def connected_channel(self) -> discord.abc.Connectable | None:
        vc = self.voice
        if vc is not None and vc.is_connected() and _registered(vc):
            return vc.channel
        return None

    def items(self) -> list[QueueItem]:
        entries = ([self.current] if self.current is not None else []) + list(self.pending)
        return [entry.item for entry in entries]

    def busy(self) -> bool:
        return self.current is not None or bool(self.pending)

    # -- commands ----------------------------------------------------------------------------------

    async def enqueue(self, channel: VoiceChannel, item: QueueItem) -> int:
        async with self._admit:
            if not self.busy():
                try:
                    await self.connect(channel)
                except BaseException:
                    self.playback.spawn(_aclose(item.chunks), "close-stream")
                    raise
            self.pending.append(_Entry(item, channel))
            position = len(self.pending) - (0 if self.current is not None else 1)
            self._ensure_runner()
            return position

    async def join(self, channel: VoiceChannel) -> discord.VoiceClient:
        async with self._admit:
            held = self.held_voice()
            here = held.channel if held is not None else None
            if self.busy() and here is not None and here.id != channel.id:
                raise discord.ClientException(f"Already speaking in {here.name}.")
            vc = await self.connect(channel)
            self._ensure_runner()
            return vc

    def skip(self) -> bool:
        if self.current is None and self.pending:  # the runner hasn't picked up the head yet
            self.playback.finish_unplayed(self.pending.popleft().item, Outcome(Ending.SKIPPED))
            return True
        if self.current is None or self.current.ending is not None:
            return False
        self._interrupt(self.current, Ending.SKIPPED)
        return True

    def withdraw(self, item: QueueItem) -> bool:
        """Take `item` out of the queue before it is spoken; False once it started (or ended)."""
        for entry in self.pending:
            if entry.item is item:
                self.pending.remove(entry)
                self.playback.finish_unplayed(item, Outcome(Ending.STOPPED))
                return True
        return False

    def end_all(self, ending: Ending) -> int:
        dropped = list(self.pending)
        self.pending.clear()
        for entry in dropped:
            self.playback.finish_unplayed(entry.item, Outcome(ending))
        count = len(dropped)
        if self.current is not None and self.current.ending is None:
            self._interrupt(self.current, ending)
            count += 1
        return count

    async def leave(self) -> bool:
        had = self.busy() or self.held_voice() is not None
        self.end_all(Ending.STOPPED)
        await self.disconnect()
        self._wake.set()  # an idle runner sees there is no voice left to keep and ends
        return had

    def _interrupt(self, entry: _Entry, ending: Ending) -> None:
        entry.ending = ending
        entry.done.set()
        if entry.source is not None:
            entry.source.stop()
            vc = self.voice
            if vc is not None and vc.source is entry.source:
                vc.stop()

    # -- voice -------------------------------------------------------------------------------------

    async def connect(self, channel: VoiceChannel) -> discord.VoiceClient:
        """Be connected in `channel`: join, wait out discord.py's own reconnect, or move."""
        timeout = self.playback.connect_timeout
        async with self._voice_lock:
            vc = channel.guild.voice_client
            if isinstance(vc, discord.VoiceClient) and vc.channel is not None and vc.channel.id == channel.id:
                if await _connected(vc, timeout):
                    self.voice = vc
                    self.check_alone()
                    return vc
            if vc is not None:
                stop_reconnecting(vc)
                await vc.disconnect(force=True)
            self.voice = await channel.connect(timeout=timeout, reconnect=True)
        self.check_alone()
        return self.voice

    async def disconnect(self) -> None:
        self._cancel_alone_timer()
        async with self._voice_lock:
            vc, self.voice = self.voice, None
            if vc is not None and _registered(vc):
                stop_reconnecting(vc)
                try:
                    await vc.disconnect(force=True)
                except Exception:
                    log.warning("leaving voice in guild %s failed", self.guild_id, exc_info=True)

    def listener_joined(self, member: discord.Member) -> None:
        """Someone joined our channel mid-item: stop the item if they may not hear it."""
        entry = self.current
        if entry is None or entry.ending is not None or entry.item.may_hear is None or member.bot:
            return
        if not entry.item.may_hear(member):
            log.info("withholding an item in guild %s: someone who may not hear it joined", self.guild_id)
            self._interrupt(entry, Ending.WITHHELD)

    def check_alone(self) -> None:
        """(Re)arm the alone timer if no human shares the bot's channel, disarm it otherwise."""
        held = self.held_voice()
        if held is None or _humans(held.channel) > 0:
            self._cancel_alone_timer()
        elif self._alone_timer is None or self._alone_timer.done():
            self._alone_timer = asyncio.get_running_loop().create_task(
                self._leave_when_alone(), name=f"playback-alone:{self.guild_id}"
            )

    def _cancel_alone_timer(self) -> None:
        timer = self._alone_timer
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
            self._alone_timer = None

    async def _leave_when_alone(self) -> None:
        await asyncio.sleep(self.playback.alone_timeout)
        held = self.held_voice()
        if held is not None and _humans(held.channel) == 0:
            log.info("leaving voice in guild %s: nobody is listening", self.guild_id)
            await self.leave()

    # -- the runner --------------------------------------------------------------------------------

    def _ensure_runner(self) -> None:
        self._wake.set()
        if self.runner is None or self.runner.done():
            self.runner = asyncio.get_running_loop().create_task(
                self._run(), name=f"playback-runner:{self.guild_id}"
            )

    async def _run(self) -> None:
        while True:
            if not self.pending:
                if self.held_voice() is None:
                    return
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.playback.idle_timeout)
                except TimeoutError:
                    if not self.pending:
                        log.info("leaving voice in guild %s: idle", self.guild_id)
                        await self.disconnect()
                continue
            entry = self.pending.popleft()
            self.current = entry
            try:
                outcome = await self._play(entry)
            finally:
                self.current = None
            self.playback.report(entry.item, outcome)
            if outcome.ending is Ending.DISCONNECTED:
                self.end_all(Ending.DISCONNECTED)
                await self.disconnect()

    async def _play(self, entry: _Entry) -> Outcome:
        try:
            end = await self._play_entry(entry)
        except Exception as exc:  # joining for this item failed, or discord.py refused to play
            end = ItemEnd(failure=exc)
        finally:
            source = entry.source
            if source is not None:
                await source.aclose()
            else:
                await _aclose(entry.item.chunks)
        sent = source.packets_sent if source is not None else 0
        return item_outcome(dataclasses.replace(end, interrupted=entry.ending, packets_sent=sent))

    async def _play_entry(self, entry: _Entry) -> ItemEnd:
        if entry.ending is not None:
            return ItemEnd(interrupted=entry.ending)
        vc = await self.connect(entry.channel)
        if entry.ending is not None:
            return ItemEnd(interrupted=entry.ending)
        if barred := _listeners_who_may_not_hear(entry.channel, entry.item):
            log.info("withholding an item in guild %s: %d may not hear it", self.guild_id, len(barred))
            entry.ending = Ending.WITHHELD
            return ItemEnd(interrupted=entry.ending)
        loop = asyncio.get_running_loop()
        source = entry.source = StreamingSource(
            entry.item.chunks, loop=loop, name=f"{self.guild_id}:{entry.item.title[:24]}"
        )
        source.start()
        await source.wait_ready()
        if entry.ending is not None:
            return ItemEnd(interrupted=entry.ending)
        if not source.has_audio:  # ended, or failed, before its first chunk
            return ItemEnd(exhausted=True, source_error=source.error)
        if not await _connected(vc, self.playback.connect_timeout, entry.done):
            return ItemEnd(voice_down=True)
        finished = asyncio.Event()
        player_errors: list[Exception | None] = []

        def ended() -> None:
            finished.set()
            entry.done.set()

        def after(error: Exception | None) -> None:  # on discord.py's player thread
            player_errors.append(error)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(ended)

        while True:
            try:
                vc.play(source, after=after)
            except discord.ClientException:
                if not vc.is_connected():  # the connection dropped since the check above
                    return ItemEnd(voice_down=True)
                raise
            await entry.done.wait()
            if not (finished.is_set() and _cut_by_reconnect(vc, entry, source, player_errors)):
                break
            # discord.py's player gives up when a reconnect flips its connected event: wait for
            # the reconnect it is making, then go on with the same source where it stopped.
            finished.clear()
            entry.done.clear()
            if not await _connected(vc, self.playback.connect_timeout, entry.done):
                entry.done.set()
                break
            vc.stop()  # the player that gave up still counts as playing: let it go before a new one
            source.unread_last()
        if not finished.is_set():
            # interrupted: the player stops within a frame, unless it is waiting out a reconnect
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), 0.5)
        return ItemEnd(
            player_error=player_errors[0] if player_errors else None,
            exhausted=source.exhausted,
            source_error=source.error,
            connected=vc.is_connected() and _registered(vc),
        )


def _cut_by_reconnect(
    vc: discord.VoiceClient, entry: _Entry, source: StreamingSource, errors: list[Exception | None]
) -> bool:
    """The player ended with audio left, no error and nobody stopping it, while discord.py is
    still reconnecting `vc` (not connected, but still its guild's voice client)."""
    return (
        entry.ending is None
        and not source.exhausted
        and not source.stopped
        and source.error is None
        and not any(errors)
        and not vc.is_connected()
        and _registered(vc)
    )


def _registered(vc: discord.VoiceProtocol) -> bool:
    """discord.py still tracks `vc` for its guild (connected, or reconnecting on its own)."""
    channel = getattr(vc, "channel", None)
    return channel is not None and channel.guild.voice_client is vc


async def _connected(
    vc: discord.VoiceClient,
    timeout: float,  # noqa: ASYNC109
    give_up: asyncio.Event | None = None,
) -> bool:
    """Whether `vc` is (or, within `timeout`, gets) connected; False at once when it is gone or
    `give_up` is set."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not vc.is_connected():
        if not _registered(vc) or loop.time() >= deadline or (give_up and give_up.is_set()):
            return False
        await asyncio.sleep(0.05)
    return True


# --- the bot's playback ----------------------------------------------------------------------


class Playback:
    """Every guild's voice queue. See the module docstring for the API and its guarantees."""

    def __init__(
        self,
        *,
        idle_timeout: float = 300.0,
        alone_timeout: float = 60.0,
        connect_timeout: float = 30.0,
    ) -> None:
        self.idle_timeout = idle_timeout
        self.alone_timeout = alone_timeout
        self.connect_timeout = connect_timeout
        self._players: dict[int, GuildPlayer] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def _player(self, guild_id: int) -> GuildPlayer:
        player = self._players.get(guild_id)
        if player is None:
            player = self._players[guild_id] = GuildPlayer(self, guild_id)
        return player

    async def enqueue(self, channel: VoiceChannel, item: QueueItem) -> int:
        """Queue `item` to be spoken in `channel`; returns its position (0 = playing now)."""
        if self._closed:
            await _aclose(item.chunks)
            raise RuntimeError("playback is closed")
        return await self._player(channel.guild.id).enqueue(channel, item)

    async def join(self, channel: VoiceChannel) -> discord.VoiceClient:
        """Connect to (or move to) `channel`; refused while speaking in another channel."""
        if self._closed:
            raise RuntimeError("playback is closed")
        return await self._player(channel.guild.id).join(channel)

    def skip(self, guild_id: int) -> bool:
        """End the current item (its stream is closed) and go on with the next one."""
        player = self._players.get(guild_id)
        return player is not None and player.skip()

    def withdraw(self, guild_id: int, item: QueueItem) -> bool:
        """Remove a queued `item` that has not started (its stream is closed, it ends `stopped`)."""
        player = self._players.get(guild_id)
        return player is not None and player.withdraw(item)

    def stop(self, guild_id: int) -> int:
        """End the current item and clear the queue; returns how many items were ended."""
        player = self._players.get(guild_id)
        return player.end_all(Ending.STOPPED) if player is not None else 0

    async def leave(self, guild_id: int) -> bool:
        """Stop everything and leave the voice channel; False if there was nothing to leave."""
        player = self._players.get(guild_id)
        return player is not None and await player.leave()

    def queue(self, guild_id: int) -> list[QueueItem]:
        player = self._players.get(guild_id)
        return player.items() if player is not None else []

    def connected_channel(self, guild_id: int) -> discord.abc.Connectable | None:
        """The channel the bot is really connected in right now, else None."""
        player = self._players.get(guild_id)
        return player.connected_channel() if player is not None else None

    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        """Await from the client's `on_voice_state_update`: keeps the alone timer right."""
        player = self._players.get(member.guild.id)
        if player is None or self._closed:
            return
        if before.channel == after.channel and member.id != getattr(member.guild.me, "id", None):
            return  # mute/deafen/stream changes
        held = player.held_voice()
        if held is not None and after.channel is not None and after.channel.id == held.channel.id:
            player.listener_joined(member)
        player.check_alone()

    async def close(self) -> None:
        """Stop every item (ending `stopped`), close every stream, leave every channel and wait
        for the `on_finish` callbacks (5 s at most). Safe to call twice."""
        self._closed = True
        players = list(self._players.values())
        await asyncio.gather(*(player.leave() for player in players))
        runners = {p.runner for p in players if p.runner is not None and not p.runner.done()}
        for tasks in (runners, self._tasks):
            if tasks:
                _, late = await asyncio.wait(set(tasks), timeout=5.0)
                for task in late:
                    task.cancel()
                if late:
                    await asyncio.wait(late)

    # -- outcomes ----------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"playback-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def report(self, item: QueueItem, outcome: Outcome) -> None:
        log.debug("%r ended: %s", item.title, outcome)
        if item.on_finish is not None:
            self.spawn(_notify(item, outcome), "on-finish")

    def finish_unplayed(self, item: QueueItem, outcome: Outcome) -> None:
        async def close_then_notify() -> None:
            await _aclose(item.chunks)
            await _notify(item, outcome)

        self.spawn(close_then_notify(), "on-finish")


async def _notify(item: QueueItem, outcome: Outcome) -> None:
    if item.on_finish is None:
        return
    try:
        await item.on_finish(outcome)
    except Exception:
        log.exception("on_finish of %r failed", item.title)
