"""What the HTTP API does, without HTTP: speech and voices for one API key, on the bot's own services.

The API shares everything that decides what a member may do with the bot: the library (voices,
settings, API keys), `bot.limits` (the quota and cooldown, held in the library, so an API process and
the bot processes see one truth), `bot.speech` (the same text preparation and chunking as /say) and
the speech backend (the same Modal app, and so the same batching scheduler, as every other caller).

A key acts as the member who made it, in the server it was made in: its speech is charged to that
member and that server, under the same cooldown and daily quota as their /say. Keys are made only by
members with Manage Server (or the operator, from the terminal), and a key may do what they may do in
Discord: delete any voice of its server.

Speech streams: `start_speech` does everything that can be refused with a status (the voice, the text,
the limits, and the engine's first block), so the HTTP side answers an error before any audio, and
only a failure after the first bytes ends a response early.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bot import audit, cloning, speech, text
from bot.api.errors import ApiError
from bot.api.request import MAX_INPUT_CHARS, SpeechAsk
from bot.config import Config
from bot.errors import VoiceBotError
from bot.limits import Limits, Reservation
from bot.store import GuildSettings, Voice, VoiceLibrary
from bot.store.api_keys import ApiKey
from bot.tts import SpokenChunk, TTSBackend
from modal_tts.output.stream import StreamEncoder

log = logging.getLogger(__name__)

LATENTS_PER_SECOND = 21.5  # Echo's latent frames per second of speech: its "output tokens"
USED_EVERY_S = 60.0  # a key's "last used" is written at most this often
SLICE_SAMPLES = 11025  # 0.25 s at 44.1 kHz: what is encoded and sent at a time
KEY_RECHECK_S = 5.0  # an accepted key is looked up again after this long


@dataclass
class Usage:
    """What a response delivered, for its `speech.audio.done` event and the quota: Echo reads UTF-8
    bytes (its input tokens) and speaks 21.5 latent frames a second (its output tokens)."""

    input_tokens: int
    output_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        total = self.input_tokens + self.output_tokens
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "total_tokens": total}


@dataclass(eq=False)
class SpeechStream:
    """A started response: its first piece is made; iterate for the encoded bytes, in order."""

    service: ApiService
    request: speech.Request
    reservation: Reservation
    pieces: AsyncIterator[SpokenChunk]
    first: SpokenChunk
    encoder: StreamEncoder
    usage: Usage
    sent_samples: int = 0
    gpu_seconds: float = 0.0
    _closed: bool = field(default=False, repr=False)

    async def audio(self) -> AsyncIterator[bytes]:
        """The response's bytes as each piece is encoded. The caller `close`s the stream once its
        response has ended (settling it then, so the library's write doesn't hold back the end of the
        response), and whatever happens; a stream abandoned part way is closed here too."""
        try:
            piece: SpokenChunk | None = self.first
            while piece is not None:
                self.gpu_seconds += piece.gpu_seconds
                # A piece is a block of speech (1.5 s to 6 s): encoded and sent a slice at a time, so its
                # first words leave after a slice's encoding, not the whole block's.
                for start in range(0, piece.audio.size, SLICE_SAMPLES):
                    part = piece.audio[start : start + SLICE_SAMPLES]
                    data = await asyncio.to_thread(self.encoder.feed, part)
                    self.sent_samples += part.size
                    if data:
                        yield data
                piece = await anext(self.pieces, None)
            tail = await asyncio.to_thread(self.encoder.close)
            self.usage.output_tokens = round(self.seconds * LATENTS_PER_SECOND)
            if tail:
                yield tail
        except BaseException:
            await self.close()
            raise

    @property
    def seconds(self) -> float:
        return self.sent_samples / speech.audio.SAMPLE_RATE

    async def close(self) -> None:
        """Stop the engine's work on it if any is left, and charge what reached the encoder (as a /say
        heard in part is charged for what was heard). Once; safe to call again."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await self.pieces.aclose()  # type: ignore[attr-defined]
        self.usage.output_tokens = round(self.seconds * LATENTS_PER_SECOND)
        await self.service.limits.settle(self.reservation, self.seconds, gpu_seconds=self.gpu_seconds)


