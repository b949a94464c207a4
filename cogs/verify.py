"""The message context menu "Check for AI voice": whether a voice message or audio file carries the
watermark this bot puts on all its speech (`modal_tts.watermark`), with how sure the check is.

Works in servers and in DMs with the bot. The size is checked from the attachment's metadata before
anything is downloaded; the check itself runs on the engine side, through the speech backend.
"""

from __future__ import annotations

import asyncio

import discord
from discord import app_commands
from discord.ext import commands

from bot.audio.clip import WATERMARK_THRESHOLD, load_clip
from bot.errors.watermark import ClipDownloadFailed, ClipTooLarge, NoAudioToCheck
from cogs.common import bot_of, first_audio

# What a result does not promise, said with every answer.
CAVEAT = (
    "-# The mark says “made by an AI voice that uses the Perth watermark”, not which bot or server made "
    "it; clips from other tools carry none, editing can remove it, and no mark proves nothing."
)


def clip_of(message: discord.Message) -> discord.Attachment:
    """The message's first audio (or video) attachment: a voice message, or an audio file."""
    attachment = first_audio(message)
    if attachment is None:
        raise NoAudioToCheck()
    return attachment


def answer_for(confidence: float) -> str:
    if confidence >= WATERMARK_THRESHOLD:
        verdict = (
            f"🔎 This audio carries this bot's AI-voice watermark (confidence {confidence:.2f}): "
            "it was made by an AI voice."
        )
    else:
        verdict = f"🔎 No AI-voice watermark found in this audio (confidence {confidence:.2f})."
    return f"{verdict}\n{CAVEAT}"


class Verify(commands.Cog):
    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.check_message = app_commands.ContextMenu(
            name="Check for AI voice",
            callback=self.check,
            allowed_contexts=app_commands.AppCommandContext(guild=True, dm_channel=True),
        )
        bot.tree.add_command(self.check_message)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.check_message.name, type=self.check_message.type)

    async def check(self, interaction: discord.Interaction, message: discord.Message) -> None:
        bot = bot_of(interaction)
        limit = bot.config.max_reference_bytes
        attachment = clip_of(message)
        if attachment.size > limit:  # from Discord's metadata: never downloaded
            raise ClipTooLarge(attachment.size, limit)
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            data = await attachment.read()
        except discord.HTTPException as exc:
            raise ClipDownloadFailed(exc.status) from exc
        pcm = await asyncio.to_thread(load_clip, data, max_bytes=limit)
        confidence = await bot.backend.watermark_confidence(pcm)
        await interaction.edit_original_response(content=answer_for(confidence))


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Verify(bot))
