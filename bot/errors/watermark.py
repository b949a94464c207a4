"""A clip to check for the bot's watermark that can't be checked: too big, too short or too long, no
audio in the message, or not downloadable. (Not audio / damaged / no audio track are `bot.errors`'
reference errors: their words fit any audio file.)
"""

from __future__ import annotations

from bot.errors.base import InvalidInput, VoiceBotError, fmt_bytes, fmt_seconds


class ClipTooLarge(InvalidInput):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"That file is {fmt_bytes(size)}; I can check files up to {fmt_bytes(limit)}. "
            "Trim it or send a compressed copy (MP3 or Ogg)."
        )
        self.size, self.limit = size, limit


class ClipTooShort(InvalidInput):
    def __init__(self, seconds: float, minimum: float) -> None:
        super().__init__(
            f"That clip is {fmt_seconds(seconds)} long; I need at least {fmt_seconds(minimum)} of audio "
            "to look for the watermark."
        )
        self.seconds, self.minimum = seconds, minimum


class ClipTooLong(InvalidInput):
    def __init__(self, seconds: float, maximum: float) -> None:
        super().__init__(
            f"That clip is {fmt_seconds(seconds)} long; I can check up to {fmt_seconds(maximum)}. "
            "Trim it to the part you want checked."
        )
        self.seconds, self.maximum = seconds, maximum


class NoAudioToCheck(InvalidInput):
    def __init__(self) -> None:
        super().__init__("That message has no audio to check. Use it on a voice message or an audio file.")


class ClipDownloadFailed(VoiceBotError):
    """Discord wouldn't hand over the attachment: 404 when it expired or was deleted."""

    def __init__(self, status: int) -> None:
        if status == 404:
            message = "That file is no longer on Discord (expired or deleted), so it can't be checked."
        else:
            message = f"Discord didn't let me download that file (HTTP {status}). Try again in a moment."
        super().__init__(message)
        self.status = status
