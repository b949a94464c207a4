"""The audio source of live voice: an Opus `discord.AudioSource` fed by synthesis while it streams.

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
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import discord
import numpy as np

from bot import audio
from bot.playback.items import Packets, _aclose

log = logging.getLogger("bot.playback")

OPUS_SILENCE = b"\xf8\xff\xfe"  # one 20 ms Opus frame of silence, as discord.py sends it

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
                self._pcm.put(chunk if isinstance(chunk, Packets) else getattr(chunk, "audio", chunk))
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

    def _stream_packets(self) -> Iterator[bytes]:
        """Packets as the stream brings them: ready ones as they are, PCM encoded here (in short pieces, so
        no single PyAV call holds the GIL long enough to delay the player)."""
        piece = self._sample_rate // 4
        encoder: audio.OpusPacketizer | None = None
        while (chunk := self._pcm.get()) is not _END:
            if isinstance(chunk, Packets):
                yield from chunk.packets
                continue
            encoder = encoder or audio.OpusPacketizer(sample_rate=self._sample_rate)
            pcm = np.asarray(chunk, dtype=np.float32).reshape(-1)
            for start in range(0, pcm.size, piece):
                yield from encoder.feed(pcm[start : start + piece])
        if encoder is not None:
            yield from encoder.flush()

    def _encode(self) -> None:
        try:
            for packet in self._stream_packets():
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
