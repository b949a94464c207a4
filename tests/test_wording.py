"""Counts in the user's words: `1 voice`, `2 voices`, never `voice(s)`."""

from __future__ import annotations

import pytest

from bot.wording import plural


@pytest.mark.parametrize(
    ("count", "word", "many", "expected"),
    [
        (0, "voice", None, "0 voices"),
        (1, "voice", None, "1 voice"),
        (2, "voice", None, "2 voices"),
        (1, "unfinished add", "unfinished adds", "1 unfinished add"),
        (3, "entry", "entries", "3 entries"),
    ],
)
def test_plural(count: int, word: str, many: str | None, expected: str) -> None:
    assert plural(count, word, many) == expected