class ApiService:
    def __init__(self, store: VoiceLibrary, backend: TTSBackend, limits: Limits, config: Config) -> None:
        self.store, self.backend, self.limits, self.config = store, backend, limits, config
        self._used: dict[str, float] = {}  # key id → when its use was last written
        # sha256 of a key → the key and when the library last accepted it (never the key itself)
        self._accepted: dict[bytes, tuple[ApiKey, float]] = {}

    async def key_for(self, secret: str) -> ApiKey | None:
        """The key `secret` is, or None. An accepted key is asked for again only after KEY_RECHECK_S, so
        a burst of requests doesn't queue for the library; a revoked key stops working within that."""
        digest = hashlib.sha256(secret.encode("utf-8", "replace")).digest()
        now = time.monotonic()
        known = self._accepted.get(digest)
        if known is not None and now - known[1] < KEY_RECHECK_S:
            return known[0]
        key = await self.store.aio.api_key_for(secret)
        if key is None:
            self._accepted.pop(digest, None)
        else:
            if len(self._accepted) > 1024:  # keys of this process's recent requests, not every key ever
                self._accepted.clear()
            self._accepted[digest] = (key, now)
            wall = time.time()  # "last used" is a date; the recheck above runs on the monotonic clock
            if wall - self._used.get(key.id, 0.0) >= USED_EVERY_S:
                self._used[key.id] = wall
                with contextlib.suppress(VoiceBotError):  # a busy library never refuses a good key
                    await self.store.aio.api_key_used(key.id, wall)
        return key

    # speech

    def _plan(self, key: ApiKey, ask: SpeechAsk) -> tuple[GuildSettings, speech.Request, StreamEncoder]:
        """The server's settings, the planned request and its encoder (opening a codec is not for the
        event loop), in one trip to a worker thread (under a burst, each trip waits for a free worker)."""
        settings = self.store.settings(key.guild_id)
        # OpenAI's limit, or the server's own lower one (/settings max_text_chars)
        max_chars = min(settings.max_text_chars or MAX_INPUT_CHARS, MAX_INPUT_CHARS)
        request = speech.plan(
            self.store,
            guild_id=key.guild_id,
            user_id=key.created_by,
            voice_name=ask.voice,
            words=ask.input,
            max_chars=max_chars,
            params=speech.settings(bool(ask.force_speaker), live=True),
            seed=ask.seed,
            keep_latent=True,  # spoken at once: `stream(fresh=True)` uses it
        )
        encoder = StreamEncoder(ask.response_format, tags=speech.tags_of(request), speed=ask.speed)
        return settings, request, encoder

    async def start_speech(self, key: ApiKey, ask: SpeechAsk) -> SpeechStream:
        """Everything that may refuse the request, then the engine's first piece (sampled in the
        low-latency block plan, as live voice is, so the first bytes leave after its first block)."""
        settings, request, encoder = await asyncio.to_thread(self._plan, key, ask)
        reservation = await self.limits.reserve(
            settings, key.created_by, speech.longest_seconds(request), voice_id=request.voice.id
        )
        pieces = speech.stream(self.store, self.backend, request, fresh=True)
        try:
            first = await anext(pieces)
        except BaseException:
            self.limits.release(reservation)
            with contextlib.suppress(Exception):
                await pieces.aclose()  # type: ignore[attr-defined]
            raise
        usage = Usage(sum(len(chunk.removeprefix(text.SPEAKER_PREFIX).encode()) for chunk in request.chunks))
        return SpeechStream(self, request, reservation, pieces, first, encoder, usage)

    # voices

    async def voices(self, key: ApiKey) -> list[Voice]:
        return await self.store.aio.list(key.guild_id)

    async def clone(self, key: ApiKey, name: str, data: bytes, *, consent: bool) -> Voice:
        """`/clone`'s rules: the holder confirms the speaker's permission; a server that asks every
        speaker to confirm with their own voice message (the default) takes new voices in Discord only,
        where the speaker can send it."""
        if not consent:
            raise ApiError(
                400,
                "consent must be true: confirm that the speaker gave permission to clone their voice.",
                param="consent",
                code="consent_required",
            )
        settings = await self.store.aio.settings(key.guild_id)
        if settings.speaker_consent:
            raise ApiError(
                403,
                "This server asks every speaker to confirm with their own voice message, which only "
                "Discord can take: clone this voice with /clone there. (An admin can turn that off with "
                "/settings speaker_consent.)",
                type="permission_error",
                param="audio_sample",
                code="speaker_consent_required",
            )
        cloned = await cloning.clone_voice(
            self.store,
            self.backend,
            data,
            guild_id=key.guild_id,
            name=name,
            owner_id=key.created_by,
            consent_by=key.created_by,
            source=f"api:{key.id}",
            max_bytes=self.config.max_reference_bytes,
        )
        return cloned.voice

    async def delete(self, key: ApiKey, voice_id: str) -> Voice:
        voice = await self.store.aio.get_by_id(key.guild_id, voice_id)
        deleted = await self.store.aio.delete(key.guild_id, voice.name)
        audit.record(
            "delete", actor=key.created_by, guild=key.guild_id, voice=voice.id, name=voice.name, key=key.id
        )
        return deleted
