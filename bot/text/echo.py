"""Stage 2: the punctuation conventions Echo-TTS was trained on, and defusing of anything that could
pass for a speaker tag.

Speaker tags: Echo reads `[S1]`/`[S2]` as "who speaks now", so every `[`/`]` in user text becomes
`(`/`)` and bracketed tags such as `(S2)` are removed; the only `[` in a chunk is its own prefix.
"""

from __future__ import annotations

import re

from bot.text.markup import _SPACE_BEFORE_PUNCTUATION, _WHITESPACE

_ECHO_CHARACTERS = str.maketrans(
    {
        "…": "...",
        "‘": "'",
        "’": "'",
        "‚": "'",
        "‛": "'",
        "“": '"',
        "”": '"',
        "„": '"',
        "‟": '"',
        # Square brackets are Echo's speaker-tag syntax; user text never gets to use them.
        "[": "(",
        "]": ")",
    }
)
# Also empty parentheses, which is all a tag wrapped in brackets leaves behind.
_SPEAKER_TAG = re.compile(r"\(\s*(?:S\s*\d{1,3}\s*)?\)", re.I)
# "10:30" would otherwise become "10,30" once colons turn into commas.
_CLOCK = re.compile(r"(?<![\d:])(\d{1,2}):([0-5]\d)(?![\d:])(\s?[AaPp]\.?[Mm]\b\.?)?")
_NUMBER_RANGE = re.compile(r"(?<=\d) ?[—–] ?(?=\d)")
_DASH = re.compile(r"\s*[—–]+\s*|(?<=[^\d\s]) +-{1,3} +(?=[^\d\s])")
_EXCLAIM_OR_ASK = re.compile(r"[!?]{2,}")
_ELLIPSIS = re.compile(r"\.{4,}")
_COMMA_RUN = re.compile(r"\s*,(?:\s*,)*")
_COMMA_BEFORE_STOP = re.compile(r",\s*(?=[.!?])")
_COMMA_WITHOUT_SPACE = re.compile(r",(?=[^\s\d])")
_LOOSE_EDGES = re.compile(r"^[\s,]+|[\s,]+$")


def _clock_words(match: re.Match[str]) -> str:
    hour, minute, meridiem = match.group(1), match.group(2), match.group(3)
    suffix = f" {meridiem.strip()}" if meridiem else ""
    if minute == "00":
        return f"{hour}{suffix}" if meridiem else f"{hour} o'clock"
    if minute.startswith("0"):
        return f"{hour} oh {minute[1]}{suffix}"
    return f"{hour} {minute}{suffix}"


def _one_mark(match: re.Match[str]) -> str:
    return "?" if "?" in match.group() else "!"


def normalise_for_echo(text: str) -> str:
    """Apply Echo-TTS's text conventions: plain quotes, `...`, commas for `:`/`;`/dashes, one `!`/`?`.

    Also removes anything that could act as a speaker tag. Returns one line without the prefix.
    """
    text = text.translate(_ECHO_CHARACTERS)
    count = 1
    while count:  # a tag hidden inside another ("(S(S1)2)") appears once the inner one goes
        text, count = _SPEAKER_TAG.subn(" ", text)
    text = _CLOCK.sub(_clock_words, text)
    text = _NUMBER_RANGE.sub(" to ", text)
    text = _DASH.sub(", ", text)
    text = text.replace(":", ",").replace(";", ",")
    text = _EXCLAIM_OR_ASK.sub(_one_mark, text)
    text = _ELLIPSIS.sub("...", text)
    text = _COMMA_RUN.sub(",", text)
    text = _COMMA_BEFORE_STOP.sub("", text)
    text = _COMMA_WITHOUT_SPACE.sub(", ", text)
    text = _WHITESPACE.sub(" ", text)
    text = _SPACE_BEFORE_PUNCTUATION.sub("", text)
    return _LOOSE_EDGES.sub("", text)
