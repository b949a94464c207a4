"""The bot's face on the shared file encoder (`modal_tts.output.encoding`): the same bytes, the formats
its users may pick, and a file too big for the upload limit raised as the bot's own error.

The encoder itself lives with the engine so that both sides make files with one definition; only the
mapping to `bot.errors` is the bot's.
"""

from __future__ import annotations

import numpy as np

from bot.choices import OUTPUT_FORMATS
from bot.errors import OutputTooLarge
from modal_tts import output
from modal_tts.output import SAMPLE_RATE, Tags

FORMATS = OUTPUT_FORMATS  # what users may ask for; `output.FORMATS` also has FLAC for kept references


def fit_to_limit(
    pcm: np.ndarray,
    fmt: str,
    limit_bytes: int,
    tags: Tags | None = None,
    *,
    sample_rate: int = SAMPLE_RATE,
) -> bytes:
    """`modal_tts.output.fit_to_limit`, raising `bot.errors.OutputTooLarge` (the member's wording)."""
    try:
        return output.fit_to_limit(pcm, fmt, limit_bytes, tags, sample_rate=sample_rate)
    except output.OutputTooLarge as err:
        raise OutputTooLarge.from_engine(err) from None
