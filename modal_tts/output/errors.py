"""The engine side's one output error, raisable where `bot.errors` can't be imported (a Modal container).

The bot maps it to `bot.errors.OutputTooLarge`, which words it for a Discord member or a terminal user.
"""

from __future__ import annotations


class OutputTooLarge(ValueError):
    """Even the lowest bitrate of a format's ladder makes a file bigger than the limit asked for."""

    def __init__(self, seconds: float, fmt: str, size: int, limit: int) -> None:
        super().__init__(
            f"{seconds:.1f} s of speech as {fmt.upper()} is {size} bytes at the lowest bitrate; "
            f"the limit is {limit} bytes."
        )
        self.seconds, self.fmt, self.size, self.limit = seconds, fmt, size, limit

    def __reduce__(self) -> tuple[type, tuple[float, str, int, int]]:
        # Crosses processes (the bot's encoder pool, Modal's reply) by pickle.
        return type(self), (self.seconds, self.fmt, self.size, self.limit)
