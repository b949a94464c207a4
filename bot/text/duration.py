"""How long a text takes to say, by estimate: chunks are sized with it, and reservations too."""

from __future__ import annotations

from modal_tts import windows
from modal_tts.windows import speech_cost

# One estimate of speaking time for the whole project: the GPU side sizes its windows with it too.
_speech_cost = speech_cost


def estimate_seconds(text: str) -> float:
    """Rough speaking time of `text` (a leading speaker prefix is not spoken and not counted)."""
    return windows.estimate_seconds(text)


def longest_seconds(chunk: str) -> float:
    """The most audio the engine can return for `chunk`: the largest window it may be sampled in."""
    return windows.largest_window(chunk) / windows.LATENTS_PER_SECOND
