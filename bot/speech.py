"""Saying text in a cloned voice: text → chunks → speech backend → one stitched, tagged file.

Shared by the CLI and the Discord cogs. The chunks stream from the backend in order, so a caller can
show progress (or play them) while later chunks are still being made.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from bot import audio, text
from bot.errors import SilentSpeech, SpeakerLatentRejected, VoiceDeleted, VoiceNeedsRepair, VoiceNotFound
from bot.store import Voice, VoiceLibrary
from bot.tts import SpeakerLatent, SpokenChunk, TTSBackend
from modal_tts.params import SynthesisParams

# Called after each chunk: (chunks done, chunks in all).
ChunkProgress = Callable[[int, int], Awaitable[None] | None]

SILENCE_PEAK = 1e-4
FORCE_SPEAKER_SCALE = 1.5  # Echo's suggested "force speaker" strength


@dataclass(frozen=True)
class Request:
    guild_id: int
    user_id: int
    voice: Voice
    chunks: list[str]
    params: SynthesisParams
    seed: int


@dataclass(frozen=True)
class Speech:
    request: Request
    pcm: np.ndarray  # float32 mono 44.1 kHz, stitched and levelled
    audio_seconds: float
    gpu_seconds: float


def longest_seconds(request: Request) -> float:
    """The most speech `request` can deliver (each chunk's largest window, plus the pauses and edges
    `audio.stitch` may pad with): what a quota reserves, so requests that each say a word can't
    together overrun it (a chunk's audio can be as long as its window, many times the text's estimate)."""
    padding = audio.PAUSE_S * (len(request.chunks) - 1) + 2 * audio.EDGE_PAD_S
    return sum(text.longest_seconds(chunk) for chunk in request.chunks) + padding


def new_seed() -> int:
    return secrets.randbelow(2**31)


def settings(force_speaker: bool = False) -> SynthesisParams:
    return SynthesisParams(speaker_kv_scale=FORCE_SPEAKER_SCALE if force_speaker else None)


def plan(
    store: VoiceLibrary,
    *,
    guild_id: int,
    user_id: int,
    voice_name: str,
    words: str,
    max_chars: int,
    resolve: text.Resolver | None = None,
    params: SynthesisParams | None = None,
    seed: int | None = None,
) -> Request:
    """Everything checked before any GPU time: the text (with this guild's pronunciation dictionary),
    then the voice in this guild, and that its latent is whole (a damaged one is marked for re-encoding
    and refused here, before it is queued, never sent to share a GPU batch with other servers' speech)."""
    chunks = text.prepare(words, resolve=resolve, max_chars=max_chars, dictionary=store.dictionary(guild_id))
    voice = store.get(guild_id, voice_name)
    store.load_latent(voice)
    seed = new_seed() if seed is None else seed
    return Request(guild_id, user_id, voice, chunks, params or settings(), seed)


async def stream(store: VoiceLibrary, backend: TTSBackend, request: Request) -> AsyncIterator[SpokenChunk]:
    """The request's chunks as they are made. The voice is looked up again first: a queued request may
    come up after its voice was deleted."""
    voice = request.voice
    speaker = SpeakerLatent(await asyncio.to_thread(_latent_of_existing, store, voice), voice.revision)
    try:
        async for chunk in backend.synthesize(request.chunks, speaker, request.params, request.seed):
            if is_silent(chunk.audio):
                raise SilentSpeech()
            yield chunk
    except SpeakerLatentRejected:
        # The engine judged the voice's latent unusable (its check may be stricter than the library's):
        # rebuilt from the recording by the repairer, and said as the library says it.
        await store.aio.mark_needs_reencode(voice)
        raise VoiceNeedsRepair(voice.name, voice.id, reference_kept=True) from None


def _latent_of_existing(store: VoiceLibrary, voice: Voice) -> np.ndarray:
    try:
        store.get_by_id(voice.guild_id, voice.id)
    except VoiceNotFound:
        raise VoiceDeleted(voice.name) from None
    return store.load_latent(voice)


def is_silent(pcm: np.ndarray) -> bool:
    """No chunk of real speech is this quiet throughout (below -80 dBFS), or empty."""
    return pcm.size == 0 or float(np.max(np.abs(pcm))) < SILENCE_PEAK


async def speak(
    store: VoiceLibrary,
    backend: TTSBackend,
    request: Request,
    *,
    progress: ChunkProgress | None = None,
    record_usage: bool = True,
) -> Speech:
    """All chunks, stitched. `record_usage=False` leaves charging to a caller that settles only what it
    delivered (the Discord side, through `bot.limits`)."""
    pieces: list[np.ndarray] = []
    gpu_seconds = 0.0
    async for chunk in stream(store, backend, request):
        pieces.append(chunk.audio)
        gpu_seconds += chunk.gpu_seconds
        if progress is not None:
            result = progress(len(pieces), len(request.chunks))
            if asyncio.iscoroutine(result):
                await result
    pcm = await asyncio.to_thread(audio.stitch, pieces)
    seconds = audio.duration_seconds(pcm)
    if record_usage:
        await store.aio.record_usage(
            request.guild_id,
            request.user_id,
            kind="say",
            audio_seconds=seconds,
            gpu_seconds=gpu_seconds,
        )
    return Speech(request, pcm, seconds, gpu_seconds)


def tags_for(speech: Speech) -> audio.Tags:
    first = speech.request.chunks[0].removeprefix(text.SPEAKER_PREFIX)
    title = first if len(first) <= 60 else first[:57].rstrip() + "…"
    return audio.Tags(title=title, voice=speech.request.voice.name)


def render(speech: Speech, fmt: str, limit_bytes: int | None = None) -> bytes:
    """The file to hand over: tagged, and within `limit_bytes` (lower bitrate rather than fail)."""
    tags = tags_for(speech)
    if limit_bytes is None:
        return audio.encode(speech.pcm, fmt, tags=tags)
    return audio.fit_to_limit(speech.pcm, fmt, limit_bytes, tags)
