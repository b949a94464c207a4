"""/apikey create|list|revoke: a server's keys for the bot's HTTP speech API (Manage Server only).

A new key is shown once, privately, to the admin who made it; the library keeps only its hash
(bot.store.api_keys). What is spoken with it counts toward this server's quota and its maker's.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.store.api_keys import MAX_API_KEYS, MAX_NAME_CHARS
from cogs.common import answer, bot_of, defer_private, guild_id_of


def may_manage_keys(interaction: discord.Interaction) -> bool:
    """Manage Server in this channel, as Discord resolved it for this interaction."""
    return interaction.guild_id is not None and interaction.permissions.manage_guild


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class ApiKeysCog(commands.GroupCog, name="apikey", description="Keys for the bot's HTTP speech API."):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        """Checked here too: a server can grant the command to members without Manage Server."""
        if not may_manage_keys(interaction):
            raise app_commands.MissingPermissions(["manage_guild"])
        return True

    @app_commands.command(name="create", description="Make an API key for this server (shown once).")
    @app_commands.describe(name="A label to tell the key apart, like “CI” or “home assistant”")
    async def create(
        self, interaction: discord.Interaction, name: app_commands.Range[str, 1, MAX_NAME_CHARS]
    ) -> None:
        guild_id = guild_id_of(interaction)
        await defer_private(interaction)
        user_id = interaction.user.id
        key, full_key = await bot_of(interaction).store.aio.create_api_key(
            guild_id, created_by=user_id, name=name, actor=user_id
        )
        await answer(
            interaction,
            f"New API key “{discord.utils.escape_markdown(key.name)}” (`{key.id}`). Copy it now: it is shown "
            f"only this once.\n```\n{full_key}\n```\n"
            "Send it to the bot's HTTP speech API in the header `Authorization: Bearer <key>` (the bot's "
            "operator has the address). What it speaks counts toward this server's quota and yours. Revoke "
            "it with /apikey revoke.",
        )

    @app_commands.command(name="list", description="See this server's API keys (never the keys themselves).")
    async def list_keys(self, interaction: discord.Interaction) -> None:
        keys = await bot_of(interaction).store.aio.api_keys(guild_id_of(interaction))
        if not keys:
            await answer(interaction, "This server has no API keys. Make one with /apikey create.")
            return
        embed = discord.Embed(title="API keys", colour=discord.Colour.blurple())
        embed.description = "\n".join(
            f"**{discord.utils.escape_markdown(k.name)}** · `{k.id}` · "
            f"{f'<@{k.created_by}>' if k.created_by else 'made from a terminal'} · "
            f"made <t:{int(k.created_at)}:R> · "
            + (f"last used <t:{int(k.last_used_at)}:R>" if k.last_used_at is not None else "never used")
            for k in keys
        )
        embed.set_footer(text=f"{len(keys)} of {MAX_API_KEYS} keys")
        await answer(interaction, embed=embed)

    @app_commands.command(
        name="revoke", description="Delete an API key: the API stops taking it within 5 seconds."
    )
    @app_commands.describe(key="The key's name or id, as /apikey list shows it")
    async def revoke(self, interaction: discord.Interaction, key: app_commands.Range[str, 1, 100]) -> None:
        guild_id = guild_id_of(interaction)
        await defer_private(interaction)
        revoked = await bot_of(interaction).store.aio.revoke_api_key(guild_id, key, actor=interaction.user.id)
        await answer(
            interaction,
            f"Revoked the API key “{discord.utils.escape_markdown(revoked.name)}” (`{revoked.id}`): "
            "the API stops taking it within 5 seconds.",
        )

    @revoke.autocomplete("key")
    async def key_names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """This server's key names, for those who may manage them (autocomplete runs no checks)."""
        if not may_manage_keys(interaction) or interaction.guild_id is None:
            return []
        keys = await bot_of(interaction).store.aio.api_keys(interaction.guild_id)
        wanted = current.casefold().strip()
        return [
            app_commands.Choice(name=f"{k.name} ({k.id})"[:100], value=k.id)
            for k in keys
            if wanted in k.name.casefold() or wanted in k.id
        ][:25]


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(ApiKeysCog(bot))
