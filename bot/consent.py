"""The speaker's own consent: who must agree to a new voice, what they read, and checking their voice
message against the recording.

- A server's switch (`GuildSettings.speaker_consent`, on by default) decides whether voices need it.
- A member cloning their own voice from their own voice message is the speaker already: one step.
- Otherwise the voice is kept *pending* (stored, not usable) and its speaker is asked, in the channel, to
  reply with a voice message reading `consent_sentence` (it names the server and the bot). The engine side
  compares that voice with the recording's (`TTSBackend.speaker_similarity`, a speaker-verification
  model); at or above the threshold the voice becomes usable and the consent is the speaker's own.
- A request ends without consent when it expires, when the speaker declines, or after too many voice
  messages that don't match: the pending voice and its recording are deleted then, as nobody agreed to
  keep them.

Nothing here knows Discord; cogs/consent.py and cogs/clone.py carry it out there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bot import audio, audit
from bot.audio.clip import load_clip
from bot.errors import ConsentMessageTooShort, ConsentVoiceMismatch, ManyPendingConsents
from bot.store import GuildSettings, Voice, VoiceLibrary
from bot.store.consents import PendingConsent
from bot.tts import TTSBackend

log = logging.getLogger(__name__)

MIN_MESSAGE_S = 2.0  # the sentence takes longer than this to read


@dataclass(frozen=True)
class ConsentAsk:
    """What a pending voice's request asks: whose voice, what they read, for how long (counted from
    when the request is recorded, after the recording was checked and learnt)."""

    speaker_id: int
    sentence: str
    expires_in_s: float


def consent_sentence(bot_name: str, server_name: str) -> str:
    return f"I agree that {bot_name} may speak in my voice on {server_name}."


def needs_consent(settings: GuildSettings, *, own_voice_message: bool) -> bool:
    """Whether a new voice waits for its speaker. A member's own voice message, recorded live in the
    app, is their consent already."""
    return settings.speaker_consent and not own_voice_message


def ask(speaker_id: int, *, bot_name: str, server_name: str, expiry_hours: float) -> ConsentAsk:
    return ConsentAsk(speaker_id, consent_sentence(bot_name, server_name), expiry_hours * 3600)


def request_for(pending: Sequence[PendingConsent], reply_to: int | None) -> PendingConsent | None:
    """The request a speaker's message answers: the one it replies to; else their only one. Several and
    no reply: ManyPendingConsents (the speaker must say which)."""
    if reply_to is not None:
        for request in pending:
            if request.message_id == reply_to:
                return request
    if len(pending) == 1 and reply_to is None:
        return pending[0]
    if len(pending) > 1 and reply_to is None:
        raise ManyPendingConsents(len(pending))
    return None


@dataclass(frozen=True)
class Checked:
    """A consent voice message's outcome: `voice` is usable now (agreed), or the try was refused
    (`error`, with `closed` when it was the last try and the request is gone)."""

    similarity: float
    voice: Voice | None = None
    error: ConsentVoiceMismatch | None = None
    closed: bool = False


async def check_voice_message(
    store: VoiceLibrary,
    backend: TTSBackend,
    request: PendingConsent,
    data: bytes,
    *,
    max_bytes: int,
    threshold: float,
    tries: int,
) -> Checked:
    """Compare the speaker's voice message with the pending voice's recording and settle the request."""
    sample = await asyncio.to_thread(load_clip, data, max_bytes=max_bytes)
    seconds = sample.size / audio.SAMPLE_RATE
    if seconds < MIN_MESSAGE_S:
        raise ConsentMessageTooShort(seconds)
    voice = await store.aio.get_by_id(request.guild_id, request.voice_id)
    flac = await store.aio.read_reference(voice)
    reference = await asyncio.to_thread(load_clip, flac, max_bytes=len(flac) + 1)
    similarity = await backend.speaker_similarity(reference, sample)
    score = round(similarity, 3)
    guild, voice_id, speaker = request.guild_id, request.voice_id, request.speaker_id
    if similarity >= threshold:
        agreed = await store.aio.confirm_consent(request)
        audit.record(
            "consent_given",
            actor=speaker,
            guild=guild,
            voice=voice_id,
            similarity=score,
            by=request.requested_by,
        )
        return Checked(similarity, voice=agreed)
    used = await store.aio.consent_attempt(request.voice_id)
    closed = used >= tries
    audit.record(
        "consent_refused", actor=speaker, guild=guild, voice=voice_id, similarity=score, attempt=used
    )
    if closed:
        await withdraw(store, request, reason="tries")
    return Checked(
        similarity, error=ConsentVoiceMismatch(similarity, threshold, max(tries - used, 0)), closed=closed
    )


async def withdraw(store: VoiceLibrary, request: PendingConsent, *, reason: str) -> Voice | None:
    """End a request without consent ("expired", "declined", "tries"): its pending voice is deleted."""
    voice = await store.aio.withdraw_consent_request(request)
    event = "consent_expired" if reason == "expired" else "consent_refused"
    audit.record(
        event,
        actor=request.speaker_id if reason != "expired" else "expiry",
        guild=request.guild_id,
        voice=request.voice_id,
        reason=reason,
        deleted=voice is not None,
    )
    return voice
