"""Speaking in a cloned voice: /say, and the message context menu "Speak message".

`auto` plays in the member's voice channel when they are in one the bot may join, otherwise replies
with an audio file. Files go out as a Discord voice message where the bot may send one, else as an
Ogg/Opus (or MP3) attachment, always within the interaction's upload limit. This cog parses the
options, chooses the mode, plans and reserves; `bot.delivery` speaks to Discord.
"""

from __future__ import annotations

import asyncio

import discord
from discord import app_commands
from discord.ext import commands

from bot import delivery, mentions, speech, text
from bot.choices import Mode
from bot.errors import CannotJoinVoice, NoDefaultVoice, NoTextInMessage, NotInVoiceChannel
from bot.playback import VoiceChannel
from bot.store import GuildSettings
from cogs.common import bot_of, guild_id_of, may_speak_in, voice_channel_of, voice_names


def file_channel(interaction: discord.Interaction) -> discord.abc.GuildChannel | discord.Thread | None:
    channel = interaction.channel
    return channel if isinstance(channel, discord.abc.GuildChannel | discord.Thread) else None


def channel_to_speak_in(interaction: discord.Interaction, wanted: str) -> VoiceChannel | None:
    """The voice channel for mode `wanted`, or None for a reply with a file."""
    channel = voice_channel_of(interaction)
    if wanted == "file":
        return None
    if wanted == "channel":
        if channel is None:
            raise NotInVoiceChannel()
        if not may_speak_in(channel):
            raise CannotJoinVoice(channel.mention)
        return channel
    if channel is not None and may_speak_in(channel):
        return channel
    return None


class Say(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.speak_message = app_commands.ContextMenu(name="Speak message", callback=self.speak_message_cb)
        self.speak_message.guild_only = True
        bot.tree.add_command(self.speak_message)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.speak_message.name, type=self.speak_message.type)

    @app_commands.command(name="say", description="Say something in a cloned voice.")
    @app_commands.describe(
        text="What to say",
        voice="Which voice (default: yours, set with /voice default)",
        mode="auto: your voice channel if you're in one, else a file",
        seed="Same seed, same delivery (leave empty for a fresh one)",
        force_speaker="Hold the voice tighter if it drifts on unusual text",
    )
    @app_commands.autocomplete(voice=voice_names)
    @app_commands.guild_only()
    async def say(
        self,
        interaction: discord.Interaction,
        text: app_commands.Range[str, 1, 4000],
        voice: str | None = None,
        mode: Mode | None = None,
        seed: app_commands.Range[int, 0, 2_147_483_647] | None = None,
        force_speaker: bool = False,
    ) -> None:
        await self.run(interaction, text, voice=voice, mode=mode, seed=seed, force_speaker=force_speaker)

    async def speak_message_cb(self, interaction: discord.Interaction, message: discord.Message) -> None:
        if not message.content.strip():
            raise NoTextInMessage()
        await self.run(
            interaction,
            message.content,
            voice=None,
            mode=None,
            seed=None,
            force_speaker=False,
            source=message,
        )

    async def run(
        self,
        interaction: discord.Interaction,
        words: str,
        *,
        voice: str | None,
        mode: str | None,
        seed: int | None,
        force_speaker: bool,
        source: discord.Message | None = None,
    ) -> None:
        bot = bot_of(interaction)
        guild_id = guild_id_of(interaction)
        settings = await bot.store.aio.settings(guild_id)
        channel = channel_to_speak_in(interaction, mode or settings.default_mode)
        # A file is for the whole channel to hear; a queue notice is only for the one who asked.
        await interaction.response.defer(thinking=True, ephemeral=channel is not None)
        # After the defer: naming uncached members may take a fetch from Discord. A channel is named only
        # to an audience that can all see it: the listeners, or everyone who sees the file's channel.
        listeners = [m for m in channel.members if not m.bot] if channel is not None else []
        names = await mentions.names_for(
            words,
            guild=interaction.guild,
            reader=interaction.user,
            message=source,
            listeners=listeners,
            file=channel is None,
            posted_in=file_channel(interaction),
        )
        request = await asyncio.to_thread(
            self._plan, interaction, settings, words, voice, seed, force_speaker, names, channel is not None
        )
        reservation = await bot.limits.reserve(
            settings,
            request.user_id,
            speech.longest_seconds(request),
            reply_to=f"{interaction.application_id}:{interaction.token}",
            voice_id=request.voice.id,
        )
        # From here delivery owns the reservation: settled with what members got, else released.
        if channel is None:
            await delivery.reply_with_file(
                bot, interaction, request, reservation, file_format=settings.file_format
            )
        else:
            await delivery.speak_live(
                bot,
                request,
                reservation,
                channel,
                delivery.Answer.to(interaction),
                may_hear=mentions.may_hear(mentions.named_channels(interaction.guild, names)),
            )

    def _plan(
        self,
        interaction: discord.Interaction,
        settings: GuildSettings,
        words: str,
        voice: str | None,
        seed: int | None,
        force_speaker: bool,
        names: text.Resolver,
        live: bool,
    ) -> speech.Request:
        bot = bot_of(interaction)
        user_id = interaction.user.id
        if voice is None:
            default = bot.store.default_voice(settings.guild_id, user_id)
            if default is None:
                raise NoDefaultVoice()
            voice = default.name
        max_chars = min(settings.max_text_chars or bot.config.max_text_chars, bot.config.max_text_chars)
        return speech.plan(
            bot.store,
            guild_id=settings.guild_id,
            user_id=user_id,
            voice_name=voice,
            words=words,
            max_chars=max_chars,
            resolve=names,
            params=speech.settings(force_speaker, live=live),
            seed=seed,
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Say(bot))
