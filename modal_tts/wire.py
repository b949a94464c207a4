"""The bytes that cross between the bot and the GPU: numpy only, so both sides share one definition.

- Reference PCM (bot → GPU): float32 little-endian, mono, 44,100 Hz, samples in [-1, 1].
- Speaker latent (both ways): float16 little-endian, C order, shape [T, 80], finite, sent as
  `{"latent": bytes, "shape": [T, 80], "revision": str}`.
- Synthesised chunk (GPU → bot): int16 little-endian PCM, mono, 44,100 Hz, sent as
  `{"index": i, "pcm": bytes, "sample_rate": 44100, "gpu_seconds": float}`. 16-bit halves what a
  home server downloads per 30 s chunk (2.6 MB instead of 5.3 MB) and is more than the Opus/MP3 the
  bot sends on needs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modal_tts.params import LATENT_SIZE, MAX_SPEAKER_LATENT_LENGTH, SPEAKER_PATCH_SIZE

MAX_REFERENCE_SAMPLES = MAX_SPEAKER_LATENT_LENGTH * 2048


class WireError(ValueError):
    """Bytes that do not follow the format above."""


def pcm_to_bytes(pcm: np.ndarray) -> bytes:
    return np.ascontiguousarray(pcm, dtype="<f4").tobytes()


def pcm_from_bytes(data: bytes) -> np.ndarray:
    if len(data) % 4:
        raise WireError(f"Reference PCM is {len(data)} bytes, not a whole number of float32s.")
    pcm = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if pcm.size == 0:
        raise WireError("Reference PCM is empty.")
    if not np.isfinite(pcm).all():
        raise WireError("Reference PCM contains NaN or infinite samples.")
    return pcm


def latent_to_wire(latent: np.ndarray, revision: str) -> dict[str, Any]:
    latent = np.ascontiguousarray(latent, dtype="<f2")
    return {"latent": latent.tobytes(), "shape": list(latent.shape), "revision": revision}


def latent_from_wire(message: dict[str, Any]) -> tuple[np.ndarray, str]:
    try:
        data, shape, revision = message["latent"], message["shape"], message["revision"]
        rows, cols = (int(n) for n in shape)
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"Malformed latent message: {exc}") from exc
    if cols != LATENT_SIZE or not 0 < rows <= MAX_SPEAKER_LATENT_LENGTH or rows % SPEAKER_PATCH_SIZE:
        raise WireError(
            f"Latent shape {rows}x{cols} is invalid: expected T x {LATENT_SIZE} with 0 < T <= "
            f"{MAX_SPEAKER_LATENT_LENGTH} and T a multiple of {SPEAKER_PATCH_SIZE}."
        )
    if len(data) != rows * cols * 2:
        raise WireError(f"Latent is {len(data)} bytes; shape {rows}x{cols} needs {rows * cols * 2}.")
    latent = np.frombuffer(data, dtype="<f2").reshape(rows, cols).astype(np.float16)
    if not np.isfinite(latent).all():
        raise WireError("Latent contains NaN or infinite values.")
    return latent, str(revision)


def chunk_to_wire(index: int, audio: np.ndarray, sample_rate: int, gpu_seconds: float) -> dict:
    pcm16 = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2")
    return {
        "index": index,
        "pcm": pcm16.tobytes(),
        "sample_rate": sample_rate,
        "gpu_seconds": gpu_seconds,
    }


def chunk_from_wire(message: dict[str, Any]) -> tuple[int, np.ndarray, float]:
    try:
        index, data = int(message["index"]), message["pcm"]
        gpu_seconds = float(message.get("gpu_seconds", 0.0))
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"Malformed chunk message: {exc}") from exc
    if len(data) % 2:
        raise WireError(f"Chunk PCM is {len(data)} bytes, not a whole number of int16s.")
    audio = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32767.0
    return index, audio, gpu_seconds
