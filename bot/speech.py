"""Saying text in a cloned voice: text → chunks → speech backend → one stitched, tagged file.

Shared by the CLI and the Discord cogs. The chunks stream from the backend in order, so a caller can
show progress (or play them) while later chunks are still being made.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from bot import audio, text
from bot.errors import (
    SilentSpeech,
    SpeakerLatentRejected,
    VoiceDeleted,
    VoiceNeedsRepair,
    VoiceNotFound,
    VoicePending,
)
from bot.store import Voice, VoiceLibrary
from bot.tts import EncodingBackend, SpeakerLatent, SpokenChunk, TTSBackend
from modal_tts.params import SynthesisParams
from modal_tts.wire import FileSpec, Progress

# Called after each chunk: (chunks done, chunks in all).
ChunkProgress = Callable[[int, int], Awaitable[None] | None]

SILENCE_PEAK = 1e-4
FORCE_SPEAKER_SCALE = 1.5  # Echo's suggested "force speaker" strength
LIVE_PLAN, FILE_PLAN = "low-latency", "whole"


@dataclass(frozen=True)
class Request:
    guild_id: int
    user_id: int
    voice: Voice
    chunks: list[str]
    params: SynthesisParams
    seed: int
    # the voice's latent as planning loaded it, for a caller that speaks at once (`stream(fresh=True)`)
    latent: np.ndarray | None = field(default=None, compare=False, repr=False)


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


def settings(force_speaker: bool = False, *, live: bool = False) -> SynthesisParams:
    """The sampler settings of a request. Live speech (voice channels, auto-read) is sampled in the
    low-latency block plan, so it starts after a 1.5 s block; files in the whole plan, which a file
    loses nothing by (it waits for the whole text) — see docs/PERFORMANCE.md, "Block plans"."""
    return SynthesisParams(
        speaker_kv_scale=FORCE_SPEAKER_SCALE if force_speaker else None,
        block_plan=LIVE_PLAN if live else FILE_PLAN,
    )


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
    keep_latent: bool = False,
) -> Request:
    """Everything checked before any GPU time: the text (with this guild's pronunciation dictionary),
    then the voice in this guild, and that its latent is whole (a damaged one is marked for re-encoding
    and refused here, before it is queued, never sent to share a GPU batch with other servers' speech)."""
    chunks = text.prepare(words, resolve=resolve, max_chars=max_chars, dictionary=store.dictionary(guild_id))
    voice = store.get(guild_id, voice_name)
    if voice.pending:
        raise VoicePending(voice.name, store.pending_speaker(voice.id))
    latent = store.load_latent(voice)
    seed = new_seed() if seed is None else seed
    # kept only when asked: queued /say requests would otherwise each hold up to a megabyte
    kept = latent if keep_latent else None
    return Request(guild_id, user_id, voice, chunks, params or settings(), seed, kept)


async def stream(
    store: VoiceLibrary, backend: TTSBackend, request: Request, *, live: bool = False, fresh: bool = False
) -> AsyncIterator[SpokenChunk]:
    """The request's speech as it is made, piece by piece (a chunk, or a block of one); `live` asks an
    encoding backend for Opus packets instead of PCM. The voice is looked up again first: a queued
    request may come up after its voice was deleted. `fresh`: the request was planned just now (the
    HTTP API speaks as soon as it plans), so the latent planning loaded is used as it is."""
    if fresh and request.latent is not None:
        speaker = SpeakerLatent(request.latent, request.voice.revision)
    else:
        speaker = await _speaker(store, request.voice)
    peak = 0.0  # of the chunk so far: a quiet first block is a lead-in, a quiet chunk is a failure
    speak = backend.speak_live if live and isinstance(backend, EncodingBackend) else backend.synthesize
    async with _rejected_voice(store, request.voice):
        async for chunk in speak(request.chunks, speaker, request.params, request.seed):
            peak = max(peak, chunk.loudest)
            if chunk.last:
                if peak < SILENCE_PEAK:
                    raise SilentSpeech()
                peak = 0.0
            yield chunk


@dataclass(frozen=True)
class SpokenFile:
    request: Request
    file: audio.VoiceMessage | bytes
    audio_seconds: float
    gpu_seconds: float


async def speak_to_file(
    store: VoiceLibrary,
    backend: EncodingBackend,
    request: Request,
    *,
    file_format: str,
    limit_bytes: int | None,
    voice_message: bool,
    progress: ChunkProgress | None = None,
) -> SpokenFile:
    """The request as a finished file made on the engine side (a Modal backend): stitched, levelled,
    encoded and tagged there, as `speak` + `render` would here. Usage is left to the caller to settle."""
    speaker = await _speaker(store, request.voice)
    tags = tags_of(request)
    spec = FileSpec(file_format, tags.title, tags.voice, limit_bytes, voice_message)
    async with _rejected_voice(store, request.voice):
        async for reply in backend.speak_file(request.chunks, speaker, request.params, request.seed, spec):
            if isinstance(reply, Progress):
                if reply.peak < SILENCE_PEAK:
                    raise SilentSpeech()
                if progress is not None:
                    result = progress(reply.done, reply.total)
                    if asyncio.iscoroutine(result):
                        await result
                continue
            made: audio.VoiceMessage | bytes = reply.data
            if voice_message:
                made = audio.VoiceMessage(reply.data, reply.seconds, reply.waveform or "")
            return SpokenFile(request, made, reply.seconds, reply.gpu_seconds)
    raise AssertionError("a EncodingBackend ends with the file or raises")


async def _speaker(store: VoiceLibrary, voice: Voice) -> SpeakerLatent:
    return SpeakerLatent(await asyncio.to_thread(_latent_of_existing, store, voice), voice.revision)


@contextlib.asynccontextmanager
async def _rejected_voice(store: VoiceLibrary, voice: Voice) -> AsyncIterator[None]:
    """The engine judged the voice's latent unusable (its check may be stricter than the library's): it
    is rebuilt from the recording by the repairer, and said as the library says it."""
    try:
        yield
    except SpeakerLatentRejected:
        await store.aio.mark_needs_reencode(voice)
        raise VoiceNeedsRepair(voice.name, voice.id, reference_kept=True) from None


def _latent_of_existing(store: VoiceLibrary, voice: Voice) -> np.ndarray:
    try:
        store.get_by_id(voice.guild_id, voice.id)
    except VoiceNotFound:
        raise VoiceDeleted(voice.name) from None
    return store.load_latent(voice)


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
    chunks: list[np.ndarray] = []
    blocks: list[np.ndarray] = []
    gpu_seconds = 0.0
    async for piece in stream(store, backend, request):
        blocks.append(piece.audio)
        gpu_seconds += piece.gpu_seconds
        if not piece.last:
            continue
        chunks.append(np.concatenate(blocks) if len(blocks) > 1 else blocks[0])
        blocks = []
        if progress is not None:
            result = progress(len(chunks), len(request.chunks))
            if asyncio.iscoroutine(result):
                await result
    pcm = await asyncio.to_thread(audio.stitch, chunks)
    seconds = audio.duration_seconds(pcm)
    if record_usage:
        await store.aio.record_usage(
            request.guild_id,
            request.user_id,
            kind="say",
            audio_seconds=seconds,
            gpu_seconds=gpu_seconds,
            voice_id=request.voice.id,
        )
    return Speech(request, pcm, seconds, gpu_seconds)


def tags_for(speech: Speech) -> audio.Tags:
    return tags_of(speech.request)


def tags_of(request: Request) -> audio.Tags:
    first = request.chunks[0].removeprefix(text.SPEAKER_PREFIX)
    title = first if len(first) <= 60 else first[:57].rstrip() + "…"
    return audio.Tags(title=title, voice=request.voice.name)


def render(speech: Speech, fmt: str, limit_bytes: int | None = None) -> bytes:
    """The file to hand over: tagged, and within `limit_bytes` (lower bitrate rather than fail)."""
    tags = tags_for(speech)
    if limit_bytes is None:
        return audio.encode(speech.pcm, fmt, tags=tags)
    return audio.fit_to_limit(speech.pcm, fmt, limit_bytes, tags)
