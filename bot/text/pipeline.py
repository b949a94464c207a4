"""All stages: `prepare` turns what a member typed into Echo-ready chunks, and enforces the limits."""

from __future__ import annotations

from collections.abc import Mapping

from bot import pronunciation
from bot.errors import NothingToSay, TextReadsTooLong, TextTooLong
from bot.text.chunks import chunk, lead_with_a_short_chunk
from bot.text.echo import normalise_for_echo
from bot.text.markup import Resolver, to_speakable

DEFAULT_MAX_CHARS = 2000
# Emoji names, timestamps and ligatures read longer than they look; past this multiple of
# `max_chars` the spoken text is refused rather than producing minutes of audio from one message.
MAX_SPOKEN_GROWTH = 2


def prepare(
    text: str,
    *,
    resolve: Resolver | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    dictionary: Mapping[str, str] | None = None,
) -> list[str]:
    """Turn what a member typed into Echo-ready chunks, in order; `dictionary` (word → spoken as)
    is applied to the words a listener would hear, before chunking.

    Raises TextTooLong when `text` has more than `max_chars` characters (counted as typed), and
    NothingToSay when no letters or digits are left once markup, emoji and symbols are handled.
    Text that reads out far longer than it looks (a wall of emoji) raises TextReadsTooLong.
    """
    if len(text) > max_chars:
        raise TextTooLong(len(text), max_chars)
    spoken = normalise_for_echo(pronunciation.apply(to_speakable(text, resolve), dictionary or {}))
    if len(spoken) > MAX_SPOKEN_GROWTH * max_chars:
        raise TextReadsTooLong(len(spoken), MAX_SPOKEN_GROWTH * max_chars)
    chunks = chunk(spoken)
    if not chunks:
        raise NothingToSay()
    return lead_with_a_short_chunk(chunks)
