"""Cloning a voice: an upload becomes a checked reference, a speaker latent and a library entry; and
re-encoding one: its kept reference becomes a new latent (after damage, or a model upgrade).

Shared by the CLI, the doctor and the Discord bot. Cheap checks come first (name, size, room in the
library) so a bad request is refused before any decoding or GPU time; CPU work runs in threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot import audio, audit
from bot.consent import ConsentAsk
from bot.errors import (
    BackendError,
    BackendFailed,
    BadReference,
    FileTooLarge,
    LibraryError,
    VoiceDeleted,
    VoiceNeedsRepair,
    VoiceNotFound,
)
from bot.store import Voice, VoiceLibrary, clean_name
from bot.store.files import DamagedLatent, check_latent
from bot.store.voice import new_voice_id
from bot.tts import SpeakerLatent, TTSBackend

log = logging.getLogger(__name__)
REPAIR_EVERY_S = 60.0  # how often the bot looks for voices found damaged since

# Steps a caller may show ("Checking the audio…"), in order.
Progress = Callable[[str], Awaitable[None] | None]


@dataclass(frozen=True)
class Cloned:
    voice: Voice
    format: str  # what the upload was, e.g. "ogg/opus"
    consent_until: float | None = None  # a pending voice: when its consent request ends


async def _report(progress: Progress | None, step: str) -> None:
    if progress is not None:
        result = progress(step)
        if asyncio.iscoroutine(result):
            await result


def check_upload(store: VoiceLibrary, guild_id: int, name: str, size: int, max_bytes: int) -> str:
    """Refuse before downloading: bad or taken name, full library, file over the size cap."""
    clean_name(name)
    if size > max_bytes:
        raise FileTooLarge(size, max_bytes)
    return store.check_can_add(guild_id, name)


async def clone_voice(
    store: VoiceLibrary,
    backend: TTSBackend,
    data: bytes,
    *,
    guild_id: int,
    name: str,
    owner_id: int,
    consent_by: int,
    source: str,
    max_bytes: int,
    progress: Progress | None = None,
    speaker_id: int | None = None,
    consent_ask: ConsentAsk | None = None,
) -> Cloned:
    name = await asyncio.to_thread(check_upload, store, guild_id, name, len(data), max_bytes)
    await _report(progress, "checking")
    reference = await asyncio.to_thread(audio.load_reference, data, max_bytes=max_bytes)
    await _report(progress, "encoding")
    return await clone_reference(
        store,
        backend,
        reference,
        guild_id=guild_id,
        name=name,
        owner_id=owner_id,
        consent_by=consent_by,
        source=source,
        speaker_id=speaker_id,
        consent_ask=consent_ask,
    )


async def clone_reference(
    store: VoiceLibrary,
    backend: TTSBackend,
    reference: audio.Reference,
    *,
    guild_id: int,
    name: str,
    owner_id: int,
    consent_by: int,
    source: str,
    speaker_id: int | None = None,
    consent_ask: ConsentAsk | None = None,
) -> Cloned:
    """The expensive half, for a reference already checked: encode, then add to the library.
    `speaker_id`: whose voice it is, where known (the author of a cloned voice message).
    `consent_ask`: the voice waits for its speaker's consent (bot.consent): it is kept pending, and its
    request is recorded first (a crash in between leaves a request that expires, never a voice that
    nobody asked about)."""
    name = await store.aio.check_can_add(guild_id, name)
    latent = usable(await backend.encode_speaker(reference.pcm))
    flac = await asyncio.to_thread(audio.encode, reference.pcm, "flac")
    voice_id = new_voice_id()
    request = None
    if consent_ask is not None:
        speaker_id = consent_ask.speaker_id
        request = await store.aio.request_consent(
            voice_id=voice_id,
            guild_id=guild_id,
            speaker_id=consent_ask.speaker_id,
            requested_by=owner_id,
            sentence=consent_ask.sentence,
            expires_at=time.time() + consent_ask.expires_in_s,
        )
    try:
        voice = await store.aio.add(
            guild_id,
            name,
            owner_id=owner_id,
            reference_flac=flac,
            latent=latent.data,
            duration_s=reference.duration_s,
            revision=latent.revision,
            consent_by=consent_by,
            source=source,
            speaker_id=speaker_id,
            voice_id=voice_id,
            pending=consent_ask is not None,
        )
    except BaseException:
        if consent_ask is not None:
            request = await store.aio.pending_consent(voice_id)
            if request is not None:
                await store.aio.withdraw_consent_request(request)
        raise
    audit.record(
        "clone",
        actor=owner_id,
        guild=guild_id,
        voice=voice.id,
        name=voice.name,
        speaker=speaker_id,
        consent_by=None if voice.pending else consent_by,
        source=source.split(":", 1)[0],
        pending=voice.pending,
    )
    return Cloned(voice, reference.format, request.expires_at if request else None)


def usable(latent: SpeakerLatent) -> SpeakerLatent:
    """The engine's latent, checked as the library checks what it loads: a bad one is the engine's
    failure, never written where it would fail every later request in that voice."""
    try:
        check_latent(latent.data)
    except DamagedLatent as exc:
        raise BackendFailed(f"the engine returned an unusable speaker latent: {exc}") from None
    return latent


async def reencode(store: VoiceLibrary, backend: TTSBackend, voice: Voice) -> Voice:
    """A new latent for `voice` from its kept reference recording. VoiceNeedsRepair if the reference
    is gone or no longer matches the hash taken when the voice was cloned; VoiceDeleted if the voice
    was deleted meanwhile."""
    flac = await store.aio.read_reference(voice)
    try:
        reference = await asyncio.to_thread(audio.load_reference, flac, max_bytes=len(flac))
    except BadReference:
        raise VoiceNeedsRepair(voice.name, voice.id, reference_kept=False) from None
    latent = usable(await backend.encode_speaker(reference.pcm))
    return await store.aio.replace_latent(voice, latent.data, latent.revision)


@dataclass
class Repairs:
    """One round of re-encoding: what was rebuilt, and what could not be, with why (for doctor)."""

    done: list[Voice] = field(default_factory=list)
    failed: list[tuple[Voice, str]] = field(default_factory=list)


async def reencode_pending(
    store: VoiceLibrary, backend: TTSBackend, *, skip: set[str] | None = None
) -> Repairs:
    """Re-encode every voice marked as needing it, one at a time, each on its own: a voice deleted
    meanwhile is passed over, one whose reference is gone too stays marked (doctor reports it) and
    joins `skip`, one that fails otherwise is reported and retried next round. A backend failure
    stops the round (every voice would meet it); the next round retries."""
    skip = set() if skip is None else skip
    repairs = Repairs()
    for voice in await store.aio.needing_reencode():
        if voice.id in skip:
            continue
        try:
            repairs.done.append(await reencode(store, backend, voice))
        except (VoiceDeleted, VoiceNotFound):
            log.info("Voice %s was deleted while it waited to be re-encoded", voice.id)
        except VoiceNeedsRepair as exc:
            log.warning("%s", exc.admin_message)
            skip.add(voice.id)
            repairs.failed.append((voice, "its reference recording is gone or damaged too"))
        except BackendError:
            raise
        except Exception as exc:  # this voice's files, not the repairer: log it and go on with the rest
            error = exc if isinstance(exc, LibraryError) else None
            why = error.admin_message if error else f"{type(exc).__name__}: {exc}"
            log.error("Re-encoding voice %s failed: %s", voice.id, why, exc_info=error is None)
            repairs.failed.append((voice, why))
    return repairs


async def keep_voices_encoded(
    store: VoiceLibrary, backend: TTSBackend, every_s: float = REPAIR_EVERY_S
) -> None:
    """The bot's background repairer: settle writes that died in another process (a CLI add killed
    mid-way), and re-encode voices found damaged, at start and every `every_s` seconds after (a voice
    is marked when loading its latent fails, in this process or another). Nothing but cancellation
    ends it: each round's trouble is logged and the next round tries again."""
    skip: set[str] = set()
    while True:
        try:
            await store.aio.settle_leftovers()
            for voice in (await reencode_pending(store, backend, skip=skip)).done:
                log.info("Re-encoded voice %s in guild %s from its reference", voice.id, voice.guild_id)
        except BackendError as exc:
            log.warning("Re-encoding waits for the speech backend: %s", exc.message)
        except LibraryError as exc:
            log.warning("Re-encoding paused: %s", exc.admin_message)
        except Exception:
            log.exception("The voice repairer's round failed; it tries again in %.0f s", every_s)
        await asyncio.sleep(every_s)
