"""Browse and manage a server's voices: /voices and /voice info|rename|delete|default."""

from __future__ import annotations

import logging
import time

import discord
from discord import app_commands
from discord.ext import commands

from bot import audit
from bot.errors import NotVoiceOwner, UsageNotVisible
from bot.store import Voice
from bot.wording import plural
from cogs.common import answer, bot_of, defer_private, guild_id_of, is_manager, page_of, voice_names

PAGE_SIZE = 10
USAGE_DAYS = 30
USAGE_LINES = 25  # newest uses listed; older ones counted
log = logging.getLogger(__name__)


def voice_card(voice: Voice, *, title: str | None = None) -> discord.Embed:
    embed = discord.Embed(title=title or f"🎙️ {voice.name}", colour=discord.Colour.blurple())
    embed.add_field(name="Reference", value=f"{voice.duration_s:.1f} s")
    embed.add_field(name="Owner", value=f"<@{voice.owner_id}>" if voice.owner_id else "server admin")
    if voice.speaker_id is not None:
        embed.add_field(name="Speaker", value=f"<@{voice.speaker_id}>")
    embed.add_field(name="Created", value=f"<t:{_unix(voice.created_at)}:D>")
    embed.set_footer(text=f"id {voice.id} · model {voice.revision} · output CC-BY-NC-SA-4.0")
    return embed


def _unix(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso).timestamp())


class Voices(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @app_commands.command(name="voices", description="List this server's cloned voices.")
    @app_commands.describe(page="Which page of the list (10 voices per page)")
    @app_commands.guild_only()
    async def voices(
        self, interaction: discord.Interaction, page: app_commands.Range[int, 1, 100] = 1
    ) -> None:
        guild_id = guild_id_of(interaction)
        voices = await bot_of(interaction).store.aio.list(guild_id)
        if not voices:
            await interaction.response.send_message(
                "This server has no voices yet. Clone one with /clone.", ephemeral=True
            )
            return
        shown, page, pages = page_of(voices, page, PAGE_SIZE)
        embed = discord.Embed(title="Voices on this server", colour=discord.Colour.blurple())
        embed.description = "\n".join(
            f"**{v.name}** · {v.duration_s:.0f} s reference · "
            + (f"<@{v.owner_id}>" if v.owner_id else "server admin")
            for v in shown
        )
        embed.set_footer(
            text=f"Page {page}/{pages} · {plural(len(voices), 'voice')} · /voices page:N for more"
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    voice = app_commands.Group(name="voice", description="Manage one cloned voice", guild_only=True)

    @voice.command(name="info", description="Show a voice's details.")
    @app_commands.describe(name="The voice")
    @app_commands.autocomplete(name=voice_names)
    async def info(self, interaction: discord.Interaction, name: str) -> None:
        voice = await bot_of(interaction).store.aio.get(guild_id_of(interaction), name)
        await interaction.response.send_message(embed=voice_card(voice), ephemeral=True)

    async def _owned(
        self, interaction: discord.Interaction, name: str, *, speaker_may: bool = False
    ) -> Voice:
        """The voice, if the member may change it: its owner or Manage Server; with `speaker_may`, also
        the member it was cloned from (a speaker can always delete a clone of their voice)."""
        voice = await bot_of(interaction).store.aio.get(guild_id_of(interaction), name)
        user_id = interaction.user.id
        speaker = speaker_may and voice.speaker_id == user_id
        if voice.owner_id != user_id and not speaker and not is_manager(interaction):
            raise NotVoiceOwner(voice.name, speaker_may=speaker_may)
        return voice

    @voice.command(name="rename", description="Rename a voice (its owner or Manage Server).")
    @app_commands.describe(name="The voice", new_name="1–32 letters, digits, spaces, - or _")
    @app_commands.autocomplete(name=voice_names)
    async def rename(
        self, interaction: discord.Interaction, name: str, new_name: app_commands.Range[str, 1, 32]
    ) -> None:
        voice = await self._owned(interaction, name)
        await defer_private(interaction)
        renamed = await bot_of(interaction).store.aio.rename(voice.guild_id, voice.name, new_name)
        who, where = interaction.user.id, voice.guild_id
        audit.record("settings", actor=who, guild=where, voice=voice.id, renamed_to=renamed.name)
        await answer(interaction, f"Renamed “{voice.name}” to “{renamed.name}”.")

    @voice.command(
        name="delete", description="Delete a voice and its files (its owner, its speaker, or Manage Server)."
    )
    @app_commands.describe(name="The voice")
    @app_commands.autocomplete(name=voice_names)
    async def delete(self, interaction: discord.Interaction, name: str) -> None:
        voice = await self._owned(interaction, name, speaker_may=True)
        await defer_private(interaction)
        await bot_of(interaction).store.aio.delete(voice.guild_id, voice.name)
        who, where = interaction.user.id, voice.guild_id
        audit.record("delete", actor=who, guild=where, voice=voice.id, name=voice.name)
        await answer(interaction, f"Deleted “{voice.name}”: its recording and voice data are gone.")

    @voice.command(
        name="usage", description="Who used a voice in the last 30 days (its owner, speaker or admins)."
    )
    @app_commands.describe(name="The voice")
    @app_commands.autocomplete(name=voice_names)
    async def usage(self, interaction: discord.Interaction, name: str) -> None:
        """Visible to the voice's owner and speaker (it is their voice) and to Manage Server (who may
        delete any voice here anyway), and to them only: it says who spoke, when."""
        voice = await bot_of(interaction).store.aio.get(guild_id_of(interaction), name)
        user_id = interaction.user.id
        if user_id not in (voice.owner_id, voice.speaker_id) and not is_manager(interaction):
            raise UsageNotVisible(voice.name)
        await defer_private(interaction)
        since = time.time() - USAGE_DAYS * 86_400
        uses = await bot_of(interaction).store.aio.usage_of_voice(voice.guild_id, voice.id, since)
        embed = discord.Embed(
            title=f"🎙️ {voice.name}: the last {USAGE_DAYS} days", colour=discord.Colour.blurple()
        )
        if not uses:
            embed.description = "Nobody has used this voice in that time."
        else:
            lines = [f"<t:{int(u.at)}:f> · <@{u.user_id}> · {u.seconds:.1f} s" for u in uses[:USAGE_LINES]]
            if len(uses) > USAGE_LINES:
                lines.append(f"… and {plural(len(uses) - USAGE_LINES, 'older use')}")
            embed.description = "\n".join(lines)
            members = len({u.user_id for u in uses})
            total = sum(u.seconds for u in uses)
            embed.set_footer(
                text=f"{plural(len(uses), 'use')} by {plural(members, 'member')} · {total:.0f} s of speech"
            )
        await answer(interaction, embed=embed)

    @voice.command(name="default", description="Use this voice when you don't name one in /say.")
    @app_commands.describe(name="The voice")
    @app_commands.autocomplete(name=voice_names)
    async def default(self, interaction: discord.Interaction, name: str) -> None:
        guild_id = guild_id_of(interaction)
        await defer_private(interaction)
        voice = await bot_of(interaction).store.aio.set_default_voice(guild_id, interaction.user.id, name)
        await answer(interaction, f"Your default voice here is now “{voice.name}”.")


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Voices(bot))
