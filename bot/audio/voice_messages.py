"""Discord voice messages (`modal_tts.output.voice_messages`), with a file too big for the upload limit
raised as the bot's own error."""

from __future__ import annotations

import numpy as np

from bot.errors import OutputTooLarge
from modal_tts import output
from modal_tts.output import SAMPLE_RATE, Tags
from modal_tts.output import voice_messages as shared
from modal_tts.output.voice_messages import (
    VoiceMessage,
    duration_seconds,
    voice_message_waveform,
    waveform_levels,
)

__all__ = ["VoiceMessage", "duration_seconds", "voice_message", "voice_message_waveform", "waveform_levels"]


def voice_message(
    pcm: np.ndarray,
    *,
    sample_rate: int = SAMPLE_RATE,
    tags: Tags | None = None,
    limit_bytes: int | None = None,
) -> VoiceMessage:
    """`modal_tts.output.voice_message`, raising `bot.errors.OutputTooLarge` (the member's wording)."""
    try:
        return shared.voice_message(pcm, sample_rate=sample_rate, tags=tags, limit_bytes=limit_bytes)
    except output.OutputTooLarge as err:
        raise OutputTooLarge.from_engine(err) from None
