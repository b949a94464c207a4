"""Handing finished or streaming speech to Discord: a file reply (a voice message where the bot may
post one) or live speech in a voice channel.

Shared by /say, Speak message and auto-read: callers parse options, choose how to deliver, plan the
`speech.Request` and reserve its `Reservation`; the functions here do the rest. Each owns the
reservation from the call on: it is settled with the seconds that reached members (a file Discord
accepted, audio that was heard) or released when nothing did, so a failure charges nothing.

- `reply_with_file(bot, interaction, request, reservation, file_format=...)`: answers a deferred
  interaction, with "Speaking… n/N" progress edits (at most one a second) while chunks arrive.
- `speak_live(bot, request, reservation, channel, answer) -> Queued`: queues the speech in a voice channel;
  `answer` says where the queue notice and a later failure go (an interaction, or only a callback
  for auto-read, which has no interaction to answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord
import numpy as np

from bot import audio, replies, speech, text
from bot.errors import CannotJoinVoice, UploadFailed
from bot.limits import Reservation
from bot.playback import Ending, Outcome, Packets, QueueItem, VoiceChannel
from bot.tts import EncodingBackend

if TYPE_CHECKING:
    from bot.client import VoiceBot

PROGRESS_EVERY_S = 1.0  # Discord rate-limits edits; once a second reads as live
NOTICE_WAIT_S = 10.0  # a failure report waits this long at most for the queue notice it follows
IS_VOICE_MESSAGE = 8192  # message flag

Say = Callable[[str], Awaitable[object]]


@dataclass(frozen=True)
class Answer:
    """Where live speech reports back to whoever asked for it.

    `announce` shows the queue notice ("Speaking now in …"); `on_problem` tells of a failure that
    came after it (always after the notice, whatever the timing). Auto-read has no interaction:
    it gives only `on_problem`.
    """

    on_problem: Say
    announce: Say | None = None
    on_end: Callable[[Outcome], object] | None = None  # after the item ended, however it ended

    @classmethod
    def to(cls, interaction: discord.Interaction) -> Answer:
        """The notice replaces the deferred (private) reply; problems are told privately."""
        return cls(
            on_problem=lambda message: replies.tell(interaction, message),
            announce=lambda notice: interaction.edit_original_response(content=notice),
        )


# --- files ------------------------------------------------------------------------------------


async def reply_with_file(
    bot: VoiceBot,
    interaction: discord.Interaction,
    request: speech.Request,
    reservation: Reservation,
    *,
    file_format: str,
) -> None:
    """Speak `request` into a file and answer the deferred `interaction` with it: a voice message
    when `file_format` is "ogg" and the bot may post one here, else an attachment; always within
    `interaction.filesize_limit`. Settles `reservation` once Discord took the file."""
    try:
        as_voice_message = file_format == "ogg" and may_send_voice_message(interaction)
        done = await _speak_and_encode(bot, interaction, request, file_format, as_voice_message)
        caption = (
            f"🗣️ **{request.voice.name}** · {done.audio_seconds:.1f} s · seed {request.seed} · "
            "AI-generated (Echo-TTS, CC-BY-NC-SA-4.0)"
        )
        if isinstance(done.file, audio.VoiceMessage):
            async with upload_errors():
                await send_voice_message(
                    interaction.client.http, interaction.channel_id, done.file, f"{request.voice.name}.ogg"
                )
            await bot.limits.settle(reservation, done.audio_seconds, gpu_seconds=done.gpu_seconds)
            await interaction.edit_original_response(content=caption)
            return
        async with upload_errors():
            await interaction.edit_original_response(
                content=caption,
                attachments=[
                    discord.File(io.BytesIO(done.file), filename=f"{request.voice.name}.{file_format}")
                ],
            )
        await bot.limits.settle(reservation, done.audio_seconds, gpu_seconds=done.gpu_seconds)
    finally:
        bot.limits.release(reservation)  # a no-op once settled; anything that failed first charges nothing


@dataclass(frozen=True)
class _Encoded:
    file: audio.VoiceMessage | bytes
    audio_seconds: float
    gpu_seconds: float


async def _speak_and_encode(
    bot: VoiceBot,
    interaction: discord.Interaction,
    request: speech.Request,
    file_format: str,
    as_voice_message: bool,
) -> _Encoded:
    """The finished file: made on the engine side when the backend can (Modal), else here, the speech
    itself held (within the encoder's allowance) only until it is encoded."""
    if isinstance(bot.backend, EncodingBackend):
        made = await speech.speak_to_file(
            bot.store,
            bot.backend,
            request,
            file_format=file_format,
            limit_bytes=interaction.filesize_limit,
            voice_message=as_voice_message,
            progress=_progress_edits(interaction),
        )
        return _Encoded(made.file, made.audio_seconds, made.gpu_seconds)
    estimate = sum(text.estimate_seconds(chunk) for chunk in request.chunks)
    async with bot.encoder.holding(estimate, guild_id=request.guild_id, user_id=request.user_id):
        progress = _progress_edits(interaction)
        result = await speech.speak(bot.store, bot.backend, request, progress=progress, record_usage=False)
        limit, tags = interaction.filesize_limit, speech.tags_for(result)
        file: audio.VoiceMessage | bytes
        if as_voice_message:
            file = await bot.encoder.voice_message(result.pcm, tags=tags, limit_bytes=limit)
        else:
            file = await bot.encoder.file(result.pcm, file_format, limit, tags)
        return _Encoded(file, result.audio_seconds, result.gpu_seconds)


def _progress_edits(interaction: discord.Interaction) -> speech.ChunkProgress:
    """Progress as "Speaking… n/N" edits of the deferred reply, at most one a second."""
    last_edit = 0.0

    async def progress(done: int, total: int) -> None:
        nonlocal last_edit
        if total > 1 and done < total and time.monotonic() - last_edit >= PROGRESS_EVERY_S:
            last_edit = time.monotonic()
            await interaction.edit_original_response(content=f"Speaking… {done}/{total}")

    return progress


def may_send_voice_message(interaction: discord.Interaction) -> bool:
    p = interaction.app_permissions
    return p.send_voice_messages and p.attach_files and p.send_messages


@contextlib.asynccontextmanager
async def upload_errors() -> AsyncIterator[None]:
    """Discord's refusal of a finished file, as a message that says nothing was charged."""
    try:
        yield
    except discord.HTTPException as exc:
        raise UploadFailed(exc.status) from exc


async def send_voice_message(
    http: discord.http.HTTPClient, channel_id: int | None, message: audio.VoiceMessage, filename: str
) -> None:
    """discord.py 2.7 has no API for voice messages: post one to the channel over raw HTTP."""
    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=channel_id)
    payload = {
        "flags": IS_VOICE_MESSAGE,
        "attachments": [
            {
                "id": "0",
                "filename": filename,
                "duration_secs": round(message.duration_s, 2),
                "waveform": message.waveform,
            }
        ],
    }
    form: list[dict[str, Any]] = [
        {"name": "payload_json", "value": json.dumps(payload)},
        {"name": "files[0]", "value": message.data, "filename": filename, "content_type": "audio/ogg"},
    ]
    await http.request(route, form=form, files=[])


