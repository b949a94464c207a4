"""Discord message text → speakable words → Echo-ready chunks.

Three stages, each a pure function so it can be tested alone:

1. `to_speakable`: Discord markup (mentions, emoji, links, markdown, timestamps) becomes the words a
   listener would expect to hear.
2. `normalise_for_echo`: the punctuation conventions Echo-TTS was trained on, and defusing of anything
   that could pass for a speaker tag.
3. `chunk`: pieces of at most `MAX_CHUNK_BYTES` UTF-8 bytes (prefix included) and about
   `MAX_CHUNK_SECONDS` of speech, each starting with `SPEAKER_PREFIX`.

`prepare` runs all three and enforces the length limit. Names for mentions come from a `Resolver`;
looking them up may need Discord, so the caller first asks `mentions` which ids a text needs and
hands `prepare` the answers as `Names`. Choices made where Discord text is ambiguous:

- Unicode emoji are read by a short name ("👍" → "thumbs up", "😂😂😂" → "face with tears of joy" once,
  a row of emoji at most `MAX_EMOJI_NAMES_IN_A_ROW` names); skin tones and variation selectors are
  silent, zero-width-joined sequences read their parts ("👩‍💻" → "woman personal computer"), flags read
  their letters ("🇺🇸" → "US flag"), and emoji newer than this Python's Unicode tables are dropped.
  Box-drawing, block and braille characters (ASCII art) are dropped.
- Spoilers are read out: whoever runs `/say` typed the text to have it spoken.
- Timestamps are read as an absolute UTC date and time, including the relative (`:R`) style, because
  the audio may be heard long after it was made; seconds are not read.
- Speaker tags: Echo reads `[S1]`/`[S2]` as "who speaks now", so every `[`/`]` in user text becomes
  `(`/`)` and bracketed tags such as `(S2)` are removed; the only `[` in a chunk is its own prefix.
- A message that is only a link is still speakable ("link to github.com").
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, Protocol

from bot import pronunciation
from bot.errors import NothingToSay, TextReadsTooLong, TextTooLong
from modal_tts import windows
from modal_tts.windows import CHARS_PER_SECOND, WIDE_CHAR_WEIGHT, speech_cost

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
DEFAULT_MAX_CHARS = 2000
# Emoji names, timestamps and ligatures read longer than they look; past this multiple of
# `max_chars` the spoken text is refused rather than producing minutes of audio from one message.
MAX_SPOKEN_GROWTH = 2
# A row of emoji reads as its first few names; the rest of the row is decoration.
MAX_EMOJI_NAMES_IN_A_ROW = 3


class Resolver(Protocol):
    """Names for the ids inside Discord mentions, supplied by the Discord layer.

    Each method returns the name members see (display name, role name, channel name), or None when the
    id is unknown; unknown ids are read as "someone", "a role" or "a channel".
    """

    def user_name(self, user_id: int) -> str | None: ...

    def role_name(self, role_id: int) -> str | None: ...

    def channel_name(self, channel_id: int) -> str | None: ...


@dataclass(frozen=True)
class Names:
    """A `Resolver` over plain dicts: the Discord layer looks the names up first, then reads."""

    users: Mapping[int, str] = field(default_factory=dict)
    roles: Mapping[int, str] = field(default_factory=dict)
    channels: Mapping[int, str] = field(default_factory=dict)

    def user_name(self, user_id: int) -> str | None:
        return self.users.get(user_id)

    def role_name(self, role_id: int) -> str | None:
        return self.roles.get(role_id)

    def channel_name(self, channel_id: int) -> str | None:
        return self.channels.get(channel_id)


class Mentions(NamedTuple):
    """The ids a text mentions where they would be read aloud, each once, in order of appearance."""

    users: tuple[int, ...]
    roles: tuple[int, ...]
    channels: tuple[int, ...]


# --- stage 1: Discord markup → speakable text -------------------------------------------------

_LINE_SEPARATORS = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
_CODE_BLOCK = re.compile(r"```.*?```", re.S)
_INLINE_CODE = re.compile(r"`{1,2}([^`]+)`{1,2}")
# Headers, -# subtext, block quotes and list bullets; repeated because they nest ("> - item").
_LINE_MARKUP = re.compile(r"^[ \t]*(?:(?:>>>|>|#{1,3}|-#|[-*+•]|\d{1,3}[.)])[ \t]+)+", re.M)
# A line break with no punctuation before it still ends a thought; without a stop lines run together.
_UNPUNCTUATED_LINE_END = re.compile(r"(?<=[^\s.!?,;:。！？])[ \t]*\n\s*(?=\S)")
_MASKED_LINK = re.compile(r"\[([^\[\]\n]+)\]\(<?https?://[^\s)>]+>?\)", re.I)
_ANGLE_MARKUP = re.compile(
    r"<(?:"
    r"@!?(?P<user>\d{1,20})"
    r"|@&(?P<role>\d{1,20})"
    r"|#(?P<channel>\d{1,20})"
    r"|a?:(?P<emoji>\w{1,64}):\d{1,20}"
    r"|/(?P<command>[\w-]{1,32}(?: [\w-]{1,32}){0,2}):\d{1,20}"
    r"|t:(?P<timestamp>-?\d{1,20})(?::(?P<style>[A-Za-z]))?"
    r"|id:(?P<guide>\w{1,32})"
    r")>"
)
# Discord leaves trailing punctuation out of a link, so "see https://x.com." ends a sentence.
_URL = re.compile(r"<?https?://[^\s<>]*[^\s<>.,;:!?)\]'\"]>?", re.I)
_URL_HOST = re.compile(r"https?://(?:[^/?#@\s<>]*@)?([^/?#:\s<>]*)", re.I)
_EVERYONE = re.compile(r"@(everyone|here)\b")
_ESCAPE = re.compile(r"\\([^\w\s])")
_TIMES = re.compile(r"(?<=\d) ?\* ?(?=\d)")
_APPROXIMATELY = re.compile(r"~(?=\d)")
_SILENT_MARKUP = re.compile(r"[*~`]+")
_WORD_SEPARATORS = re.compile(r"[|\\_]+")
# Runs that contain anything but printable ASCII (spaces between them included, so repeated emoji
# separated by spaces are seen together).
_SPECIAL_RUN = re.compile(r"[^\x20-\x7e]+(?: +[^\x20-\x7e]+)*")
_WHITESPACE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCTUATION = re.compile(r" +(?=[.,!?;:](?:\s|$))")
# Digits are exempt: "1000000" is a number, not a drawn-out sound.
_LONG_RUN = re.compile(r"([^\d\s])\1{3,}")

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

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


def _spoken_clock(moment: datetime) -> str:
    hour = moment.hour % 12 or 12
    return f"{hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'} UTC"


def _spoken_timestamp(seconds: int, style: str | None) -> str:
    """A Discord <t:…> timestamp as words, always absolute and in UTC."""
    try:
        moment = _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return "a date"
    date = f"{_MONTHS[moment.month - 1]} {moment.day}, {moment.year}"
    if style in ("t", "T"):
        return _spoken_clock(moment)
    if style in ("d", "D"):
        return date
    if style == "F":
        return f"{_WEEKDAYS[moment.weekday()]}, {date} at {_spoken_clock(moment)}"
    return f"{date} at {_spoken_clock(moment)}"


def _named(name: str | None, fallback: str) -> str:
    """A resolved name as plain text (display names love 𝓯𝓪𝓷𝓬𝔂 letters), or the neutral word."""
    name = unicodedata.normalize("NFKC", name).strip() if name else ""
    return name or fallback


def _speak_angle_markup(match: re.Match[str], resolve: Resolver | None) -> str:
    groups = match.groupdict()
    if groups["user"] is not None:
        name = resolve.user_name(int(groups["user"])) if resolve else None
        return f" {_named(name, 'someone')} "
    if groups["role"] is not None:
        name = resolve.role_name(int(groups["role"])) if resolve else None
        return f" {_named(name, 'a role')} "
    if groups["channel"] is not None:
        name = resolve.channel_name(int(groups["channel"])) if resolve else None
        return f" {_named(name, 'a channel')} "
    if groups["emoji"] is not None:
        return f" {groups['emoji'].replace('_', ' ')} "
    if groups["command"] is not None:
        return f" {groups['command']} "
    if groups["timestamp"] is not None:
        return f" {_spoken_timestamp(int(groups['timestamp']), groups['style'])} "
    return " a channel "  # <id:customize> and friends: the server's onboarding pages


def _speak_link(match: re.Match[str]) -> str:
    host_match = _URL_HOST.match(match.group().lstrip("<"))
    host = host_match.group(1).lower().removeprefix("www.").strip(".") if host_match else ""
    if not any(ch.isalnum() for ch in host):
        return " a link "
    return f" link to {host} "


def _up_to_mentions(text: str) -> str:
    """The first steps of `to_speakable`, shared with `mentions` so both see the same mentions."""
    # NFKC folds look-alike letters (𝓱𝓲, ｆｕｌｌ-width, ligatures) into ones a voice model knows.
    text = unicodedata.normalize("NFKC", text)
    text = _LINE_SEPARATORS.sub("\n", text)
    text = _CODE_BLOCK.sub(" code block ", text)
    text = _INLINE_CODE.sub(r"\1", text)
    text = _LINE_MARKUP.sub("", text)
    text = _UNPUNCTUATED_LINE_END.sub(". ", text)
    return _MASKED_LINK.sub(r"\1", text)


def mentions(text: str) -> Mentions:
    """The user, role and channel ids `to_speakable` would ask a resolver about (none in code blocks)."""
    found: dict[str, dict[int, None]] = {"user": {}, "role": {}, "channel": {}}
    for match in _ANGLE_MARKUP.finditer(_up_to_mentions(text)):
        for kind, ids in found.items():
            if match.group(kind) is not None:
                ids[int(match.group(kind))] = None
    return Mentions(tuple(found["user"]), tuple(found["role"]), tuple(found["channel"]))


def to_speakable(text: str, resolve: Resolver | None = None) -> str:
    """Turn a Discord message into the plain words a listener should hear, on one line."""
    text = _up_to_mentions(text)
    text = _ANGLE_MARKUP.sub(lambda m: _speak_angle_markup(m, resolve), text)
    text = _URL.sub(_speak_link, text)
    text = _EVERYONE.sub(r"\1", text)
    text = _ESCAPE.sub(r"\1", text)
    text = text.replace("||", "")  # spoiler bars; the words inside are read
    text = _TIMES.sub(" times ", text)
    text = _APPROXIMATELY.sub("about ", text)
    text = _SILENT_MARKUP.sub("", text)
    text = _WORD_SEPARATORS.sub(" ", text)
    text = _SPECIAL_RUN.sub(_speak_special_run, text)
    text = _WHITESPACE.sub(" ", text).strip()
    text = _SPACE_BEFORE_PUNCTUATION.sub("", text)
    return _LONG_RUN.sub(r"\1\1\1", text)


# --- stage 2: Echo's conventions ---------------------------------------------------------------

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


# --- stage 3: chunks -----------------------------------------------------------------------------

_SENTENCE_ENDS = frozenset(".!?。！？")
_CLAUSE_ENDS = frozenset(",;:，、；：")
_CLOSERS = "\"')»”’」』"
# Inside one over-long "word" (CJK text has no spaces), punctuation is still a place to break.
_INNER_BREAK = re.compile(r"(?<=[.!?。！？,;:，、；：])(?=.)", re.S)
_SPEAKABLE = re.compile(r"[^\W_]")

_SENTENCE, _CLAUSE, _WORD, _INSIDE_WORD = 3, 2, 1, 0
# How far (as a share of an even split) a cut at a comma may stray before balance matters more.
_BALANCE_SLACK = 0.5


# One estimate of speaking time for the whole project: the GPU side sizes its windows with it too.
_speech_cost = speech_cost


def estimate_seconds(text: str) -> float:
    """Rough speaking time of `text` (a leading speaker prefix is not spoken and not counted)."""
    return windows.estimate_seconds(text)


def longest_seconds(chunk: str) -> float:
    """The most audio the engine can return for `chunk`: the largest window it may be sampled in."""
    return windows.largest_window(chunk) / windows.LATENTS_PER_SECOND


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


# --- all stages ------------------------------------------------------------------------------------


def prepare(
    text: str,
    *,
    resolve: Resolver | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    dictionary: Mapping[str, str] | None = None,
) -> list[str]:
    """Turn what a member typed into Echo-ready chunks, in order; `dictionary` (word → spoken as)
    is applied to the words a listener would hear, before chunking.

    Raises TextTooLong when `text` has more than `max_chars` characters (counted as typed), and
    NothingToSay when no letters or digits are left once markup, emoji and symbols are handled.
    Text that reads out far longer than it looks (a wall of emoji) raises TextReadsTooLong.
    """
    if len(text) > max_chars:
        raise TextTooLong(len(text), max_chars)
    spoken = normalise_for_echo(pronunciation.apply(to_speakable(text, resolve), dictionary or {}))
    if len(spoken) > MAX_SPOKEN_GROWTH * max_chars:
        raise TextReadsTooLong(len(spoken), MAX_SPOKEN_GROWTH * max_chars)
    chunks = chunk(spoken)
    if not chunks:
        raise NothingToSay()
    return lead_with_a_short_chunk(chunks)
