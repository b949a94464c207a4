"""The text to speak can't be spoken: too long as typed or read aloud, or nothing speakable in it."""

from __future__ import annotations

from bot.errors.base import InvalidInput


class TextTooLong(InvalidInput):
    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            f"That text is {length:,} characters long; the limit here is {limit:,}. "
            "Shorten it or split it into several messages."
        )
        self.length, self.limit = length, limit


class TextReadsTooLong(InvalidInput):
    """Short as typed, but emoji and symbols read out as words make it too long to speak."""

    def __init__(self, spoken_length: int, limit: int) -> None:
        super().__init__(
            f"Read aloud, that text comes to about {spoken_length:,} characters (emoji and symbols "
            f"are read as words); the limit is {limit:,}. Use fewer emoji or symbols."
        )
        self.spoken_length, self.limit = spoken_length, limit


class NothingToSay(InvalidInput):
    def __init__(self) -> None:
        super().__init__(
            "There is nothing speakable in that text (only markup, symbols or whitespace). "
            "Give some words to say."
        )
