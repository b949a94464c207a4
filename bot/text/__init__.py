"""Discord message text → speakable words → Echo-ready chunks.

Three stages, each a pure function so it can be tested alone:

1. `to_speakable`: Discord markup (mentions, emoji, links, markdown, timestamps) becomes the words a
   listener would expect to hear.
2. `normalise_for_echo`: the punctuation conventions Echo-TTS was trained on, and defusing of anything
   that could pass for a speaker tag.
3. `chunk`: pieces of at most `MAX_CHUNK_BYTES` UTF-8 bytes (prefix included) and about
   `MAX_CHUNK_SECONDS` of speech, each starting with `SPEAKER_PREFIX`.

`prepare` runs all three and enforces the length limit. Names for mentions come from a `Resolver`;
looking them up may need Discord, so the caller first asks `mentions` which ids a text needs and
hands `prepare` the answers as `Names`.

Modules, by concern (import the names below from `bot.text`):
- `markup`: stage 1, Discord markup, mentions, links and timestamps to words; `Resolver`, `Names`,
  `mentions`.
- `symbols`: emoji and other characters beyond ASCII to words (or silence), for stage 1.
- `echo`: stage 2, Echo's punctuation conventions and speaker-tag defusing.
- `chunks`: stage 3, splitting by bytes and estimated duration, and the short first chunk.
- `duration`: `estimate_seconds` / `longest_seconds`, the speaking-time estimate shared with the GPU side.
- `pipeline`: `prepare`, all stages and the length limits.
"""

from bot.text.chunks import (
    ECHO_MAX_TEXT_BYTES,
    FIRST_CHUNK_SECONDS,
    MAX_CHUNK_BYTES,
    MAX_CHUNK_SECONDS,
    MIN_FIRST_CHUNK_SECONDS,
    SPEAKER_PREFIX,
    chunk,
    lead_with_a_short_chunk,
)
from bot.text.duration import estimate_seconds, longest_seconds
from bot.text.echo import normalise_for_echo
from bot.text.markup import Mentions, Names, Resolver, mentions, to_speakable
from bot.text.pipeline import DEFAULT_MAX_CHARS, MAX_SPOKEN_GROWTH, prepare
from bot.text.symbols import MAX_EMOJI_NAMES_IN_A_ROW
from modal_tts.windows import CHARS_PER_SECOND, WIDE_CHAR_WEIGHT

__all__ = [
    "CHARS_PER_SECOND",
    "DEFAULT_MAX_CHARS",
    "ECHO_MAX_TEXT_BYTES",
    "FIRST_CHUNK_SECONDS",
    "MAX_CHUNK_BYTES",
    "MAX_CHUNK_SECONDS",
    "MAX_EMOJI_NAMES_IN_A_ROW",
    "MAX_SPOKEN_GROWTH",
    "MIN_FIRST_CHUNK_SECONDS",
    "SPEAKER_PREFIX",
    "WIDE_CHAR_WEIGHT",
    "Mentions",
    "Names",
    "Resolver",
    "chunk",
    "estimate_seconds",
    "lead_with_a_short_chunk",
    "longest_seconds",
    "mentions",
    "normalise_for_echo",
    "prepare",
    "to_speakable",
]
