"""A reference clip to clone a voice from that can't be used: not downloadable, too big, not audio,
damaged, without an audio track, too short or long, or silent.
"""

from __future__ import annotations

from bot.errors.base import InvalidInput, VoiceBotError, fmt_bytes, fmt_seconds


class BadReference(InvalidInput):
    """Base for a reference clip that can't be used to clone a voice."""


class FileTooLarge(BadReference):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"That file is {fmt_bytes(size)}; a reference can be at most {fmt_bytes(limit)}. "
            "Trim it or send a compressed format such as MP3 or Ogg."
        )
        self.size, self.limit = size, limit


class NotAudio(BadReference):
    def __init__(self, detected: str | None = None) -> None:
        what = f" (it looks like {detected})" if detected else ""
        super().__init__(
            f"That file is not audio{what}. Send a recording as WAV, MP3, Ogg/Opus, M4A, FLAC, WebM or MP4."
        )
        self.detected = detected


class Undecodable(BadReference):
    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "That audio file is damaged or truncated and can't be decoded. Export it again and re-upload it."
        )
        self.detail = detail


class NoAudioStream(BadReference):
    def __init__(self, container: str) -> None:
        super().__init__(
            f"That {container} file has no audio track. Send a file with someone speaking in it."
        )
        self.container = container


class ReferenceTooShort(BadReference):
    def __init__(self, seconds: float, minimum: float) -> None:
        super().__init__(
            f"That clip is {fmt_seconds(seconds)} long; a reference must be "
            f"{fmt_seconds(minimum)} to 5 min. Record a little more speech."
        )
        self.seconds, self.minimum = seconds, minimum


class ReferenceTooLong(BadReference):
    def __init__(self, seconds: float, maximum: float) -> None:
        super().__init__(
            f"That clip is {fmt_seconds(seconds)} long; a reference can be 5 s to "
            f"{fmt_seconds(maximum)}. Trim it to the clearest part."
        )
        self.seconds, self.maximum = seconds, maximum


class ReferenceSilent(BadReference):
    def __init__(self, peak_dbfs: float) -> None:
        super().__init__(
            f"That clip is silent or nearly so (peak {peak_dbfs:.0f} dBFS). "
            "Send a recording where the speaker can be heard clearly."
        )
        self.peak_dbfs = peak_dbfs


class DownloadFailed(VoiceBotError):
    """Discord wouldn't hand over an upload: 404 when it expired or was deleted."""

    def __init__(self, status: int) -> None:
        if status == 404:
            message = (
                "That file is no longer on Discord (the upload expired or was deleted), so nothing "
                "was cloned. Upload the recording again and retry."
            )
        else:
            message = f"Discord didn't let me download that file (HTTP {status}). Try again in a moment."
        super().__init__(message)
        self.status = status
