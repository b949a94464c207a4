"""Who is listening in the bot's voice channel, and what follows from it:

- an item is withheld (`Ending.WITHHELD`) when someone in the channel may not hear it
  (`QueueItem.may_hear`): checked for everyone when it starts, and for each member who joins while it
  plays;
- the bot leaves after `alone_timeout` with no humans in its channel (members whose bot flag is
  unknown count as humans).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord

from bot.playback.items import Ending, QueueItem, VoiceChannel

if TYPE_CHECKING:
    from bot.playback.guild import GuildPlayer

log = logging.getLogger("bot.playback")


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


class Listeners:
    """The listener checks and the alone timer of one guild's player."""

    def __init__(self, player: GuildPlayer) -> None:
        self.player = player
        self._alone_timer: asyncio.Task[None] | None = None

    def joined(self, member: discord.Member) -> None:
        """Someone joined our channel mid-item: stop the item if they may not hear it."""
        entry = self.player.current
        if entry is None or entry.ending is not None or entry.item.may_hear is None or member.bot:
            return
        if not entry.item.may_hear(member):
            log.info(
                "withholding an item in guild %s: someone who may not hear it joined", self.player.guild_id
            )
            self.player.interrupt(entry, Ending.WITHHELD)

    def check_alone(self) -> None:
        """(Re)arm the alone timer if no human shares the bot's channel, disarm it otherwise."""
        held = self.player.connection.held_voice()
        if held is None or _humans(held.channel) > 0:
            self.cancel_alone_timer()
        elif self._alone_timer is None or self._alone_timer.done():
            self._alone_timer = asyncio.get_running_loop().create_task(
                self._leave_when_alone(), name=f"playback-alone:{self.player.guild_id}"
            )

    def cancel_alone_timer(self) -> None:
        timer = self._alone_timer
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
            self._alone_timer = None

    async def _leave_when_alone(self) -> None:
        await asyncio.sleep(self.player.playback.alone_timeout)
        held = self.player.connection.held_voice()
        if held is not None and _humans(held.channel) == 0:
            log.info("leaving voice in guild %s: nobody is listening", self.player.guild_id)
            await self.player.leave()
