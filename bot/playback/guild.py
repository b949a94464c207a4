"""One guild's voice queue: the commands that change it, and the runner that plays it item by item.

The runner joins (or moves to) each item's channel when its turn comes, withholds an item someone
listening may not hear, starts its `StreamingSource` and plays it once the first packet exists. It
leaves after `idle_timeout` with nothing queued; `Listeners` leaves after `alone_timeout` alone.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from typing import TYPE_CHECKING

import discord

from bot.playback.items import (
    Ending,
    ItemEnd,
    Outcome,
    QueueItem,
    VoiceChannel,
    _aclose,
    _Entry,
    item_outcome,
)
from bot.playback.listeners import Listeners, _listeners_who_may_not_hear
from bot.playback.source import StreamingSource
from bot.playback.voice import VoiceConnection, play_through_reconnects

if TYPE_CHECKING:
    from bot.playback.manager import Playback

log = logging.getLogger("bot.playback")


class GuildPlayer:
    """The queue of one guild, over its voice connection (`connection`) and the people listening
    there (`listeners`). Use it through `Playback`."""

    def __init__(self, playback: Playback, guild_id: int) -> None:
        self.playback = playback
        self.guild_id = guild_id
        self.pending: collections.deque[_Entry] = collections.deque()
        self.current: _Entry | None = None
        self._wake = asyncio.Event()
        self._admit = asyncio.Lock()  # one enqueue/join at a time, so positions match the order
        self.runner: asyncio.Task[None] | None = None
        self.listeners = Listeners(self)
        self.connection = VoiceConnection(playback, guild_id, self.listeners)

    # -- state -------------------------------------------------------------------------------------

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
                    await self.connection.connect(channel)
                except BaseException:
                    self.playback.spawn(_aclose(item.chunks), "close-stream")
                    raise
            self.pending.append(_Entry(item, channel))
            position = len(self.pending) - (0 if self.current is not None else 1)
            self._ensure_runner()
            return position

    async def join(self, channel: VoiceChannel) -> discord.VoiceClient:
        async with self._admit:
            held = self.connection.held_voice()
            here = held.channel if held is not None else None
            if self.busy() and here is not None and here.id != channel.id:
                raise discord.ClientException(f"Already speaking in {here.name}.")
            vc = await self.connection.connect(channel)
            self._ensure_runner()
            return vc

    def skip(self) -> bool:
        if self.current is None and self.pending:  # the runner hasn't picked up the head yet
            self.playback.finish_unplayed(self.pending.popleft().item, Outcome(Ending.SKIPPED))
            return True
        if self.current is None or self.current.ending is not None:
            return False
        self.interrupt(self.current, Ending.SKIPPED)
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
            self.interrupt(self.current, ending)
            count += 1
        return count

    async def leave(self) -> bool:
        had = self.busy() or self.connection.held_voice() is not None
        self.end_all(Ending.STOPPED)
        await self.connection.disconnect()
        self._wake.set()  # an idle runner sees there is no voice left to keep and ends
        return had

    def interrupt(self, entry: _Entry, ending: Ending) -> None:
        entry.ending = ending
        entry.done.set()
        if entry.source is not None:
            entry.source.stop()
            vc = self.connection.voice
            if vc is not None and vc.source is entry.source:
                vc.stop()

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
                if self.connection.held_voice() is None:
                    return
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.playback.idle_timeout)
                except TimeoutError:
                    if not self.pending:
                        log.info("leaving voice in guild %s: idle", self.guild_id)
                        await self.connection.disconnect()
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
                await self.connection.disconnect()

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
        vc = await self.connection.connect(entry.channel)
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
        return await play_through_reconnects(vc, entry, source, self.playback.connect_timeout)
