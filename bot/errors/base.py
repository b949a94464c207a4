"""The root of every user-facing error, and the wording shared by several messages.

`VoiceBotError` is what cogs and the CLI catch; `InvalidInput` marks a request the bot can't do as asked
(CLI exit 2, an ephemeral reply). `fmt_seconds` and `fmt_bytes` put durations and sizes the same way in
every message.
"""

from __future__ import annotations


class VoiceBotError(Exception):
    """Base class: `message` is short, plain and safe to show in Discord or on a terminal."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(VoiceBotError):
    """The user asked for something the bot can't do as asked (CLI exit 2, ephemeral reply)."""


def fmt_seconds(seconds: float) -> str:
    if seconds >= 60:
        minutes, secs = divmod(round(seconds), 60)
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{seconds:.1f} s"


def fmt_bytes(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.0f} KiB"
    return f"{n} bytes"
