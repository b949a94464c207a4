"""The speech's audio file couldn't be made or delivered: too big to upload, an encoder process died,
Discord refused the upload, or `voicebot say --out` can't write there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.errors.base import InvalidInput, VoiceBotError, fmt_bytes, fmt_seconds

if TYPE_CHECKING:
    from modal_tts.output import errors as engine


class OutputTooLarge(InvalidInput):
    """The file doesn't fit the upload limit even at the lowest bitrate; `from_engine` maps the engine
    side's `modal_tts.output.OutputTooLarge` (same fields, raised where this module can't be imported)."""

    def __init__(self, seconds: float, fmt: str, size: int, limit: int) -> None:
        super().__init__(
            f"That speech is {fmt_seconds(seconds)} long and even at the lowest quality its "
            f"{fmt.upper()} file is {fmt_bytes(size)}; the upload limit here is {fmt_bytes(limit)}. "
            "Ask for shorter text or play it in a voice channel."
        )
        self.seconds, self.fmt, self.size, self.limit = seconds, fmt, size, limit

    def __reduce__(self) -> tuple[type, tuple[float, str, int, int]]:
        # Raised in the encoder's worker processes: it must cross back by pickle.
        return type(self), (self.seconds, self.fmt, self.size, self.limit)

    @classmethod
    def from_engine(cls, err: engine.OutputTooLarge) -> OutputTooLarge:
        return cls(err.seconds, err.fmt, err.size, err.limit)


class EncoderFailed(VoiceBotError):
    """An encoder process stopped (killed for memory, say) on a file's first try and on its retry."""

    def __init__(self) -> None:
        super().__init__(
            "Making the audio file failed (an encoder process stopped). "
            "Try again; if it keeps happening, tell a bot admin."
        )


class UploadFailed(VoiceBotError):
    """Discord refused or lost the finished audio file; nothing is charged for it."""

    def __init__(self, status: int) -> None:
        super().__init__(
            f"Discord didn't accept the audio file (HTTP {status}), so it wasn't posted and nothing "
            "was counted against today's quota. Try again in a moment, or use a voice channel."
        )
        self.status = status


class OutputNotWritable(VoiceBotError):
    """`voicebot say --out PATH` can't be written (a terminal user's choice, so one message)."""

    exit_code = 73  # EX_CANTCREAT

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"Can't write {path}: {reason}. Choose another --out path; nothing was written.")
        self.path, self.reason = path, reason
