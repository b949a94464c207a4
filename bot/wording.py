"""Small helpers for the words the bot shows people, shared by Discord replies, the CLI and logs."""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 voice`, `2 voices`: never `voice(s)`."""
    return f"{count} {word if count == 1 else many or word + 's'}"
