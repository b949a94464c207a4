"""A Discord command used where, by whom or as it can't be: outside a server, without the role or the
speaker's consent, on someone else's voice or form, on a message without what it needs, without a
default voice, or past the cooldown or the server's daily quota.
"""

from __future__ import annotations

from bot.errors.base import InvalidInput, fmt_seconds


class GuildOnly(InvalidInput):
    def __init__(self) -> None:
        super().__init__("Voices belong to a server: use this command in a server, not in DMs.")


class NotAllowedToClone(InvalidInput):
    def __init__(self, role: str) -> None:
        super().__init__(f"Only members with the {role} role may clone voices on this server.")
        self.role = role


class ConsentRequired(InvalidInput):
    def __init__(self) -> None:
        super().__init__(
            "A voice can only be cloned with its speaker's permission. Confirm that you have it "
            "(set consent to True) and try again."
        )


class NotVoiceOwner(InvalidInput):
    def __init__(self, name: str, *, speaker_may: bool = False) -> None:
        if speaker_may:
            message = (
                f"Only the owner of “{name}”, the member it was cloned from, or someone with Manage Server "
                "can delete it."
            )
        else:
            message = f"Only the owner of “{name}” or someone with Manage Server can change or delete it."
        super().__init__(message)
        self.name = name


class FormExpired(InvalidInput):
    """A "Clone voice from message" form submitted after it closed (timed out, sent, or a restart)."""

    def __init__(self) -> None:
        super().__init__(
            "That form has expired (forms stay open for 10 minutes and can be sent once). Nothing was "
            "cloned. Use “Clone voice from message” on the recording again."
        )


class NotYourForm(InvalidInput):
    def __init__(self) -> None:
        super().__init__("That form belongs to someone else. Open your own with “Clone voice from message”.")


class NoAudioAttachment(InvalidInput):
    def __init__(self) -> None:
        super().__init__(
            "That message has no audio attachment to clone. Use a voice message or an audio file."
        )


class NoTextInMessage(InvalidInput):
    def __init__(self) -> None:
        super().__init__("That message has no text to read out (only attachments or embeds).")


class NoDefaultVoice(InvalidInput):
    def __init__(self) -> None:
        super().__init__("Pick a voice: give the voice option, or set your default with /voice default.")


class CooldownActive(InvalidInput):
    def __init__(self, seconds_left: float) -> None:
        super().__init__(f"Slow down a little: you can use /say again in {max(1, round(seconds_left))} s.")
        self.seconds_left = seconds_left


class QuotaExhausted(InvalidInput):
    def __init__(self, used_s: float, quota_s: float, needed_s: float = 0.0) -> None:
        if used_s < quota_s and needed_s:
            message = (
                f"This server has {fmt_seconds(quota_s - used_s)} of today's {fmt_seconds(quota_s)} of "
                f"speech left (UTC), and that could take up to {fmt_seconds(needed_s)}. Try shorter text; "
                "the quota resets at midnight UTC, and an admin can raise it with /settings."
            )
        else:
            message = (
                f"This server has used {fmt_seconds(used_s)} of its {fmt_seconds(quota_s)} of speech "
                "for today (UTC). It resets at midnight UTC; an admin can raise it with /settings."
            )
        super().__init__(message)
        self.used_s, self.quota_s, self.needed_s = used_s, quota_s, needed_s
