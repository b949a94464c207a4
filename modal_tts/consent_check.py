"""The consent check's terms, torch-free: the bot and the engine side share them without importing torch.

A speaker confirms consent with a Discord voice message; the engine side (`modal_tts.speakers`) scores how
alike the voice message's speaker and the cloned clip's speaker sound, and the bot compares the score with
its threshold. Calibration: `python -m bench.speakers`, written up in docs/CONSENT.md.
"""

from __future__ import annotations

from typing import Any, Literal

# Less voiced audio than this (after trimming silences) gives an embedding too noisy to judge by.
MIN_VOICED_SECONDS = 1.0
# The encoder averages over the recording: past this, more audio costs time and steadies nothing.
MAX_COMPARED_SECONDS = 90.0
# bench/speakers.py: real other speakers scored ≤ 0.77, the same speaker ≥ 0.92 (docs/CONSENT.md).
SAME_SPEAKER_THRESHOLD = 0.85

Which = Literal["reference", "sample"]


class TooLittleSpeech(ValueError):
    """`which` recording (the voice's reference, or the consent sample) has under `needed_seconds` of
    speech once silences are trimmed. A ValueError, so Modal re-raises it in the bot as this type."""

    def __init__(
        self, voiced_seconds: float, needed_seconds: float = MIN_VOICED_SECONDS, which: Which = "sample"
    ) -> None:
        self.voiced_seconds, self.needed_seconds, self.which = voiced_seconds, needed_seconds, which
        super().__init__(
            f"the {which} has {voiced_seconds:.1f} s of speech after trimming silences; "
            f"at least {needed_seconds:.1f} s is needed to compare speakers"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled across Modal's wire: rebuilt from the fields, not from the message.
        return (type(self), (self.voiced_seconds, self.needed_seconds, self.which))


def reply_to_wire(outcome: float | TooLittleSpeech) -> dict[str, Any]:
    """`compare_speakers`' reply: the score, or which recording had too little speech (a reply, not a raised
    error, so that the bot reads it the same whatever Modal does with exceptions)."""
    if isinstance(outcome, TooLittleSpeech):
        return {
            "too_little_speech": {
                "which": outcome.which,
                "voiced_seconds": outcome.voiced_seconds,
                "needed_seconds": outcome.needed_seconds,
            }
        }
    return {"similarity": float(outcome)}


def reply_from_wire(reply: Any) -> float:
    """The score in a `compare_speakers` reply; TooLittleSpeech if it says so, ValueError if it is no reply
    of that method's."""
    short = reply.get("too_little_speech") if isinstance(reply, dict) else None
    if isinstance(short, dict) and short.get("which") in ("reference", "sample"):
        try:
            voiced, needed = float(short["voiced_seconds"]), float(short["needed_seconds"])
        except (KeyError, TypeError, ValueError):
            pass
        else:
            raise TooLittleSpeech(voiced, needed, short["which"])
    value = reply.get("similarity") if isinstance(reply, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not -1.0 <= float(value) <= 1.0:
        raise ValueError(f"compare_speakers replied {reply!r}; expected a similarity in [-1, 1]")
    return float(value)
