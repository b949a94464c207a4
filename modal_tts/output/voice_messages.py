"""Discord voice messages: an Ogg/Opus file plus its duration and amplitude waveform (made where the speech
is: on the engine side for the Modal path, in the bot's encoder pool otherwise)."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

import numpy as np

from modal_tts.output.encoding import Tags, encode, fit_to_limit
from modal_tts.output.pcm import SAMPLE_RATE


@dataclass(frozen=True, eq=False)
class VoiceMessage:
    """An Ogg/Opus file plus the attachment fields Discord wants for a voice message."""

    data: bytes
    duration_s: float
    waveform: str  # base64, ≤256 amplitude bytes


def duration_seconds(pcm: np.ndarray, *, sample_rate: int = SAMPLE_RATE) -> float:
    return np.asarray(pcm).reshape(-1).size / sample_rate


def waveform_levels(pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """RMS of each ~100 ms bin (≤256 bins), float32 throughout: one squared copy of the clip, not
    the three float64 ones a cumulative sum needs (32 voice messages at once made that add up)."""
    pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
    bins = min(256, max(1, math.ceil(pcm.size / sample_rate * 10)))
    if pcm.size == 0:
        return np.zeros(bins, dtype=np.float32)
    edges = np.linspace(0, pcm.size, bins + 1).astype(np.intp)
    sums = np.add.reduceat(np.square(pcm), edges[:-1], dtype=np.float32)
    counts = np.maximum(np.diff(edges), 1).astype(np.float32)
    return np.sqrt(sums / counts)


def voice_message_waveform(pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
    """Discord voice-message waveform: base64 of ≤256 bytes, one 0–255 amplitude per ~100 ms.

    Each byte is a bin's RMS relative to the loudest bin; clips quieter than -60 dBFS are all 0.
    """
    rms = waveform_levels(pcm, sample_rate)
    loudest = float(rms.max())
    if loudest < 10 ** (-60 / 20):
        values = np.zeros(rms.size, dtype=np.uint8)
    else:
        values = np.clip(np.round(rms * np.float32(255 / loudest)), 0, 255).astype(np.uint8)
    return base64.b64encode(values.tobytes()).decode("ascii")


def voice_message(
    pcm: np.ndarray,
    *,
    sample_rate: int = SAMPLE_RATE,
    tags: Tags | None = None,
    limit_bytes: int | None = None,
) -> VoiceMessage:
    """Everything a voice-message upload needs: Ogg/Opus bytes, duration and waveform (OutputTooLarge when
    it can't fit `limit_bytes`)."""
    if limit_bytes is None:
        data = encode(pcm, "ogg", sample_rate=sample_rate, tags=tags)
    else:
        data = fit_to_limit(pcm, "ogg", limit_bytes, tags, sample_rate=sample_rate)
    return VoiceMessage(
        data=data,
        duration_s=duration_seconds(pcm, sample_rate=sample_rate),
        waveform=voice_message_waveform(pcm, sample_rate),
    )
