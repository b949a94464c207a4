"""Cloning voices from Discord: /clone, and the message context menu "Clone voice from message".

Consent is asked every time and recorded with the voice (who confirmed it, when). The upload's size is
checked from the attachment's metadata before anything is downloaded.
"""

from __future__ import annotations

import asyncio

import discord
from discord import app_commands
from discord.ext import commands

from bot import cloning, replies
from bot.errors import ConsentRequired, NoAudioAttachment, NotAllowedToClone
from cogs.common import bot_of, guild_id_of
from cogs.voices import voice_card

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
STEPS = {"checking": "Checking the audio…", "encoding": "Learning the voice…"}


def audio_attachment(message: discord.Message) -> discord.Attachment:
    for attachment in message.attachments:
        kind = attachment.content_type or ""
        if kind.startswith(("audio/", "video/")) or attachment.filename.lower().endswith(AUDIO_SUFFIXES):
            return attachment
    raise NoAudioAttachment()


async def _check_may_clone(interaction: discord.Interaction) -> None:
    settings = await asyncio.to_thread(bot_of(interaction).store.settings, guild_id_of(interaction))
    if settings.clone_role_id is None:
        return
    roles = {role.id for role in getattr(interaction.user, "roles", [])}
    if settings.clone_role_id not in roles and not interaction.user.guild_permissions.manage_guild:
        role = interaction.guild.get_role(settings.clone_role_id) if interaction.guild else None
        raise NotAllowedToClone(f"@{role.name}" if role else "chosen")


async def clone_from(
    interaction: discord.Interaction, attachment: discord.Attachment, name: str, *, source: str
) -> None:
    """The whole flow, for /clone and the context menu alike."""
    bot = bot_of(interaction)
    guild_id = guild_id_of(interaction)
    await _check_may_clone(interaction)
    # Refuse before downloading: bad/taken name, full library, or a file over the size cap.
    await asyncio.to_thread(
        cloning.check_upload, bot.store, guild_id, name, attachment.size, bot.config.max_reference_bytes
    )
    await interaction.response.defer(ephemeral=True, thinking=True)
    await interaction.edit_original_response(content="Downloading the recording…")
    data = await attachment.read()

    async def progress(step: str) -> None:
        await interaction.edit_original_response(content=STEPS[step])

    cloned = await cloning.clone_voice(
        bot.store,
        bot.backend,
        data,
        guild_id=guild_id,
        name=name,
        owner_id=interaction.user.id,
        consent_by=interaction.user.id,
        source=source,
        max_bytes=bot.config.max_reference_bytes,
        progress=progress,
    )
    await interaction.edit_original_response(
        content=f"Cloned from {cloned.format}. Try it: `/say voice:{cloned.voice.name} text:Hello!`",
        embed=voice_card(cloned.voice, title=f"🎙️ New voice: {cloned.voice.name}"),
    )


class CloneModal(discord.ui.Modal, title="Clone this voice"):
    name = discord.ui.TextInput(
        label="Name for the voice",
        custom_id="name",
        min_length=1,
        max_length=32,
        placeholder="Letters, digits, spaces, - or _",
    )
    consent = discord.ui.TextInput(
        label="I have this speaker's permission (type YES)",
        custom_id="consent",
        min_length=1,
        max_length=3,
        placeholder="YES",
    )

    def __init__(self, attachment: discord.Attachment, message: discord.Message) -> None:
        super().__init__(timeout=600, custom_id="clone-voice")
        self.attachment, self.message = attachment, message

    async def on_submit(self, interaction: discord.Interaction) -> None:
        if self.consent.value.strip().casefold() != "yes":
            raise ConsentRequired()
        await clone_from(interaction, self.attachment, self.name.value, source=f"message:{self.message.id}")

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        await replies.report(interaction, error)


class Clone(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.from_message = app_commands.ContextMenu(
            name="Clone voice from message", callback=self.clone_from_message
        )
        self.from_message.guild_only = True
        bot.tree.add_command(self.from_message)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.from_message.name, type=self.from_message.type)

    @app_commands.command(name="clone", description="Clone a voice from a recording of someone speaking.")
    @app_commands.describe(
        name="What to call the voice (1–32 letters, digits, spaces, - or _)",
        attachment="5 s to 5 min of one person speaking: a voice message or an audio file",
        consent="I have this speaker's permission to clone their voice",
    )
    @app_commands.guild_only()
    async def clone(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 32],
        attachment: discord.Attachment,
        consent: bool,
    ) -> None:
        if not consent:
            raise ConsentRequired()
        await clone_from(interaction, attachment, name, source=f"attachment:{attachment.filename}")

    async def clone_from_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        guild_id_of(interaction)
        attachment = audio_attachment(message)
        await _check_may_clone(interaction)
        await interaction.response.send_modal(CloneModal(attachment, message))


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Clone(bot))
