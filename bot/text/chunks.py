"""Stage 3: Echo-normalised text → chunks of at most `MAX_CHUNK_BYTES` UTF-8 bytes (prefix included)
and about `MAX_CHUNK_SECONDS` of speech, each starting with `SPEAKER_PREFIX`.

Splits fall at sentence ends first, then clause ends, then between words, and only inside a word that
alone is too long; chunks come out few and of similar size. A long message's first sentence becomes a
chunk of its own (`lead_with_a_short_chunk`), so it starts to be heard sooner.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import NamedTuple

from bot.text.duration import _speech_cost, estimate_seconds
from bot.text.symbols import _MAX_MARKS_PER_LETTER
from modal_tts import windows
from modal_tts.windows import CHARS_PER_SECOND, WIDE_CHAR_WEIGHT

SPEAKER_PREFIX = windows.SPEAKER_PREFIX
# Echo's text window is 768 bytes, and its tokenizer spends one of them on a BOS byte.
ECHO_MAX_TEXT_BYTES = 768
MAX_CHUNK_BYTES = ECHO_MAX_TEXT_BYTES - 1
# One generation holds ~30 s; aim lower so a slow voice still fits.
MAX_CHUNK_SECONDS = 25.0
# A long message's first sentence becomes a chunk of its own when it is this short (but not shorter
# than the minimum, where Echo's tail noise on very short inputs would start to show).
FIRST_CHUNK_SECONDS = 6.0
MIN_FIRST_CHUNK_SECONDS = 1.0

_SENTENCE_ENDS = frozenset(".!?。！？")
_CLAUSE_ENDS = frozenset(",;:，、；：")
_CLOSERS = "\"')»”’」』"
# Inside one over-long "word" (CJK text has no spaces), punctuation is still a place to break.
_INNER_BREAK = re.compile(r"(?<=[.!?。！？,;:，、；：])(?=.)", re.S)
_SPEAKABLE = re.compile(r"[^\W_]")

_SENTENCE, _CLAUSE, _WORD, _INSIDE_WORD = 3, 2, 1, 0
# How far (as a share of an even split) a cut at a comma may stray before balance matters more.
_BALANCE_SLACK = 0.5


class _Unit(NamedTuple):
    """A piece of text that chunks are built from: a word, or part of an over-long one."""

    text: str
    glue: str  # what joins it to the unit before: " " between words, "" inside a word
    cost: int
    nbytes: int
    boundary: int  # how good a place to end a chunk right after this unit is


def _boundary_after(text: str) -> int:
    last = text.rstrip(_CLOSERS)[-1:]
    if last in _SENTENCE_ENDS:
        return _SENTENCE
    if last in _CLAUSE_ENDS:
        return _CLAUSE
    return _WORD


def _utf8_len(ch: str) -> int:
    cp = ord(ch)
    return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4


def _grapheme_start(word: str, start: int, i: int) -> int:
    """Where the letter that word[i] belongs to begins, so accents stay with their letter."""
    base = i
    while base > start + 1 and i - base < _MAX_MARKS_PER_LETTER + 2:
        if unicodedata.category(word[base])[0] != "M":
            break
        base -= 1
    return base if unicodedata.category(word[base])[0] != "M" else i


def _hard_split(word: str, max_cost: float, max_bytes: int) -> list[str]:
    """Cut one unbreakable run into near-equal pieces that fit, never splitting a character."""
    cost, nbytes = _speech_cost(word), len(word.encode("utf-8", "surrogatepass"))
    pieces_needed = math.ceil(max(cost / max_cost, nbytes / max_bytes))
    cost_target, bytes_target = cost / pieces_needed, nbytes / pieces_needed
    pieces: list[str] = []
    start, piece_cost, piece_bytes = 0, 0, 0
    for i, ch in enumerate(word):
        ch_cost, ch_bytes = _speech_cost(ch), _utf8_len(ch)
        full = piece_cost >= cost_target or piece_bytes >= bytes_target
        overflow = piece_cost + ch_cost > max_cost or piece_bytes + ch_bytes > max_bytes
        if i > start and (full or overflow):
            cut = _grapheme_start(word, start, i)
            if not _fits(word[cut : i + 1], max_cost, max_bytes):
                cut = i
            pieces.append(word[start:cut])
            start = cut
            carried = word[cut:i]
            piece_cost = _speech_cost(carried)
            piece_bytes = len(carried.encode("utf-8", "surrogatepass"))
        piece_cost += ch_cost
        piece_bytes += ch_bytes
    pieces.append(word[start:])
    return pieces


def _units(text: str, max_cost: float, max_bytes: int) -> list[_Unit]:
    units: list[_Unit] = []
    for word in text.split():
        cost, nbytes = _speech_cost(word), len(word.encode("utf-8", "surrogatepass"))
        if cost <= max_cost and nbytes <= max_bytes:
            units.append(_Unit(word, " ", cost, nbytes, _boundary_after(word)))
            continue
        glue = " "
        for part in _INNER_BREAK.split(word):
            pieces = _hard_split(part, max_cost, max_bytes)
            for n, piece in enumerate(pieces):
                boundary = _boundary_after(piece) if n == len(pieces) - 1 else _INSIDE_WORD
                units.append(
                    _Unit(
                        piece,
                        glue,
                        _speech_cost(piece),
                        len(piece.encode("utf-8", "surrogatepass")),
                        boundary,
                    )
                )
                glue = ""
    return units


def _pack(units: list[_Unit], max_cost: float, max_bytes: int) -> list[str]:
    """Group units into chunks: few chunks, of similar size, ending at sentence or clause ends."""
    cost_sums, byte_sums = [0], [0]
    for unit in units:
        cost_sums.append(cost_sums[-1] + unit.cost + len(unit.glue))
        byte_sums.append(byte_sums[-1] + unit.nbytes + len(unit.glue))

    def load(start: int, end: int) -> float:
        """How full a chunk of units[start:end] is; at most 1.0 fits."""
        glue = len(units[start].glue)
        return max(
            (cost_sums[end] - cost_sums[start] - glue) / max_cost,
            (byte_sums[end] - byte_sums[start] - glue) / max_bytes,
        )

    def join(start: int, end: int) -> str:
        return units[start].text + "".join(u.glue + u.text for u in units[start + 1 : end])

    chunks: list[str] = []
    start = 0
    while start < len(units):
        remaining = load(start, len(units))
        if remaining <= 1.0:
            chunks.append(join(start, len(units)))
            break
        fewest = math.ceil(remaining)
        target = remaining / fewest
        best_end, best_key = start + 1, (-1, 0.0)
        end = start + 1
        while end < len(units) and (filled := load(start, end)) <= 1.0:
            if load(end, len(units)) <= fewest - 1:  # cutting here costs no extra chunk
                boundary = units[end - 1].boundary
                off_target = abs(filled - target)
                # A sentence end is always worth it; a comma far from balance is just another word.
                if boundary < _SENTENCE and off_target > _BALANCE_SLACK * target:
                    boundary = min(boundary, _WORD)
                key = (boundary, -off_target)
                if key > best_key:
                    best_end, best_key = end, key
            elif best_key[0] < 0:
                best_end = end  # no cut keeps the count minimal: take as much as fits
            end += 1
        chunks.append(join(start, best_end))
        start = best_end
    return chunks


def _fits(text: str, max_cost: float, max_bytes: int) -> bool:
    return _speech_cost(text) <= max_cost and len(text.encode("utf-8", "surrogatepass")) <= max_bytes


def _fold_unspeakable(chunks: list[str], max_cost: float, max_bytes: int) -> list[str]:
    """A chunk of bare punctuation would make Echo mumble: join it to a neighbour, or drop it."""
    kept: list[str] = []
    carried = ""  # bare punctuation waiting to lead the next chunk
    for n, piece in enumerate(chunks):
        piece = f"{carried} {piece}" if carried else piece
        carried = ""
        if _SPEAKABLE.search(piece):
            kept.append(piece)
        elif kept and _fits(f"{kept[-1]} {piece}", max_cost, max_bytes):
            kept[-1] = f"{kept[-1]} {piece}"
        elif n + 1 < len(chunks) and _fits(f"{piece} {chunks[n + 1]}", max_cost, max_bytes):
            carried = piece
    return kept


def chunk(
    text: str,
    *,
    max_seconds: float = MAX_CHUNK_SECONDS,
    max_bytes: int = MAX_CHUNK_BYTES,
) -> list[str]:
    """Split Echo-normalised text into chunks that each start with SPEAKER_PREFIX.

    Each chunk is at most `max_bytes` UTF-8 bytes including the prefix and `max_seconds` by
    `estimate_seconds`. Splits fall at sentence ends first, then clause ends, then between words, and
    only inside a word that alone is too long. Words keep their order; chunks with nothing to say
    are merged into a neighbour or dropped, so text without letters or digits gives [].
    """
    body_bytes = max_bytes - len(SPEAKER_PREFIX.encode())
    max_cost = max_seconds * CHARS_PER_SECOND
    if body_bytes < 4 or max_cost < WIDE_CHAR_WEIGHT:
        raise ValueError("a chunk must hold at least one character of any kind")
    text = " ".join(text.split())
    if _SPEAKABLE.search(text) and _fits(text, max_cost, body_bytes):
        return [SPEAKER_PREFIX + text]  # the usual short message
    units = _units(text, max_cost, body_bytes)
    if not units:
        return []
    chunks = _fold_unspeakable(_pack(units, max_cost, body_bytes), max_cost, body_bytes)
    return [SPEAKER_PREFIX + piece for piece in chunks]


def lead_with_a_short_chunk(chunks: list[str]) -> list[str]:
    """Split the first sentence off a long first chunk: the first chunk is sampled on its own, in a
    small window, so it alone sets how soon a long message starts to be heard."""
    first = chunks[0].removeprefix(SPEAKER_PREFIX)
    if estimate_seconds(first) <= FIRST_CHUNK_SECONDS:
        return chunks
    for n, char in enumerate(first):
        if char not in _SENTENCE_ENDS:
            continue
        end = n + 1
        while end < len(first) and first[end] in _CLOSERS:
            end += 1
        head, tail = first[:end].strip(), first[end:].strip()
        if estimate_seconds(head) > FIRST_CHUNK_SECONDS or not _SPEAKABLE.search(tail):
            break
        if estimate_seconds(head) >= MIN_FIRST_CHUNK_SECONDS and (end == len(first) or first[end] == " "):
            return [SPEAKER_PREFIX + head, SPEAKER_PREFIX + tail, *chunks[1:]]
    return chunks
