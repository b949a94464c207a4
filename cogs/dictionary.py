"""A server's pronunciation dictionary: /dictionary add|remove|list (changes need Manage Server)."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot import pronunciation
from cogs.common import answer, bot_of, defer_private, guild_id_of, page_of

log = logging.getLogger(__name__)
PAGE_SIZE = 20


@app_commands.guild_only()
class Dictionary(commands.GroupCog, name="dictionary", description="How the bot pronounces words here."):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @app_commands.command(name="add", description="Say a word differently everywhere on this server.")
    @app_commands.describe(word="The word as people type it", spoken_as="How it should be said")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def add(
        self,
        interaction: discord.Interaction,
        word: app_commands.Range[str, 1, pronunciation.MAX_ENTRY_CHARS],
        spoken_as: app_commands.Range[str, 1, pronunciation.MAX_ENTRY_CHARS],
    ) -> None:
        guild_id = guild_id_of(interaction)
        await defer_private(interaction)
        store = bot_of(interaction).store.aio
        word, spoken, was = await store.add_pronunciation(guild_id, word, spoken_as)
        log.info("Dictionary: guild %s user %s set an entry", guild_id, interaction.user.id)
        if was is None:
            await answer(interaction, f"“{word}” is now said as “{spoken}”.")
        elif was == spoken:
            await answer(interaction, f"“{word}” was already said as “{spoken}”.")
        else:
            await answer(interaction, f"“{word}” is now said as “{spoken}” instead of “{was}”.")

    @app_commands.command(name="remove", description="Say a word as it is written again.")
    @app_commands.describe(word="The word to remove from the dictionary")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def remove(
        self,
        interaction: discord.Interaction,
        word: app_commands.Range[str, 1, pronunciation.MAX_ENTRY_CHARS],
    ) -> None:
        guild_id = guild_id_of(interaction)
        await defer_private(interaction)
        removed = await bot_of(interaction).store.aio.remove_pronunciation(guild_id, word)
        log.info("Dictionary: guild %s user %s removed an entry", guild_id, interaction.user.id)
        await answer(interaction, f"“{removed}” is said as written again.")

    @app_commands.command(name="list", description="See this server's pronunciation dictionary.")
    @app_commands.describe(page=f"Which page ({PAGE_SIZE} words per page)")
    async def list_entries(
        self, interaction: discord.Interaction, page: app_commands.Range[int, 1, 100] = 1
    ) -> None:
        entries = list((await bot_of(interaction).store.aio.dictionary(guild_id_of(interaction))).items())
        if not entries:
            await interaction.response.send_message(
                "The dictionary is empty. An admin can add words with /dictionary add.", ephemeral=True
            )
            return
        shown, page, pages = page_of(entries, page, PAGE_SIZE)
        embed = discord.Embed(title="Pronunciation dictionary", colour=discord.Colour.blurple())
        embed.description = "\n".join(
            f"**{discord.utils.escape_markdown(w)}** → {discord.utils.escape_markdown(s)}" for w, s in shown
        )
        embed.set_footer(text=f"Page {page}/{pages} · {len(entries)} of {pronunciation.MAX_ENTRIES} entries")
        await interaction.response.send_message(embed=embed, ephemeral=True)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Dictionary(bot))
