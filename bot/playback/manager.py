"""`Playback`: every guild's voice queue, the one object the bot holds (see `bot.playback` for its API)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import discord

from bot.playback.guild import GuildPlayer
from bot.playback.items import Ending, Outcome, QueueItem, VoiceChannel, _aclose

log = logging.getLogger("bot.playback")


class Playback:
    """Every guild's voice queue. See `bot.playback` for the API and its guarantees."""

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
        return player.connection.connected_channel() if player is not None else None

    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        """Await from the client's `on_voice_state_update`: keeps the alone timer right."""
        player = self._players.get(member.guild.id)
        if player is None or self._closed:
            return
        if before.channel == after.channel and member.id != getattr(member.guild.me, "id", None):
            return  # mute/deafen/stream changes
        held = player.connection.held_voice()
        if held is not None and after.channel is not None and after.channel.id == held.channel.id:
            player.listeners.joined(member)
        player.listeners.check_alone()

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
