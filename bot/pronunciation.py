"""A server's pronunciation dictionary: which words to say differently, and what an entry may be.

Pure: `apply` runs inside `bot.text.prepare` (after markup and mentions become words, before Echo's
normalisation and chunking), so /say, Speak message and auto-read all hear the same dictionary.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from bot.errors import InvalidDictionaryEntry

MAX_ENTRIES = 200
MAX_ENTRY_CHARS = 64
_MARKUP = re.compile(r"[*_~`|<>\\]|\[S\d+\]|@(everyone|here)\b|https?://", re.IGNORECASE)


def clean_entry(word: str, spoken_as: str) -> tuple[str, str]:
    """The entry as stored, or InvalidDictionaryEntry saying what is wrong with it."""
    cleaned = []
    for label, value in (("word", word), ("spoken-as", spoken_as)):
        value = " ".join(unicodedata.normalize("NFC", value).split())
        if not 1 <= len(value) <= MAX_ENTRY_CHARS:
            raise InvalidDictionaryEntry(f"the {label} must be 1 to {MAX_ENTRY_CHARS} characters")
        if any(unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs") for ch in value):
            raise InvalidDictionaryEntry(f"the {label} contains control characters")
        if _MARKUP.search(value):
            raise InvalidDictionaryEntry(
                f"the {label} contains markup, a mention, a link or a speaker tag; use plain words"
            )
        if not any(ch.isalnum() for ch in value):
            raise InvalidDictionaryEntry(f"the {label} needs at least one letter or digit")
        cleaned.append(value)
    return cleaned[0], cleaned[1]


def key(word: str) -> str:
    """Entries match whole words ignoring case: "GIF", "gif" and "Gif" are one entry."""
    return " ".join(word.split()).casefold()


def apply(text: str, entries: Mapping[str, str]) -> str:
    """Replace every whole-word, case-insensitive match of an entry's word, longest words first, in
    one pass (a replacement is never replaced again)."""
    if not entries:
        return text
    spoken = {key(word): said for word, said in entries.items()}
    words = sorted(spoken, key=len, reverse=True)
    pattern = re.compile(
        r"(?<!\w)(" + "|".join(r"\s+".join(map(re.escape, w.split())) for w in words) + r")(?!\w)",
        re.IGNORECASE,
    )
    return pattern.sub(lambda m: spoken.get(key(m.group(1)), m.group(1)), text)
