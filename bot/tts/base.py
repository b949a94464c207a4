"""The one async interface every speech backend offers the bot, and the values that cross it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from bot.errors import BackendInvalidRequest, SpeakerLatentRejected
from modal_tts.params import InvalidLatent, SynthesisParams, check_latent, check_seed, check_texts
from modal_tts.wire import FileSpec, Progress


@dataclass(frozen=True)
class SpeakerLatent:
    """A cloned voice as the model sees it: float16 [T, 80], and the weights revision that made it."""

    data: np.ndarray
    revision: str


@dataclass(frozen=True)
class SpokenChunk:
    """Speech of chunk `index`, float32 mono 44.1 kHz, with the GPU time it cost (for quotas): the whole
    chunk, or the next piece of it (one block of a blockwise plan; `last` on its final piece)."""

    index: int
    audio: np.ndarray
    gpu_seconds: float
    block: int = 0
    last: bool = True
    # Encoded on the engine side (`EncodingBackend.speak_live`): its 20 ms Opus packets instead of `audio`,
    # how many 44.1 kHz samples they cover, and the loudest of them.
    packets: tuple[bytes, ...] | None = None
    samples: int = 0
    peak: float = 0.0

    @property
    def loudest(self) -> float:
        if self.packets is not None:
            return self.peak
        return float(np.max(np.abs(self.audio))) if self.audio.size else 0.0


@dataclass(frozen=True)
class SpokenFile:
    """Speech as a finished, tagged file made on the engine side (`EncodingBackend`); a voice message's has
    Discord's waveform too."""

    format: str
    data: bytes
    seconds: float
    gpu_seconds: float
    waveform: str | None = None


@runtime_checkable
class EncodingBackend(Protocol):
    """A backend whose engine side encodes (Modal): files and live Opus packets; the bot only forwards
    the bytes."""

    def speak_live(
        self, texts: Sequence[str], latent: SpeakerLatent, params: SynthesisParams, seed: int
    ) -> AsyncIterator[SpokenChunk]:
        """As `TTSBackend.synthesize`, each piece as Opus packets (`SpokenChunk.packets`)."""
        ...

    def speak_file(
        self, texts: Sequence[str], latent: SpeakerLatent, params: SynthesisParams, seed: int, spec: FileSpec
    ) -> AsyncIterator[Progress | SpokenFile]:
        """A Progress as each chunk is made, then the file."""
        ...


@runtime_checkable
class TTSBackend(Protocol):
    name: str

    async def encode_speaker(self, pcm: np.ndarray) -> SpeakerLatent:
        """Reference audio (float32 mono 44.1 kHz) → the voice's latent."""
        ...

    def synthesize(
        self,
        texts: Sequence[str],
        latent: SpeakerLatent,
        params: SynthesisParams,
        seed: int,
    ) -> AsyncIterator[SpokenChunk]:
        """Yield each text's speech in order, as soon as it is ready: a piece per block of the request's
        plan (one piece, the whole chunk, for the whole plan), `last` on each chunk's final piece."""
        ...

    async def speaker_similarity(self, reference: np.ndarray, sample: np.ndarray) -> float:
        """How alike the speakers of two recordings (float32 mono 44.1 kHz) sound: the cosine of their
        speaker embeddings, compared with `modal_tts.consent_check.SAME_SPEAKER_THRESHOLD`-like settings.
        TooLittleSpeech (the sample) or ReferenceTooLittleSpeech when one has too little speech to tell."""
        ...

    async def watermark_confidence(self, pcm: np.ndarray) -> float:
        """How surely a clip (float32 mono 44.1 kHz) carries the watermark every output gets, 0..1
        (`modal_tts.watermark.THRESHOLD` decides); the check runs on the engine side."""
        ...

    async def info(self) -> dict[str, Any]:
        """Revision, device and versions of the engine behind the backend."""
        ...

    async def close(self) -> None: ...


def checked_request(texts: Sequence[str], seed: int, latent: np.ndarray | None = None) -> list[str]:
    """Refuse a malformed request before it costs a GPU call, in the backends' common terms; a damaged
    `latent` is SpeakerLatentRejected, so the caller knows the voice needs re-encoding."""
    try:
        texts = check_texts(list(texts))
        check_seed(seed)
        if latent is not None:
            check_latent(latent)
    except InvalidLatent as exc:
        raise SpeakerLatentRejected(str(exc)) from exc
    except ValueError as exc:
        raise BackendInvalidRequest(str(exc)) from exc
    return texts
