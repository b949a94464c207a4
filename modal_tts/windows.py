"""How long a window (latents sampled) each chunk of text gets: sized to the text, from a few buckets.

Compute per chunk is about linear in the window, so "Hello." sampled over the full 640-latent window
(29.7 s) costs four times what it needs. Each chunk gets the smallest bucket that holds its estimated
speech time plus a margin; a compiled engine then sees only `BUCKETS` as shapes.

The margin (why 1.35× + 1.0 s): the estimate is characters ÷ 14 per second (the bot's reading rate,
English read aloud is 12–16 characters a second including spaces). A cloned voice can be slower than
that: the slowest natural reference we allow for reads ~10.5 characters a second, which is 1.33× the
estimate, so 1.35× keeps it inside the window; Echo also leaves a short silence before and after speech,
about 0.5 s each side, hence + 1.0 s. Chunks are at most 25 s by estimate (`bot.text`), and 25 × 1.35 + 1
= 34.75 s falls in the full 640-latent window, which clips at 29.7 s: the long chunks are the ones a slow
voice can overrun, and for them a cut is detected and re-sampled (`was_cut`, `next_bucket`). The
margin is a prior, not a measurement: the first run with real weights (`modal_tts.bench`) prints how
often chunks were re-sampled and how much of each window was used; tune `MARGIN` from those.

Torch-free: the bot estimates with the same function (`bot.text.estimate_seconds`).
"""

from __future__ import annotations

import math
import re

from modal_tts.params import MAX_SEQUENCE_LENGTH, SAMPLE_RATE, SAMPLES_PER_LATENT

LATENTS_PER_SECOND = SAMPLE_RATE / SAMPLES_PER_LATENT  # ≈ 21.5
BUCKETS = (160, 256, 384, 512, MAX_SEQUENCE_LENGTH)
CHARS_PER_SECOND = 14.0
MARGIN = 1.35
LEAD_SECONDS = 1.0
# A window whose speech has not ended this close to its end was (probably) cut.
CUT_TAIL_LATENTS = 8
# ...but only if the text could have filled that much of it: a short text that never ends in a window
# twice its length is Echo's tail noise on short inputs, which a longer window makes worse, not a cut.
CUT_PLAUSIBLE_SHARE = 0.5
WIDE_CHAR_WEIGHT = 3  # a CJK character or Hangul syllable takes about as long as three Latin letters
SPEAKER_PREFIX = "[S1] "

WIDE_CHARS = re.compile(
    "[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf"
    "\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\U00020000-\U0003fffd]"
)


def speech_cost(text: str) -> int:
    """Length in Latin-letter equivalents: wide (CJK) characters count as WIDE_CHAR_WEIGHT."""
    if text.isascii():
        return len(text)
    wide = len(text) - len(WIDE_CHARS.sub("", text))
    return len(text) + (WIDE_CHAR_WEIGHT - 1) * wide


def estimate_seconds(text: str) -> float:
    """Rough speaking time of `text` (a leading speaker prefix is not spoken and not counted)."""
    return speech_cost(text.removeprefix(SPEAKER_PREFIX)) / CHARS_PER_SECOND


def estimate_latents(text: str) -> int:
    return math.ceil(estimate_seconds(text) * LATENTS_PER_SECOND)


def window_for(text: str) -> int:
    """The smallest bucket that holds `text`'s estimated speech with the margin (at most the full window)."""
    needed = (estimate_seconds(text) * MARGIN + LEAD_SECONDS) * LATENTS_PER_SECOND
    return next((bucket for bucket in BUCKETS if bucket >= needed), BUCKETS[-1])


def next_bucket(window: int) -> int | None:
    """The bucket to re-sample a cut chunk in, or None at the full window."""
    return next((bucket for bucket in BUCKETS if bucket > window), None)


def largest_window(text: str) -> int:
    """The most latents `text` can come back as: its window, or the next bucket when a cut there would
    be plausible (`was_cut`) and so re-sampled once. Audio is never longer: a quota can hold this."""
    window = window_for(text)
    bigger = next_bucket(window)
    if bigger is not None and estimate_latents(text) >= CUT_PLAUSIBLE_SHARE * window:
        return bigger
    return window


def was_cut(text: str, window: int, end_of_speech: int) -> bool:
    """Speech still going in the window's last latents, for a text long enough to have filled it."""
    ran_out = end_of_speech >= window - CUT_TAIL_LATENTS
    return ran_out and estimate_latents(text) >= CUT_PLAUSIBLE_SHARE * window
