"""Characters beyond ASCII, as a listener would hear them (used by `markup.to_speakable`).

- Unicode emoji are read by a short name ("👍" → "thumbs up", "😂😂😂" → "face with tears of joy" once,
  a row of emoji at most `MAX_EMOJI_NAMES_IN_A_ROW` names); skin tones and variation selectors are
  silent, zero-width-joined sequences read their parts ("👩‍💻" → "woman personal computer"), flags read
  their letters ("🇺🇸" → "US flag"), and emoji newer than this Python's Unicode tables are dropped.
  Box-drawing, block and braille characters (ASCII art) are dropped.
- Control, format, private-use and unassigned characters are silent; stacked accents (zalgo) are thinned
  to `_MAX_MARKS_PER_LETTER` per letter.
"""

from __future__ import annotations

import functools
import re
import unicodedata

# A row of emoji reads as its first few names; the rest of the row is decoration.
MAX_EMOJI_NAMES_IN_A_ROW = 3

# Unicode names that read badly aloud, for the emoji people use most.
_SYMBOL_NAMES = {
    "\u2764": "heart",
    "\u2705": "check mark",
    "\u2b50": "star",
    "\U0001f64f": "folded hands",
    "\U0001f3f4": "flag",
    "\U0001f3f3": "white flag",
}
_NAME_PREFIXES = ("emoji component ",)
_NAME_SUFFIXES = (" sign", " symbol")
_VARIATION_SELECTORS = frozenset(chr(c) for c in range(0xFE00, 0xFE10)) | frozenset(
    chr(c) for c in range(0xE0100, 0xE01F0)
)
_ZWJ = "\u200d"
# Hangul fillers are letters to Unicode but blank on screen; Discord users send them as "empty" text.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
_MAX_MARKS_PER_LETTER = 2


def _is_decoration(cp: int) -> bool:
    """Box drawing, block elements, braille and legacy-computing symbols: ASCII art, not words."""
    return 0x2500 <= cp <= 0x259F or 0x2800 <= cp <= 0x28FF or 0x1FB00 <= cp <= 0x1FBFF


def _is_regional_indicator(ch: str) -> bool:
    return "\U0001f1e6" <= ch <= "\U0001f1ff"


def _is_emoji_modifier(ch: str) -> bool:
    """Parts of an emoji sequence that change how it looks, not what it says."""
    return (
        ch in _VARIATION_SELECTORS
        or "\U0001f3fb" <= ch <= "\U0001f3ff"  # skin tones
        or ch == "\u20e3"  # keycap
        or "\U000e0020" <= ch <= "\U000e007f"  # tag characters (subdivision flags)
    )


@functools.lru_cache(maxsize=4096)
def _symbol_name(ch: str) -> str:
    """'THUMBS UP SIGN' → 'thumbs up'; '' when this Python's Unicode tables don't know the symbol."""
    if ch in _SYMBOL_NAMES:
        return _SYMBOL_NAMES[ch]
    name = unicodedata.name(ch, "").lower().replace("heavy ", "")
    for prefix in _NAME_PREFIXES:
        name = name.removeprefix(prefix)
    for suffix in _NAME_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def _skip_modifiers(run: str, i: int) -> int:
    while i < len(run) and _is_emoji_modifier(run[i]):
        i += 1
    return i


def _read_symbol(run: str, i: int) -> tuple[str, int]:
    """The spoken name of the symbol or emoji sequence starting at run[i], and where it ends."""
    ch = run[i]
    if _is_regional_indicator(ch):
        if i + 1 < len(run) and _is_regional_indicator(run[i + 1]):
            # Country flags are two letters in disguise: 🇺🇸 is "US flag".
            region = "".join(chr(ord(c) - 0x1F1E6 + ord("A")) for c in run[i : i + 2])
            return f"{region} flag", _skip_modifiers(run, i + 2)
        return "flag", _skip_modifiers(run, i + 1)
    if _is_decoration(ord(ch)):
        return "", i + 1
    names = [_symbol_name(ch)]
    end = _skip_modifiers(run, i + 1)
    while (
        end + 1 < len(run)
        and run[end] == _ZWJ
        and unicodedata.category(run[end + 1]) == "So"
        and not _is_regional_indicator(run[end + 1])
    ):
        part = _symbol_name(run[end + 1])
        if part and part != names[-1]:
            names.append(part)
        end = _skip_modifiers(run, end + 2)
    return " ".join(n for n in names if n), end


def _speak_special_run(match: re.Match[str]) -> str:
    """Emoji become names; control, format, private-use and unassigned characters go; zalgo is thinned."""
    run = match.group()
    out: list[str] = []
    last_symbol = ""
    symbols_in_a_row = 0
    marks = 0
    i = 0
    while i < len(run):
        ch = run[i]
        if ch.isspace() or ch in _BLANK_LETTERS:
            out.append(" ")
            i += 1
            continue
        category = unicodedata.category(ch)
        kind = category[0]
        if kind in "LNP" or category in ("Sm", "Sc"):
            out.append(ch)
            marks = 0
            last_symbol = ""
            symbols_in_a_row = 0
        elif kind == "M":
            if category != "Me" and ch not in _VARIATION_SELECTORS and marks < _MAX_MARKS_PER_LETTER:
                out.append(ch)
                marks += 1
        elif category == "So":
            name, i = _read_symbol(run, i)
            if name and name != last_symbol and symbols_in_a_row < MAX_EMOJI_NAMES_IN_A_ROW:
                out.append(f" {name} ")
                last_symbol = name
                symbols_in_a_row += 1
            continue
        # Everything else (Cc, Cf, Cs, Co, Cn, Sk, Zl, Zp) has no sound.
        i += 1
    return "".join(out)
