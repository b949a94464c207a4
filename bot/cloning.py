"""Cloning a voice: an upload becomes a checked reference, a speaker latent and a library entry.

Shared by the CLI and the Discord cogs. Cheap checks come first (name, size, room in the library) so a
bad request is refused before any decoding or GPU time; CPU work runs in threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot import audio
from bot.errors import FileTooLarge
from bot.store import Voice, VoiceStore, clean_name
from bot.tts import TTSBackend

# Steps a caller may show ("Checking the audio…"), in order.
Progress = Callable[[str], Awaitable[None] | None]


@dataclass(frozen=True)
class Cloned:
    voice: Voice
    format: str  # what the upload was, e.g. "ogg/opus"


async def _report(progress: Progress | None, step: str) -> None:
    if progress is not None:
        result = progress(step)
        if asyncio.iscoroutine(result):
            await result


def check_upload(store: VoiceStore, guild_id: int, name: str, size: int, max_bytes: int) -> str:
    """Refuse before downloading: bad or taken name, full library, file over the size cap."""
    clean_name(name)
    if size > max_bytes:
        raise FileTooLarge(size, max_bytes)
    return store.check_can_add(guild_id, name)


async def clone_voice(
    store: VoiceStore,
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
    )


async def clone_reference(
    store: VoiceStore,
    backend: TTSBackend,
    reference: audio.Reference,
    *,
    guild_id: int,
    name: str,
    owner_id: int,
    consent_by: int,
    source: str,
) -> Cloned:
    """The expensive half, for a reference already checked: encode, then add to the library."""
    name = await asyncio.to_thread(store.check_can_add, guild_id, name)
    latent = await backend.encode_speaker(reference.pcm)
    flac = await asyncio.to_thread(audio.encode, reference.pcm, "flac")
    voice = await asyncio.to_thread(
        store.add,
        guild_id,
        name,
        owner_id=owner_id,
        reference_flac=flac,
        latent=latent.data,
        duration_s=reference.duration_s,
        revision=latent.revision,
        consent_by=consent_by,
        source=source,
    )
    return Cloned(voice, reference.format)