# --- live voice -------------------------------------------------------------------------------


async def speak_live(
    bot: VoiceBot,
    request: speech.Request,
    reservation: Reservation,
    channel: VoiceChannel,
    answer: Answer,
    *,
    may_hear: Callable[[discord.Member], bool] | None = None,
) -> Queued:
    """Queue `request` to be spoken in `channel`; returns its place (0 = speaking now) and the queue
    item (which `bot.playback.withdraw` can take back before it is spoken).

    Playback starts on the first chunk. When the item ends, `reservation` is settled with the
    seconds really heard (nothing heard: nothing charged, no cooldown), and a failure or a dropped
    connection is told through `answer.on_problem`. A join that fails raises `CannotJoinVoice`
    and releases `reservation`. `may_hear` is checked for every listener as it starts and for anyone who
    joins while it plays (`QueueItem.may_hear`).
    """
    announced = asyncio.Event()

    async def finished(outcome: Outcome) -> None:
        if answer.on_end is not None:
            answer.on_end(outcome)
        await bot.limits.settle(reservation, outcome.seconds)
        problem = live_problem(outcome)
        if problem:
            if answer.announce is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(announced.wait(), NOTICE_WAIT_S)
            await answer.on_problem(problem)

    title = request.chunks[0].removeprefix(text.SPEAKER_PREFIX)[:80]
    item = QueueItem(
        title=title,
        requester_id=request.user_id,
        chunks=_audio_of(bot, request),
        on_finish=finished,
        may_hear=may_hear,
    )
    try:
        position = await enqueue_or_explain(bot, channel, item)
    except BaseException:
        bot.limits.release(reservation)
        raise
    if answer.announce is not None:
        try:
            await answer.announce(queue_notice(position, channel.mention, request.voice.name))
        finally:
            announced.set()
    return Queued(position, item)


@dataclass(frozen=True)
class Queued:
    position: int  # 0: speaking now
    item: QueueItem


async def _audio_of(bot: VoiceBot, request: speech.Request) -> AsyncIterator[np.ndarray | Packets]:
    """What the voice channel plays: PCM pieces, or Opus packets the engine side encoded."""
    async for chunk in speech.stream(bot.store, bot.backend, request, live=True):
        yield chunk.audio if chunk.packets is None else Packets(chunk.packets)


def queue_notice(position: int, where: str, voice: str) -> str:
    if position == 0:
        return f"🔊 Speaking now in {where} as **{voice}**."
    return f"🔊 Queued in {where} at position {position} as **{voice}**."


def live_problem(outcome: Outcome) -> str | None:
    """What to tell whoever asked when live speech ended badly, or None when it went well."""
    if outcome.ending == Ending.FAILED and outcome.error is not None:
        return replies.message_for(outcome.error)
    if outcome.ending == Ending.DISCONNECTED:
        return "The voice connection dropped, so that was cut short. Try /say again."
    if outcome.ending == Ending.WITHHELD:
        return (
            "I didn't say that (or stopped): someone in the voice channel can't see a channel it names. "
            "Nothing was charged for what wasn't heard."
        )
    return None


async def enqueue_or_explain(bot: VoiceBot, channel: VoiceChannel, item: QueueItem) -> int:
    """Join failures in words a member understands (discord.py speaks in exceptions)."""
    try:
        return await bot.playback.enqueue(channel, item)
    except (TimeoutError, discord.ClientException, discord.HTTPException) as exc:
        raise CannotJoinVoice(channel.mention) from exc
