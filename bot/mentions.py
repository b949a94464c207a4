"""Names for the mentions in a text, looked up from Discord before `bot.text` reads it aloud.

The bot asks for no members intent, so its guild cache holds only itself and members in voice
channels. A mentioned member is named from, in order: the cache; the member data of the message
being read (Discord sends it in MESSAGE_CREATE, not in a context menu's resolved message, whose
mentions are plain users); a fetch from Discord, for at most `MAX_FETCHED_MEMBERS` members per
request, each within `FETCH_TIMEOUT_S`; the message's user data (the user's own name, when they
are no longer a member or the fetch failed). Anyone still unknown is read as "someone".

A channel is named only if the member who asked can see it, so speaking never reveals a hidden
channel's name; roles are named from the guild's cache, which holds every role.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import discord

from bot import text

log = logging.getLogger(__name__)

# A /say of 2000 characters could mention dozens of people; fetching each would stall the reply.
MAX_FETCHED_MEMBERS = 5
FETCH_TIMEOUT_S = 2.0


async def names_for(
    words: str,
    *,
    guild: discord.Guild | None,
    reader: discord.Member | discord.User,
    message: discord.Message | None = None,
) -> text.Names:
    """Names for every mention in `words` that `reader` may hear, for `text.prepare(resolve=...)`."""
    if guild is None:
        return text.Names()
    wanted = text.mentions(words)
    roles = {role.id: role.name for role in map(guild.get_role, wanted.roles) if role is not None}
    return text.Names(
        users=await _user_names(guild, wanted.users, message),
        roles=roles,
        channels=_visible_channel_names(guild, wanted.channels, reader),
    )


async def _user_names(
    guild: discord.Guild, user_ids: tuple[int, ...], message: discord.Message | None
) -> dict[int, str]:
    in_message = {user.id: user for user in message.mentions} if message is not None else {}
    names: dict[int, str] = {}
    missing: list[int] = []
    for user_id in user_ids:
        member = guild.get_member(user_id) or in_message.get(user_id)
        if isinstance(member, discord.Member):
            names[user_id] = member.display_name
        else:
            missing.append(user_id)
    to_fetch = missing[:MAX_FETCHED_MEMBERS]
    fetched = await asyncio.gather(*(_fetch_member(guild, user_id) for user_id in to_fetch))
    for user_id, member in zip(to_fetch, fetched, strict=True):
        if member is not None:
            names[user_id] = member.display_name
    for user_id in missing:
        if user_id not in names and user_id in in_message:
            names[user_id] = in_message[user_id].display_name
    return names


async def _fetch_member(guild: discord.Guild, user_id: int) -> discord.Member | None:
    try:
        return await asyncio.wait_for(guild.fetch_member(user_id), FETCH_TIMEOUT_S)
    except (TimeoutError, discord.HTTPException, aiohttp.ClientError) as exc:
        log.debug("member %s of guild %s not fetched: %r", user_id, guild.id, exc)
        return None


def _visible_channel_names(
    guild: discord.Guild, channel_ids: tuple[int, ...], reader: discord.Member | discord.User
) -> dict[int, str]:
    if not isinstance(reader, discord.Member):
        return {}
    names: dict[int, str] = {}
    for channel_id in channel_ids:
        channel = guild.get_channel(channel_id)
        if channel is not None and channel.permissions_for(reader).view_channel:
            names[channel_id] = channel.name
    return names
