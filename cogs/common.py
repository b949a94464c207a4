"""What every cog needs: the bot's services, the guild scope, voice-name autocomplete, voice checks.

Not an extension itself; the feature cogs import it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import discord
from discord import app_commands

from bot.errors import GuildOnly

if TYPE_CHECKING:
    from bot.client import VoiceBot


def bot_of(interaction: discord.Interaction) -> VoiceBot:
    return cast("VoiceBot", interaction.client)


def guild_id_of(interaction: discord.Interaction) -> int:
    if interaction.guild_id is None:
        raise GuildOnly()
    return interaction.guild_id


def is_manager(interaction: discord.Interaction) -> bool:
    permissions = getattr(interaction.user, "guild_permissions", None)
    return bool(permissions and permissions.manage_guild)


async def voice_names(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete from this guild's library only: another server's voices never appear."""
    if interaction.guild_id is None:
        return []
    voices = await bot_of(interaction).store.aio.list(interaction.guild_id)
    wanted = current.casefold().strip()
    matches = [v for v in voices if wanted in v.name.casefold()]
    matches.sort(key=lambda v: (not v.name.casefold().startswith(wanted), v.name.casefold()))
    return [app_commands.Choice(name=v.name, value=v.name) for v in matches[:25]]


async def defer_private(interaction: discord.Interaction) -> None:
    """Before a write to the library: it may wait for another process's lock (up to its busy timeout)
    longer than the 3 s Discord gives to answer, so the answer is deferred first."""
    if not interaction.response.is_done():
        await interaction.response.defer(ephemeral=True, thinking=True)


async def answer(
    interaction: discord.Interaction, content: str | None = None, *, embed: discord.Embed | None = None
) -> None:
    """A private reply, whether or not it was deferred."""
    if interaction.response.is_done():
        await interaction.edit_original_response(content=content, embed=embed)
    elif embed is not None:
        await interaction.response.send_message(content, embed=embed, ephemeral=True)
    else:
        await interaction.response.send_message(content, ephemeral=True)


def voice_channel_of(interaction: discord.Interaction) -> discord.VoiceChannel | discord.StageChannel | None:
    state = getattr(interaction.user, "voice", None)
    return state.channel if state and state.channel else None


def may_speak_in(channel: discord.abc.GuildChannel) -> bool:
    me = channel.guild.me
    permissions = channel.permissions_for(me)
    return permissions.connect and permissions.speak


AUDIO_SUFFIXES = (
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".wav",
    ".m4a",
    ".aac",
    ".flac",
    ".webm",
    ".mp4",
    ".mov",
    ".mkv",
    ".aiff",
    ".aif",
    ".caf",
    ".wma",
)


def first_audio(message: discord.Message) -> discord.Attachment | None:
    """The message's first audio (or video) attachment: a voice message, or an audio file."""
    for attachment in message.attachments:
        kind = attachment.content_type or ""
        if kind.startswith(("audio/", "video/")) or attachment.filename.lower().endswith(AUDIO_SUFFIXES):
            return attachment
    return None


def custom_id_of(interaction: discord.Interaction, kind: discord.InteractionType, prefix: str) -> str | None:
    """The custom_id of a `kind` interaction (a modal submit, a button press) whose id starts with
    `prefix`: one of ours that a listener answers (forms and buttons that outlive a restart); else None."""
    data: Mapping[str, Any] = interaction.data or {}
    custom_id = str(data.get("custom_id", ""))
    if interaction.type is not kind or not custom_id.startswith(prefix):
        return None
    return custom_id


T = TypeVar("T")


def page_of(items: Sequence[T], page: int, size: int) -> tuple[Sequence[T], int, int]:
    """The items on `page` (1-based; past the end shows the last page), that page, and how many."""
    pages = max(1, math.ceil(len(items) / size))
    page = min(page, pages)
    return items[(page - 1) * size : page * size], page, pages
