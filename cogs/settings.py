"""/settings: a server's choices about cloning and speaking (Manage Server only)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot import audit
from bot.choices import FileFormat, Mode
from bot.store import GuildSettings
from cogs.common import answer, bot_of, defer_private, guild_id_of


def describe(settings: GuildSettings, max_chars: int) -> discord.Embed:
    embed = discord.Embed(title="Voice bot settings", colour=discord.Colour.blurple())
    embed.add_field(
        name="Who may clone", value=f"<@&{settings.clone_role_id}>" if settings.clone_role_id else "everyone"
    )
    embed.add_field(name="Max text length", value=f"{settings.max_text_chars or max_chars:,} characters")
    embed.add_field(
        name="Cooldown per member", value=f"{settings.cooldown_s:g} s" if settings.cooldown_s else "none"
    )
    embed.add_field(
        name="Daily speech quota",
        value=f"{settings.daily_quota_s / 60:g} min" if settings.daily_quota_s else "unlimited",
    )
    embed.add_field(name="Default output", value=settings.default_mode)
    embed.add_field(name="File format", value="Ogg/Opus" if settings.file_format == "ogg" else "MP3")
    embed.add_field(
        name="Speaker's own consent",
        value="required (a voice message from the speaker)" if settings.speaker_consent else "not required",
    )
    return embed


class Settings(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @app_commands.command(name="settings", description="Show or change how the voice bot behaves here.")
    @app_commands.describe(
        clone_role="Only members with this role may clone voices",
        everyone_may_clone="Let every member clone voices again",
        max_text_length="Longest text one /say may speak",
        cooldown_seconds="Seconds a member waits between two /say (0: none)",
        daily_quota_minutes="Minutes of speech per day for the whole server (0: unlimited)",
        default_mode="Where /say speaks when no mode is given",
        file_format="Audio file format for replies",
        speaker_consent="A new voice waits until its speaker agrees with a voice message (recommended)",
    )
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def settings(
        self,
        interaction: discord.Interaction,
        clone_role: discord.Role | None = None,
        everyone_may_clone: bool | None = None,
        max_text_length: app_commands.Range[int, 10, 20_000] | None = None,
        cooldown_seconds: app_commands.Range[int, 0, 3600] | None = None,
        daily_quota_minutes: app_commands.Range[int, 0, 1440] | None = None,
        default_mode: Mode | None = None,
        file_format: FileFormat | None = None,
        speaker_consent: bool | None = None,
    ) -> None:
        bot = bot_of(interaction)
        guild_id = guild_id_of(interaction)
        changes: dict[str, object] = {}
        if clone_role is not None:
            changes["clone_role_id"] = clone_role.id
        if everyone_may_clone:
            changes["clone_role_id"] = None
        if max_text_length is not None:
            changes["max_text_chars"] = min(max_text_length, bot.config.max_text_chars)
        if cooldown_seconds is not None:
            changes["cooldown_s"] = float(cooldown_seconds)
        if daily_quota_minutes is not None:
            changes["daily_quota_s"] = float(daily_quota_minutes * 60) or None
        if default_mode is not None:
            changes["default_mode"] = default_mode
        if file_format is not None:
            changes["file_format"] = file_format
        if speaker_consent is not None:
            changes["speaker_consent"] = speaker_consent
        if changes:
            await defer_private(interaction)
            settings = await bot.store.aio.update_settings(guild_id, **changes)
            audit.record("settings", actor=interaction.user.id, guild=guild_id, **changes)
        else:
            settings = await bot.store.aio.settings(guild_id)
        note = "Saved." if changes else "Current settings (give an option to change one):"
        await answer(interaction, note, embed=describe(settings, bot.config.max_text_chars))


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Settings(bot))
