"""Live voice: /join, /leave, /skip, /stop. The queue itself lives in `bot.playback`.

Who may end what others hear: anyone listening in the bot's voice channel (they are the audience), a
member with Manage Server or Move Members (Discord's own power to move or disconnect people in voice),
and, for /skip, whoever asked for what is playing now. Anyone else is told who may.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import CannotJoinVoice, NotInVoiceChannel, NotListening, NotPlaying, SpeakingElsewhere
from cogs.common import bot_of, guild_id_of, may_speak_in, voice_channel_of


def check_may_control(interaction: discord.Interaction, *, requester_id: int | None = None) -> None:
    """NotListening unless the member may end what the bot says here (see the module docstring)."""
    playback = bot_of(interaction).playback
    ours = playback.connected_channel(guild_id_of(interaction))
    theirs = voice_channel_of(interaction)
    permissions = getattr(interaction.user, "guild_permissions", None)
    if (
        (ours is not None and theirs is not None and theirs.id == ours.id)
        or (permissions is not None and (permissions.manage_guild or permissions.move_members))
        or (requester_id is not None and requester_id == interaction.user.id)
    ):
        return
    where = ours.mention if ours is not None else "the voice channel"
    raise NotListening(where, or_requester=requester_id is not None)


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
        playback = bot_of(interaction).playback
        if playback.connected_channel(guild_id) is None and not playback.queue(guild_id):
            raise NotPlaying()
        check_may_control(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)  # leaving waits for Discord
        if not await playback.leave(guild_id):
            raise NotPlaying()
        await interaction.edit_original_response(content="Left the voice channel.")

    @app_commands.command(name="skip", description="Skip what the bot is saying now.")
    @app_commands.guild_only()
    async def skip(self, interaction: discord.Interaction) -> None:
        playback, guild_id = bot_of(interaction).playback, guild_id_of(interaction)
        playing = playback.queue(guild_id)[:1]
        if not playing:
            raise NotPlaying()
        check_may_control(interaction, requester_id=playing[0].requester_id)
        if not playback.skip(guild_id):
            raise NotPlaying()
        await interaction.response.send_message("Skipped.", ephemeral=True)

    @app_commands.command(name="stop", description="Stop speaking and clear the queue.")
    @app_commands.guild_only()
    async def stop(self, interaction: discord.Interaction) -> None:
        playback = bot_of(interaction).playback
        guild_id = guild_id_of(interaction)
        if not playback.queue(guild_id):
            raise NotPlaying()
        check_may_control(interaction)
        dropped = playback.stop(guild_id)
        await interaction.response.send_message(
            f"Stopped and cleared the queue ({dropped} item{'s' * (dropped != 1)}).", ephemeral=True
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(VoiceChannel(bot))
