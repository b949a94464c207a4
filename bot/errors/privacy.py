"""A member's own data: deleting a voice of theirs from /myvoices, seeing a voice's use, and the
confirmation /forget me asks for."""

from __future__ import annotations

from bot.errors.base import InvalidInput


class NotYourVoice(InvalidInput):
    """/myvoices delete: a voice the member neither owns nor is the speaker of."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"“{name}” is neither yours nor a voice of you, so /myvoices can't delete it. "
            "See your voices with /myvoices."
        )
        self.name = name


class UsageNotVisible(InvalidInput):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"Only the owner of “{name}”, the member it was cloned from, or someone with Manage Server can "
            "see how it was used."
        )
        self.name = name


class NotYourConfirmation(InvalidInput):
    def __init__(self) -> None:
        super().__init__("Those buttons are for the member who asked. Use /forget me for your own data.")


class ConfirmationExpired(InvalidInput):
    def __init__(self) -> None:
        super().__init__("That confirmation has expired; nothing was deleted. Use /forget me again.")
