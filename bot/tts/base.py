"""The one async interface every speech backend offers the bot, and the values that cross it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from bot.errors import BackendInvalidRequest, SpeakerLatentRejected
from modal_tts.params import InvalidLatent, SynthesisParams, check_latent, check_seed, check_texts


@dataclass(frozen=True)
class SpeakerLatent:
    """A cloned voice as the model sees it: float16 [T, 80], and the weights revision that made it."""

    data: np.ndarray
    revision: str


@dataclass(frozen=True)
class SpokenChunk:
    """One chunk of speech, float32 mono 44.1 kHz, with the GPU time it cost (for quotas)."""

    index: int
    audio: np.ndarray
    gpu_seconds: float


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
        """Yield one chunk per text, in order, each as soon as it is ready."""
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
