"""Any clip → PCM for a check (the watermark, a speaker's consent voice message), not for cloning: the
same bounded PyAV decode as a reference (`bot.audio.decode`), but any length from half a second, and no
level or silence rules.
"""

from __future__ import annotations

import numpy as np

from bot.audio.decode import MAX_REFERENCE_S, _decode_reference
from bot.audio.sniff import sniff
from bot.errors import ReferenceTooLong
from bot.errors.watermark import ClipTooLarge, ClipTooLong, ClipTooShort
from modal_tts.output.pcm import SAMPLE_RATE

MIN_CLIP_S = 0.5  # the watermark needs a few dozen STFT frames; under ~1 s it reads unreliably anyway
MAX_CLIP_S = MAX_REFERENCE_S
# A confidence at or above this is "carries the watermark": `modal_tts.watermark.THRESHOLD`, which the
# bot can't import (torch); a test holds the two equal.
WATERMARK_THRESHOLD = 0.5


def load_clip(data: bytes, *, max_bytes: int) -> np.ndarray:
    """Decode a clip (any common audio or video format) to float32 mono 44.1 kHz, as it is.

    Raises ClipTooLarge, ClipTooShort or ClipTooLong, or the reference errors that fit any file
    (NotAudio, Undecodable, NoAudioStream); never a PyAV error."""
    data = bytes(data)
    if len(data) > max_bytes:
        raise ClipTooLarge(len(data), max_bytes)
    try:
        pcm, _ = _decode_reference(data, sniff(data))
    except ReferenceTooLong as exc:
        raise ClipTooLong(exc.seconds, MAX_CLIP_S) from exc
    if pcm.size < MIN_CLIP_S * SAMPLE_RATE:
        raise ClipTooShort(pcm.size / SAMPLE_RATE, MIN_CLIP_S)
    return np.nan_to_num(pcm, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
