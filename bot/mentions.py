"""Names for the mentions in a text, looked up from Discord before `bot.text` reads it aloud.

The bot asks for no members intent, so its guild cache holds only itself and members in voice
channels. A mentioned member is named from, in order: the cache; the member data of the message
being read (Discord sends it in MESSAGE_CREATE, not in a context menu's resolved message, whose
mentions are plain users); a fetch from Discord, for at most `MAX_FETCHED_MEMBERS` members per
request, each within `FETCH_TIMEOUT_S`; the message's user data (the user's own name, when they
are no longer a member or the fetch failed). Anyone still unknown is read as "someone".

A channel is named only to an audience that can all see it, so speaking never reveals a hidden
channel's name: the member who asked, and everyone who will hear it — each listener in the voice
channel (live speech), or everyone who can see the channel a file is posted in. Anyone else gets
"no-access", as Discord itself shows such a channel. Roles are named from the guild's cache, which
holds every role. Live speech is checked again as it plays (`may_hear`): a listener who joins later
and can't see a named channel stops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import aiohttp
import discord

from bot import text

log = logging.getLogger(__name__)

# A /say of 2000 characters could mention dozens of people; fetching each would stall the reply.
MAX_FETCHED_MEMBERS = 5
FETCH_TIMEOUT_S = 2.0


HIDDEN = "no-access"  # what Discord shows for a channel you can't see


async def names_for(
    words: str,
    *,
    guild: discord.Guild | None,
    reader: discord.Member | discord.User,
    message: discord.Message | None = None,
    listeners: Sequence[discord.Member] = (),
    file: bool = False,
    posted_in: discord.abc.GuildChannel | discord.Thread | None = None,
) -> text.Names:
    """Names for every mention in `words`, for `text.prepare(resolve=...)`. A channel is named only if
    `reader` and every one of `listeners` can see it, and, for a `file` posted in `posted_in`, everyone
    who sees that channel (only public channels when it isn't known)."""
    if guild is None:
        return text.Names()
    if isinstance(posted_in, discord.Thread):  # a thread is seen by those who see its channel
        posted_in = posted_in.parent
    wanted = text.mentions(words)
    roles = {role.id: role.name for role in map(guild.get_role, wanted.roles) if role is not None}
    return text.Names(
        users=await _user_names(guild, wanted.users, message),
        roles=roles,
        channels=_channel_names(guild, wanted.channels, [reader, *listeners], file, posted_in),
    )


def named_channels(guild: discord.Guild | None, names: text.Names) -> list[discord.abc.GuildChannel]:
    """The channels `names` says aloud by name (not the hidden ones)."""
    if guild is None:
        return []
    found = (guild.get_channel(i) for i, name in names.channels.items() if name != HIDDEN)
    return [channel for channel in found if channel is not None]


def may_hear(channels: Sequence[discord.abc.GuildChannel]) -> Callable[[discord.Member], bool] | None:
    """Who may hear speech that names (or was posted in) `channels`: someone who can see them all;
    None when it names none."""
    if not channels:
        return None
    return lambda member: all(channel.permissions_for(member).view_channel for channel in channels)


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


def _channel_names(
    guild: discord.Guild,
    channel_ids: tuple[int, ...],
    audience: Sequence[discord.Member | discord.User],
    file: bool,
    posted_in: discord.abc.GuildChannel | None,
) -> dict[int, str]:
    names: dict[int, str] = {}
    for channel_id in channel_ids:
        channel = guild.get_channel(channel_id)
        if channel is None:
            continue  # unknown to the bot: "a channel"
        seen = all(
            isinstance(member, discord.Member) and channel.permissions_for(member).view_channel
            for member in audience
        )
        if seen and file:
            seen = _seen_by_everyone_who_sees(channel, posted_in)
        names[channel_id] = channel.name if seen else HIDDEN
    return names


def _seen_by_everyone_who_sees(
    channel: discord.abc.GuildChannel, posted_in: discord.abc.GuildChannel | None
) -> bool:
    """Whether every member who can see `posted_in` can see `channel`, judged without the member list
    (the bot has no members intent): the same channel, one with exactly the same permission overwrites
    (a member sees both or neither), or one that @everyone can see and no overwrite hides from anyone.
    Anything else may be hidden from someone reading there, so it isn't named."""
    if posted_in is not None and (channel.id == posted_in.id or channel.overwrites == posted_in.overwrites):
        return True
    everyone = channel.guild.default_role
    hidden_from_some = any(
        overwrite.view_channel is False
        for target, overwrite in channel.overwrites.items()
        if target.id != everyone.id
    )
    return channel.permissions_for(everyone).view_channel and not hidden_from_some
