"""One guild's voice connection, and playing a source on it through discord.py's reconnects.

- Voice drops: discord.py reconnects by itself and its player waits for that (up to
  `connect_timeout`), so playback just continues. If the connection does not come back, or
  someone disconnects the bot, the current item ends `disconnected`, every queued item ends
  `disconnected` too (nothing is replayed behind the users' backs), and the bot disconnects for
  good so its state is definite; the next `enqueue` joins afresh.
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
import contextlib
import logging
from typing import TYPE_CHECKING

import discord

from bot.discord_compat import stop_reconnecting
from bot.playback.items import ItemEnd, VoiceChannel, _Entry
from bot.playback.source import StreamingSource

if TYPE_CHECKING:
    from bot.playback.listeners import Listeners
    from bot.playback.manager import Playback

log = logging.getLogger("bot.playback")


class VoiceConnection:
    """The voice client one guild's player speaks through: join, move, wait out discord.py's own
    reconnects, leave."""

    def __init__(self, playback: Playback, guild_id: int, listeners: Listeners) -> None:
        self.playback = playback
        self.guild_id = guild_id
        self.listeners = listeners  # the alone timer follows the connection
        self.voice: discord.VoiceClient | None = None
        self._voice_lock = asyncio.Lock()  # one connect/disconnect at a time

    def held_voice(self) -> discord.VoiceClient | None:
        """Our voice client while discord.py still has it (connected, or reconnecting on its own)."""
        vc = self.voice
        return vc if vc is not None and _registered(vc) else None

    def connected_channel(self) -> discord.abc.Connectable | None:
        vc = self.voice
        if vc is not None and vc.is_connected() and _registered(vc):
            return vc.channel
        return None

    async def connect(self, channel: VoiceChannel) -> discord.VoiceClient:
        """Be connected in `channel`: join, wait out discord.py's own reconnect, or move."""
        timeout = self.playback.connect_timeout
        async with self._voice_lock:
            vc = channel.guild.voice_client
            if isinstance(vc, discord.VoiceClient) and vc.channel is not None and vc.channel.id == channel.id:
                if await _connected(vc, timeout):
                    self.voice = vc
                    self.listeners.check_alone()
                    return vc
            if vc is not None:
                stop_reconnecting(vc)
                await vc.disconnect(force=True)
            self.voice = await channel.connect(timeout=timeout, reconnect=True)
        self.listeners.check_alone()
        return self.voice

    async def disconnect(self) -> None:
        self.listeners.cancel_alone_timer()
        async with self._voice_lock:
            vc, self.voice = self.voice, None
            if vc is not None and _registered(vc):
                stop_reconnecting(vc)
                try:
                    await vc.disconnect(force=True)
                except Exception:
                    log.warning("leaving voice in guild %s failed", self.guild_id, exc_info=True)


async def play_through_reconnects(
    vc: discord.VoiceClient,
    entry: _Entry,
    source: StreamingSource,
    connect_timeout: float,
) -> ItemEnd:
    """Play `source` (started, with audio) on `vc` until it ends or `entry` is interrupted, going on
    where it stopped after each reconnect discord.py makes; the state it was left in."""
    if not await _connected(vc, connect_timeout, entry.done):
        return ItemEnd(voice_down=True)
    loop = asyncio.get_running_loop()
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
        if not await _connected(vc, connect_timeout, entry.done):
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
