"""Live voice: /join, /leave, /skip, /stop. The queue itself lives in `bot.playback`."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import CannotJoinVoice, NotInVoiceChannel, NotPlaying, SpeakingElsewhere
from cogs.common import bot_of, guild_id_of, may_speak_in, voice_channel_of


class VoiceChannel(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot

    @app_commands.command(name="join", description="Bring the bot into your voice channel.")
    @app_commands.guild_only()
    async def join(self, interaction: discord.Interaction) -> None:
        guild_id_of(interaction)
        channel = voice_channel_of(interaction)
        if channel is None:
            raise NotInVoiceChannel()
        if not may_speak_in(channel):
            raise CannotJoinVoice(channel.mention)
        await interaction.response.defer(ephemeral=True, thinking=True)
        playback = bot_of(interaction).playback
        try:
            await playback.join(channel)
        except discord.ClientException as exc:
            busy = playback.connected_channel(channel.guild.id)
            if busy is not None and busy != channel:
                raise SpeakingElsewhere(busy.mention) from exc
            raise CannotJoinVoice(channel.mention) from exc
        except (TimeoutError, discord.HTTPException) as exc:
            raise CannotJoinVoice(channel.mention) from exc
        await interaction.edit_original_response(content=f"Joined {channel.mention}. Use /say to speak.")

    @app_commands.command(name="leave", description="Make the bot leave the voice channel.")
    @app_commands.guild_only()
    async def leave(self, interaction: discord.Interaction) -> None:
        guild_id = guild_id_of(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)  # leaving waits for Discord
        if not await bot_of(interaction).playback.leave(guild_id):
            raise NotPlaying()
        await interaction.edit_original_response(content="Left the voice channel.")

    @app_commands.command(name="skip", description="Skip what the bot is saying now.")
    @app_commands.guild_only()
    async def skip(self, interaction: discord.Interaction) -> None:
        if not bot_of(interaction).playback.skip(guild_id_of(interaction)):
            raise NotPlaying()
        await interaction.response.send_message("Skipped.", ephemeral=True)

    @app_commands.command(name="stop", description="Stop speaking and clear the queue.")
    @app_commands.guild_only()
    async def stop(self, interaction: discord.Interaction) -> None:
        playback = bot_of(interaction).playback
        guild_id = guild_id_of(interaction)
        if not playback.queue(guild_id):
            raise NotPlaying()
        dropped = playback.stop(guild_id)
        await interaction.response.send_message(
            f"Stopped and cleared the queue ({dropped} item{'s' * (dropped != 1)}).", ephemeral=True
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(VoiceChannel(bot))
