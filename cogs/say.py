"""Speaking in a cloned voice: /say, and the message context menu "Speak message".

`auto` plays in the member's voice channel when they are in one the bot may join, otherwise replies
with an audio file. Files go out as a Discord voice message where the bot may send one, else as an
Ogg/Opus (or MP3) attachment, always within the interaction's upload limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot import audio, mentions, replies, speech, text
from bot.errors import CannotJoinVoice, NoDefaultVoice, NoTextInMessage, NotInVoiceChannel, UploadFailed
from bot.limits import Reservation
from bot.store import GuildSettings
from cogs.common import bot_of, guild_id_of, may_speak_in, voice_channel_of, voice_names

if TYPE_CHECKING:
    from bot.client import VoiceBot
    from bot.playback import QueueItem

Mode = Literal["auto", "file", "channel"]
PROGRESS_EVERY_S = 1.0  # Discord rate-limits edits; once a second reads as live


def choose_mode(interaction: discord.Interaction, wanted: str) -> tuple[str, discord.VoiceChannel | None]:
    channel = voice_channel_of(interaction)
    if wanted == "file":
        return "file", None
    if wanted == "channel":
        if channel is None:
            raise NotInVoiceChannel()
        if not may_speak_in(channel):
            raise CannotJoinVoice(channel.mention)
        return "channel", channel
    if channel is not None and may_speak_in(channel):
        return "channel", channel
    return "file", None


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
        settings = await asyncio.to_thread(bot.store.settings, guild_id)
        chosen, channel = choose_mode(interaction, mode or settings.default_mode)
        # A file is for the whole channel to hear; a queue notice is only for the one who asked.
        await interaction.response.defer(thinking=True, ephemeral=chosen == "channel")
        # After the defer: naming uncached members may take a fetch from Discord.
        names = await mentions.names_for(
            words, guild=interaction.guild, reader=interaction.user, message=source
        )
        request = await asyncio.to_thread(
            self._plan, interaction, settings, words, voice, seed, force_speaker, names
        )
        estimate = sum(text.estimate_seconds(chunk) for chunk in request.chunks)
        reservation = await bot.limits.reserve(settings, request.user_id, estimate)
        try:
            if chosen == "file":
                await self._reply_with_file(interaction, request, settings, reservation)
            else:
                await self._play(interaction, request, channel, reservation)
        finally:
            # Settled by delivery (or by playback's end); anything that failed first charges nothing.
            if chosen == "file":
                bot.limits.release(reservation)

    def _plan(
        self,
        interaction: discord.Interaction,
        settings: GuildSettings,
        words: str,
        voice: str | None,
        seed: int | None,
        force_speaker: bool,
        names: text.Resolver,
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
            params=speech.settings(force_speaker),
            seed=seed,
        )

    async def _reply_with_file(
        self,
        interaction: discord.Interaction,
        request: speech.Request,
        settings: GuildSettings,
        reservation: Reservation,
    ) -> None:
        bot = bot_of(interaction)
        last_edit = 0.0

        async def progress(done: int, total: int) -> None:
            nonlocal last_edit
            if total > 1 and done < total and time.monotonic() - last_edit >= PROGRESS_EVERY_S:
                last_edit = time.monotonic()
                await interaction.edit_original_response(content=f"Speaking… {done}/{total}")

        result = await speech.speak(bot.store, bot.backend, request, progress=progress, record_usage=False)
        limit = interaction.filesize_limit
        caption = (
            f"🗣️ **{request.voice.name}** · {result.audio_seconds:.1f} s · seed {request.seed} · "
            "AI-generated (Echo-TTS, CC-BY-NC-SA-4.0)"
        )
        if settings.file_format == "ogg" and self._may_send_voice_message(interaction):
            message = await asyncio.to_thread(
                audio.voice_message, result.pcm, tags=speech.tags_for(result), limit_bytes=limit
            )
            async with upload_errors():
                await send_voice_message(interaction, message, f"{request.voice.name}.ogg")
            await bot.limits.settle(reservation, result.audio_seconds, gpu_seconds=result.gpu_seconds)
            await interaction.edit_original_response(content=caption)
            return
        fmt = settings.file_format
        data = await asyncio.to_thread(speech.render, result, fmt, limit)
        async with upload_errors():
            await interaction.edit_original_response(
                content=caption,
                attachments=[discord.File(io.BytesIO(data), filename=f"{request.voice.name}.{fmt}")],
            )
        await bot.limits.settle(reservation, result.audio_seconds, gpu_seconds=result.gpu_seconds)

    @staticmethod
    def _may_send_voice_message(interaction: discord.Interaction) -> bool:
        p = interaction.app_permissions
        return p.send_voice_messages and p.attach_files and p.send_messages

    async def _play(
        self,
        interaction: discord.Interaction,
        request: speech.Request,
        channel: discord.VoiceChannel,
        reservation: Reservation,
    ) -> None:
        from bot.playback import Ending, Outcome, QueueItem

        bot = bot_of(interaction)

        async def chunks():
            async for chunk in speech.stream(bot.store, bot.backend, request):
                yield chunk.audio

        announced = asyncio.Event()

        async def finished(outcome: Outcome) -> None:
            # Only what was really heard counts against the quota (nothing heard: no cooldown either).
            await bot.limits.settle(reservation, outcome.seconds)
            problem = None
            if outcome.ending == Ending.FAILED and outcome.error is not None:
                problem = replies.message_for(outcome.error)
            elif outcome.ending == Ending.DISCONNECTED:
                problem = "The voice connection dropped, so that was cut short. Try /say again."
            if problem:
                # After the "Speaking now…" notice, never before it, whatever the timing.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(announced.wait(), 10)
                await replies.tell(interaction, problem)

        title = request.chunks[0].removeprefix(text.SPEAKER_PREFIX)[:80]
        item = QueueItem(title=title, requester_id=request.user_id, chunks=chunks(), on_finish=finished)
        try:
            position = await enqueue_or_explain(bot, channel, item)
        except BaseException:
            bot.limits.release(reservation)
            raise
        where, name = channel.mention, request.voice.name
        await interaction.edit_original_response(
            content=f"🔊 Speaking now in {where} as **{name}**."
            if position == 0
            else f"🔊 Queued in {where} at position {position} as **{name}**."
        )
        announced.set()


async def enqueue_or_explain(bot: VoiceBot, channel: discord.VoiceChannel, item: QueueItem) -> int:
    """Join failures in words a member understands (discord.py speaks in exceptions)."""
    try:
        return await bot.playback.enqueue(channel, item)
    except (TimeoutError, discord.ClientException, discord.HTTPException) as exc:
        raise CannotJoinVoice(channel.mention) from exc


@contextlib.asynccontextmanager
async def upload_errors() -> AsyncIterator[None]:
    """Discord's refusal of a finished file, as a message that says nothing was charged."""
    try:
        yield
    except discord.HTTPException as exc:
        raise UploadFailed(exc.status) from exc


async def send_voice_message(
    interaction: discord.Interaction, message: audio.VoiceMessage, filename: str
) -> None:
    """discord.py 2.7 has no API for voice messages: post one to the channel over raw HTTP."""
    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=interaction.channel_id)
    payload = {
        "flags": 8192,  # IS_VOICE_MESSAGE
        "attachments": [
            {
                "id": "0",
                "filename": filename,
                "duration_secs": round(message.duration_s, 2),
                "waveform": message.waveform,
            }
        ],
    }
    form = [
        {"name": "payload_json", "value": json.dumps(payload)},
        {"name": "files[0]", "value": message.data, "filename": filename, "content_type": "audio/ogg"},
    ]
    await interaction.client.http.request(route, form=form, files=[])


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Say(bot))
